package stripefake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/meterbill/meterbill/internal/stripefake"
)

// epoch is where the fake's clock starts, in unix seconds.
var epoch = time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC).Unix()

// newFake starts a fake with two customers and a few invoices, and a
// stripe-go client pointed at it as meterbill's production adapter is:
//
//   - cus_a: in_draft (usd, draft), in_open (usd, open), in_eur (eur, draft)
//   - cus_b: in_b (usd, draft)
func newFake(t *testing.T) (*stripefake.Server, *stripe.Client) {
	t.Helper()
	f := stripefake.New()
	t.Cleanup(f.Close)
	f.AddCustomer("cus_a", map[string]string{"tenant": "t1"})
	f.AddCustomer("cus_b", nil)
	for _, inv := range []stripefake.Invoice{
		{ID: "in_draft", Customer: "cus_a", Currency: "usd", Status: "draft", BillingReason: "subscription_cycle"},
		{ID: "in_open", Customer: "cus_a", Currency: "usd", Status: "open"},
		{ID: "in_eur", Customer: "cus_a", Currency: "eur", Status: "draft"},
		{ID: "in_b", Customer: "cus_b", Currency: "usd", Status: "draft"},
	} {
		f.AddInvoice(inv)
	}
	return f, newClient(f.URL)
}

// newClient is meterbill's production adapter pointed at url.
func newClient(url string) *stripe.Client {
	b := stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:               stripe.String(url),
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return stripe.NewClient("sk_test_fake", stripe.WithBackends(b))
}

// errView is what the tests check of a *stripe.Error.
type errView struct {
	Status int
	Type   stripe.ErrorType
	Code   stripe.ErrorCode
	Param  string
}

// asStripeErr unwraps err into a *stripe.Error, failing the test otherwise.
func asStripeErr(t *testing.T, err error) *stripe.Error {
	t.Helper()
	var se *stripe.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *stripe.Error", err, err)
	}
	return se
}

// viewErr is the errView of err, or the zero errView for nil.
func viewErr(t *testing.T, err error) errView {
	t.Helper()
	if err == nil {
		return errView{}
	}
	se := asStripeErr(t, err)
	return errView{Status: se.HTTPStatusCode, Type: se.Type, Code: se.Code, Param: se.Param}
}

// itemView is what the tests check of a *stripe.InvoiceItem.
type itemView struct {
	Object, Customer, Invoice, Currency, Description string
	Amount, Quantity                                 int64
	Metadata                                         map[string]string
	PeriodStart, PeriodEnd, Date                     int64
	UnitAmountDecimal                                float64
}

// viewItem projects an item as decoded by stripe-go.
func viewItem(it *stripe.InvoiceItem) itemView {
	v := itemView{
		Object:      it.Object,
		Currency:    string(it.Currency),
		Description: it.Description,
		Amount:      it.Amount,
		Quantity:    it.Quantity,
		Metadata:    it.Metadata,
		Date:        it.Date,
	}
	if it.Customer != nil {
		v.Customer = it.Customer.ID
	}
	if it.Invoice != nil {
		v.Invoice = it.Invoice.ID
	}
	if it.Period != nil {
		v.PeriodStart, v.PeriodEnd = it.Period.Start, it.Period.End
	}
	if it.Pricing != nil {
		v.UnitAmountDecimal = it.Pricing.UnitAmountDecimal
	}
	return v
}

// create adds an item through stripe-go.
func create(sc *stripe.Client, p *stripe.InvoiceItemCreateParams) (*stripe.InvoiceItem, error) {
	return sc.V1InvoiceItems.Create(context.Background(), p)
}

// usd is a minimal valid create of amount cents for cus_a, optionally on an
// invoice, under an idempotency key if key is not "".
func usd(amount int64, invoice, key string) *stripe.InvoiceItemCreateParams {
	p := &stripe.InvoiceItemCreateParams{
		Customer: stripe.String("cus_a"),
		Currency: stripe.String("usd"),
		Amount:   stripe.Int64(amount),
	}
	if invoice != "" {
		p.Invoice = stripe.String(invoice)
	}
	if key != "" {
		p.SetIdempotencyKey(key)
	}
	return p
}

// ids returns the ids of items, in order.
func ids(items []stripefake.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// waitFor polls cond until it holds, failing the test after a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
