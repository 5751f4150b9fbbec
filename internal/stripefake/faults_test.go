package stripefake_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82"

	"github.com/meterbill/meterbill/internal/stripefake"
)

func TestFaults(t *testing.T) {
	getCustomer := func(sc *stripe.Client) error {
		_, err := sc.V1Customers.Retrieve(context.Background(), "cus_a", nil)
		return err
	}
	createItem := func(sc *stripe.Client) error {
		_, err := create(sc, usd(1, "", "same-key"))
		return err
	}
	rateLimited := errView{Status: http.StatusTooManyRequests, Type: stripe.ErrorTypeInvalidRequest, Code: stripe.ErrorCodeRateLimit}
	serverError := errView{Status: http.StatusInternalServerError, Type: stripe.ErrorTypeAPI}
	inUse := errView{Status: http.StatusConflict, Type: stripe.ErrorTypeInvalidRequest, Code: stripe.ErrorCodeIdempotencyKeyInUse}

	tests := []struct {
		name      string
		faults    []stripefake.Fault
		call      func(*stripe.Client) error
		want      []errView // one per call, in order; the zero errView is success
		wantItems int
	}{
		{
			name:   "429 twice then success",
			faults: []stripefake.Fault{{Method: http.MethodGet, Path: "/v1/customers", Status: http.StatusTooManyRequests, Times: 2}},
			call:   getCustomer,
			want:   []errView{rateLimited, rateLimited, {}},
		},
		{
			name:   "a fault for another method does not match",
			faults: []stripefake.Fault{{Method: http.MethodPost, Path: "/v1/customers", Status: http.StatusTooManyRequests, Times: 1}},
			call:   getCustomer,
			want:   []errView{{}},
		},
		{
			name:   "a fault for another path does not match",
			faults: []stripefake.Fault{{Path: "/v1/invoices/", Status: http.StatusInternalServerError, Times: 1}},
			call:   getCustomer,
			want:   []errView{{}},
		},
		{
			name: "faults are taken in order",
			faults: []stripefake.Fault{
				{Path: "/v1/", Status: http.StatusInternalServerError, Times: 1},
				{Path: "/v1/customers", Status: http.StatusTooManyRequests, Times: 1},
			},
			call: getCustomer,
			want: []errView{serverError, rateLimited, {}},
		},
		{
			// A fault answers before idempotency handling, so nothing is
			// stored and a retry under the same key does the work.
			name:      "500 before the work is not stored under the key",
			faults:    []stripefake.Fault{{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: http.StatusInternalServerError, Times: 1}},
			call:      createItem,
			want:      []errView{serverError, {}, {}},
			wantItems: 1,
		},
		{
			name:      "409 fault",
			faults:    []stripefake.Fault{{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: http.StatusConflict, Times: 1}},
			call:      createItem,
			want:      []errView{inUse, {}},
			wantItems: 1,
		},
		{
			name:      "AfterApply 500 is replayed",
			faults:    []stripefake.Fault{{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: http.StatusInternalServerError, Times: 1, AfterApply: true}},
			call:      createItem,
			want:      []errView{serverError, serverError},
			wantItems: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, sc := newFake(t)
			for _, fault := range tt.faults {
				f.Inject(fault)
			}
			var got []errView
			for range tt.want {
				got = append(got, viewErr(t, tt.call(sc)))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("results mismatch (-want +got):\n%s", diff)
			}
			if n := len(f.Items("cus_a")); n != tt.wantItems {
				t.Errorf("%d items, want %d", n, tt.wantItems)
			}
		})
	}
}
