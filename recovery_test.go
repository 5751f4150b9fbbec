package meterbill_test

// The rules for what happens after something went wrong earlier: missed webhooks, finalized
// invoices, lines cut short, lines Stripe refuses, stored failures, plan changes. Each test is
// named after the behaviour it pins.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill"
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
	if got := b.lastReport().StripeRequests; got != sent || sent != 5 {
		t.Errorf("Report.StripeRequests = %d, the fake received %d, want 5 (3 pages, the subscription's start, 1 create)", got, sent)
	}
	rep, err := b.handler.BillInvoice(context.Background(), "in_mar")
	if err != nil {
		t.Fatal(err)
	}
	if rep.StripeRequests != 4 { // the invoice and 3 pages
		t.Errorf("BillInvoice's Report.StripeRequests = %d, want 4", rep.StripeRequests)
	}
}

// TestStoredFailuresNeverExhaustTheKeys: an incident stored 500s under the first ten keys of a
// line. Redeliveries walk past the stored failures (a create and a ledger read each) and provoke
// at most a few fresh ones each, so billing gets through once Stripe is healthy, creating the
// line once.
func TestStoredFailuresNeverExhaustTheKeys(t *testing.T) {
	b := newBridge(t, billPlan[:1])
	b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 10, "")
	inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: 500, Stored: true, Times: 10})
	var statuses []int
	for len(statuses) < 10 {
		statuses = append(statuses, b.deliver(t, inv, "draft"))
		if statuses[len(statuses)-1] == 200 {
			break
		}
	}
	if diff := cmp.Diff([]int{500, 500, 200}, statuses); diff != "" {
		t.Errorf("answers to the deliveries (-want +got):\n%s", diff)
	}
	items := b.stripe.Items("cus_a")
	if len(items) != 1 || items[0].Amount != 31 || !strings.HasSuffix(items[0].IdempotencyKey, "-r11") {
		t.Fatalf("items %+v, want one of 31 cents under the 11th key", items)
	}
	// The last delivery: the first ledger read, the subscription (nothing of it billed yet), 8
	// stored failures walked and 2 fresh 500s, each followed by a ledger read (a stored 500 may
	// hide an item another replica created), and the create.
	if got := b.lastReport().StripeRequests; got != 1+1+8*2+2*2+1 {
		t.Errorf("the last delivery made %d Stripe requests, want 23", got)
	}
}

// TestPendingLinesShareTheKeyOfTheirRun: March's invoice was finalized without its usage.
// BillInvoice rescues it as pending items on one replica while April's renewal catches March up
// on another. Both create March's line under the same key, so Stripe creates it once.
func TestPendingLinesShareTheKeyOfTheirRun(t *testing.T) {
	for run := range 5 {
		b := newBridge(t, billPlan[:1])
		b.record(t, 42, date(2026, 2, 1), date(2026, 5, 1), 10, "")
		feb := b.invoice("in_feb", "cus_a", 42, "draft", date(2026, 2, 1), date(2026, 3, 1))
		if got := b.deliver(t, feb, "draft"); got != 200 {
			t.Fatalf("February: status %d", got)
		}
		b.invoice("in_mar", "cus_a", 42, "open", date(2026, 3, 1), date(2026, 4, 1))
		apr := b.invoice("in_apr", "cus_a", 42, "draft", date(2026, 4, 1), date(2026, 5, 1))
		other := b.replica(t, billPlan[:1])
		b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Delay: 20 * time.Millisecond, Times: 4})
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := other.BillInvoice(context.Background(), "in_mar"); err != nil {
				t.Errorf("BillInvoice: %v", err)
			}
		})
		wg.Go(func() {
			if got := b.deliver(t, apr, "draft"); got != 200 {
				t.Errorf("April: status %d", got)
			}
		})
		wg.Wait()
		march := 0
		for _, it := range b.stripe.Items("cus_a") {
			if it.Metadata["meterbill_from"] == "2026-03-01T00:00:00Z" {
				march++
			}
		}
		if march != 1 {
			t.Errorf("run %d: March billed on %d items, want 1", run, march)
		}
	}
}

// TestCatchUpNeedsNoHistory: which earlier periods a renewal owes depends on the subscription
// (its start, or its trial's end) and the lookback horizon, never on whether the ledger holds
// an item already: a first renewal that never arrived, a metric first used in the missed month,
// a first invoice that arrived finalized and a month without usage are all caught up, and usage
// from before the subscription or during its trial never is.
func TestCatchUpNeedsNoHistory(t *testing.T) {
	catchUp := func(from time.Time) string { return " (" + from.Format(time.DateOnly) + ", not billed before)" }
	type invoice struct {
		id         string
		start, end time.Time
		status     string // "" when its webhook never arrived
		lost       bool   // its webhook never arrived
	}
	tests := []struct {
		name          string
		start, trial  time.Time // the subscription's start and trial end
		usage         func(b *bridge)
		earlier       []invoice
		last          [2]time.Time
		wantLastItems []itemView
		wantPending   []itemView
	}{
		{
			name:  "the first renewal's webhook never arrived: the next renewal bills its month, not the free tier before",
			start: date(2026, 3, 1),
			usage: func(b *bridge) { b.record(t, 42, date(2026, 1, 1), date(2026, 5, 1), 100, "40") },
			earlier: []invoice{
				{id: "in_mar", start: date(2026, 3, 1), end: date(2026, 4, 1)},
			},
			last: [2]time.Time{date(2026, 4, 1), date(2026, 5, 1)},
			wantLastItems: concat(
				monthLines("in_last", date(2026, 4, 1), date(2026, 5, 1), ""),
				monthLines("in_last", date(2026, 3, 1), date(2026, 4, 1), catchUp(date(2026, 3, 1))),
			),
		},
		{
			name:  "a metric first used in the missed month, while another was billed before",
			start: date(2026, 2, 1),
			usage: func(b *bridge) {
				b.record(t, 42, date(2026, 2, 1), date(2026, 3, 1), 100, "")
				b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 100, "40")
			},
			earlier: []invoice{
				{id: "in_feb", start: date(2026, 2, 1), end: date(2026, 3, 1), status: "draft"},
				{id: "in_mar", start: date(2026, 3, 1), end: date(2026, 4, 1)},
			},
			last: [2]time.Time{date(2026, 4, 1), date(2026, 5, 1)},
			wantLastItems: concat(
				monthLines("in_last", date(2026, 4, 1), date(2026, 5, 1), ""),
				monthLines("in_last", date(2026, 3, 1), date(2026, 4, 1), catchUp(date(2026, 3, 1))),
			),
		},
		{
			name:  "the first metered invoice arrived finalized: pending items then, not billed again by the next renewal",
			start: date(2026, 3, 1),
			usage: func(b *bridge) { b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 100, "40") },
			earlier: []invoice{
				{id: "in_mar", start: date(2026, 3, 1), end: date(2026, 4, 1), status: "open"},
			},
			last:          [2]time.Time{date(2026, 4, 1), date(2026, 5, 1)},
			wantLastItems: monthLines("in_last", date(2026, 4, 1), date(2026, 5, 1), ""),
			wantPending:   monthLines("", date(2026, 3, 1), date(2026, 4, 1), ""),
		},
		{
			name:  "a finalized invoice whose webhook never got through is caught up",
			start: date(2026, 3, 1),
			usage: func(b *bridge) { b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 100, "40") },
			earlier: []invoice{
				{id: "in_mar", start: date(2026, 3, 1), end: date(2026, 4, 1), status: "open", lost: true},
			},
			last: [2]time.Time{date(2026, 4, 1), date(2026, 5, 1)},
			wantLastItems: concat(
				monthLines("in_last", date(2026, 4, 1), date(2026, 5, 1), ""),
				monthLines("in_last", date(2026, 3, 1), date(2026, 4, 1), catchUp(date(2026, 3, 1))),
			),
		},
		{
			name:  "a month without usage, then a missed month: the missed month is caught up",
			start: date(2026, 1, 1),
			usage: func(b *bridge) { b.record(t, 42, date(2026, 2, 1), date(2026, 4, 1), 100, "40") },
			earlier: []invoice{
				{id: "in_jan", start: date(2026, 1, 1), end: date(2026, 2, 1), status: "draft"},
				{id: "in_feb", start: date(2026, 2, 1), end: date(2026, 3, 1)},
			},
			last: [2]time.Time{date(2026, 3, 1), date(2026, 4, 1)},
			wantLastItems: concat(
				monthLines("in_last", date(2026, 3, 1), date(2026, 4, 1), ""),
				monthLines("in_last", date(2026, 2, 1), date(2026, 3, 1), catchUp(date(2026, 2, 1))),
			),
		},
		{
			name:  "usage during the trial is not caught up",
			start: date(2026, 2, 1), trial: date(2026, 3, 1),
			usage: func(b *bridge) { b.record(t, 42, date(2026, 2, 1), date(2026, 4, 1), 100, "40") },
			earlier: []invoice{
				{id: "in_feb", start: date(2026, 2, 1), end: date(2026, 3, 1)},
			},
			last:          [2]time.Time{date(2026, 3, 1), date(2026, 4, 1)},
			wantLastItems: monthLines("in_last", date(2026, 3, 1), date(2026, 4, 1), ""),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBridge(t, billPlan)
			sub := stripefake.Subscription{ID: "sub_cus_a", Customer: "cus_a", StartDate: tt.start.Unix()}
			if !tt.trial.IsZero() {
				sub.TrialEnd = tt.trial.Unix()
			}
			b.stripe.AddSubscription(sub)
			tt.usage(b)
			for _, e := range tt.earlier {
				status := e.status
				if status == "" {
					status = "draft" // created, and its webhook lost
				}
				inv := b.invoice(e.id, "cus_a", 42, status, e.start, e.end)
				if e.status != "" && !e.lost {
					if got := b.deliver(t, inv, e.status); got != 200 {
						t.Fatalf("%s: status %d", e.id, got)
					}
				}
			}
			inv := b.invoice("in_last", "cus_a", 42, "draft", tt.last[0], tt.last[1])
			for range 2 { // a redelivery adds nothing
				if got := b.deliver(t, inv, "draft"); got != 200 {
					t.Fatalf("status %d: %v", got, b.lastReport().Err)
				}
			}
			if diff := cmp.Diff(sortViews(tt.wantLastItems), view(b.stripe.InvoiceItems("in_last"))); diff != "" {
				t.Errorf("items of the last invoice (-want +got):\n%s", diff)
			}
			var pending []stripefake.Item
			for _, it := range b.stripe.Items("cus_a") {
				if it.Invoice == "" {
					pending = append(pending, it)
				}
			}
			if diff := cmp.Diff(sortViews(tt.wantPending), view(pending)); diff != "" {
				t.Errorf("pending items (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRefusedLineBlocksNothingElse: a line that cannot be billed (over Stripe's per-item limit,
// or refused by Stripe for good) is reported loudly and keeps its own invoice's answer non-2xx,
// but every other line is created, and a later invoice that catches the same period up is
// billed and answered 200.
func TestRefusedLineBlocksNothingElse(t *testing.T) {
	volume := meterbill.Metric{Code: "volume", Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 1}
	prices := []meterbill.Price{billPlan[0], {Metric: volume, Description: "Volume", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "1"}}}}}
	var mu sync.Mutex
	refusedSeen := 0
	b := newBridge(t, prices, meterbill.WithObserver(meterbill.ObserverFunc(func(m meterbill.Measurement) {
		if m.Kind == meterbill.LinesRefused {
			mu.Lock()
			refusedSeen += m.N
			mu.Unlock()
		}
	})))
	b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 10, "")
	ingestAll(t, b.meter, []meterbill.Event{
		{Account: 42, Metric: "volume", Value: meterbill.Units(200_000_000), Time: date(2026, 3, 9)}, // $2,000,000.00: over the limit
		{Account: 42, Metric: "volume", Value: meterbill.Units(5), Time: date(2026, 4, 9)},
	})
	mar := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	if got := b.deliver(t, mar, "draft"); got != 500 {
		t.Errorf("March: status %d, want 500 while its volume line is refused", got)
	}
	rep := b.lastReport()
	if len(rep.Refused) != 1 || !errors.Is(rep.Refused[0].Err, meterbill.ErrAmountOverLimit) || !errors.Is(rep.Err, meterbill.ErrLineRefused) ||
		rep.Refused[0].Item.Amount != 200_000_000 {
		t.Errorf("March's report: refused %+v, err %v; want the volume line over the limit", rep.Refused, rep.Err)
	}
	apr := b.invoice("in_apr", "cus_a", 42, "draft", date(2026, 4, 1), date(2026, 5, 1))
	if got := b.deliver(t, apr, "draft"); got != 200 {
		t.Errorf("April: status %d, want 200: March's refused line does not hold April back", got)
	}
	if rep := b.lastReport(); len(rep.Refused) != 1 || rep.Err != nil || rep.Outcome != meterbill.OutcomeBilled {
		t.Errorf("April's report: outcome %q, refused %d, err %v; want billed, March's line reported again", rep.Outcome, len(rep.Refused), rep.Err)
	}
	want := []itemView{
		{Invoice: "in_mar", Desc: "Requests: 310", Amount: 31, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
		{Invoice: "in_apr", Desc: "Requests: 300", Amount: 30, From: "2026-04-01", To: "2026-05-01", Tier: "0"},
		{Invoice: "in_apr", Desc: "Volume: 5", Amount: 5, From: "2026-04-01", To: "2026-05-01", Tier: "0"},
	}
	if diff := cmp.Diff(sortViews(want), view(b.stripe.Items("cus_a"))); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	for _, r := range b.stripe.Requests() {
		if r.Method == http.MethodPost && r.Form.Get("amount") == "200000000" {
			t.Errorf("a line over the limit was sent to Stripe")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if refusedSeen != 2 {
		t.Errorf("observer saw %d refused lines, want 2 (one per invoice)", refusedSeen)
	}
}

// TestStripeRefusalBlocksNothingElse: Stripe refuses the first line of an invoice for good (a
// 400 while the invoice is a draft). The other lines are created, the answer is 500, and the
// redelivery bills the refused line.
func TestStripeRefusalBlocksNothingElse(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 100, "40")
	inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: 400})
	if got := b.deliver(t, inv, "draft"); got != 500 {
		t.Errorf("status %d, want 500 while a line is refused", got)
	}
	if rep := b.lastReport(); len(rep.Created) != 3 || len(rep.Refused) != 1 {
		t.Errorf("created %d, refused %d; want 3 and 1", len(rep.Created), len(rep.Refused))
	}
	if got := b.deliver(t, inv, "draft"); got != 200 {
		t.Errorf("redelivery: status %d", got)
	}
	if diff := cmp.Diff(marchLines("in_mar"), view(b.stripe.Items("cus_a"))); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
}

// TestUnfinishedRunIsFinishedLater: March's storage run got its first tier, then Stripe refused
// the other two. Whatever finishes it later (a redelivery, April's renewal after March was
// finalized, BillInvoice), it is finished once, at the quantity and prices it started with,
// even after the plan changed.
func TestUnfinishedRunIsFinishedLater(t *testing.T) {
	dearer := []meterbill.Price{billPlan[0], {Metric: gbDays, Description: "Storage", Model: meterbill.Graduated, Currencies: map[string][]meterbill.Tier{
		"usd": {{UpTo: "100", Unit: "0"}, {UpTo: "1000", Unit: "4"}, {Unit: "3"}},
	}}}
	march := marchLines("in_mar")
	aprilRenewal := func(t *testing.T, b *bridge, h *meterbill.Handler) {
		apr := b.invoice("in_apr", "cus_a", 42, "draft", date(2026, 4, 1), date(2026, 5, 1))
		if got := postInvoiceCreated(t, h, apr); got != 200 {
			t.Errorf("April: status %d", got)
		}
	}
	tests := []struct {
		name     string
		finalize bool              // March is finalized after the cut
		plan     []meterbill.Price // the plan of the handler that finishes the run
		finish   func(t *testing.T, b *bridge, h *meterbill.Handler)
		want     []itemView // March's storage tiers 2 and 3 as finished
	}{
		{
			name: "by March's redelivery, after the plan changed: at March's prices",
			plan: dearer,
			finish: func(t *testing.T, b *bridge, h *meterbill.Handler) {
				mar, _ := b.stripe.Invoice("in_mar")
				if got := postInvoiceCreated(t, h, mar); got != 200 {
					t.Errorf("redelivery: status %d", got)
				}
			},
			want: march[2:],
		},
		{
			name:     "by April's renewal, March being finalized",
			finalize: true, plan: billPlan,
			finish: aprilRenewal,
			want: []itemView{
				{Invoice: "in_apr", Desc: "Storage (tier 2): 900 (2026-03-01, not billed before)", Amount: 1800, From: "2026-03-01", To: "2026-04-01", Tier: "2"},
				{Invoice: "in_apr", Desc: "Storage (tier 3): 240 (2026-03-01, not billed before)", Amount: 240, From: "2026-03-01", To: "2026-04-01", Tier: "3"},
			},
		},
		{
			name:     "by April's renewal after the plan changed: at March's prices",
			finalize: true, plan: dearer,
			finish: aprilRenewal,
			want: []itemView{
				{Invoice: "in_apr", Desc: "Storage (tier 2): 900 (2026-03-01, not billed before)", Amount: 1800, From: "2026-03-01", To: "2026-04-01", Tier: "2"},
				{Invoice: "in_apr", Desc: "Storage (tier 3): 240 (2026-03-01, not billed before)", Amount: 240, From: "2026-03-01", To: "2026-04-01", Tier: "3"},
			},
		},
		{
			name:     "by BillInvoice on finalized March: pending items",
			finalize: true, plan: dearer,
			finish: func(t *testing.T, _ *bridge, h *meterbill.Handler) {
				if rep, err := h.BillInvoice(context.Background(), "in_mar"); err != nil || rep.Outcome != meterbill.OutcomePending {
					t.Errorf("BillInvoice: %v, %v", rep, err)
				}
			},
			want: []itemView{
				{Invoice: "", Desc: "Storage (tier 2): 900", Amount: 1800, From: "2026-03-01", To: "2026-04-01", Tier: "2"},
				{Invoice: "", Desc: "Storage (tier 3): 240", Amount: 240, From: "2026-03-01", To: "2026-04-01", Tier: "3"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBridge(t, billPlan)
			b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 100, "40")
			mar := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
			// Requests and storage's tier 1 go through; Stripe refuses tiers 2 and 3.
			for _, tier := range []string{"2", "3"} {
				b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: 400,
					Form: map[string]string{"metadata[meterbill_metric]": gbDays.Code, "metadata[meterbill_tier]": tier}})
			}
			if got := b.deliver(t, mar, "draft"); got != 500 {
				t.Fatalf("March: status %d, want 500", got)
			}
			if diff := cmp.Diff(march[:2], view(b.stripe.Items("cus_a"))); diff != "" {
				t.Fatalf("March after the cut (-want +got):\n%s", diff)
			}
			if tt.finalize {
				b.stripe.SetInvoiceStatus("in_mar", "open")
			}
			b.record(t, 42, date(2026, 4, 1), date(2026, 5, 1), 0, "") // nothing in April
			tt.finish(t, b, b.replica(t, tt.plan))
			var got []stripefake.Item
			for _, it := range b.stripe.Items("cus_a") {
				if it.Metadata["meterbill_metric"] == "gb_days" && it.Metadata["meterbill_tier"] != "1" {
					got = append(got, it)
				}
			}
			if diff := cmp.Diff(sortViews(tt.want), view(got)); diff != "" {
				t.Errorf("March's storage tiers 2 and 3 (-want +got):\n%s", diff)
			}
			// Every item of the run names the prices it was billed at: March's, not today's.
			plans := map[string]bool{}
			for _, it := range b.stripe.Items("cus_a") {
				if it.Metadata["meterbill_metric"] == "gb_days" {
					plans[it.Metadata["meterbill_plan"]] = true
				}
			}
			if len(plans) != 1 || plans[""] {
				t.Errorf("the run's items name the prices %v, want one plan", plans)
			}
		})
	}
}

// TestIncludedUnitsApplyPerBillingPeriod: a manual invoice bills part of March, the renewal the
// rest. Together they bill March's storage as if priced once (2040 cents), not with the 100
// free GB-days and the tiers granted twice; and usage that arrives late for the manual part is
// priced at the top of the month's tiers, once.
func TestIncludedUnitsApplyPerBillingPeriod(t *testing.T) {
	b := newBridge(t, billPlan[1:]) // storage: 100 free, then 2¢ to 1000, then 1¢
	b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 0, "40")
	b.stripe.AddSubscription(stripefake.Subscription{ID: "sub_cus_a", Customer: "cus_a", StartDate: date(2026, 3, 1).Unix()})
	manual := b.invoice("in_manual", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 3, 15))
	b.deliverAs(t, manual, "manual") // 14 days: 560 GB-days
	mar := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	b.deliverAs(t, mar, "subscription_cycle")
	if cents, _ := storageBilled(b, "2026-03"); cents != 2040 {
		t.Errorf("March's storage billed %d cents over two invoices, want 2040 (the month priced once)", cents)
	}
	// 100 GB-days arrive late for March 5, inside the manual invoice's part: at the top of the
	// month's 1240 they are in the 1¢ tier.
	ingestAll(t, b.meter, []meterbill.Event{{Account: 42, Metric: gbDays.Code, Value: meterbill.Units(100), Time: date(2026, 3, 5).Add(time.Hour)}})
	apr := b.invoice("in_apr", "cus_a", 42, "draft", date(2026, 4, 1), date(2026, 5, 1))
	b.deliverAs(t, apr, "subscription_cycle")
	var late []int64
	for _, it := range b.stripe.InvoiceItems("in_apr") {
		if it.Metadata["meterbill_kind"] == "adjustment" {
			late = append(late, it.Amount)
		}
	}
	if diff := cmp.Diff([]int64{100}, late); diff != "" {
		t.Errorf("late-usage adjustments on April's invoice (-want +got):\n%s", diff)
	}
	if cents, covered := storageBilled(b, "2026-03"); cents != 2040 || covered["2026-03-05"] != 1 || covered["2026-03-25"] != 1 {
		t.Errorf("March: %d cents on its runs, March 5 covered %d times, March 25 %d; want 2040, 1, 1", cents, covered["2026-03-05"], covered["2026-03-25"])
	}
}

// metricCents sums the cents of every item (adjustments included) of metric whose run starts
// in month ("2026-03").
func metricCents(b *bridge, metric, month string) (cents int64, items int) {
	for _, it := range b.stripe.Items("cus_a") {
		if it.Metadata["meterbill_metric"] == metric && it.Metadata["meterbill_from"][:7] == month {
			cents += it.Amount
			items++
		}
	}
	return cents, items
}

// TestTwoManualInvoicesInOneMonthPriceTheMonthOnce: two manual invoices bill March 1-9 and
// March 10-19, the renewal the rest. The month must be priced once: 1240 GB-days cost 2040
// cents. The second manual invoice is priced alone (it stacks only on items inside its own
// window), so the 100 free GB-days are granted twice there; the renewal subtracts what was
// actually billed, so the month adds up.
func TestTwoManualInvoicesInOneMonthPriceTheMonthOnce(t *testing.T) {
	b := newBridge(t, billPlan[1:]) // storage: 100 free, then 2¢ to 1000, then 1¢
	b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 0, "40")
	m1 := b.invoice("in_manual1", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 3, 10))
	b.deliverAs(t, m1, "manual") // 9 days, 360 GB-days: 520 cents
	m2 := b.invoice("in_manual2", "cus_a", 42, "draft", date(2026, 3, 10), date(2026, 3, 20))
	b.deliverAs(t, m2, "manual") // 10 days, 400 GB-days: priced alone, 600 cents
	mar := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	b.deliverAs(t, mar, "subscription_cycle")
	if cents, _ := metricCents(b, "gb_days", "2026-03"); cents != 2040 {
		t.Errorf("March's storage billed %d cents over three invoices, want 2040 (the month priced once)", cents)
	}
}

// TestCatchUpOnTopOfALatePartBillsTheLateUsageOnce: a manual invoice billed March 1-14 (560
// GB-days), March's renewal webhook never arrived, and 100 GB-days arrived late for March 5.
// April's renewal catches March up, priced on top of the manual part: the month's 1340 priced
// once is 2140 cents. The catch-up includes the late usage, so no adjustment of the manual run
// may be planned with it.
func TestCatchUpOnTopOfALatePartBillsTheLateUsageOnce(t *testing.T) {
	b := newBridge(t, billPlan[1:])
	b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 0, "40")
	b.stripe.AddSubscription(stripefake.Subscription{ID: "sub_cus_a", Customer: "cus_a", StartDate: date(2026, 3, 1).Unix()})
	manual := b.invoice("in_manual", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 3, 15))
	b.deliverAs(t, manual, "manual")                                              // 560 GB-days: 920 cents
	b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1)) // its webhook is lost
	ingestAll(t, b.meter, []meterbill.Event{{Account: 42, Metric: gbDays.Code, Value: meterbill.Units(100), Time: date(2026, 3, 5).Add(time.Hour)}})
	apr := b.invoice("in_apr", "cus_a", 42, "draft", date(2026, 4, 1), date(2026, 5, 1))
	b.deliverAs(t, apr, "subscription_cycle")
	if cents, n := metricCents(b, "gb_days", "2026-03"); cents != 2140 {
		t.Errorf("March's storage billed %d cents on %d items, want 2140 (1340 GB-days priced once)", cents, n)
		for _, it := range b.stripe.Items("cus_a") {
			t.Logf("  %s %q %d base=%s", it.Invoice, it.Description, it.Amount, it.Metadata["meterbill_base"])
		}
	}
}

// TestReplayedServerErrorOfAConcurrentReplicaCreatesNoDuplicate: replica A creates March's line;
// Stripe creates it but answers 500 (stored under the key). Replica B read the ledger before
// that, and its create under the same key gets the stored 500 replayed. A replayed 500 does not
// mean nothing was created, so B reads the ledger again before the next key, and finds A's line.
func TestReplayedServerErrorOfAConcurrentReplicaCreatesNoDuplicate(t *testing.T) {
	b := newBridge(t, billPlan[:1])
	b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 100, "")
	b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	other := b.replica(t, billPlan[:1])
	// B's ledger read is taken at once but answered 200 ms later.
	b.stripe.Inject(stripefake.Fault{Method: http.MethodGet, Path: "/v1/invoiceitems", Delay: 200 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = other.BillInvoice(context.Background(), "in_mar") })
	time.Sleep(50 * time.Millisecond)
	// A: Stripe creates the item, then answers 500 and stores it under the key.
	b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: 500, AfterApply: true})
	if _, err := b.handler.BillInvoice(context.Background(), "in_mar"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	items := b.stripe.Items("cus_a")
	if len(items) != 1 {
		for _, it := range items {
			t.Logf("  %s %q %d key=%s", it.ID, it.Description, it.Amount, it.IdempotencyKey)
		}
		t.Errorf("March's requests billed on %d items, want 1", len(items))
	}
}

// TestSubscriptionUnreadableBlocksOnlyCatchUp: with a key that may not read subscriptions (403
// on GET /v1/subscriptions), a renewal with a missed month before it still bills its own window;
// only the catch-up, which needs the subscription's start, is skipped (and logged).
func TestSubscriptionUnreadableBlocksOnlyCatchUp(t *testing.T) {
	b := newBridge(t, billPlan[:1])
	b.record(t, 42, date(2026, 2, 1), date(2026, 5, 1), 10, "")
	feb := b.invoice("in_feb", "cus_a", 42, "draft", date(2026, 2, 1), date(2026, 3, 1))
	if got := b.deliver(t, feb, "draft"); got != 200 {
		t.Fatalf("February: status %d", got)
	}
	b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1)) // its webhook is lost
	b.stripe.Inject(stripefake.Fault{Method: http.MethodGet, Path: "/v1/subscriptions", Status: 403, Times: 1000})
	apr := b.invoice("in_apr", "cus_a", 42, "draft", date(2026, 4, 1), date(2026, 5, 1))
	for i := range 3 {
		if got := b.deliver(t, apr, "draft"); got != 200 && i == 2 {
			t.Errorf("April, delivery %d: status %d (%v)", i+1, got, b.lastReport().Err)
		}
	}
	if n := len(b.stripe.InvoiceItems("in_apr")); n == 0 {
		t.Errorf("April's own usage never billed: %d items on in_apr", n)
	}
}

// TestTrialUsageIsNotBilledOnTheWindow: the invoice Stripe creates when a trial ends (its period
// is the trial) bills none of the trial's usage, as catch-up would not.
func TestTrialUsageIsNotBilledOnTheWindow(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 2, 1), date(2026, 4, 1), 100, "40")
	b.stripe.AddSubscription(stripefake.Subscription{ID: "sub_cus_a", Customer: "cus_a", StartDate: date(2026, 2, 1).Unix(), TrialEnd: date(2026, 3, 1).Unix()})
	trialEnd := b.invoice("in_trial_end", "cus_a", 42, "draft", date(2026, 2, 1), date(2026, 3, 1))
	if got := b.deliver(t, trialEnd, "draft"); got != 200 {
		t.Fatalf("status %d", got)
	}
	if items := b.stripe.InvoiceItems("in_trial_end"); len(items) != 0 {
		var cents int64
		for _, it := range items {
			cents += it.Amount
		}
		t.Errorf("the trial-end invoice bills %d cents of trial usage on %d items, want none", cents, len(items))
	}
}
