package billing

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill/internal/fixed"
	"github.com/meterbill/meterbill/internal/ledger"
	"github.com/meterbill/meterbill/internal/period"
)

func day(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }

var (
	// storage: a Day metric, graduated: 100 free, 2¢ up to 1000, then 1¢.
	storage = Metric{Code: "storage", Spec: period.Spec{Type: period.Day}, Merge: Add}
	// calls: a Calendar metric on cycle day 1, 1¢ each.
	calls = Metric{Code: "calls", Spec: period.Spec{Type: period.Calendar, CycleDay: 1}, Merge: Add}
)

// world is a meter and a price list in memory. Usage is whole units per day; Start counts how
// often it is asked.
type world struct {
	usage      map[string]map[time.Time]int64 // metric → day → units
	start      time.Time                      // zero: the subscription is unknown
	startCalls int
	voided     []Voided
}

func (w *world) Usage(m Metric, runs []ledger.Run) (fixed.Micros, error) {
	var n int64
	for _, r := range runs {
		from, to := r.Window(m.Spec)
		for d, v := range w.usage[m.Code] {
			if d.UnixNano() >= from && d.UnixNano() < to {
				n += v
			}
		}
	}
	return fixed.Units(uint64(n)), nil
}

func (w *world) Price(m Metric, _, _ time.Time, q fixed.Micros) ([]Line, error) {
	units := int64(q.Lo / 1e6)
	if m.Code == calls.Code {
		if units == 0 {
			return nil, nil
		}
		return []Line{{Description: "Calls", Quantity: q, UnitPrice: "1", FlatFee: "0", Amount: units}}, nil
	}
	var out []Line
	for i, t := range []struct{ upTo, unit int64 }{{100, 0}, {1000, 2}, {1 << 62, 1}} {
		lo := []int64{0, 100, 1000}[i]
		if units <= lo {
			break
		}
		n := min(units, t.upTo) - lo
		out = append(out, Line{Tier: i + 1, Description: fmt.Sprintf("Storage (tier %d)", i+1), Quantity: fixed.Units(uint64(n)),
			UnitPrice: fmt.Sprint(t.unit), FlatFee: "0", Amount: n * t.unit})
	}
	return out, nil
}

func (w *world) Voided(time.Time) ([]Voided, error) { return w.voided, nil }

func (w *world) Start() (time.Time, bool, error) {
	w.startCalls++
	return w.start, !w.start.IsZero(), nil
}

// daily returns n units on every day of [from, to).
func daily(from, to time.Time, n int64) map[time.Time]int64 {
	out := map[time.Time]int64{}
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		out[d] = n
	}
	return out
}

// entry is a ledger record; lines, when given, is the run's record ("tier:qty:unit:amount").
func entry(m Metric, invoice string, from, to time.Time, qty string, tier int, base string, lines ...ledger.Line) ledger.Entry {
	e := ledger.Entry{Account: 42, Metric: m.Code, Period: ledger.SpecString(m.Spec), From: from, To: to, Quantity: qty, Tier: tier,
		LineQty: qty, UnitPrice: "1", Invoice: invoice, Base: base, Lines: lines}
	if invoice != "in_manual" { // a manual invoice has no subscription
		e.Subscription = "sub_a"
	}
	return e
}

// monthStorage is a whole month's storage run at 40 a day: 1240 in March.
func monthStorage(invoice string, from, to time.Time, qty string, tiers ...int) []ledger.Entry {
	record := []ledger.Line{{Tier: 1, Quantity: "100", UnitPrice: "0", Amount: 0}, {Tier: 2, Quantity: "900", UnitPrice: "2", Amount: 1800}, {Tier: 3, Quantity: "240", UnitPrice: "1", Amount: 240}}
	var out []ledger.Entry
	for _, t := range tiers {
		out = append(out, entry(storage, invoice, from, to, qty, t, "", record...))
	}
	return out
}

// manualMarch is a manual invoice's storage run for March 1-14 at 40 a day: 560, of which 100
// free and 460 at 2¢.
func manualMarch() []ledger.Entry {
	record := []ledger.Line{{Tier: 1, Quantity: "100", UnitPrice: "0", Amount: 0}, {Tier: 2, Quantity: "460", UnitPrice: "2", Amount: 920}}
	var out []ledger.Entry
	for _, l := range record {
		e := entry(storage, "in_manual", day(3, 1), day(3, 15), "560", l.Tier, "", record...)
		e.LineQty, e.Amount = l.Quantity, l.Amount
		out = append(out, e)
	}
	return out
}

// stackedMarch is the March renewal's storage run priced on top of manualMarch: the month's 1240
// cost 2040, the 560 billed 920, so 440 more at 2¢ and 240 at 1¢.
func stackedMarch(tiers ...int) []ledger.Entry {
	record := []ledger.Line{{Tier: 2, Quantity: "440", UnitPrice: "2", Amount: 880}, {Tier: 3, Quantity: "240", UnitPrice: "1", Amount: 240}}
	var out []ledger.Entry
	for _, l := range record {
		if slices.Contains(tiers, l.Tier) {
			e := entry(storage, "in_mar", day(3, 1), day(4, 1), "1240", l.Tier, "560", record...)
			e.LineQty, e.Amount = l.Quantity, l.Amount
			out = append(out, e)
		}
	}
	return out
}

// act is the comparable projection of an Action.
type act struct {
	Metric, From, To string
	Tier             int
	Qty              string
	Amount           int64
	CatchUp          bool
	Base, Offset     string
}

func project(as []Action) []act {
	if len(as) == 0 {
		return nil
	}
	out := make([]act, len(as))
	for i, a := range as {
		out[i] = act{Metric: a.Metric.Code, From: a.From.Format(time.DateOnly), To: a.To.Format(time.DateOnly), Tier: a.Line.Tier,
			Qty: a.Line.Quantity.String(), Amount: a.Line.Amount, CatchUp: a.CatchUp}
		if a.Base != nil {
			out[i].Base = a.Base.String()
		}
		if a.Offset != nil {
			out[i].Offset = a.Offset.String()
		}
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

func marchActs(catchUp bool) []act {
	return []act{
		{Metric: "calls", From: "2026-03-01", To: "2026-04-01", Qty: "310", Amount: 310, CatchUp: catchUp},
		{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Tier: 1, Qty: "100", Amount: 0, CatchUp: catchUp},
		{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Tier: 2, Qty: "900", Amount: 1800, CatchUp: catchUp},
		{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Tier: 3, Qty: "240", Amount: 240, CatchUp: catchUp},
	}
}

func TestPlan(t *testing.T) {
	april := Invoice{ID: "in_apr", Subscription: "sub_a", Start: day(4, 1), End: day(5, 1), Renewal: true}
	march := Invoice{ID: "in_mar", Subscription: "sub_a", Start: day(3, 1), End: day(4, 1), Renewal: true}
	usage := func(from, to time.Time) map[string]map[time.Time]int64 {
		return map[string]map[time.Time]int64{"storage": daily(from, to, 40), "calls": daily(from, to, 10)}
	}
	aprilActs := []act{
		{Metric: "calls", From: "2026-04-01", To: "2026-05-01", Qty: "300", Amount: 300},
		{Metric: "storage", From: "2026-04-01", To: "2026-05-01", Tier: 1, Qty: "100", Amount: 0},
		{Metric: "storage", From: "2026-04-01", To: "2026-05-01", Tier: 2, Qty: "900", Amount: 1800},
		{Metric: "storage", From: "2026-04-01", To: "2026-05-01", Tier: 3, Qty: "200", Amount: 200},
	}
	calledMarch := entry(calls, "in_mar", day(3, 1), day(4, 1), "310", 0, "", ledger.Line{Quantity: "310", UnitPrice: "1", Amount: 310})
	tests := []struct {
		name           string
		inv            Invoice
		lookback       time.Duration
		entries        []ledger.Entry
		usage          map[string]map[time.Time]int64
		start          time.Time
		late           func(u map[string]map[time.Time]int64) // usage that arrived after the ledger was written
		want           []act
		wantExisting   int
		wantStartCalls int
	}{
		{
			name: "a first renewal bills its window, once the subscription says it started before it",
			inv:  march, usage: usage(day(3, 1), day(5, 1)), start: day(3, 1),
			want: marchActs(false), wantStartCalls: 1,
		},
		{
			name:  "a subscription that started on March 20: the March calendar bucket straddles the start and is not billed; the days from the 20th are",
			inv:   Invoice{ID: "in_first", Subscription: "sub_a", Start: day(3, 20), End: day(4, 20), Renewal: true},
			usage: usage(day(3, 1), day(5, 1)), start: day(3, 20),
			want: []act{
				{Metric: "storage", From: "2026-03-20", To: "2026-04-20", Tier: 1, Qty: "100", Amount: 0},
				{Metric: "storage", From: "2026-03-20", To: "2026-04-20", Tier: 2, Qty: "900", Amount: 1800},
				{Metric: "storage", From: "2026-03-20", To: "2026-04-20", Tier: 3, Qty: "240", Amount: 240},
			},
			wantStartCalls: 1,
		},
		{
			name: "a subscription whose start is unknown: the window is billed as Stripe framed it, nothing is caught up",
			inv:  april, lookback: 60 * 24 * time.Hour, usage: usage(day(3, 1), day(5, 1)),
			want: aprilActs, wantStartCalls: 1,
		},
		{
			name:  "an invoice without a subscription bills its window without asking",
			inv:   Invoice{ID: "in_manual", Start: day(3, 1), End: day(4, 1)},
			usage: usage(day(3, 1), day(5, 1)),
			want:  marchActs(false),
		},
		{
			name: "a redelivery plans nothing and counts what exists",
			inv:  march, usage: usage(day(3, 1), day(5, 1)), start: day(3, 1),
			entries:      append(monthStorage("in_mar", day(3, 1), day(4, 1), "1240", 1, 2, 3), calledMarch),
			wantExisting: 4,
		},
		{
			name: "a missed month is caught up on its own lines; the subscription is asked once",
			inv:  april, lookback: 60 * 24 * time.Hour, usage: usage(day(3, 1), day(5, 1)), start: day(3, 1),
			want: append(marchActs(true), aprilActs...), wantStartCalls: 1,
		},
		{
			name: "usage before the subscription's start is never caught up",
			inv:  april, lookback: 60 * 24 * time.Hour, usage: usage(day(2, 1), day(5, 1)), start: day(4, 1),
			want: aprilActs, wantStartCalls: 1,
		},
		{
			name: "nothing missed: the subscription is not asked",
			inv:  april, lookback: 60 * 24 * time.Hour, usage: usage(day(3, 1), day(5, 1)), start: day(3, 1),
			entries:        append(monthStorage("in_mar", day(3, 1), day(4, 1), "1240", 1, 2, 3), calledMarch),
			want:           aprilActs,
			wantStartCalls: 0,
		},
		{
			name: "lookback 0: no catch-up, no late usage",
			inv:  april, usage: usage(day(3, 1), day(5, 1)), start: day(3, 1),
			want: aprilActs, wantStartCalls: 1,
		},
		{
			name: "a manual invoice billed March 1-15: the renewal prices the rest on top, so the month costs 2040",
			inv:  march, usage: usage(day(3, 1), day(4, 1)), start: day(3, 1),
			entries: manualMarch(),
			want: []act{
				{Metric: "calls", From: "2026-03-01", To: "2026-04-01", Qty: "310", Amount: 310},
				{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Tier: 2, Qty: "440", Amount: 880, Offset: "560"},
				{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Tier: 3, Qty: "240", Amount: 240, Offset: "560"},
			},
			wantExisting:   2, // the manual invoice's items bill part of the window
			wantStartCalls: 1, // a manual invoice's items say nothing of the subscription
		},
		{
			name: "another invoice's run cut after its first tier is finished from its record",
			inv:  april, lookback: 60 * 24 * time.Hour, usage: usage(day(3, 1), day(5, 1)), start: day(3, 1),
			entries: append(monthStorage("in_mar", day(3, 1), day(4, 1), "1240", 1), calledMarch),
			want: append([]act{
				{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Tier: 2, Qty: "900", Amount: 1800, CatchUp: true},
				{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Tier: 3, Qty: "240", Amount: 240, CatchUp: true},
			}, aprilActs...),
		},
		{
			name: "the record is kept even when the usage grew since: finished at the quantity it started with, late usage apart",
			inv:  april, lookback: 60 * 24 * time.Hour, usage: usage(day(3, 1), day(5, 1)), start: day(3, 1),
			entries: append(monthStorage("in_mar", day(3, 1), day(4, 1), "1240", 1), calledMarch),
			late:    func(u map[string]map[time.Time]int64) { u["storage"][day(3, 5)] += 100 },
			want: append([]act{
				{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Tier: 2, Qty: "900", Amount: 1800, CatchUp: true},
				{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Tier: 3, Qty: "240", Amount: 240, CatchUp: true},
				{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Qty: "100", Amount: 100, Base: "1240"},
			}, aprilActs...),
		},
		{
			name: "a run taken over by one stacked on it gets no adjustment of its own: the stacked run's is priced at the month's top",
			inv:  april, lookback: 60 * 24 * time.Hour, usage: usage(day(3, 1), day(5, 1)), start: day(3, 1),
			entries: append(append(manualMarch(), stackedMarch(2, 3)...), calledMarch),
			late:    func(u map[string]map[time.Time]int64) { u["storage"][day(3, 5)] += 100 },
			want: append([]act{
				{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Qty: "100", Amount: 100, Base: "1240"},
			}, aprilActs...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &world{usage: tt.usage, start: tt.start}
			if tt.late != nil {
				tt.late(w.usage)
			}
			got, existing, err := Plan(tt.inv, []Metric{calls, storage}, tt.entries, w, tt.lookback)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			sort.Slice(want, func(i, j int) bool { return fmt.Sprint(want[i]) < fmt.Sprint(want[j]) })
			if diff := cmp.Diff(want, project(got)); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if existing != tt.wantExisting {
				t.Errorf("existing = %d, want %d", existing, tt.wantExisting)
			}
			if w.startCalls != tt.wantStartCalls {
				t.Errorf("the subscription was asked %d times, want %d", w.startCalls, tt.wantStartCalls)
			}
		})
	}
}

func TestLineDiff(t *testing.T) {
	u := fixed.Units
	tests := []struct {
		name             string
		now, was         []Line
		quantity, billed fixed.Micros
		want             []Line
	}{
		{
			name:     "graduated: each tier's gain, tiers without one left out",
			now:      []Line{{Tier: 1, Quantity: u(100)}, {Tier: 2, Quantity: u(900), Amount: 1800}, {Tier: 3, Quantity: u(240), Amount: 240}},
			was:      []Line{{Tier: 1, Quantity: u(100)}, {Tier: 2, Quantity: u(460), Amount: 920}},
			quantity: u(1240), billed: u(560),
			want: []Line{{Tier: 2, Quantity: u(440), Amount: 880, FlatFee: "0"}, {Tier: 3, Quantity: u(240), Amount: 240}},
		},
		{
			name:     "volume moving to a cheaper tier, total down: nothing",
			now:      []Line{{Tier: 2, Quantity: u(1001), Amount: 500}},
			was:      []Line{{Tier: 1, Quantity: u(1000), Amount: 1000}},
			quantity: u(1001), billed: u(1000),
		},
		{
			name:     "volume moving to a cheaper tier, total up: one line for the difference",
			now:      []Line{{Tier: 2, Quantity: u(3000), Amount: 1500, UnitPrice: "0.5"}},
			was:      []Line{{Tier: 1, Quantity: u(1000), Amount: 1000}},
			quantity: u(3000), billed: u(1000),
			want: []Line{{Quantity: u(2000), Amount: 500, FlatFee: "0"}},
		},
		{
			name:     "per unit: the difference, rounded once each side",
			now:      []Line{{Quantity: u(15), Amount: 2, UnitPrice: "0.1"}},
			was:      []Line{{Quantity: u(5), Amount: 1, UnitPrice: "0.1"}},
			quantity: u(15), billed: u(5),
			want: []Line{{Quantity: u(10), Amount: 1, UnitPrice: "0.1", FlatFee: "0"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, LineDiff(tt.now, tt.was, tt.quantity, tt.billed)); diff != "" {
				t.Errorf("LineDiff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPeriodStepper(t *testing.T) {
	tests := []struct {
		name       string
		start, end time.Time
		want       []time.Time // the starts of the 1st, 2nd and 3rd periods back
	}{
		{name: "monthly on the 1st", start: day(4, 1), end: day(5, 1), want: []time.Time{day(3, 1), day(2, 1), day(1, 1)}},
		{name: "monthly on the 31st steps on month ends", start: day(3, 31), end: day(4, 30), want: []time.Time{day(2, 28), day(1, 31), time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)}},
		{name: "weekly: its own length", start: day(4, 8), end: day(4, 15), want: []time.Time{day(4, 1), day(3, 25), day(3, 18)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			back := periodStepper(tt.start, tt.end)
			got := []time.Time{back(1), back(2), back(3)}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("periods back (-want +got):\n%s", diff)
			}
		})
	}
}
