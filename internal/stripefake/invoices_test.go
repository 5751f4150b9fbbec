package stripefake_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82"

	"github.com/meterbill/meterbill/internal/stripefake"
)

// TestInvoiceLifecycle: an invoice created through the API (with the customer's pending items),
// finalized once, listed by subscription and status; a voided invoice listed as void; a deleted
// draft gone, its items pending again.
func TestInvoiceLifecycle(t *testing.T) {
	ctx := context.Background()
	f, sc := newFake(t)
	pending, err := sc.V1InvoiceItems.Create(ctx, &stripe.InvoiceItemCreateParams{Customer: stripe.String("cus_a"), Currency: stripe.String("usd"), Amount: stripe.Int64(300)})
	if err != nil {
		t.Fatal(err)
	}
	params := &stripe.InvoiceCreateParams{Customer: stripe.String("cus_a"), Currency: stripe.String("usd"), AutoAdvance: stripe.Bool(true),
		CollectionMethod: stripe.String("charge_automatically"), PendingInvoiceItemsBehavior: stripe.String("include"),
		Metadata: map[string]string{"meterbill_final": "sub_1"}}
	inv, err := sc.V1Invoices.Create(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Status != stripe.InvoiceStatusDraft || !inv.AutoAdvance || inv.Metadata["meterbill_final"] != "sub_1" {
		t.Errorf("created %+v", inv)
	}
	if got := f.InvoiceItems(inv.ID); len(got) != 1 || got[0].ID != pending.ID {
		t.Errorf("items on the new invoice %+v, want the pending one", got)
	}
	done, err := sc.V1Invoices.FinalizeInvoice(ctx, inv.ID, nil)
	if err != nil || done.Status != stripe.InvoiceStatusOpen {
		t.Fatalf("finalize: %v %v", done, err)
	}
	if _, err := sc.V1Invoices.FinalizeInvoice(ctx, inv.ID, nil); asStripeErr(t, err).Code != "invoice_not_editable" {
		t.Errorf("finalizing twice: %v", err)
	}

	f.AddInvoice(stripefake.Invoice{ID: "in_void", Customer: "cus_a", Currency: "usd", Status: "void", Subscription: "sub_1", PeriodEnd: epoch})
	f.AddInvoice(stripefake.Invoice{ID: "in_old_void", Customer: "cus_a", Currency: "usd", Status: "void", Subscription: "sub_1", PeriodEnd: epoch - 1000})
	var got []string
	for inv, err := range sc.V1Invoices.List(ctx, &stripe.InvoiceListParams{Subscription: stripe.String("sub_1"), Status: stripe.String("void"),
		CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: epoch - 10}}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, inv.ID)
	}
	if diff := cmp.Diff([]string{"in_void"}, got); diff != "" {
		t.Errorf("void invoices of sub_1 since (-want +got):\n%s", diff)
	}

	item, err := sc.V1InvoiceItems.Create(ctx, &stripe.InvoiceItemCreateParams{Customer: stripe.String("cus_b"), Invoice: stripe.String("in_b"), Currency: stripe.String("usd"), Amount: stripe.Int64(5)})
	if err != nil {
		t.Fatal(err)
	}
	f.DeleteInvoice("in_b")
	if _, err := sc.V1Invoices.Retrieve(ctx, "in_b", nil); asStripeErr(t, err).HTTPStatusCode != 404 {
		t.Errorf("a deleted draft: %v", err)
	}
	if got := f.Items("cus_b"); len(got) != 1 || got[0].ID != item.ID || got[0].Invoice != "" {
		t.Errorf("the deleted draft's items %+v, want pending again", got)
	}
}
