package meterbill_test

// A subscription's whole life: where its billing starts (mid-month, after a trial), and what
// happens to invoices that arrive finalized or are voided. Each test goes through the handler
// over HTTP, with the stateful Stripe fake.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/internal/stripefake"
)

// TestBillingStartsWithTheSubscription: usage from before a subscription started (a free tier)
// or during its trial is never billed, in the invoice's window or by catch-up. A bucket that
// straddles the start cannot be split by the meter and is not billed either: a Calendar month
// that began before the subscription is waived, while a Day metric bills from the start day on.
// WithTrialUsage(true) bills the trial.
func TestBillingStartsWithTheSubscription(t *testing.T) {
	type invoice struct {
		id         string
		start, end time.Time
	}
	tests := []struct {
		name     string
		sub      stripefake.Subscription
		opts     []meterbill.Option
		invoices []invoice
		want     []itemView
	}{
		{
			name: "subscribed on March 20 after a free tier: storage from the 20th; March's requests straddle the start, April's are billed",
			sub:  stripefake.Subscription{StartDate: date(2026, 3, 20).Unix()},
			invoices: []invoice{
				{"in_apr20", date(2026, 3, 20), date(2026, 4, 20)},
				{"in_may20", date(2026, 4, 20), date(2026, 5, 20)},
			},
			want: []itemView{
				{Invoice: "in_apr20", Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-03-20", To: "2026-04-20", Tier: "1"},
				{Invoice: "in_apr20", Desc: "Storage (tier 2): 900", Amount: 1800, From: "2026-03-20", To: "2026-04-20", Tier: "2"},
				{Invoice: "in_apr20", Desc: "Storage (tier 3): 240", Amount: 240, From: "2026-03-20", To: "2026-04-20", Tier: "3"},
				{Invoice: "in_may20", Desc: "Requests: 300", Amount: 30, From: "2026-04-01", To: "2026-05-01", Tier: "0"},
				{Invoice: "in_may20", Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-04-20", To: "2026-05-20", Tier: "1"},
				{Invoice: "in_may20", Desc: "Storage (tier 2): 900", Amount: 1800, From: "2026-04-20", To: "2026-05-20", Tier: "2"},
				{Invoice: "in_may20", Desc: "Storage (tier 3): 200", Amount: 200, From: "2026-04-20", To: "2026-05-20", Tier: "3"},
			},
		},
		{
			name: "a trial to March 15 is not billed; March's requests straddle its end",
			sub:  stripefake.Subscription{StartDate: date(2026, 3, 1).Unix(), TrialEnd: date(2026, 3, 15).Unix(), Status: "active"},
			invoices: []invoice{
				{"in_trial", date(2026, 3, 1), date(2026, 3, 15)},
				{"in_apr15", date(2026, 3, 15), date(2026, 4, 15)},
			},
			want: []itemView{
				{Invoice: "in_apr15", Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-03-15", To: "2026-04-15", Tier: "1"},
				{Invoice: "in_apr15", Desc: "Storage (tier 2): 900", Amount: 1800, From: "2026-03-15", To: "2026-04-15", Tier: "2"},
				{Invoice: "in_apr15", Desc: "Storage (tier 3): 240", Amount: 240, From: "2026-03-15", To: "2026-04-15", Tier: "3"},
			},
		},
		{
			name: "WithTrialUsage(true) bills the trial",
			sub:  stripefake.Subscription{StartDate: date(2026, 3, 1).Unix(), TrialEnd: date(2026, 3, 15).Unix()},
			opts: []meterbill.Option{meterbill.WithTrialUsage(true)},
			invoices: []invoice{
				{"in_trial", date(2026, 3, 1), date(2026, 3, 15)},
				{"in_apr15", date(2026, 3, 15), date(2026, 4, 15)},
			},
			want: []itemView{
				{Invoice: "in_trial", Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-03-01", To: "2026-03-15", Tier: "1"},
				{Invoice: "in_trial", Desc: "Storage (tier 2): 460", Amount: 920, From: "2026-03-01", To: "2026-03-15", Tier: "2"},
				{Invoice: "in_apr15", Desc: "Requests: 310", Amount: 31, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
				{Invoice: "in_apr15", Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-03-15", To: "2026-04-15", Tier: "1"},
				{Invoice: "in_apr15", Desc: "Storage (tier 2): 900", Amount: 1800, From: "2026-03-15", To: "2026-04-15", Tier: "2"},
				{Invoice: "in_apr15", Desc: "Storage (tier 3): 240", Amount: 240, From: "2026-03-15", To: "2026-04-15", Tier: "3"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBridge(t, billPlan, tt.opts...)
			b.record(t, 42, date(2026, 2, 1), date(2026, 6, 1), 10, "40")
			tt.sub.ID, tt.sub.Customer = "sub_cus_a", "cus_a"
			b.stripe.AddSubscription(tt.sub)
			for _, in := range tt.invoices {
				inv := b.invoice(in.id, "cus_a", 42, "draft", in.start, in.end)
				for range 2 { // and a redelivery, which adds nothing
					if got := b.deliver(t, inv, "draft"); got != 200 {
						t.Fatalf("%s: status %d: %v", in.id, got, b.lastReport().Err)
					}
				}
			}
			if diff := cmp.Diff(sortViews(tt.want), view(b.stripe.Items("cus_a"))); diff != "" {
				t.Errorf("items (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVoidedInvoiceIsWaivedUnlessRebilled: the rule for voids. Usage on an invoice the merchant
// voids before meterbill billed it is waived: the webhook's redelivery writes nothing (no pending
// items), and the next renewal does not catch it up. Rebill bills it on a replacement, once. A
// deleted one-off draft gets no pending items either; the renewal bills its days.
func TestVoidedInvoiceIsWaivedUnlessRebilled(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 10, "40")
	b.stripe.AddSubscription(stripefake.Subscription{ID: "sub_cus_a", Customer: "cus_a", StartDate: date(2026, 3, 1).Unix()})

	// A one-off draft for March 10-20, deleted before its webhook got through.
	oneOff := b.invoice("in_oneoff", "cus_a", 42, "draft", date(2026, 3, 10), date(2026, 3, 20))
	oneOff.Subscription, oneOff.BillingReason = "", "manual"
	b.stripe.AddInvoice(oneOff)
	b.stripe.DeleteInvoice("in_oneoff")
	if got := postInvoiceCreated(t, b.handler, oneOff); got != 200 || b.lastReport().Outcome != meterbill.OutcomeDeleted {
		t.Errorf("deleted draft: %d %q, want 200 deleted", got, b.lastReport().Outcome)
	}

	// March's renewal: finalized, then voided, before its webhook got through.
	mar := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	b.stripe.SetInvoiceStatus("in_mar", "void")
	if got := b.deliver(t, mar, "draft"); got != 200 || b.lastReport().Outcome != meterbill.OutcomeVoid {
		t.Errorf("voided invoice: %d %q, want 200 void", got, b.lastReport().Outcome)
	}
	if items := b.stripe.Items("cus_a"); len(items) != 0 {
		t.Fatalf("items after a deleted draft and a voided invoice: %+v, want none", items)
	}

	// April's renewal does not catch March up: its usage was waived.
	apr := b.invoice("in_apr", "cus_a", 42, "draft", date(2026, 4, 1), date(2026, 5, 1))
	if got := b.deliver(t, apr, "draft"); got != 200 {
		t.Fatalf("April: %d", got)
	}
	april := []itemView{
		{Invoice: "in_apr", Desc: "Requests: 300", Amount: 30, From: "2026-04-01", To: "2026-05-01", Tier: "0"},
		{Invoice: "in_apr", Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-04-01", To: "2026-05-01", Tier: "1"},
		{Invoice: "in_apr", Desc: "Storage (tier 2): 900", Amount: 1800, From: "2026-04-01", To: "2026-05-01", Tier: "2"},
		{Invoice: "in_apr", Desc: "Storage (tier 3): 200", Amount: 200, From: "2026-04-01", To: "2026-05-01", Tier: "3"},
	}
	if diff := cmp.Diff(sortViews(april), view(b.stripe.InvoiceItems("in_apr"))); diff != "" {
		t.Errorf("April (-want +got):\n%s", diff)
	}
	for _, it := range b.stripe.Items("cus_a") {
		if it.Metadata["meterbill_from"] < "2026-04" {
			t.Errorf("waived March billed: %+v", it)
		}
	}

	// The merchant re-bills March on a replacement invoice (a one-off of the subscription).
	b.stripe.AddInvoice(stripefake.Invoice{ID: "in_mar_r", Customer: "cus_a", Currency: "usd", Status: "draft", BillingReason: "manual",
		PeriodStart: date(2026, 4, 20).Unix(), PeriodEnd: date(2026, 4, 20).Unix(), Subscription: "sub_cus_a",
		SubscriptionMetadata: map[string]string{"meter_account": "42"}})
	for range 2 {
		if _, err := b.handler.BillInvoice(context.Background(), "in_mar_r", meterbill.Rebill("in_mar")); err != nil {
			t.Fatalf("BillInvoice with Rebill: %v", err)
		}
	}
	catchUp := " (2026-03-01, not billed before)"
	want := []itemView{
		{Invoice: "in_mar_r", Desc: "Requests: 310" + catchUp, Amount: 31, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
		{Invoice: "in_mar_r", Desc: "Storage (tier 1): 100" + catchUp, Amount: 0, From: "2026-03-01", To: "2026-04-01", Tier: "1"},
		{Invoice: "in_mar_r", Desc: "Storage (tier 2): 900" + catchUp, Amount: 1800, From: "2026-03-01", To: "2026-04-01", Tier: "2"},
		{Invoice: "in_mar_r", Desc: "Storage (tier 3): 240" + catchUp, Amount: 240, From: "2026-03-01", To: "2026-04-01", Tier: "3"},
	}
	if rep := b.lastReport(); rep.Outcome != meterbill.OutcomeAlreadyBilled {
		t.Errorf("a second Rebill: %q, want already_billed", rep.Outcome)
	}
	if diff := cmp.Diff(sortViews(want), view(b.stripe.InvoiceItems("in_mar_r"))); diff != "" {
		t.Errorf("the replacement (-want +got):\n%s", diff)
	}
	if _, err := b.handler.BillInvoice(context.Background(), "in_mar_r", meterbill.Rebill("in_apr")); !errors.Is(err, meterbill.ErrNotVoid) {
		t.Errorf("Rebill of an invoice that is not void: %v, want ErrNotVoid", err)
	}
}
