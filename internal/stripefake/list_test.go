package stripefake_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82"
)

// listIDs lists through stripe-go's auto-paginating iterator.
func listIDs(sc *stripe.Client, p *stripe.InvoiceItemListParams) ([]string, error) {
	var out []string
	for it, err := range sc.V1InvoiceItems.List(context.Background(), p) {
		if err != nil {
			return out, err
		}
		out = append(out, it.ID)
	}
	return out, nil
}

func TestListPaginatesNewestFirst(t *testing.T) {
	f, sc := newFake(t)
	for i := range 250 {
		if i%40 == 0 {
			f.Advance(time.Minute) // a mix of distinct and equal creation times
		}
		if _, err := create(sc, usd(int64(i), "", "")); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 { // another customer's items in between
			p := usd(1, "", "")
			p.Customer = stripe.String("cus_b")
			if _, err := create(sc, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := ids(f.Items("cus_a"))
	slices.Reverse(want)
	gets := f.CountRequests(http.MethodGet, "/v1/invoiceitems")

	got, err := listIDs(sc, &stripe.InvoiceItemListParams{
		Customer:   stripe.String("cus_a"),
		ListParams: stripe.ListParams{Limit: stripe.Int64(100)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed ids mismatch (-want +got):\n%s", diff)
	}
	if n := f.CountRequests(http.MethodGet, "/v1/invoiceitems") - gets; n != 3 {
		t.Errorf("listing 250 items by 100 took %d pages, want 3", n)
	}
}

func TestListEndingBefore(t *testing.T) {
	f, sc := newFake(t)
	for i := range 5 {
		if _, err := create(sc, usd(int64(i), "", "")); err != nil {
			t.Fatal(err)
		}
	}
	all := ids(f.Items("cus_a")) // oldest first: 0..4; listed newest first: 4..0
	// stripe-go walks backwards from the cursor, towards newer items.
	got, err := listIDs(sc, &stripe.InvoiceItemListParams{
		ListParams: stripe.ListParams{Limit: stripe.Int64(1), EndingBefore: stripe.String(all[1])},
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{all[2], all[3], all[4]}, got); diff != "" {
		t.Errorf("ids mismatch (-want +got):\n%s", diff)
	}
}

func TestListFilters(t *testing.T) {
	f, sc := newFake(t)
	for _, p := range []*stripe.InvoiceItemCreateParams{
		usd(1, "in_draft", ""),
		usd(2, "", ""),
		usd(3, "in_draft", ""),
		{Customer: stripe.String("cus_b"), Invoice: stripe.String("in_b"), Currency: stripe.String("usd"), Amount: stripe.Int64(4)},
		{Customer: stripe.String("cus_b"), Currency: stripe.String("usd"), Amount: stripe.Int64(5)},
	} {
		if _, err := create(sc, p); err != nil {
			t.Fatal(err)
		}
	}
	a, b := ids(f.Items("cus_a")), ids(f.Items("cus_b"))

	tests := []struct {
		name   string
		params *stripe.InvoiceItemListParams
		want   []string
	}{
		{name: "all", params: &stripe.InvoiceItemListParams{}, want: []string{b[1], b[0], a[2], a[1], a[0]}},
		{name: "customer", params: &stripe.InvoiceItemListParams{Customer: stripe.String("cus_a")}, want: []string{a[2], a[1], a[0]}},
		{name: "invoice", params: &stripe.InvoiceItemListParams{Invoice: stripe.String("in_draft")}, want: []string{a[2], a[0]}},
		{name: "pending", params: &stripe.InvoiceItemListParams{Pending: stripe.Bool(true)}, want: []string{b[1], a[1]}},
		{name: "not pending", params: &stripe.InvoiceItemListParams{Pending: stripe.Bool(false)}, want: []string{b[0], a[2], a[0]}},
		{
			name:   "customer and pending",
			params: &stripe.InvoiceItemListParams{Customer: stripe.String("cus_b"), Pending: stripe.Bool(false)},
			want:   []string{b[0]},
		},
		{name: "unknown customer", params: &stripe.InvoiceItemListParams{Customer: stripe.String("cus_nope")}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := listIDs(sc, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ids mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListErrors(t *testing.T) {
	_, sc := newFake(t)
	if _, err := create(sc, usd(1, "", "")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		params *stripe.InvoiceItemListParams
		want   errView
	}{
		{
			name:   "limit 0",
			params: &stripe.InvoiceItemListParams{ListParams: stripe.ListParams{Limit: stripe.Int64(0)}},
			want:   errView{Status: http.StatusBadRequest, Type: stripe.ErrorTypeInvalidRequest, Param: "limit"},
		},
		{
			name:   "limit 101",
			params: &stripe.InvoiceItemListParams{ListParams: stripe.ListParams{Limit: stripe.Int64(101)}},
			want:   errView{Status: http.StatusBadRequest, Type: stripe.ErrorTypeInvalidRequest, Param: "limit"},
		},
		{
			name:   "unknown cursor",
			params: &stripe.InvoiceItemListParams{ListParams: stripe.ListParams{StartingAfter: stripe.String("ii_nope")}},
			want:   errView{Status: http.StatusBadRequest, Type: stripe.ErrorTypeInvalidRequest, Code: "resource_missing", Param: "starting_after"},
		},
		{
			name: "unknown parameter",
			params: func() *stripe.InvoiceItemListParams {
				p := &stripe.InvoiceItemListParams{}
				p.Filters.AddFilter("colour", "", "blue")
				return p
			}(),
			want: errView{Status: http.StatusBadRequest, Type: stripe.ErrorTypeInvalidRequest, Code: "parameter_unknown", Param: "colour"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := listIDs(sc, tt.params)
			if diff := cmp.Diff(tt.want, viewErr(t, err)); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
