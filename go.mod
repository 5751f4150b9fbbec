module github.com/meterbill/meterbill

go 1.25.0

require (
	github.com/felixge/httpsnoop v1.0.4
	github.com/google/go-cmp v0.7.0
	github.com/shopspring/decimal v1.6.0
	github.com/stripe/stripe-go/v82 v82.5.1
	go.uber.org/goleak v1.3.0
	golang.org/x/time v0.15.0
)
