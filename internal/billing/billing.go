// Package billing is meterbill's planner: given an invoice, the ledger (what meterbill's items on
// Stripe say was billed) and a way to read usage and prices, it decides which invoice lines are
// still owed. It is pure: no HTTP, no Stripe, no meter. The caller gathers the inputs (the
// items, the meter's answers, the pricer's) behind [World], and carries out the answer.
//
// The rules, each in one function:
//
//   - the invoice's window ([Plan] via planWindow): every complete bucket of a metric whose end
//     lies in (period_start, period_end] that no item covers, priced together;
//   - the subscription's start (priceOwed): no bucket that begins before the subscription's
//     usage did (its start, or its trial's end) is billed, in the window or by catch-up; a
//     bucket that straddles it is not billed either, since the meter cannot split a bucket;
//   - per billing period, not per invoice (pricePeriod): when items already billed part of the
//     period (a manual invoice for part of the month), the rest is priced on top of them, so
//     included units and tiers apply once per period;
//   - catch-up (planCatchUp): whole periods before the window that no item covers, back to the
//     lookback horizon and never before the subscription's usage began, nor inside a voided
//     invoice's window (its usage is waived);
//   - re-billing (planRebill): a voided invoice's window billed on its replacement;
//   - completion (planCompletion): a run whose lines were cut short is finished from its record,
//     at the quantity and prices it started with;
//   - late usage (planLate): a run whose usage grew since it was billed gets one adjustment for
//     the difference in price.
package billing

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meterbill/meterbill/internal/fixed"
	"github.com/meterbill/meterbill/internal/ledger"
	"github.com/meterbill/meterbill/internal/period"
)

// ErrOverflow reports a quantity or an amount that does not fit.
var ErrOverflow = errors.New("overflow")

// Merge is how quantities of several runs of buckets of one metric combine, as the meter
// combines buckets.
type Merge uint8

// The merges.
const (
	Add     Merge = iota // counts and sums
	Largest              // Max
	Last                 // Latest: the last run's
)

// Metric is a billed metric as the planner sees it.
type Metric struct {
	Code  string
	Spec  period.Spec
	Merge Merge
}

// Line is one priced line.
type Line struct {
	Tier        int
	Description string // with the tier, as the pricer wrote it
	Quantity    fixed.Micros
	Packages    fixed.Micros
	UnitPrice   string
	FlatFee     string
	Amount      int64
	Plan        string
}

// Invoice is what the planner knows of an invoice.
type Invoice struct {
	ID           string
	Subscription string    // "" for an invoice without one
	Start, End   time.Time // its period
	// Renewal is true for a subscription_cycle invoice: only a renewal covers a whole billing
	// period and may catch up the periods before it.
	Renewal bool
	// Rebill is a voided invoice whose usage this invoice bills, or nil.
	Rebill *Voided
	// Final marks the invoice of a subscription that ended at End: the buckets that straddle
	// End are billed too, since no later invoice will.
	Final bool
	// NominalEnd, if set, is the end of the billing period [Start, NominalEnd) the invoice
	// belongs to when End cuts it short (a subscription that ended mid-period): catch-up steps
	// back by the period's length, not by the invoice's.
	NominalEnd time.Time
}

// Voided is a voided invoice of the subscription: the usage of its window is waived, never
// caught up, unless an invoice re-bills it.
type Voided struct {
	ID         string
	Start, End time.Time // its period
}

// World answers the planner's questions. Its calls must have no effect on what is billed.
type World interface {
	// Usage returns m's usage over runs, merged across them as the meter merges buckets.
	Usage(m Metric, runs []ledger.Run) (fixed.Micros, error)
	// Price prices quantity q of m used over [from, to): its lines, in tier order.
	Price(m Metric, from, to time.Time, q fixed.Micros) ([]Line, error)
	// Start returns when the invoice's subscription began to bill usage (its start, or its
	// trial's end), and false if nobody can tell (the subscription is gone). The planner asks
	// only when something before that could be billed: lines for buckets no item of the
	// subscription proves to be after it.
	Start() (time.Time, bool, error)
	// Voided returns the subscription's voided invoices created since since. The planner asks
	// only when catch-up has something to bill.
	Voided(since time.Time) ([]Voided, error)
}

// Action is one line to create.
type Action struct {
	Metric   Metric
	From, To time.Time      // the span of the buckets priced
	Runs     [][2]time.Time // the runs of contiguous buckets in the span, when more than one
	Quantity fixed.Micros   // the usage of all of them, as priced (adjustments: billed with this line)
	Line     Line
	// CatchUp marks buckets before the invoice's window: a period never billed, or another
	// invoice's run finished.
	CatchUp bool
	// Base is, for a late-usage adjustment, the run's quantity billed before this line.
	Base *fixed.Micros
	// Offset is, for a run priced on top of what other items billed in its period, that
	// quantity: the run's lines bill the price of Quantity less the price of Offset.
	Offset *fixed.Micros
	// Run is every line of the run, as priced; recorded on each of its items so that any later
	// handling can finish the run at these prices. nil for adjustments.
	Run []ledger.Line
	// Rebill is the voided invoice whose usage this line bills again, or "": its lines get keys
	// of their own, never those of the voided invoice's lines.
	Rebill string
}

// Key returns the action's idempotency key (see ledger.Key, ledger.StackedKey and
// ledger.AdjustmentKey). A line has the same key whether it goes on an invoice or becomes a
// pending item, so two handlings that bill the same run in different ways meet on one key.
func (a Action) Key(customer string, account uint64, gen int) string {
	var key string
	switch {
	case a.Base != nil:
		key = ledger.AdjustmentKey(customer, account, a.Metric.Code, a.From, a.To, a.Base.String(), gen)
	case a.Offset != nil:
		key = ledger.StackedKey(customer, account, a.Metric.Code, a.From, a.To, a.Line.Tier, a.Offset.String(), gen)
	default:
		key = ledger.Key(customer, account, a.Metric.Code, a.From, a.To, a.Line.Tier, gen)
	}
	if a.Rebill != "" {
		key = ledger.RebillKey(key, a.Rebill)
	}
	return key
}

// Plan returns the lines still to create for inv, and how many of its lines already exist.
// entries are the ledger's records of the invoice's account. lookback bounds catch-up, late
// usage and the finishing of other invoices' runs; 0 turns them off.
func Plan(inv Invoice, metrics []Metric, entries []ledger.Entry, w World, lookback time.Duration) ([]Action, int, error) {
	p := planner{inv: inv, w: w, lookback: lookback, entries: entries}
	var todo []Action
	existing := 0
	for _, m := range metrics {
		var usage, adjustments []ledger.Entry
		for _, e := range entries {
			switch {
			case e.Metric != m.Code:
			case inv.Rebill != nil && e.OnInvoice == inv.Rebill.ID:
				// On the voided invoice being billed again: waived, so it bills nothing here.
			case e.IsAdjustment():
				adjustments = append(adjustments, e)
			default:
				usage = append(usage, e)
			}
		}
		var covered [][2]int64
		for _, e := range usage {
			covered = append(covered, e.Covered()...)
		}
		for _, a := range adjustments {
			if a.Invoice == inv.ID {
				existing++ // made for this invoice by an earlier delivery
			}
		}
		finish, err := p.planCompletion(m, usage)
		if err != nil {
			return nil, 0, err
		}
		early, err := p.planCatchUp(m, usage, adjustments, covered)
		if err != nil {
			return nil, 0, err
		}
		rebill, err := p.planRebill(m, usage, adjustments)
		if err != nil {
			return nil, 0, err
		}
		early = append(early, rebill...)
		window, n, err := p.planWindow(m, usage, adjustments, covered)
		if err != nil {
			return nil, 0, err
		}
		existing += n
		late, err := p.planLate(m, usage, adjustments)
		if err != nil {
			return nil, 0, err
		}
		todo = slices.Concat(todo, finish, early, window, late)
	}
	return todo, existing, nil
}

type planner struct {
	inv      Invoice
	w        World
	lookback time.Duration
	entries  []ledger.Entry
	asked    bool // Start was asked
	start    time.Time
	known    bool
	voided   []Voided
	listed   bool // Voided was asked
	// stacked are the runs this plan prices a period on top of: their late usage is billed by
	// the new run, never by an adjustment of their own.
	stacked []ledger.Entry
}

// waivedRun reports whether every item of a run is on a voided invoice (one not being re-billed
// here): its usage is waived, so it is neither finished nor adjusted for late usage. The world is
// asked which invoices are void only when such a run would get a line.
func (p *planner) waivedRun(run []ledger.Entry) (bool, error) {
	if err := p.listVoided(); err != nil {
		return false, err
	}
	for _, e := range run {
		if e.OnInvoice == "" || !slices.ContainsFunc(p.voided, func(v Voided) bool { return v.ID == e.OnInvoice }) ||
			(p.inv.Rebill != nil && e.OnInvoice == p.inv.Rebill.ID) {
			return false, nil
		}
	}
	return true, nil
}

// listVoided asks the world once for the subscription's voided invoices since before the
// horizon.
func (p *planner) listVoided() error {
	if p.listed {
		return nil
	}
	v, err := p.w.Voided(p.horizon().Add(-(p.inv.End.Sub(p.inv.Start) + 24*time.Hour)))
	if err != nil {
		return err
	}
	p.voided, p.listed = v, true
	return nil
}

// waived returns the ranges of m's buckets inside voided invoices' windows, in Unix
// nanoseconds, asking the world once.
func (p *planner) waived(m Metric) ([][2]int64, error) {
	if err := p.listVoided(); err != nil {
		return nil, err
	}
	var out [][2]int64
	for _, v := range p.voided {
		if p.inv.Rebill != nil && v.ID == p.inv.Rebill.ID {
			continue // re-billed here
		}
		if r, ok := ledger.Billable(m.Spec, v.Start.UnixNano(), v.End.UnixNano()); ok {
			from, to := r.Window(m.Spec)
			out = append(out, [2]int64{from, to})
		}
	}
	return out, nil
}

// horizon is the earliest time catch-up, late usage and completion reach back to.
func (p *planner) horizon() time.Time { return p.inv.Start.Add(-p.lookback) }

// usageStart asks the world once when the subscription's usage began.
func (p *planner) usageStart() (time.Time, bool, error) {
	if !p.asked {
		t, known, err := p.w.Start()
		if err != nil {
			return time.Time{}, false, err
		}
		p.start, p.known, p.asked = t, known, true
	}
	return p.start, p.known, nil
}

// startedBy reports whether the ledger proves the invoice's subscription billing usage at t
// (Unix nanoseconds): an item of the subscription billed buckets from t or earlier, so its
// usage began by then.
func (p *planner) startedBy(t int64) bool {
	return slices.ContainsFunc(p.entries, func(e ledger.Entry) bool {
		return e.Subscription != "" && e.Subscription == p.inv.Subscription && e.From.UnixNano() <= t
	})
}

// priceOwed prices what is still owed of the period r (see pricePeriod), from the subscription's
// usage start on: the buckets that begin before it, including one that straddles it, are never
// billed. The subscription is asked only when there is something to bill that the ledger does not
// prove to be after its start, so a renewal of a subscription billed before costs nothing more.
// If nobody can tell when it started, the invoice's own window is billed as Stripe framed it and
// nothing is caught up.
func (p *planner) priceOwed(m Metric, r ledger.Run, usage, adjustments []ledger.Entry, covered [][2]int64, catchUp bool) ([]Action, error) {
	priced, err := p.pricePeriod(m, r, usage, adjustments, covered, catchUp)
	if err != nil || len(priced) == 0 {
		return priced, err
	}
	if p.inv.Subscription == "" {
		if catchUp {
			return nil, nil
		}
		return priced, nil
	}
	if p.startedBy(m.Spec.Start(r.First)) {
		return priced, nil
	}
	begin, known, err := p.usageStart()
	switch {
	case err != nil:
		return nil, err
	case !known && catchUp:
		return nil, nil
	case !known:
		return priced, nil
	}
	b := firstBucketFrom(m.Spec, begin)
	if b <= r.First {
		return priced, nil
	}
	if r.First = b; r.First > r.Last {
		return nil, nil
	}
	return p.pricePeriod(m, r, usage, adjustments, covered, catchUp)
}

// planWindow plans the buckets of the invoice's own window: every complete bucket of m whose
// end lies in (period_start, period_end] and is not billed yet, priced together on top of what
// other items billed of it. It also counts the items that already bill the window, or that this
// invoice made.
func (p *planner) planWindow(m Metric, usage, adjustments []ledger.Entry, covered [][2]int64) ([]Action, int, error) {
	end := p.inv.End.UnixNano()
	if p.inv.Final && end > p.inv.Start.UnixNano() {
		// The last buckets: those that straddle the end are the customer's last usage.
		end = m.Spec.End(m.Spec.ID(end - 1))
	}
	run, ok := ledger.Billable(m.Spec, p.inv.Start.UnixNano(), end)
	var winFrom, winTo int64 // empty when the invoice holds no complete bucket of m
	if ok {
		winFrom, winTo = run.Window(m.Spec)
	}
	existing := 0
	for _, e := range usage {
		if from, to := e.From.UnixNano(), e.To.UnixNano(); (from < winTo && winFrom < to) || e.Invoice == p.inv.ID {
			existing++
		}
	}
	if !ok {
		return nil, existing, nil
	}
	priced, err := p.priceOwed(m, run, usage, adjustments, covered, false)
	return priced, existing, err
}

// pricePeriod prices what is still owed of one billing period of m, the buckets of r: those no
// item covers, priced on top of what other items billed inside r (a manual invoice for part of
// the month), so that included units and tiers apply once per billing period, never once per
// Stripe invoice. The new lines bill the price of the period's usage now (the buckets billed
// before and the new ones), under today's prices, less what those items billed: tier by tier
// where the tiers line up, else one line for the difference, and nothing if it is not
// positive. Their run covers the whole period billed so far and takes over the runs it stacks
// on, whose late usage it then carries. Without items inside r it prices the uncovered buckets
// alone.
func (p *planner) pricePeriod(m Metric, r ledger.Run, usage, adjustments []ledger.Entry, covered [][2]int64, catchUp bool) ([]Action, error) {
	fresh := ledger.Uncovered(m.Spec, r, covered)
	if len(fresh) == 0 {
		return nil, nil
	}
	from, to := r.Window(m.Spec)
	prior, billed, err := billedWithin(m, usage, adjustments, from, to)
	if err != nil {
		return nil, err
	}
	if len(prior) == 0 {
		return p.priceRuns(m, fresh, catchUp)
	}
	all := fresh
	for _, e := range prior {
		all = append(all, runsOf(m.Spec, e)...)
	}
	all = joinRuns(all)
	q, spans, now, err := p.priceTogether(m, all, "in one period")
	if err != nil {
		return nil, err
	}
	was, err := billedLines(usage, adjustments, from, to)
	if err != nil {
		return nil, err
	}
	lines := LineDiff(now, was, q, billed)
	if len(lines) > 0 {
		p.stacked = append(p.stacked, prior...)
	}
	return actions(m, spans, q, lines, catchUp, &billed), nil
}

// actions makes one action a line of a run of m over spans, priced at quantity q, each
// recording all the run's lines (and the runs, when there are several).
func actions(m Metric, spans [][2]time.Time, q fixed.Micros, lines []Line, catchUp bool, offset *fixed.Micros) []Action {
	record := Record(lines)
	todo := make([]Action, 0, len(lines))
	for _, l := range lines {
		a := Action{Metric: m, From: spans[0][0], To: spans[len(spans)-1][1], Quantity: q, Line: l, CatchUp: catchUp, Offset: offset, Run: record}
		if len(spans) > 1 {
			a.Runs = spans
		}
		todo = append(todo, a)
	}
	return todo
}

// priceRuns prices unbilled runs of m's buckets together, as one line or one per tier, each
// action recording the runs when there are several.
func (p *planner) priceRuns(m Metric, runs []ledger.Run, catchUp bool) ([]Action, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	q, spans, lines, err := p.priceTogether(m, runs, "of unbilled periods")
	if err != nil {
		return nil, err
	}
	return actions(m, spans, q, lines, catchUp, nil), nil
}

// priceTogether reads m's usage over runs and prices it as one quantity over the runs' spans;
// what says where the runs lie, for the error when there are more than an item can record.
func (p *planner) priceTogether(m Metric, runs []ledger.Run, what string) (fixed.Micros, [][2]time.Time, []Line, error) {
	if ledger.TooManyRuns(len(runs)) {
		return fixed.Micros{}, nil, nil, fmt.Errorf("%s: %d separate runs %s, more than one item can record", m.Code, len(runs), what)
	}
	q, err := p.w.Usage(m, runs)
	if err != nil {
		return fixed.Micros{}, nil, nil, err
	}
	spans := spansOf(m.Spec, runs)
	lines, err := p.w.Price(m, spans[0][0], spans[len(spans)-1][1], q)
	if err != nil {
		return fixed.Micros{}, nil, nil, err
	}
	return q, spans, lines, nil
}

// Record is what the ledger records of a run's lines.
func Record(lines []Line) []ledger.Line {
	out := make([]ledger.Line, len(lines))
	for i, l := range lines {
		out[i] = ledger.Line{Tier: l.Tier, Quantity: l.Quantity.String(), UnitPrice: l.UnitPrice, Amount: l.Amount}
	}
	return out
}

// planCatchUp plans the buckets before the invoice's window that were never billed (a webhook
// that never arrived, an invoice finalized before it was billed, an endpoint down past Stripe's
// retries): whole periods back to the lookback horizon, and never before the subscription's
// usage began (its start, or the end of its trial), since usage from before that is not the
// customer's to pay. Whether a bucket is owed never depends on what else the ledger holds: a
// period with no items is looked up in the meter like any other, and one with no usage costs
// nothing. Each missed billing period gets its own line (or one per tier), priced as its own
// invoice would have priced it: the periods are found by stepping back from period_start by the
// invoice's own length (whole months for a monthly invoice), so a Calendar metric gets one line
// per missed month and a Day metric one line per missed month of days, with tiers and included
// units applied per period, never across periods.
func (p *planner) planCatchUp(m Metric, usage, adjustments []ledger.Entry, covered [][2]int64) ([]Action, error) {
	// Only a renewal covers a whole billing period and may speak for the periods before it: a
	// manual, prorated or zero-length invoice would step back in its own odd lengths (pricing a
	// missed month in fragments) or reach into the cycle still running.
	if p.lookback == 0 || !p.inv.Renewal {
		return nil, nil
	}
	first := firstBucketFrom(m.Spec, p.horizon())
	next := m.Spec.ID(p.inv.Start.UnixNano()) // it ends after period_start: the window's
	if next == 0 || first > next-1 {
		return nil, nil
	}
	var todo []Action
	nominal := p.inv.End
	if !p.inv.NominalEnd.IsZero() {
		nominal = p.inv.NominalEnd
	}
	back := periodStepper(p.inv.Start, nominal)
	for i := 1; ; i++ {
		from, to := back(i), back(i-1)
		// Only whole periods: one the horizon cuts could not be priced as its invoice would
		// have.
		if run, ok := ledger.Billable(m.Spec, from.UnixNano(), to.UnixNano()); ok && run.First >= first {
			priced, err := p.priceOwed(m, run, usage, adjustments, covered, true)
			if err != nil {
				return nil, err
			}
			if len(priced) > 0 {
				// A voided invoice's usage is waived: asked only now, when there is something
				// to catch up.
				waived, err := p.waived(m)
				if err != nil {
					return nil, err
				}
				if len(waived) > 0 {
					if priced, err = p.priceOwed(m, run, usage, adjustments, slices.Concat(covered, waived), true); err != nil {
						return nil, err
					}
				}
			}
			todo = append(todo, priced...)
		}
		if from.UnixNano() <= m.Spec.Start(first) {
			return todo, nil
		}
	}
}

// planRebill bills the window of a voided invoice that this invoice re-bills, like a missed
// period: the voided invoice's own items no longer count as billing it.
func (p *planner) planRebill(m Metric, usage, adjustments []ledger.Entry) ([]Action, error) {
	v := p.inv.Rebill
	if v == nil {
		return nil, nil
	}
	run, ok := ledger.Billable(m.Spec, v.Start.UnixNano(), v.End.UnixNano())
	if !ok {
		return nil, nil
	}
	// Plan left out the items on the voided invoice; items made for it that are pending (its
	// usage billed as pending items before it was voided) still bill it, on the next invoice.
	var covered [][2]int64
	for _, e := range usage {
		covered = append(covered, e.Covered()...)
	}
	// Priced as the invoice's own (asked for by name, with or without a subscription), shown
	// as the earlier period it is.
	todo, err := p.priceOwed(m, run, usage, adjustments, covered, false)
	for i := range todo {
		todo[i].CatchUp, todo[i].Rebill = true, v.ID
	}
	return todo, err
}

// planCompletion finishes runs whose lines were cut short (a crash between two tiers, a line
// refused, a concurrent delivery still at work), so that a run is never left half billed just
// because one of its items exists. A run that records its lines is finished from the record, at
// the quantity and prices it started with, whichever invoice made it and whatever the prices are
// today: this invoice's runs always, other invoices' runs back to the lookback horizon. A run
// written before the record existed is finished only on its own invoice, priced again at the
// quantity it recorded.
func (p *planner) planCompletion(m Metric, usage []ledger.Entry) ([]Action, error) {
	var todo []Action
	for _, run := range groupRuns(usage) {
		e := run[0]
		own := e.Invoice == p.inv.ID
		if !own && (p.lookback == 0 || !e.To.After(p.horizon())) {
			continue
		}
		have := map[int]bool{}
		var record []ledger.Line
		recordTier := 0
		for _, r := range run {
			have[r.Tier] = true
			if r.Lines != nil && (record == nil || r.Tier < recordTier) {
				record, recordTier = r.Lines, r.Tier // the lowest tier's record: the run's first line decides
			}
		}
		qty, err := parse(e.Quantity, "quantity")
		if err != nil {
			return nil, err
		}
		var lines []Line
		switch {
		case record != nil:
			descr := p.description(m, e.From, e.To, qty)
			for _, l := range record {
				if have[l.Tier] {
					continue
				}
				lq, err := parse(l.Quantity, "line quantity")
				if err != nil {
					return nil, err
				}
				d := descr
				if l.Tier > 0 {
					d = fmt.Sprintf("%s (tier %d)", descr, l.Tier)
				}
				lines = append(lines, Line{Tier: l.Tier, Description: d, Quantity: lq, UnitPrice: l.UnitPrice, FlatFee: "0", Amount: l.Amount, Plan: e.Plan})
			}
		case own:
			priced, err := p.w.Price(m, e.From, e.To, qty)
			if err != nil {
				return nil, err
			}
			for _, l := range priced {
				if !have[l.Tier] {
					lines = append(lines, l)
				}
			}
		}
		if len(lines) > 0 && !own {
			if waived, err := p.waivedRun(run); err != nil || waived {
				if err != nil {
					return nil, err
				}
				continue
			}
		}
		var offset *fixed.Micros
		if e.Base != "" { // a run priced on top of others in its period
			o, err := parse(e.Base, "base")
			if err != nil {
				return nil, err
			}
			offset = &o
		}
		for _, l := range lines {
			todo = append(todo, Action{Metric: m, From: e.From, To: e.To, Runs: e.Runs, Quantity: qty, Line: l,
				CatchUp: !e.To.After(p.inv.Start), Offset: offset, Run: record})
		}
	}
	return todo, nil
}

// planLate plans adjustments for usage that arrived after its run was billed on an earlier
// invoice: for each run that ended within the lookback, the usage now against the most the
// ledger says was billed; if it grew, one line for the price of the whole run now less the price
// of what was billed, under today's prices. Never a negative line: a run whose usage fell (a
// Latest reading replaced) or whose price fell (volume tiers) is left as billed. A run another
// took over (priced on top of it in its billing period) has its late usage billed through that
// one.
func (p *planner) planLate(m Metric, usage, adjustments []ledger.Entry) ([]Action, error) {
	if p.lookback == 0 {
		return nil, nil
	}
	var todo []Action
	for _, run := range groupRuns(usage) {
		e := run[0]
		if e.Invoice == p.inv.ID || !e.To.After(p.horizon()) || e.To.After(p.inv.Start) || takenOver(e, usage) ||
			slices.ContainsFunc(p.stacked, func(s ledger.Entry) bool { return s.Metric == e.Metric && s.SameRun(e) }) {
			continue
		}
		if e.Subscription != "" && p.inv.Subscription != "" && e.Subscription != p.inv.Subscription {
			// Another subscription's run (one that ended, the customer's before this one): usage
			// counted in its buckets since may be from between the two, which nobody owes.
			continue
		}
		billed, err := billedQuantity(e, usage, adjustments)
		if err != nil {
			return nil, err
		}
		now, err := p.w.Usage(m, runsOf(m.Spec, e))
		if err != nil {
			return nil, err
		}
		if now.Cmp(billed) <= 0 {
			continue
		}
		amountNow, descr, err := p.total(m, e.From, e.To, now)
		if err != nil {
			return nil, err
		}
		amountBefore, _, err := p.total(m, e.From, e.To, billed)
		if err != nil {
			return nil, err
		}
		if amountNow <= amountBefore {
			continue
		}
		if waived, err := p.waivedRun(run); err != nil || waived {
			if err != nil {
				return nil, err
			}
			continue // a voided month's late usage is waived with it
		}
		diff, _ := now.Sub(billed)
		base := billed
		todo = append(todo, Action{
			Metric: m, From: e.From, To: e.To, Runs: e.Runs, Quantity: now, Base: &base,
			Line: Line{
				Quantity: diff, FlatFee: "0", Amount: amountNow - amountBefore,
				Description: fmt.Sprintf("%s: late usage +%s (billed %s, now %s)", descr, diff, billed, now),
			},
		})
	}
	return todo, nil
}

// total prices q and returns the total of its lines and the price's description without a tier.
func (p *planner) total(m Metric, from, to time.Time, q fixed.Micros) (int64, string, error) {
	lines, err := p.w.Price(m, from, to, q)
	if err != nil {
		return 0, "", err
	}
	var sum int64
	descr := m.Code
	for i, l := range lines {
		if i == 0 {
			descr, _, _ = strings.Cut(l.Description, " (tier ")
		}
		if sum+l.Amount < sum {
			return 0, "", fmt.Errorf("%w: the amount of %s of %s", ErrOverflow, q, m.Code)
		}
		sum += l.Amount
	}
	return sum, descr, nil
}

// description is the price's description of m, without a tier: what the pricer says today, or
// the metric's code when it no longer prices it.
func (p *planner) description(m Metric, from, to time.Time, q fixed.Micros) string {
	if _, d, err := p.total(m, from, to, q); err == nil && d != "" {
		return d
	}
	return m.Code
}

// groupRuns groups entries by the run they bill, in the order each run first appears.
func groupRuns(usage []ledger.Entry) [][]ledger.Entry {
	var out [][]ledger.Entry
	for _, e := range usage {
		i := slices.IndexFunc(out, func(g []ledger.Entry) bool { return g[0].SameRun(e) })
		if i < 0 {
			out = append(out, []ledger.Entry{e})
			continue
		}
		out[i] = append(out[i], e)
	}
	return out
}

// runsOf returns the runs of buckets an entry covers.
func runsOf(s period.Spec, e ledger.Entry) []ledger.Run {
	var out []ledger.Run
	for _, c := range e.Covered() {
		out = append(out, ledger.Run{First: s.ID(c[0]), Last: s.ID(c[1]) - 1})
	}
	return out
}

// spansOf returns runs as half-open UTC time ranges.
func spansOf(s period.Spec, runs []ledger.Run) [][2]time.Time {
	out := make([][2]time.Time, len(runs))
	for i, r := range runs {
		f, t := r.Window(s)
		out[i] = [2]time.Time{time.Unix(0, f).UTC(), time.Unix(0, t).UTC()}
	}
	return out
}

// billedWithin returns the runs billed inside [from, to) (Unix nanoseconds) that no other run
// took over, one entry each, and the quantity they billed together, merged as the meter merges
// buckets: the largest of each run's items and adjustments, added up across runs (Max takes the
// largest, Latest the last run's).
func billedWithin(m Metric, usage, adjustments []ledger.Entry, from, to int64) ([]ledger.Entry, fixed.Micros, error) {
	inside := within(from, to)
	var runs []ledger.Entry
	for _, e := range usage {
		if !inside(e) || slices.ContainsFunc(runs, e.SameRun) || takenOver(e, usage) {
			continue
		}
		runs = append(runs, e)
	}
	slices.SortFunc(runs, func(a, b ledger.Entry) int { return a.From.Compare(b.From) })
	var total fixed.Micros
	for i, e := range runs {
		q, err := billedQuantity(e, usage, adjustments)
		if err != nil {
			return nil, fixed.Micros{}, err
		}
		switch {
		case i == 0:
			total = q
		case m.Merge == Largest:
			if q.Cmp(total) > 0 {
				total = q
			}
		case m.Merge == Last:
			total = q
		default:
			var ok bool
			if total, ok = total.Add(q); !ok {
				return nil, fixed.Micros{}, fmt.Errorf("%w: the billed quantity of %s", ErrOverflow, m.Code)
			}
		}
	}
	return runs, total, nil
}

// billedLines returns what the runs inside [from, to) (Unix nanoseconds) billed, tier by tier:
// each run's recorded lines (what it bills once finished, which completion guarantees), or the
// items themselves for a run written before the record existed, and every adjustment of them.
// Runs another took over count too: each run records only the lines it added. Adjustments are
// lines of no tier (-1), so that a bill on top of them is one line for the whole difference.
func billedLines(usage, adjustments []ledger.Entry, from, to int64) ([]Line, error) {
	inside := within(from, to)
	byTier := map[int]*Line{}
	add := func(tier int, qty string, amount int64) error {
		q, err := parse(qty, "line quantity")
		if err != nil {
			return err
		}
		l := byTier[tier]
		if l == nil {
			l = &Line{Tier: tier}
			byTier[tier] = l
		}
		var ok bool
		if l.Quantity, ok = l.Quantity.Add(q); !ok || (amount > 0 && l.Amount+amount < l.Amount) {
			return fmt.Errorf("%w: billed lines", ErrOverflow)
		}
		l.Amount += amount
		return nil
	}
	for _, run := range groupRuns(usage) {
		if !inside(run[0]) {
			continue
		}
		var record []ledger.Line
		recordTier := 0
		for _, e := range run {
			if e.Lines != nil && (record == nil || e.Tier < recordTier) {
				record, recordTier = e.Lines, e.Tier
			}
		}
		if record != nil {
			for _, l := range record {
				if err := add(l.Tier, l.Quantity, l.Amount); err != nil {
					return nil, err
				}
			}
		} else {
			for _, e := range run {
				if err := add(e.Tier, e.LineQty, e.Amount); err != nil {
					return nil, err
				}
			}
		}
		for _, a := range adjustments {
			if a.SameRun(run[0]) {
				if err := add(-1, a.LineQty, a.Amount); err != nil {
					return nil, err
				}
			}
		}
	}
	out := make([]Line, 0, len(byTier))
	for _, l := range byTier {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b Line) int { return cmp.Compare(a.Tier, b.Tier) })
	return out, nil
}

// within returns whether an entry bills only buckets inside [from, to) (Unix nanoseconds).
func within(from, to int64) func(ledger.Entry) bool {
	return func(e ledger.Entry) bool {
		return covers([][2]int64{{from, to}}, e.Covered())
	}
}

// billedQuantity is the quantity billed for e's run: the largest among its items and its
// adjustments.
func billedQuantity(e ledger.Entry, usage, adjustments []ledger.Entry) (fixed.Micros, error) {
	billed, err := parse(e.Quantity, "quantity")
	if err != nil {
		return fixed.Micros{}, err
	}
	for _, o := range slices.Concat(usage, adjustments) {
		if !o.SameRun(e) {
			continue
		}
		q, err := parse(o.Quantity, "quantity")
		if err != nil {
			return fixed.Micros{}, err
		}
		if q.Cmp(billed) > 0 {
			billed = q
		}
	}
	return billed, nil
}

// takenOver reports whether another run covers every bucket e covers and more: a run priced on
// top of e in e's billing period, which bills e's usage from then on.
func takenOver(e ledger.Entry, usage []ledger.Entry) bool {
	return slices.ContainsFunc(usage, func(o ledger.Entry) bool { return !o.SameRun(e) && covers(o.Covered(), e.Covered()) })
}

// covers reports whether the ranges of outer contain every range of inner.
func covers(outer, inner [][2]int64) bool {
	for _, in := range inner {
		if !slices.ContainsFunc(outer, func(out [2]int64) bool { return out[0] <= in[0] && in[1] <= out[1] }) {
			return false
		}
	}
	return true
}

// joinRuns sorts runs and joins those that touch or overlap.
func joinRuns(runs []ledger.Run) []ledger.Run {
	slices.SortFunc(runs, func(a, b ledger.Run) int { return cmp.Compare(a.First, b.First) })
	var out []ledger.Run
	for _, r := range runs {
		if n := len(out); n > 0 && r.First <= out[n-1].Last+1 {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}

// LineDiff returns the lines that take a bill from was (the lines billed for quantity billed)
// to now (the lines of quantity now): tier by tier, the quantity and amount each tier gained.
// Where a tier lost (a Volume price whose whole quantity moved to a cheaper tier, free units
// granted by two earlier bills, prices changed since), it returns one line, of tier 0, for the
// whole difference, or none if the difference is not positive: a bill never goes down.
func LineDiff(now, was []Line, quantity, billed fixed.Micros) []Line {
	prev := map[int]Line{}
	for _, l := range was {
		prev[l.Tier] = l
	}
	var out []Line
	var sumNow, sumWas int64
	monotone := true
	for _, n := range now {
		w, had := prev[n.Tier]
		delete(prev, n.Tier)
		sumNow += n.Amount
		sumWas += w.Amount
		dq, ok1 := n.Quantity.Sub(w.Quantity)
		dp, ok2 := n.Packages.Sub(w.Packages)
		da := n.Amount - w.Amount
		if !ok1 || !ok2 || da < 0 {
			monotone = false
			continue
		}
		if dq.IsZero() && dp.IsZero() && da == 0 {
			continue
		}
		d := n
		d.Quantity, d.Packages, d.Amount = dq, dp, da
		if had {
			d.FlatFee = "0" // charged with the lines billed before
		}
		out = append(out, d)
	}
	for _, w := range prev {
		sumWas += w.Amount
		monotone = false
	}
	if monotone {
		return out
	}
	if sumNow <= sumWas || len(now) == 0 {
		return nil
	}
	// One line, of no tier and no single unit price: the price's description, the quantity
	// added, and the difference in amount.
	dq, _ := quantity.Sub(billed)
	last := now[len(now)-1]
	descr, _, _ := strings.Cut(last.Description, " (tier ")
	return []Line{{Description: descr, Quantity: dq, FlatFee: "0", Amount: sumNow - sumWas, Plan: last.Plan}}
}

// firstBucketFrom returns the first bucket of s that starts at or after t.
func firstBucketFrom(s period.Spec, t time.Time) uint32 {
	id := s.ID(t.UnixNano())
	if s.Start(id) < t.UnixNano() {
		id++
	}
	return id
}

// periodStepper returns the start of the billing period i periods before [start, end): whole
// months when the invoice spans whole months, on its anchor day as Stripe keeps it (a
// subscription anchored on the 31st renews on the last day of shorter months), each counted from
// start so a month end does not drift; otherwise the invoice's own duration.
func periodStepper(start, end time.Time) func(i int) time.Time {
	anchor := max(start.Day(), end.Day())
	for months := 1; months <= 12; months++ {
		if addMonths(start, months, anchor).Equal(end) {
			return func(i int) time.Time { return addMonths(start, -months*i, anchor) }
		}
	}
	d := max(end.Sub(start), time.Hour) // a zero-length invoice still steps back
	return func(i int) time.Time { return start.Add(-d * time.Duration(i)) }
}

// addMonths returns t moved by n months onto day (or the month's last day, if shorter), at t's
// time of day, in UTC.
func addMonths(t time.Time, n, day int) time.Time {
	t = t.UTC()
	y, m, _ := t.Date()
	first := time.Date(y, m+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(day, last)-1)
}

// parse reads a quantity the ledger recorded.
func parse(s, what string) (fixed.Micros, error) {
	q, err := fixed.Parse(s)
	if err != nil {
		return fixed.Micros{}, fmt.Errorf("%w: %s %.40q: %w", ledger.ErrMalformed, what, s, err)
	}
	return q, nil
}
