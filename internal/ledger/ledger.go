// Package ledger is how meterbill uses Stripe as its ledger: the metadata it writes on every
// invoice item it creates, the reading of that metadata back, and the arithmetic of which buckets
// an invoice bills. With it, "what was billed" lives on Stripe and meterbill needs no database.
//
// Every item meterbill creates carries, under the "meterbill_" prefix:
//
//	meterbill_v          scheme version, "1"
//	meterbill_account    meter account id
//	meterbill_metric     metric code
//	meterbill_period     the metric's period type: "calendar/<cycle day>", "day" or "week"
//	meterbill_from       start of the first bucket billed, RFC 3339 UTC
//	meterbill_to         end of the last bucket billed (exclusive), RFC 3339 UTC
//	meterbill_runs       only when the buckets billed are not contiguous (some in between were
//	                     billed elsewhere): the runs, as unix seconds "from-to,from-to,…"
//	meterbill_quantity   the usage of the whole run as it was priced
//	meterbill_tier       1-based tier for tiered prices, 0 otherwise
//	meterbill_line_qty   the quantity this line prices
//	meterbill_unit_price the unit price, minor units, exact decimal
//	meterbill_invoice    the invoice the line was made for
//	meterbill_subscription the subscription of that invoice, if any
//	meterbill_plan       the identity of the price that priced the run (Line.Plan), if any
//	meterbill_lines      the run's lines, all of them, so that any later handling can finish a
//	                     run whose lines were cut short, at the quantity and prices it started
//	                     with: "tier:quantity:unit price:amount" joined by ";", continued in
//	                     meterbill_lines_2, meterbill_lines_3, … past 500 characters
//	meterbill_kind       only on late-usage adjustments: "adjustment"
//	meterbill_base       on adjustments: the run's quantity billed before this line;
//	                     meterbill_quantity is then the run's quantity billed including it.
//	                     On a run priced on top of other items of its billing period: the
//	                     quantity they billed; the run covers them too, and its lines bill the
//	                     price of meterbill_quantity less the price of meterbill_base
//
// A "run" is a set of contiguous buckets of one metric (a DAY metric on a monthly invoice is one
// run of about thirty buckets). The buckets one invoice bills for one metric are priced together,
// as one line or one per tier, even when they form several runs. A bucket is billed when one of
// some item's runs covers it, for the same account and metric.
//
// An adjustment bills usage that arrived after its run was billed: it carries the run's
// from/to/runs unchanged, the quantity billed before it (base) and the quantity billed with it.
// A run's billed quantity is the largest quantity among its items, so each adjustment bills
// only what the previous ones did not.
package ledger

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/meterbill/meterbill/internal/period"
)

// Metadata keys.
const (
	Prefix       = "meterbill_"
	KeyVersion   = Prefix + "v"
	KeyAccount   = Prefix + "account"
	KeyMetric    = Prefix + "metric"
	KeyPeriod    = Prefix + "period"
	KeyFrom      = Prefix + "from"
	KeyTo        = Prefix + "to"
	KeyRuns      = Prefix + "runs"
	KeyQuantity  = Prefix + "quantity"
	KeyTier      = Prefix + "tier"
	KeyLineQty   = Prefix + "line_qty"
	KeyUnitPrice = Prefix + "unit_price"
	KeyInvoice   = Prefix + "invoice"
	KeyKind      = Prefix + "kind"
	KeyBase      = Prefix + "base"
	KeyPlan      = Prefix + "plan"
	KeySub       = Prefix + "subscription"
	KeyLines     = Prefix + "lines"
	version      = "1"

	// maxValue is Stripe's limit on a metadata value's length.
	maxValue = 500
	// maxLineKeys bounds the keys the lines record may span (Stripe allows 50 keys in all).
	maxLineKeys = 8

	// KindAdjustment marks a late-usage adjustment.
	KindAdjustment = "adjustment"
)

// ErrMalformed reports meterbill metadata that cannot be read back; the ledger cannot be
// trusted, so billing must stop rather than risk a double bill.
var ErrMalformed = errors.New("malformed meterbill metadata")

// maxRuns bounds the runs one item records, to stay within Stripe's 500-character values.
const maxRuns = 20

// Entry is one item's ledger record.
type Entry struct {
	Account   uint64
	Metric    string
	Period    string // see SpecString
	From, To  time.Time
	Runs      [][2]time.Time // the runs billed, when more than one; nil means [From, To)
	Quantity  string
	Tier      int
	LineQty   string
	UnitPrice string
	Invoice   string
	Kind      string // "" for usage, KindAdjustment for a late-usage adjustment
	Base      string // adjustments: the run's quantity billed before this item
	Plan      string // the identity of the price that priced the run; "" if unknown
	// Subscription is the subscription of the invoice the line was made for; "" if none or
	// written before it was recorded.
	Subscription string
	// Lines are all the lines of the item's run, as priced; nil for adjustments and for items
	// written before the record existed.
	Lines []Line
	// Amount and OnInvoice are the item's amount and the invoice it is on now ("" while
	// pending). They are not in the metadata: the reader of the item sets them.
	Amount    int64
	OnInvoice string
}

// Line is one line of a run, as recorded.
type Line struct {
	Tier      int
	Quantity  string // the quantity the line prices
	UnitPrice string
	Amount    int64
}

// encodeLines writes the lines record into md, in as many keys as it needs.
func encodeLines(md map[string]string, lines []Line) error {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, "%d:%s:%s:%d", l.Tier, l.Quantity, l.UnitPrice, l.Amount)
	}
	v := b.String()
	for n := 1; v != ""; n++ {
		if n > maxLineKeys {
			return fmt.Errorf("the run's %d lines do not fit in %d metadata values", len(lines), maxLineKeys)
		}
		chunk := v[:min(len(v), maxValue)]
		v = v[len(chunk):]
		md[lineKey(n)] = chunk
	}
	return nil
}

func lineKey(n int) string {
	if n == 1 {
		return KeyLines
	}
	return KeyLines + "_" + strconv.Itoa(n)
}

// decodeLines reads the lines record, nil if there is none.
func decodeLines(md map[string]string) ([]Line, error) {
	var b strings.Builder
	for n := 1; n <= maxLineKeys; n++ {
		v, ok := md[lineKey(n)]
		if !ok {
			break
		}
		b.WriteString(v)
	}
	if b.Len() == 0 {
		return nil, nil
	}
	var out []Line
	for part := range strings.SplitSeq(b.String(), ";") {
		f := strings.Split(part, ":")
		if len(f) != 4 || f[1] == "" || f[2] == "" {
			return nil, fmt.Errorf("%w: lines %.60q", ErrMalformed, b.String())
		}
		tier, err1 := strconv.Atoi(f[0])
		amount, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil || tier < 0 || (len(out) > 0 && tier <= out[len(out)-1].Tier) {
			return nil, fmt.Errorf("%w: lines %.60q", ErrMalformed, b.String())
		}
		out = append(out, Line{Tier: tier, Quantity: f[1], UnitPrice: f[2], Amount: amount})
	}
	return out, nil
}

// IsAdjustment reports whether e is a late-usage adjustment.
func (e Entry) IsAdjustment() bool { return e.Kind == KindAdjustment }

// SameRun reports whether e and f bill the same run of buckets.
func (e Entry) SameRun(f Entry) bool {
	if !e.From.Equal(f.From) || !e.To.Equal(f.To) || len(e.Runs) != len(f.Runs) {
		return false
	}
	for i := range e.Runs {
		if e.Runs[i] != f.Runs[i] {
			return false
		}
	}
	return true
}

// SpecString names a period spec for the metadata.
func SpecString(s period.Spec) string {
	if s.Type == period.Calendar {
		return "calendar/" + strconv.Itoa(int(s.CycleDay))
	}
	return s.Type.String()
}

// Encode returns e's metadata. It fails only for a lines record too long for Stripe.
func Encode(e Entry) (map[string]string, error) {
	md := map[string]string{
		KeyVersion:   version,
		KeyAccount:   strconv.FormatUint(e.Account, 10),
		KeyMetric:    e.Metric,
		KeyPeriod:    e.Period,
		KeyFrom:      e.From.UTC().Format(time.RFC3339),
		KeyTo:        e.To.UTC().Format(time.RFC3339),
		KeyQuantity:  e.Quantity,
		KeyTier:      strconv.Itoa(e.Tier),
		KeyLineQty:   e.LineQty,
		KeyUnitPrice: e.UnitPrice,
		KeyInvoice:   e.Invoice,
	}
	if e.Kind != "" {
		md[KeyKind] = e.Kind
	}
	if e.Base != "" {
		md[KeyBase] = e.Base
	}
	if e.Plan != "" {
		md[KeyPlan] = e.Plan
	}
	if e.Subscription != "" {
		md[KeySub] = e.Subscription
	}
	if len(e.Lines) > 0 {
		if err := encodeLines(md, e.Lines); err != nil {
			return nil, err
		}
	}
	if len(e.Runs) > 1 {
		parts := make([]string, len(e.Runs))
		for i, r := range e.Runs {
			parts[i] = strconv.FormatInt(r[0].Unix(), 10) + "-" + strconv.FormatInt(r[1].Unix(), 10)
		}
		md[KeyRuns] = strings.Join(parts, ",")
	}
	return md, nil
}

// Covered returns the ranges e bills, as [from, to) in Unix nanoseconds.
func (e Entry) Covered() [][2]int64 {
	if len(e.Runs) == 0 {
		return [][2]int64{{e.From.UnixNano(), e.To.UnixNano()}}
	}
	out := make([][2]int64, len(e.Runs))
	for i, r := range e.Runs {
		out[i] = [2]int64{r[0].UnixNano(), r[1].UnixNano()}
	}
	return out
}

// TooManyRuns reports whether runs cannot be recorded on one item.
func TooManyRuns(n int) bool { return n > maxRuns }

func decodeRuns(v string, from, to time.Time) ([][2]time.Time, error) {
	if v == "" {
		return nil, nil
	}
	var runs [][2]time.Time
	for part := range strings.SplitSeq(v, ",") {
		a, b, ok := strings.Cut(part, "-")
		f, err1 := strconv.ParseInt(a, 10, 64)
		t, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || f >= t || len(runs) >= maxRuns {
			return nil, fmt.Errorf("%w: runs %.60q", ErrMalformed, v)
		}
		r := [2]time.Time{time.Unix(f, 0).UTC(), time.Unix(t, 0).UTC()}
		if r[0].Before(from) || r[1].After(to) || (len(runs) > 0 && r[0].Before(runs[len(runs)-1][1])) {
			return nil, fmt.Errorf("%w: runs %.60q outside [from, to) or out of order", ErrMalformed, v)
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// Decode reads an item's metadata. ok is false for items meterbill did not make (no version
// key). An item with the version key but unreadable fields is an error wrapping ErrMalformed.
func Decode(md map[string]string) (e Entry, ok bool, err error) {
	v, ok := md[KeyVersion]
	if !ok {
		return Entry{}, false, nil
	}
	if v != version {
		return Entry{}, true, fmt.Errorf("%w: unknown scheme version %q", ErrMalformed, v)
	}
	e = Entry{Metric: md[KeyMetric], Period: md[KeyPeriod], Quantity: md[KeyQuantity], LineQty: md[KeyLineQty], UnitPrice: md[KeyUnitPrice], Invoice: md[KeyInvoice],
		Kind: md[KeyKind], Base: md[KeyBase], Plan: md[KeyPlan], Subscription: md[KeySub]}
	switch {
	case e.Kind != "" && e.Kind != KindAdjustment:
		return Entry{}, true, fmt.Errorf("%w: kind %.40q", ErrMalformed, e.Kind)
	case e.Kind == KindAdjustment && e.Base == "":
		return Entry{}, true, fmt.Errorf("%w: adjustment without base", ErrMalformed)
	}
	if e.Account, err = strconv.ParseUint(md[KeyAccount], 10, 64); err != nil || e.Account == 0 {
		return Entry{}, true, fmt.Errorf("%w: account %q", ErrMalformed, md[KeyAccount])
	}
	if e.Metric == "" || e.Quantity == "" {
		return Entry{}, true, fmt.Errorf("%w: metric or quantity missing", ErrMalformed)
	}
	if e.From, err = time.Parse(time.RFC3339, md[KeyFrom]); err != nil {
		return Entry{}, true, fmt.Errorf("%w: from %q", ErrMalformed, md[KeyFrom])
	}
	if e.To, err = time.Parse(time.RFC3339, md[KeyTo]); err != nil || !e.From.Before(e.To) {
		return Entry{}, true, fmt.Errorf("%w: to %q", ErrMalformed, md[KeyTo])
	}
	if e.Tier, err = strconv.Atoi(md[KeyTier]); err != nil || e.Tier < 0 {
		return Entry{}, true, fmt.Errorf("%w: tier %q", ErrMalformed, md[KeyTier])
	}
	if e.Runs, err = decodeRuns(md[KeyRuns], e.From, e.To); err != nil {
		return Entry{}, true, err
	}
	if e.Lines, err = decodeLines(md); err != nil {
		return Entry{}, true, err
	}
	return e, true, nil
}

// Run is a range of contiguous buckets [First, Last] of one metric.
type Run struct{ First, Last uint32 }

// Window returns the run's half-open time range in Unix nanoseconds.
func (r Run) Window(s period.Spec) (from, to int64) { return s.Start(r.First), s.End(r.Last) }

// Billable returns the complete buckets of spec whose end lies in (start, end]: the buckets an
// invoice for the period [start, end) bills. ok is false when there are none (for instance a
// zero-length invoice period, or one shorter than a bucket that ends nowhere inside it).
func Billable(s period.Spec, start, end int64) (Run, bool) {
	if end <= start {
		return Run{}, false
	}
	first := s.ID(start) // its end is after start
	next := s.ID(end)    // the bucket holding end; its predecessor ends at or before end
	if next == 0 || next-1 < first {
		return Run{}, false
	}
	return Run{First: first, Last: next - 1}, true
}

// Uncovered splits r into the runs of buckets that no covered range contains. covered holds
// [from, to) ranges in Unix nanoseconds.
func Uncovered(s period.Spec, r Run, covered [][2]int64) []Run {
	var out []Run
	open := false
	for id := r.First; ; id++ {
		start, end := s.Start(id), s.End(id)
		isCovered := false
		for _, c := range covered {
			if c[0] <= start && end <= c[1] {
				isCovered = true
				break
			}
		}
		switch {
		case !isCovered && open:
			out[len(out)-1].Last = id
		case !isCovered:
			out = append(out, Run{First: id, Last: id})
			open = true
		default:
			open = false
		}
		if id == r.Last {
			return out
		}
	}
}

// Key returns the idempotency key for one line: deterministic per (customer, account, metric,
// span of buckets, tier), and short enough for Stripe's 255-character limit. It names the
// customer rather than the invoice on purpose: two invoices of one customer billed at the same
// moment (two subscriptions renewing together) compute the same lines under the same keys, so
// Stripe lets one create them and refuses the other's parameters, which then finds them in the
// ledger. A line has one key whether it goes on an invoice or becomes a pending item. gen > 1
// derives a fresh key after Stripe stored a failure under the previous one; there is no last
// generation.
func Key(customer string, account uint64, metric string, from, to time.Time, tier, gen int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "meterbill-%x-%d-%x-%d-%d-t%d", fnv64(customer), account, fnv64(metric), from.Unix(), to.Unix(), tier)
	if gen > 1 {
		fmt.Fprintf(&b, "-r%d", gen)
	}
	return b.String()
}

// StackedKey returns the idempotency key of one line of a run priced on top of what other items
// billed in its period (base): the run's key, told apart by the base so that it never meets the
// key of a run priced alone.
func StackedKey(customer string, account uint64, metric string, from, to time.Time, tier int, base string, gen int) string {
	return Key(customer, account, metric, from, to, tier, gen) + fmt.Sprintf("-on%x", fnv64(base))
}

// RebillKey derives from a line's key the key of the same line billed again after the invoice
// it was on (voided) was re-billed: never the voided line's own key.
func RebillKey(key, voided string) string {
	return key + fmt.Sprintf("-rb%x", fnv64(voided))
}

// AdjustmentKey returns the idempotency key of a late-usage adjustment of one run: deterministic
// per (customer, account, metric, run, quantity billed before it), so concurrent deliveries
// that see the same ledger converge on one adjustment, and the next adjustment, starting from
// a higher base, gets a key of its own.
func AdjustmentKey(customer string, account uint64, metric string, from, to time.Time, base string, gen int) string {
	return Key(customer, account, metric, from, to, 0, gen) + fmt.Sprintf("-adj%x", fnv64(base))
}

// fnv64 is FNV-1a, the hash Unimeter itself uses for metric codes; here it keeps arbitrary UTF-8
// codes out of an HTTP header.
func fnv64(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 0x100000001b3
	}
	return h
}
