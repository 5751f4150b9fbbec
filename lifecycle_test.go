package meterbill_test

// A subscription's whole life: where its billing starts (mid-month, after a trial), and what
// happens to invoices that arrive finalized or are voided. Each test goes through the handler
// over HTTP, with the stateful Stripe fake.

import (
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
