package meterbill_test

// The rules for what happens after something went wrong earlier: missed webhooks, finalized
// invoices, lines cut short, lines Stripe refuses, stored failures, plan changes. Each test is
// named after the behaviour it pins.

import (
	"context"
	"testing"

	"github.com/meterbill/meterbill/internal/stripefake"
)

// TestStripeRequestsCountEveryPage: Report.StripeRequests counts HTTP requests, so a ledger read
// of three pages counts three.
func TestStripeRequestsCountEveryPage(t *testing.T) {
	b := newBridge(t, billPlan[:1])
	b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 10, "")
	inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	for range 250 { // history meterbill did not write: three pages of 100
		b.stripe.AddItem(stripefake.Item{Customer: "cus_a", Invoice: "in_old", Currency: "usd", Amount: 100, Description: "setup fee"})
	}
	before := b.stripe.CountRequests("", "/v1/")
	if got := b.deliver(t, inv, "draft"); got != 200 {
		t.Fatalf("status %d: %v", got, b.lastReport().Err)
	}
	sent := b.stripe.CountRequests("", "/v1/") - before
	if got := b.lastReport().StripeRequests; got != sent || sent != 4 {
		t.Errorf("Report.StripeRequests = %d, the fake received %d, want 4 (3 pages and 1 create)", got, sent)
	}
	rep, err := b.handler.BillInvoice(context.Background(), "in_mar")
	if err != nil {
		t.Fatal(err)
	}
	if rep.StripeRequests != 4 { // the invoice and 3 pages
		t.Errorf("BillInvoice's Report.StripeRequests = %d, want 4", rep.StripeRequests)
	}
}
