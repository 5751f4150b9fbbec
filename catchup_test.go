package meterbill_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/internal/ledger"
	"github.com/meterbill/meterbill/internal/stripefake"
)

// monthLines is what account 42 gets for one whole month of b.record(…, 100, "40") usage on the
// billing plan: days×100 requests at $0.001, and days×40 GB-days (100 free, the next 900 at 2¢,
// the rest at 1¢). suffix is appended to each description (catch-up lines say so).
func monthLines(invoice string, from, to time.Time, suffix string) []itemView {
	days := int64(to.Sub(from) / (24 * time.Hour))
	gb := days * 40
	f, e := from.Format(time.DateOnly), to.Format(time.DateOnly)
	return []itemView{
		{Invoice: invoice, Desc: "Requests: " + itoa(days*100) + suffix, Amount: days * 10, From: f, To: e, Tier: "0"},
		{Invoice: invoice, Desc: "Storage (tier 1): 100" + suffix, Amount: 0, From: f, To: e, Tier: "1"},
		{Invoice: invoice, Desc: "Storage (tier 2): 900" + suffix, Amount: 1800, From: f, To: e, Tier: "2"},
		{Invoice: invoice, Desc: "Storage (tier 3): " + itoa(gb-1000) + suffix, Amount: gb - 1000, From: f, To: e, Tier: "3"},
	}
}

func itoa(n int64) string { return meterbill.Units(uint64(n)).String() }

func concat[T any](parts ...[]T) []T {
	var out []T
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// sortViews orders item views as view() does, so expectations can be built in any order.
func sortViews(v []itemView) []itemView { return view(fromViews(v)) }

func fromViews(v []itemView) []stripefake.Item {
	out := make([]stripefake.Item, len(v))
	for i, x := range v {
		out[i] = stripefake.Item{Invoice: x.Invoice, Description: x.Desc, Amount: x.Amount,
			Metadata: map[string]string{"meterbill_from": x.From + "T00:00:00Z", "meterbill_to": x.To + "T00:00:00Z", "meterbill_tier": x.Tier}}
	}
	return out
}

// TestCatchUp: buckets before an invoice's window that were never billed are billed on it, each
// missed period on its own lines, back to the lookback horizon and never before the account's
// first billed bucket.
func TestCatchUp(t *testing.T) {
	catchUp := func(from time.Time) string { return " (" + from.Format(time.DateOnly) + ", not billed before)" }
	tests := []struct {
		name      string
		opts      []meterbill.HandlerOption
		billed    [][2]time.Time // invoices delivered before, in order
		last      [2]time.Time   // the invoice under test
		wantItems []itemView     // the last invoice's items
	}{
		{
			name:   "the March webhook never arrived: April's invoice bills April and March, March on its own lines",
			billed: [][2]time.Time{{date(2026, 2, 1), date(2026, 3, 1)}},
			last:   [2]time.Time{date(2026, 4, 1), date(2026, 5, 1)},
			wantItems: concat(
				monthLines("in_last", date(2026, 4, 1), date(2026, 5, 1), ""),
				monthLines("in_last", date(2026, 3, 1), date(2026, 4, 1), catchUp(date(2026, 3, 1))),
			),
		},
		{
			name:   "two months missed: each its own lines, tiers applied per month",
			billed: [][2]time.Time{{date(2026, 1, 1), date(2026, 2, 1)}},
			last:   [2]time.Time{date(2026, 4, 1), date(2026, 5, 1)},
			wantItems: concat(
				monthLines("in_last", date(2026, 4, 1), date(2026, 5, 1), ""),
				monthLines("in_last", date(2026, 3, 1), date(2026, 4, 1), catchUp(date(2026, 3, 1))),
				monthLines("in_last", date(2026, 2, 1), date(2026, 3, 1), catchUp(date(2026, 2, 1))),
			),
		},
		{
			name:   "the horizon bounds it: 35 days back from April 1 reaches March, not February",
			opts:   []meterbill.HandlerOption{meterbill.WithLookback(35 * 24 * time.Hour)},
			billed: [][2]time.Time{{date(2026, 1, 1), date(2026, 2, 1)}},
			last:   [2]time.Time{date(2026, 4, 1), date(2026, 5, 1)},
			wantItems: concat(
				monthLines("in_last", date(2026, 4, 1), date(2026, 5, 1), ""),
				monthLines("in_last", date(2026, 3, 1), date(2026, 4, 1), catchUp(date(2026, 3, 1))),
			),
		},
		{
			name:      "lookback 0 turns it off",
			opts:      []meterbill.HandlerOption{meterbill.WithLookback(0)},
			billed:    [][2]time.Time{{date(2026, 2, 1), date(2026, 3, 1)}},
			last:      [2]time.Time{date(2026, 4, 1), date(2026, 5, 1)},
			wantItems: monthLines("in_last", date(2026, 4, 1), date(2026, 5, 1), ""),
		},
		{
			name:      "a first invoice never bills usage from before billing began",
			last:      [2]time.Time{date(2026, 4, 1), date(2026, 5, 1)},
			wantItems: monthLines("in_last", date(2026, 4, 1), date(2026, 5, 1), ""),
		},
		{
			name:   "leap year: February 2028's 29 days caught up on April's invoice",
			billed: [][2]time.Time{{date(2028, 1, 1), date(2028, 2, 1)}},
			last:   [2]time.Time{date(2028, 3, 1), date(2028, 4, 1)},
			wantItems: concat(
				monthLines("in_last", date(2028, 3, 1), date(2028, 4, 1), ""),
				monthLines("in_last", date(2028, 2, 1), date(2028, 3, 1), catchUp(date(2028, 2, 1))),
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBridge(t, billPlan, tt.opts...)
			first := tt.last[0].AddDate(0, -4, 0)
			b.record(t, 42, first, tt.last[1], 100, "40")
			for i, p := range tt.billed {
				inv := b.invoice("in_"+itoa(int64(i)), "cus_a", 42, "draft", p[0], p[1])
				if got := b.deliver(t, inv, "draft"); got != 200 {
					t.Fatalf("earlier invoice %d: status %d", i, got)
				}
			}
			inv := b.invoice("in_last", "cus_a", 42, "draft", tt.last[0], tt.last[1])
			for range 2 { // a redelivery adds nothing
				if got := b.deliver(t, inv, "draft"); got != 200 {
					t.Fatalf("status %d", got)
				}
			}
			if diff := cmp.Diff(sortViews(tt.wantItems), view(b.stripe.InvoiceItems("in_last"))); diff != "" {
				t.Errorf("items of the last invoice (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCatchUpWithAnchorOffTheCycleDay: a subscription renewing on the 15th bills a Calendar metric
// on cycle day 1; the missed March 15 invoice (which would have billed March) is caught up on the
// April 15 one.
func TestCatchUpWithAnchorOffTheCycleDay(t *testing.T) {
	b := newBridge(t, billPlan[:1]) // requests only: Calendar, cycle day 1
	b.record(t, 42, date(2026, 1, 1), date(2026, 5, 20), 10, "")
	feb := b.invoice("in_feb15", "cus_a", 42, "draft", date(2026, 2, 15), date(2026, 3, 15))
	if got := b.deliver(t, feb, "draft"); got != 200 {
		t.Fatalf("status %d", got)
	}
	// March 15 → April 15 never delivered.
	apr := b.invoice("in_apr15", "cus_a", 42, "draft", date(2026, 4, 15), date(2026, 5, 15))
	if got := b.deliver(t, apr, "draft"); got != 200 {
		t.Fatalf("status %d", got)
	}
	want := []itemView{
		{Invoice: "in_apr15", Desc: "Requests: 300", Amount: 30, From: "2026-04-01", To: "2026-05-01", Tier: "0"},
		{Invoice: "in_apr15", Desc: "Requests: 310 (2026-03-01, not billed before)", Amount: 31, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
	}
	if diff := cmp.Diff(sortViews(want), view(b.stripe.InvoiceItems("in_apr15"))); diff != "" {
		t.Errorf("April 15 invoice (-want +got):\n%s", diff)
	}
}

// TestLateUsage: usage that arrives for a bucket after it was billed is billed on the next
// invoice as an adjustment for the difference, described as such, once, and further growth gets
// a further adjustment; nothing billed is billed again.
func TestLateUsage(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 3, 1), date(2026, 6, 1), 100, "40")
	deliver := func(id string, from, to time.Time) {
		t.Helper()
		inv := b.invoice(id, "cus_a", 42, "draft", from, to)
		for range 2 {
			if got := b.deliver(t, inv, "draft"); got != 200 {
				t.Fatalf("%s: status %d", id, got)
			}
		}
	}
	late := func(requests int, gb string, at time.Time) {
		t.Helper()
		var events []meterbill.Event
		for i := range requests {
			events = append(events, meterbill.Event{Account: 42, Metric: "requests", Value: meterbill.Units(1), Time: at.Add(time.Duration(i)*time.Millisecond + 7)})
		}
		if gb != "" {
			events = append(events, meterbill.Event{Account: 42, Metric: "gb_days", Value: mustValue(t, gb), Time: at.Add(time.Hour + 7)})
		}
		ingestAll(t, b.meter, events)
	}
	deliver("in_mar", date(2026, 3, 1), date(2026, 4, 1))
	// Late: 500 requests and 10 GB-days for March 15, after March was billed.
	late(500, "10", at(2026, 3, 15, 9, 0))
	deliver("in_apr", date(2026, 4, 1), date(2026, 5, 1))
	wantApr := concat(monthLines("in_apr", date(2026, 4, 1), date(2026, 5, 1), ""), []itemView{
		{Invoice: "in_apr", Desc: "Requests: late usage +500 (billed 3100, now 3600)", Amount: 50, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
		// Storage for March: 1240 → 1250 GB-days, all in the third tier at 1¢.
		{Invoice: "in_apr", Desc: "Storage: late usage +10 (billed 1240, now 1250)", Amount: 10, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
	})
	if diff := cmp.Diff(sortViews(wantApr), view(b.stripe.InvoiceItems("in_apr"))); diff != "" {
		t.Errorf("April invoice (-want +got):\n%s", diff)
	}
	// More late usage for March: only the new part is billed, on May's invoice.
	late(100, "", at(2026, 3, 20, 9, 0))
	deliver("in_may", date(2026, 5, 1), date(2026, 6, 1))
	var adjustments []itemView
	for _, v := range view(b.stripe.InvoiceItems("in_may")) {
		if strings.Contains(v.Desc, "late usage") {
			adjustments = append(adjustments, v)
		}
	}
	wantMay := []itemView{{Invoice: "in_may", Desc: "Requests: late usage +100 (billed 3600, now 3700)", Amount: 10, From: "2026-03-01", To: "2026-04-01", Tier: "0"}}
	if diff := cmp.Diff(wantMay, adjustments); diff != "" {
		t.Errorf("May adjustments (-want +got):\n%s", diff)
	}
	// Across all invoices, March's requests are billed exactly once: 3700 at $0.001.
	var marchRequests int64
	for _, it := range b.stripe.Items("cus_a") {
		if it.Metadata["meterbill_metric"] == "requests" && strings.HasPrefix(it.Metadata["meterbill_from"], "2026-03-01") {
			marchRequests += it.Amount
		}
	}
	if marchRequests != 370 {
		t.Errorf("March requests billed %d cents in all, want 370", marchRequests)
	}
}

// TestCatchUpAtMonthEnds: a subscription anchored on the 31st renews on the last day of shorter
// months (Jan 31, Feb 28, Mar 31, Apr 30). The missed Feb 28 – Mar 31 invoice is caught up on the
// Mar 31 – Apr 30 one as exactly its own 31 days of a Day metric, priced as that invoice would have
// priced them.
func TestCatchUpAtMonthEnds(t *testing.T) {
	b := newBridge(t, billPlan[1:]) // storage only: a Day metric with graduated tiers
	b.record(t, 42, date(2026, 1, 1), date(2026, 5, 31), 0, "40")
	jan := b.invoice("in_jan31", "cus_a", 42, "draft", date(2026, 1, 31), date(2026, 2, 28))
	if got := b.deliver(t, jan, "draft"); got != 200 {
		t.Fatalf("status %d", got)
	}
	// Feb 28 → Mar 31 never delivered.
	mar := b.invoice("in_mar31", "cus_a", 42, "draft", date(2026, 3, 31), date(2026, 4, 30))
	if got := b.deliver(t, mar, "draft"); got != 200 {
		t.Fatalf("status %d", got)
	}
	storage := func(days int64, from, to time.Time, suffix string) []itemView {
		f, e := from.Format(time.DateOnly), to.Format(time.DateOnly)
		return []itemView{
			{Invoice: "in_mar31", Desc: "Storage (tier 1): 100" + suffix, Amount: 0, From: f, To: e, Tier: "1"},
			{Invoice: "in_mar31", Desc: "Storage (tier 2): 900" + suffix, Amount: 1800, From: f, To: e, Tier: "2"},
			{Invoice: "in_mar31", Desc: "Storage (tier 3): " + itoa(days*40-1000) + suffix, Amount: days*40 - 1000, From: f, To: e, Tier: "3"},
		}
	}
	want := concat(
		storage(30, date(2026, 3, 31), date(2026, 4, 30), ""),
		storage(31, date(2026, 2, 28), date(2026, 3, 31), " (2026-02-28, not billed before)"),
	)
	if diff := cmp.Diff(sortViews(want), view(b.stripe.InvoiceItems("in_mar31"))); diff != "" {
		t.Errorf("Mar 31 invoice (-want +got):\n%s", diff)
	}
}

// deliverAs posts inv's invoice.created with another billing_reason (b.deliver sends renewals).
func (b *bridge) deliverAs(t *testing.T, inv stripefake.Invoice, reason string) {
	t.Helper()
	payload := invoiceEvent(t, "2025-08-27.basil", inv.ID, inv.Customer, "draft", time.Unix(inv.PeriodStart, 0), time.Unix(inv.PeriodEnd, 0), inv.SubscriptionMetadata)
	var ev map[string]any
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatal(err)
	}
	ev["data"].(map[string]any)["object"].(map[string]any)["billing_reason"] = reason
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret})
	req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", sp.Header)
	w := httptest.NewRecorder()
	b.handler.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("%s (%s): status %d", inv.ID, reason, w.Code)
	}
}

// storageBilled returns the cents billed for storage days starting in month ("2026-03"), and how
// often each day was covered.
func storageBilled(b *bridge, month string) (cents int64, covered map[string]int) {
	covered = map[string]int{}
	runs := map[string][][2]time.Time{} // each run's buckets, by its from, to and runs
	for _, it := range b.stripe.Items("cus_a") {
		md := it.Metadata
		if md["meterbill_metric"] != "gb_days" || md["meterbill_kind"] != "" {
			continue
		}
		e, _, err := ledger.Decode(md)
		if err != nil {
			panic(err)
		}
		if e.From.Format("2006-01") == month {
			cents += it.Amount
		}
		var spans [][2]time.Time
		for _, c := range e.Covered() {
			spans = append(spans, [2]time.Time{time.Unix(0, c[0]).UTC(), time.Unix(0, c[1]).UTC()})
		}
		runs[md["meterbill_from"]+md["meterbill_to"]+md["meterbill_runs"]] = spans
	}
	// A run priced on top of others in its billing period covers them too and takes them over:
	// count each day in the runs no other run takes over.
	days := func(spans [][2]time.Time) map[string]bool {
		out := map[string]bool{}
		for _, s := range spans {
			for d := s[0]; d.Before(s[1]); d = d.AddDate(0, 0, 1) {
				out[d.Format(time.DateOnly)] = true
			}
		}
		return out
	}
	for k, spans := range runs {
		mine := days(spans)
		takenOver := false
		for o, other := range runs {
			theirs := days(other)
			if o != k && len(theirs) > len(mine) && func() bool {
				for d := range mine {
					if !theirs[d] {
						return false
					}
				}
				return true
			}() {
				takenOver = true
			}
		}
		if !takenOver {
			for d := range mine {
				covered[d]++
			}
		}
	}
	return cents, covered
}

// TestCatchUpOnlyOnRenewals: only a renewal (billing_reason subscription_cycle) covers a whole
// billing period and catches up the periods before it. A manual, zero-length or prorated invoice
// in between never prices a missed month in fragments, nor reaches into the cycle still running.
// 40 GB a day of storage: a 31-day month is 0 + 1800 + 240 cents, a 30-day one 0 + 1800 + 200.
func TestCatchUpOnlyOnRenewals(t *testing.T) {
	type invoice struct {
		id       string
		from, to time.Time
		reason   string
	}
	tests := []struct {
		name      string
		invoices  []invoice
		month     string
		wantCents int64
		wantDays  [2]time.Time // every day in [from, to) billed exactly once
		wantNone  [2]time.Time // no day in [from, to) billed
	}{
		{
			name: "a zero-length one-off mid-cycle bills nothing of the running month",
			invoices: []invoice{
				{"in_mar", date(2026, 3, 1), date(2026, 4, 1), "subscription_cycle"},
				{"in_oneoff", at(2026, 4, 10, 9, 30), at(2026, 4, 10, 9, 30), "manual"},
				{"in_apr", date(2026, 4, 1), date(2026, 5, 1), "subscription_cycle"},
			},
			month: "2026-04", wantCents: 2000, wantDays: [2]time.Time{date(2026, 3, 1), date(2026, 5, 1)},
		},
		{
			name: "March lost, a one-off first: the April renewal catches March up as one period",
			invoices: []invoice{
				{"in_feb", date(2026, 2, 1), date(2026, 3, 1), "subscription_cycle"},
				{"in_oneoff", at(2026, 4, 10, 9, 30), at(2026, 4, 10, 9, 30), "manual"},
				{"in_apr", date(2026, 4, 1), date(2026, 5, 1), "subscription_cycle"},
			},
			month: "2026-03", wantCents: 2040, wantDays: [2]time.Time{date(2026, 2, 1), date(2026, 5, 1)},
		},
		{
			name: "first bill by a manual invoice mid-February, the February renewal lost: the days after it are caught up",
			invoices: []invoice{
				{"in_manual", date(2026, 2, 10), date(2026, 2, 20), "manual"},
				{"in_mar", date(2026, 3, 1), date(2026, 4, 1), "subscription_cycle"},
			},
			month: "2026-03", wantCents: 2040,
			wantDays: [2]time.Time{date(2026, 2, 10), date(2026, 4, 1)},
			wantNone: [2]time.Time{date(2026, 2, 1), date(2026, 2, 10)}, // before billing began
		},
		{
			name: "an anchor reset after a lost March catches nothing up itself",
			invoices: []invoice{
				{"in_feb", date(2026, 2, 1), date(2026, 3, 1), "subscription_cycle"},
				{"in_reset", date(2026, 4, 1), date(2026, 4, 20), "subscription_update"},
			},
			month: "2026-03", wantCents: 0, wantNone: [2]time.Time{date(2026, 3, 1), date(2026, 4, 1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBridge(t, billPlan[1:]) // storage: a Day metric with graduated tiers
			b.record(t, 42, date(2026, 2, 1), date(2026, 5, 1), 0, "40")
			for _, inv := range tt.invoices {
				b.deliverAs(t, b.invoice(inv.id, "cus_a", 42, "draft", inv.from, inv.to), inv.reason)
			}
			cents, covered := storageBilled(b, tt.month)
			if cents != tt.wantCents {
				t.Errorf("%s storage billed %d cents, want %d", tt.month, cents, tt.wantCents)
			}
			for d := tt.wantDays[0]; d.Before(tt.wantDays[1]); d = d.AddDate(0, 0, 1) {
				if n := covered[d.Format(time.DateOnly)]; n != 1 {
					t.Errorf("%s billed %d times, want once", d.Format(time.DateOnly), n)
				}
			}
			for d := tt.wantNone[0]; d.Before(tt.wantNone[1]); d = d.AddDate(0, 0, 1) {
				if n := covered[d.Format(time.DateOnly)]; n != 0 {
					t.Errorf("%s billed %d times, want never", d.Format(time.DateOnly), n)
				}
			}
		})
	}
}

// TestAdjustmentOnlyRedelivery: a redelivery of an invoice whose only line is an adjustment
// reports it as already billed.
func TestAdjustmentOnlyRedelivery(t *testing.T) {
	b := newBridge(t, billPlan[:1])
	b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 10, "")
	if got := b.deliver(t, b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1)), "draft"); got != 200 {
		t.Fatalf("status %d", got)
	}
	var late []meterbill.Event
	for i := range 50 {
		late = append(late, meterbill.Event{Account: 42, Metric: "requests", Value: meterbill.Units(1), Time: at(2026, 3, 5, 1, 0).Add(time.Duration(i)*time.Millisecond + 3)})
	}
	ingestAll(t, b.meter, late)
	apr := b.invoice("in_apr", "cus_a", 42, "draft", date(2026, 4, 1), date(2026, 4, 2)) // no April usage
	for range 2 {
		if got := b.deliver(t, apr, "draft"); got != 200 {
			t.Fatalf("status %d", got)
		}
	}
	b.mu.Lock()
	first, last := b.reports[len(b.reports)-2], b.reports[len(b.reports)-1]
	b.mu.Unlock()
	got := []any{first.Outcome, len(first.Created), last.Outcome, last.Existing}
	want := []any{meterbill.OutcomeBilled, 1, meterbill.OutcomeAlreadyBilled, 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcome, created; redelivery's outcome, existing (-want +got):\n%s", diff)
	}
}
