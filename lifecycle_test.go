package meterbill_test

// A subscription's whole life: where its billing starts (mid-month, after a trial), and what
// happens to invoices that arrive finalized or are voided. Each test goes through the handler
// over HTTP, with the stateful Stripe fake.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
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
		opts     []meterbill.HandlerOption
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
			opts: []meterbill.HandlerOption{meterbill.WithTrialUsage(true)},
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

// subscriptionDeleted builds a customer.subscription.deleted event in basil's shape (the current
// period on the items).
func subscriptionDeleted(t testing.TB, id, customer string, account uint64, periodStart, periodEnd, ended time.Time) []byte {
	t.Helper()
	sub := map[string]any{
		"id": id, "object": "subscription", "customer": customer, "status": "canceled", "currency": "usd",
		"metadata": map[string]string{"meter_account": fmt.Sprint(account)}, "start_date": periodStart.AddDate(0, -3, 0).Unix(),
		"ended_at": ended.Unix(), "canceled_at": ended.Unix(), "cancel_at_period_end": ended.Equal(periodEnd), "trial_end": nil,
		"items": map[string]any{"object": "list", "has_more": false, "data": []any{map[string]any{
			"id": "si_1", "object": "subscription_item", "current_period_start": periodStart.Unix(), "current_period_end": periodEnd.Unix(),
		}}},
	}
	ev := map[string]any{"id": "evt_end_" + id, "object": "event", "api_version": "2025-08-27.basil", "type": "customer.subscription.deleted",
		"created": ended.Unix(), "data": map[string]any{"object": sub}, "livemode": false, "pending_webhooks": 1}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post delivers a signed payload to the bridge's handler.
func (b *bridge) post(t testing.TB, payload []byte) int {
	t.Helper()
	w := httptest.NewRecorder()
	b.handler.ServeHTTP(w, signed(t, payload, time.Now(), secret))
	return w.Code
}

// TestSubscriptionEndBillsTheLastPeriod: usage is billed in arrears, so when a subscription
// ends, Stripe has no invoice for its last period. On customer.subscription.deleted meterbill
// makes a final invoice with everything still owed (the last period, the buckets straddling the
// end included, and any period missed before it), once, and finalizes it so that Stripe
// collects it; or leaves it a draft; or does nothing, as WithFinalInvoice says.
func TestSubscriptionEndBillsTheLastPeriod(t *testing.T) {
	tests := []struct {
		name        string
		opts        []meterbill.HandlerOption
		billed      [][2]time.Time // renewals delivered before
		period      [2]time.Time   // the current period when it ended
		ended       time.Time
		wantStatus  string // the final invoice's; "" for none
		wantAdvance bool
		wantItems   []itemView // on the final invoice
		wantOutcome meterbill.Outcome
	}{
		{
			name:   "canceled on March 20: March's requests and its first 20 days of storage",
			billed: [][2]time.Time{{date(2026, 2, 1), date(2026, 3, 1)}},
			period: [2]time.Time{date(2026, 3, 1), date(2026, 4, 1)}, ended: at(2026, 3, 20, 15, 0),
			wantStatus: "open", wantAdvance: true, wantOutcome: meterbill.OutcomeBilled,
			wantItems: []itemView{
				{Desc: "Requests: 200", Amount: 20, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
				{Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-03-01", To: "2026-03-21", Tier: "1"},
				{Desc: "Storage (tier 2): 700", Amount: 1400, From: "2026-03-01", To: "2026-03-21", Tier: "2"},
			},
		},
		{
			name:   "canceled at the period's end: the whole of March",
			billed: [][2]time.Time{{date(2026, 2, 1), date(2026, 3, 1)}},
			period: [2]time.Time{date(2026, 3, 1), date(2026, 4, 1)}, ended: date(2026, 4, 1),
			wantStatus: "open", wantAdvance: true, wantOutcome: meterbill.OutcomeBilled,
			wantItems: []itemView{
				{Desc: "Requests: 200", Amount: 20, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
				{Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-03-01", To: "2026-04-01", Tier: "1"},
				{Desc: "Storage (tier 2): 700", Amount: 1400, From: "2026-03-01", To: "2026-04-01", Tier: "2"},
			},
		},
		{
			name:   "March's renewal was lost, canceled on April 10: March caught up, and April's first days",
			billed: [][2]time.Time{{date(2026, 2, 1), date(2026, 3, 1)}},
			period: [2]time.Time{date(2026, 4, 1), date(2026, 5, 1)}, ended: date(2026, 4, 10),
			wantStatus: "open", wantAdvance: true, wantOutcome: meterbill.OutcomeBilled,
			wantItems: []itemView{
				{Desc: "Requests: 200 (2026-03-01, not billed before)", Amount: 20, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
				{Desc: "Storage (tier 1): 100 (2026-03-01, not billed before)", Amount: 0, From: "2026-03-01", To: "2026-04-01", Tier: "1"},
				{Desc: "Storage (tier 2): 700 (2026-03-01, not billed before)", Amount: 1400, From: "2026-03-01", To: "2026-04-01", Tier: "2"},
			},
		},
		{
			name:   "WithFinalInvoice(FinalInvoiceDraft): left a draft for review",
			opts:   []meterbill.HandlerOption{meterbill.WithFinalInvoice(meterbill.FinalInvoiceDraft)},
			billed: [][2]time.Time{{date(2026, 2, 1), date(2026, 3, 1)}},
			period: [2]time.Time{date(2026, 3, 1), date(2026, 4, 1)}, ended: date(2026, 4, 1),
			wantStatus: "draft", wantAdvance: false, wantOutcome: meterbill.OutcomeBilled,
			wantItems: []itemView{
				{Desc: "Requests: 200", Amount: 20, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
				{Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-03-01", To: "2026-04-01", Tier: "1"},
				{Desc: "Storage (tier 2): 700", Amount: 1400, From: "2026-03-01", To: "2026-04-01", Tier: "2"},
			},
		},
		{
			name:   "nothing owed: no invoice",
			billed: [][2]time.Time{{date(2026, 2, 1), date(2026, 3, 1)}, {date(2026, 3, 1), date(2026, 4, 1)}},
			period: [2]time.Time{date(2026, 4, 1), date(2026, 5, 1)}, ended: date(2026, 4, 1).Add(time.Hour),
			wantOutcome: meterbill.OutcomeNothingToBill,
		},
		{
			name:   "WithFinalInvoice(FinalInvoiceOff): nothing done",
			opts:   []meterbill.HandlerOption{meterbill.WithFinalInvoice(meterbill.FinalInvoiceOff)},
			billed: [][2]time.Time{{date(2026, 2, 1), date(2026, 3, 1)}},
			period: [2]time.Time{date(2026, 3, 1), date(2026, 4, 1)}, ended: date(2026, 4, 1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBridge(t, billPlan, tt.opts...)
			// 10 requests and 40 GB a day in February; in March, 10 requests and 40 GB a day
			// until the 20th, nothing after.
			b.record(t, 42, date(2026, 2, 1), date(2026, 3, 21), 10, "40")
			for i, p := range tt.billed {
				inv := b.invoice(fmt.Sprint("in_", i), "cus_a", 42, "draft", p[0], p[1])
				if got := b.deliver(t, inv, "draft"); got != 200 {
					t.Fatalf("renewal %d: %d", i, got)
				}
			}
			before := len(b.reports)
			b.stripe.AdvanceTo(tt.ended) // the redelivery finds the final invoice by listing the customer's recent ones
			payload := subscriptionDeleted(t, "sub_cus_a", "cus_a", 42, tt.period[0], tt.period[1], tt.ended)
			for range 2 { // and a redelivery, which makes no second invoice
				if got := b.post(t, payload); got != 200 {
					t.Fatalf("status %d: %v", got, b.lastReport().Err)
				}
			}
			if tt.wantOutcome == "" {
				if len(b.reports) != before {
					t.Errorf("reports %+v, want none", b.reports[before:])
				}
				return
			}
			if got := b.reports[before].Outcome; got != tt.wantOutcome {
				t.Errorf("outcome %q, want %q (%v)", got, tt.wantOutcome, b.reports[before].Err)
			}
			var finals []stripefake.Invoice
			for _, id := range []string{"in_fake00000001", "in_fake00000002"} {
				if inv, ok := b.stripe.Invoice(id); ok {
					finals = append(finals, inv)
				}
			}
			if tt.wantStatus == "" {
				if len(finals) != 0 {
					t.Errorf("final invoices %+v, want none", finals)
				}
				return
			}
			if len(finals) != 1 {
				t.Fatalf("%d final invoices, want 1", len(finals))
			}
			f := finals[0]
			if f.Status != tt.wantStatus || f.AutoAdvance != tt.wantAdvance || f.CollectionMethod != "charge_automatically" || f.Metadata["meterbill_final"] != "sub_cus_a" {
				t.Errorf("final invoice %+v: want status %s, auto_advance %v, charged automatically, naming the subscription", f, tt.wantStatus, tt.wantAdvance)
			}
			want := append([]itemView(nil), tt.wantItems...)
			for i := range want {
				want[i].Invoice = f.ID
			}
			if diff := cmp.Diff(sortViews(want), view(b.stripe.InvoiceItems(f.ID))); diff != "" {
				t.Errorf("the final invoice's items (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLinesShowQuantityAndUnitPrice: where Stripe can show a line as it shows its own (a whole
// quantity times a unit price that makes exactly the line's amount), the item carries quantity
// and unit_amount_decimal; a fractional quantity, a product Stripe would round, a flat fee and a
// late-usage adjustment stay amount-only.
func TestLinesShowQuantityAndUnitPrice(t *testing.T) {
	odd := meterbill.Metric{Code: "odd", Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 1}
	flat := meterbill.Metric{Code: "flat", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
	prices := append([]meterbill.Price{
		{Metric: odd, Description: "Odd", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.3"}}}},
		{Metric: flat, Description: "Flat", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "1", Flat: "50"}}}},
	}, billPlan...)
	b := newBridge(t, prices)
	b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 100, "40")
	ingestAll(t, b.meter, []meterbill.Event{
		{Account: 42, Metric: "odd", Value: mustValue(t, "7"), Time: date(2026, 3, 2)},   // 2.1 cents: Stripe would round
		{Account: 42, Metric: "odd", Value: mustValue(t, "0.5"), Time: date(2026, 3, 3)}, // and a fraction
		{Account: 42, Metric: "flat", Value: meterbill.Units(1), Time: date(2026, 3, 2)},
	})
	inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	if got := b.deliver(t, inv, "draft"); got != 200 {
		t.Fatalf("status %d", got)
	}
	type shown struct{ Desc, Amount, Quantity, Unit string }
	var got []shown
	for _, r := range b.stripe.Requests() {
		if r.Method == http.MethodPost && r.Path == "/v1/invoiceitems" {
			got = append(got, shown{r.Form.Get("description"), r.Form.Get("amount"), r.Form.Get("quantity"), r.Form.Get("unit_amount_decimal")})
		}
	}
	want := []shown{
		{Desc: "Odd: 7.5", Amount: "2"},
		{Desc: "Flat: 1", Amount: "51"},
		{Desc: "Requests: 3100", Quantity: "3100", Unit: "0.1"},
		{Desc: "Storage (tier 1): 100", Quantity: "100", Unit: "0"},
		{Desc: "Storage (tier 2): 900", Quantity: "900", Unit: "2"},
		{Desc: "Storage (tier 3): 240", Quantity: "240", Unit: "1"},
	}
	byDesc := func(a, b shown) int { return strings.Compare(a.Desc, b.Desc) }
	slices.SortFunc(want, byDesc)
	slices.SortFunc(got, byDesc) // lines of different runs are created concurrently
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("items sent (-want +got):\n%s", diff)
	}
	var total int64
	for _, it := range b.stripe.Items("cus_a") {
		total += it.Amount
	}
	if total != 2+51+310+0+1800+240 {
		t.Errorf("Stripe's amounts add up to %d, want %d", total, 2+51+310+0+1800+240)
	}
}

// TestPlansPerCustomer: each subscription is priced by its own plan, chosen by its metadata or
// by the Stripe prices on its invoice, with a fallback; the ledger records which plan priced it.
func TestPlansPerCustomer(t *testing.T) {
	basic, err := meterbill.NewPlan(meterbill.Price{Metric: requests, Description: "Requests", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	pro, err := meterbill.NewPlan(meterbill.Price{Metric: requests, Description: "Requests (Pro)", Included: "1000", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.05"}}}})
	if err != nil {
		t.Fatal(err)
	}
	byMetadata, err := meterbill.PlansByMetadata("plan", map[string]*meterbill.Plan{"basic": basic, "pro": pro}, "basic")
	if err != nil {
		t.Fatal(err)
	}
	byPrice, err := meterbill.PlansByPrice(map[string]*meterbill.Plan{"price_basic": basic, "price_pro": pro}, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		pricer   meterbill.Pricer
		metadata map[string]string
		prices   []string // the Stripe prices of the invoice's lines
		want     itemView
		wantPlan string // the start of meterbill_plan
		wantFail bool
	}{
		{name: "metadata names pro", pricer: byMetadata, metadata: map[string]string{"plan": "pro"},
			want: itemView{Desc: "Requests (Pro): 2100", Amount: 105}, wantPlan: "pro:pl_"},
		{name: "metadata names nothing: the fallback", pricer: byMetadata,
			want: itemView{Desc: "Requests: 3100", Amount: 310}, wantPlan: "basic:pl_"},
		{name: "metadata names an unknown plan: the fallback", pricer: byMetadata, metadata: map[string]string{"plan": "gold"},
			want: itemView{Desc: "Requests: 3100", Amount: 310}, wantPlan: "basic:pl_"},
		{name: "the invoice's Stripe price names pro", pricer: byPrice, prices: []string{"price_base_fee", "price_pro"},
			want: itemView{Desc: "Requests (Pro): 2100", Amount: 105}, wantPlan: "price_pro:pl_"},
		{name: "no price names a plan and there is no fallback: the invoice fails", pricer: byPrice, prices: []string{"price_other"}, wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newPricedBridge(t, tt.pricer)
			b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 100, "")
			inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
			meta := map[string]string{"meter_account": "42"}
			maps.Copy(meta, tt.metadata)
			payload := withLines(t, invoiceEvent(t, "2025-08-27.basil", inv.ID, inv.Customer, "draft", date(2026, 3, 1), date(2026, 4, 1), meta), tt.prices)
			got := b.post(t, payload)
			if tt.wantFail {
				if got != 500 || !errors.Is(b.lastReport().Err, meterbill.ErrNoPlan) {
					t.Errorf("status %d, err %v; want 500 and ErrNoPlan", got, b.lastReport().Err)
				}
				return
			}
			items := b.stripe.Items("cus_a")
			if got != 200 || len(items) != 1 {
				t.Fatalf("status %d, items %+v", got, items)
			}
			if items[0].Description != tt.want.Desc || items[0].Amount != tt.want.Amount || !strings.HasPrefix(items[0].Metadata["meterbill_plan"], tt.wantPlan) {
				t.Errorf("item %q %d plan %q; want %q %d plan %s…", items[0].Description, items[0].Amount, items[0].Metadata["meterbill_plan"], tt.want.Desc, tt.want.Amount, tt.wantPlan)
			}
		})
	}
}

// withLines adds invoice lines with the given Stripe prices (basil's pricing.price_details) to an
// invoice.created payload.
func withLines(t testing.TB, payload []byte, prices []string) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatal(err)
	}
	var data []any
	for _, p := range prices {
		data = append(data, map[string]any{"object": "line_item", "pricing": map[string]any{"type": "price_details", "price_details": map[string]any{"price": p, "product": "prod_1"}}})
	}
	ev["data"].(map[string]any)["object"].(map[string]any)["lines"] = map[string]any{"object": "list", "data": data, "has_more": false}
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newPricedBridge is newBridge with a Pricer of the test's own.
func newPricedBridge(t testing.TB, pricer meterbill.Pricer) *bridge {
	t.Helper()
	b := newBridge(t, billPlan[:1])
	h, err := meterbill.NewHandler(b.meter, b.stripeClient(t), meterbill.SubscriptionMetadataAccount("meter_account"), pricer, []string{secret},
		meterbill.WithRetryBackoff(time.Millisecond, 5*time.Millisecond),
		meterbill.WithReportHook(func(r *meterbill.Report) { b.mu.Lock(); b.reports = append(b.reports, r); b.mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	b.handler = h
	return b
}

func TestNewPlansRejects(t *testing.T) {
	basic, _ := meterbill.NewPlan(meterbill.Price{Metric: requests, Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "1"}}}})
	daily := requests
	daily.Period, daily.CycleDay = meterbill.Day, 0
	other, _ := meterbill.NewPlan(meterbill.Price{Metric: daily, Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "1"}}}})
	tests := []struct {
		name     string
		plans    map[string]*meterbill.Plan
		fallback string
	}{
		{name: "no plans"},
		{name: "a fallback that is not a plan", plans: map[string]*meterbill.Plan{"basic": basic}, fallback: "pro"},
		{name: "a nil plan", plans: map[string]*meterbill.Plan{"basic": nil}},
		{name: "one metric defined two ways", plans: map[string]*meterbill.Plan{"basic": basic, "other": other}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := meterbill.PlansByMetadata("plan", tt.plans, tt.fallback); !errors.Is(err, meterbill.ErrInvalidPlan) {
				t.Errorf("PlansByMetadata: %v, want ErrInvalidPlan", err)
			}
		})
	}
}

// TestMaxConcurrentInvoicesAnswers503WhenFull: with room for one invoice at a time, a second
// that finds no room within half its deadline is answered 503 (Stripe redelivers it) and
// nothing of it is written; its redelivery, once there is room, bills it.
func TestMaxConcurrentInvoicesAnswers503WhenFull(t *testing.T) {
	b := newBridge(t, billPlan[:1], meterbill.WithMaxConcurrentInvoices(1), meterbill.WithDeadline(time.Second))
	b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 10, "")
	b.record(t, 43, date(2026, 3, 1), date(2026, 4, 1), 10, "")
	first := b.invoice("in_a", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	second := b.invoice("in_b", "cus_b", 43, "draft", date(2026, 3, 1), date(2026, 4, 1))
	b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Delay: 800 * time.Millisecond})
	done := make(chan int)
	go func() { done <- b.deliver(t, first, "draft") }()
	for b.stripe.CountRequests(http.MethodPost, "/v1/invoiceitems") == 0 { // the first holds its slot
		time.Sleep(5 * time.Millisecond)
	}
	if got := b.deliver(t, second, "draft"); got != http.StatusServiceUnavailable || !errors.Is(b.lastReport().Err, meterbill.ErrBusy) {
		t.Errorf("the second invoice: %d %v, want 503 and ErrBusy", got, b.lastReport().Err)
	}
	if got := <-done; got != 200 {
		t.Errorf("the first invoice: %d", got)
	}
	if got := b.deliver(t, second, "draft"); got != 200 || len(b.stripe.Items("cus_b")) != 1 {
		t.Errorf("the second's redelivery: %d, items %d", got, len(b.stripe.Items("cus_b")))
	}
}

// TestPlanChangeBillsEachPartAtItsOwnPrices: a customer on "pro" moves to "basic" on March 15.
// Stripe's invoice for the change (billing_reason subscription_update) bills March 1-14, and
// carries the subscription's metadata as it is after the change ("basic"); those days were used
// under pro, so they are priced by pro, the plan that billed the customer last. The renewal bills
// March 15-31 at basic's prices. (A calendar month cannot be split: March's requests are billed
// whole by the renewal, at basic's.)
func TestPlanChangeBillsEachPartAtItsOwnPrices(t *testing.T) {
	pro, err := meterbill.NewPlan(billPlan...) // storage: 100 free, 2¢ to 1000, then 1¢
	if err != nil {
		t.Fatal(err)
	}
	basic, err := meterbill.NewPlan(billPlan[0], meterbill.Price{Metric: gbDays, Description: "Storage (basic)", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "5"}}}})
	if err != nil {
		t.Fatal(err)
	}
	plans, err := meterbill.PlansByMetadata("plan", map[string]*meterbill.Plan{"basic": basic, "pro": pro}, "")
	if err != nil {
		t.Fatal(err)
	}
	b := newPricedBridge(t, plans)
	if err := b.meter.Define(context.Background(), gbDays); err != nil {
		t.Fatal(err)
	}
	b.record(t, 42, date(2026, 2, 1), date(2026, 4, 1), 10, "40")
	invoice := func(id string, start, end time.Time, reason, plan string) {
		inv := b.invoice(id, "cus_a", 42, "draft", start, end)
		inv.SubscriptionMetadata = map[string]string{"meter_account": "42", "plan": plan}
		b.stripe.AddInvoice(inv)
		b.deliverAs(t, inv, reason)
	}
	invoice("in_feb", date(2026, 2, 1), date(2026, 3, 1), "subscription_cycle", "pro")
	invoice("in_change", date(2026, 3, 1), date(2026, 3, 15), "subscription_update", "basic")
	invoice("in_mar", date(2026, 3, 15), date(2026, 4, 1), "subscription_cycle", "basic")
	var got []itemView
	for _, it := range b.stripe.Items("cus_a") {
		if it.Invoice != "in_feb" {
			got = append(got, view([]stripefake.Item{it})...)
		}
	}
	want := []itemView{
		// March 1-14 at pro's prices: 560 GB-days, 100 free, 460 at 2¢.
		{Invoice: "in_change", Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-03-01", To: "2026-03-15", Tier: "1"},
		{Invoice: "in_change", Desc: "Storage (tier 2): 460", Amount: 920, From: "2026-03-01", To: "2026-03-15", Tier: "2"},
		// March 15-31 at basic's: 680 GB-days at 5¢; March's requests whole, at basic's.
		{Invoice: "in_mar", Desc: "Requests: 310", Amount: 31, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
		{Invoice: "in_mar", Desc: "Storage (basic): 680", Amount: 3400, From: "2026-03-15", To: "2026-04-01", Tier: "0"},
	}
	if diff := cmp.Diff(sortViews(want), sortViews(got)); diff != "" {
		t.Errorf("March's items (-want +got):\n%s", diff)
	}
}
