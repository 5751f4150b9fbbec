// Package meterbill bills usage recorded in a Unimeter meter through Stripe invoices, exactly.
//
// First, define the metrics you bill ([Metric]) on a [Meter]: [DialUnimeter] connects to a
// Unimeter cluster, and [NewMemoryMeter] runs a meter in-process with Unimeter's semantics, for
// development, tests and single-process apps. Second, record usage as [Event] values. Finally,
// price what the meter holds for a billing [Period] with a [Pricer]; [NewPlan] builds the default
// one from exact decimal prices in a currency's minor unit.
//
//	meter := meterbill.NewMemoryMeter()
//	calls := meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
//	if err := meter.Define(ctx, calls); err != nil { ... }
//	_, err := meter.Ingest(ctx, []meterbill.Event{{Account: 42, Metric: "api_calls", Value: meterbill.Units(1), Time: t}})
//	usage, err := meter.Query(ctx, 42, calls, meterbill.Period{Start: mar1, End: apr1})
//	plan, err := meterbill.NewPlan(meterbill.Price{Metric: calls, Description: "API calls",
//		Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.1"}}}}) // $0.001 a call
//	lines, err := plan.Price(ctx, "usd", usage)
//
// Money never passes through a float: quantities are [Value] (exact, six decimals, as Unimeter
// stores them) and amounts are integers of the currency's minor unit. Times are UTC and always come
// from events, invoices or the caller, never from the wall clock.
//
// The types with behaviour ([MemoryMeter], [UnimeterMeter], [Plan], [Handler], [StripeAPI] and the
// resolvers) are safe for concurrent use. The rest are plain data: values to build, copy and pass around.
package meterbill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/meterbill/meterbill/internal/fixed"
	"github.com/meterbill/meterbill/internal/memmeter"
	"github.com/meterbill/meterbill/internal/period"
	"github.com/meterbill/meterbill/internal/unimeter"
)

// Errors callers act on. Each error meterbill returns for these conditions wraps one of them, so
// test with [errors.Is].
var (
	// ErrInvalidValue reports a value that cannot be stored exactly.
	ErrInvalidValue = errors.New("meterbill: invalid value")
	// ErrInvalidMetric reports a malformed metric definition.
	ErrInvalidMetric = errors.New("meterbill: invalid metric")
	// ErrInvalidEvent reports a usage event the meter would mis-store or lose.
	ErrInvalidEvent = errors.New("meterbill: invalid event")
	// ErrInvalidPeriod reports a malformed billing period.
	ErrInvalidPeriod = errors.New("meterbill: invalid period")
	// ErrUnknownMetric reports an event or query for a metric the meter has no definition of.
	ErrUnknownMetric = errors.New("meterbill: unknown metric")
	// ErrMetricConflict reports a definition that disagrees with the one the meter holds data
	// under: changing it would change what past and future invoices bill.
	ErrMetricConflict = errors.New("meterbill: metric conflicts with its existing definition")
)

// Limits of the Unimeter wire format that meterbill enforces instead of truncating.
const (
	MaxCodeLen          = 63   // bytes in a metric code
	MaxPropertyKeyLen   = 31   // bytes in a property key
	MaxPropertyValueLen = 63   // bytes in a property value
	MaxProperties       = 255  // properties on one event
	MaxBatchEvents      = 1024 // events in one Ingest call: the server ignores the rest
	MaxBatchProperties  = 1024 // properties across one Ingest call: more is unsafe on the server
)

// Timestamps outside [minTime, maxTime) are refused: the server folds every CALENDAR date before
// its first bucket (2000-01 from the cycle day, so up to 2000-01-28) into bucket 0, and int64
// nanoseconds end in 2262.
var (
	minTime = time.Date(2000, 2, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Value is an exact, non-negative quantity with six decimal places, the precision Unimeter stores.
// It holds up to 2^128-1 millionths, so a SUM over many events never overflows; one event's value
// must fit in 64 bits of millionths (about 18.4 trillion units), the wire's width.
//
// Build one with [Units], [Micros] or [ParseValue]; there is no float constructor on purpose. The
// zero Value is 0. Values are comparable with ==.
type Value struct{ m fixed.Micros }

// Units returns n whole units. It cannot fail; an event whose value exceeds the meter's 64-bit
// range is refused when it is ingested.
func Units(n uint64) Value { return Value{fixed.Units(n)} }

// Micros returns n millionths of a unit: Micros(1) is 0.000001 and Micros(1_500_000) is 1.5.
func Micros(n uint64) Value { return Value{fixed.Micros{Lo: n}} }

// Micros128 returns hi·2^64 + lo millionths: a SUM as Unimeter's wire carries it (sum_hi,
// sum_lo). Meter adapters use it; most callers want [Units] or [ParseValue].
func Micros128(hi, lo uint64) Value { return Value{fixed.Micros{Hi: hi, Lo: lo}} }

// ParseValue parses a plain decimal such as "1", "0.5" or "0.000001". It refuses, with an error
// wrapping [ErrInvalidValue], what cannot be stored exactly: a sign, an exponent, more than six
// decimals, or more than 2^128-1 millionths.
func ParseValue(s string) (Value, error) {
	m, err := fixed.Parse(s)
	if err != nil {
		return Value{}, fmt.Errorf("%w %s: %w", ErrInvalidValue, quote(s), err)
	}
	return Value{m}, nil
}

// Add returns v+w, or 0 and false if the sum does not fit in a Value.
func (v Value) Add(w Value) (Value, bool) {
	s, ok := v.m.Add(w.m)
	return Value{s}, ok
}

// Cmp returns -1, 0 or +1 as v is less than, equal to or greater than w.
func (v Value) Cmp(w Value) int { return v.m.Cmp(w.m) }

// IsZero reports whether v is 0.
func (v Value) IsZero() bool { return v == Value{} }

// Micros64 returns v in millionths and whether it fits in 64 bits, an event value's wire width.
func (v Value) Micros64() (uint64, bool) { return v.m.Lo, v.m.Hi == 0 }

// String formats v as a plain decimal without trailing zeros: "1", "0.5", "0.000001".
func (v Value) String() string { return v.m.String() }

// MarshalText implements [encoding.TextMarshaler] with the String form.
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler] with [ParseValue].
func (v *Value) UnmarshalText(b []byte) error {
	p, err := ParseValue(string(b))
	if err == nil {
		*v = p
	}
	return err
}

// Aggregation is how a metric folds its events within a period. The zero value is [Count].
type Aggregation uint8

// The aggregations, numbered as on Unimeter's wire.
const (
	// Count counts events; their values are ignored (but still part of the dedup key).
	Count Aggregation = 0
	// Sum adds event values.
	Sum Aggregation = 1
	// Max keeps the largest value.
	Max Aggregation = 2
	// Latest keeps the value of the event with the greatest timestamp; an event with an equal or
	// older timestamp never replaces it.
	Latest Aggregation = 3
	// CountUnique counts distinct values in each period, with [OpAdd] and [OpRemove] events. Over a
	// window of several periods the per-period counts are added, not unioned.
	CountUnique Aggregation = 4
)

// String returns the aggregation's name, such as "count_unique".
func (a Aggregation) String() string {
	switch a {
	case Count:
		return "count"
	case Sum:
		return "sum"
	case Max:
		return "max"
	case Latest:
		return "latest"
	case CountUnique:
		return "count_unique"
	}
	return fmt.Sprintf("aggregation(%d)", uint8(a))
}

// MarshalText encodes a as its name.
func (a Aggregation) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText decodes an aggregation's name.
func (a *Aggregation) UnmarshalText(b []byte) error {
	for _, v := range []Aggregation{Count, Sum, Max, Latest, CountUnique} {
		if v.String() == string(b) {
			*a = v
			return nil
		}
	}
	return fmt.Errorf("meterbill: unknown aggregation %q", b)
}

// PeriodType is how a metric buckets time. All periods are UTC. The zero value is not a valid
// period type: Unimeter's type 0 is FIXED, 30-day windows from the Unix epoch that match no invoice,
// and meterbill does not bill on it.
type PeriodType uint8

// The billable period types, numbered as on Unimeter's wire.
const (
	// Calendar periods are months that start on the metric's cycle day (1–28) at 00:00 UTC.
	Calendar PeriodType = 1
	// Day periods are UTC days.
	Day PeriodType = 2
	// Week periods are ISO weeks, from Monday 00:00 UTC.
	Week PeriodType = 3
)

// String returns the period type's name, such as "calendar".
func (p PeriodType) String() string {
	switch p {
	case Calendar, Day, Week:
		return period.Type(p).String()
	case 0:
		return "fixed"
	}
	return fmt.Sprintf("period_type(%d)", uint8(p))
}

// MarshalText encodes p as its name.
func (p PeriodType) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText decodes a billable period type's name.
func (p *PeriodType) UnmarshalText(b []byte) error {
	for _, v := range []PeriodType{Calendar, Day, Week} {
		if v.String() == string(b) {
			*p = v
			return nil
		}
	}
	return fmt.Errorf("meterbill: unknown period type %q", b)
}

// Metric is a metric definition: what to aggregate and how to bucket it. It is plain data; the
// zero value is not valid (it has no code and no period type).
type Metric struct {
	// Code names the metric: 1 to 63 bytes of UTF-8 without control characters.
	Code string `json:"code"`
	// Aggregation folds the events of one period. Defaults to Count.
	Aggregation Aggregation `json:"aggregation"`
	// Period buckets time. Required.
	Period PeriodType `json:"period"`
	// CycleDay is the day of the month (1–28) on which a Calendar period starts. Required for
	// Calendar; must be 0 for Day and Week.
	CycleDay int `json:"cycle_day,omitzero"`
}

func (m Metric) spec() period.Spec {
	return period.Spec{Type: period.Type(m.Period), CycleDay: uint8(m.CycleDay)}
}

// Validate reports why m is not a definition a meter can bill on, with an error wrapping
// [ErrInvalidMetric]. Meter implementations call it before registering a metric.
func (m Metric) Validate() error {
	if err := checkCode(m.Code); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMetric, err)
	}
	if m.Aggregation > CountUnique {
		return fmt.Errorf("%w %q: unknown aggregation %d", ErrInvalidMetric, m.Code, m.Aggregation)
	}
	switch m.Period {
	case Calendar:
		if m.CycleDay < 1 || m.CycleDay > 28 {
			return fmt.Errorf("%w %q: calendar cycle day %d is outside 1–28", ErrInvalidMetric, m.Code, m.CycleDay)
		}
	case Day, Week:
		if m.CycleDay != 0 {
			return fmt.Errorf("%w %q: cycle day %d applies to calendar periods only", ErrInvalidMetric, m.Code, m.CycleDay)
		}
	case 0:
		return fmt.Errorf("%w %q: period type is required (fixed 30-day windows match no invoice)", ErrInvalidMetric, m.Code)
	default:
		return fmt.Errorf("%w %q: unknown period type %d", ErrInvalidMetric, m.Code, m.Period)
	}
	return nil
}

// Bucket returns the period of m that contains t. It returns the zero Period, which no query
// accepts, if m is invalid.
func (m Metric) Bucket(t time.Time) Period {
	if m.Validate() != nil {
		return Period{}
	}
	s := m.spec()
	id := s.ID(t.UnixNano())
	return Period{Start: unixUTC(s.Start(id)), End: unixUTC(s.End(id))}
}

// Window returns the window a query for p actually covers: p widened outward to whole periods of
// m, as Unimeter answers a query. A query for April on a Calendar metric with cycle day 15 covers
// March 15 to May 15. Query with a window that Window returns unchanged to get exactly what you ask.
//
// It returns the zero Period, which no query accepts, if m is invalid.
func (m Metric) Window(p Period) Period {
	if m.Validate() != nil {
		return Period{}
	}
	from, to := m.spec().Window(p.Start.UnixNano(), p.End.UnixNano())
	return Period{Start: unixUTC(from), End: unixUTC(to)}
}

func checkCode(code string) error {
	switch {
	case code == "":
		return errors.New("empty metric code")
	case len(code) > MaxCodeLen:
		return fmt.Errorf("metric code %s is %d bytes, more than %d", quote(code), len(code), MaxCodeLen)
	case !printable(code):
		return fmt.Errorf("metric code %s is not printable UTF-8", quote(code))
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters (C0, DEL or C1).
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Period is a half-open UTC time range [Start, End). The zero value is empty and invalid.
type Period struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// String formats p as "[start, end)" in RFC 3339.
func (p Period) String() string {
	return "[" + p.Start.UTC().Format(time.RFC3339Nano) + ", " + p.End.UTC().Format(time.RFC3339Nano) + ")"
}

// Validate reports why p cannot be queried, with an error wrapping [ErrInvalidPeriod]: it must
// be non-empty and lie within [2000-02-01, 2200-01-01).
func (p Period) Validate() error {
	if !p.Start.Before(p.End) {
		return fmt.Errorf("%w %s: start must be before end", ErrInvalidPeriod, p)
	}
	if p.Start.Before(minTime) || p.End.After(maxTime) {
		return fmt.Errorf("%w %s: outside [2000-02-01, 2200-01-01)", ErrInvalidPeriod, p)
	}
	return nil
}

// Op is a [CountUnique] event's operation. The zero value adds.
type Op uint8

// The operations, numbered as on Unimeter's wire.
const (
	// OpNone adds the value, like OpAdd.
	OpNone Op = 0
	// OpAdd adds the event's value to the period's set.
	OpAdd Op = 1
	// OpRemove removes the event's value from the period's set; removing an absent value does
	// nothing.
	OpRemove Op = 2
)

// Property is a key/value pair on an event; the zero Property is invalid (empty key). Unimeter uses properties for dimension breakdowns; they
// do not change the totals meterbill bills, and they are not part of the dedup key.
type Property struct {
	Key   string // 1 to 31 bytes
	Value string // up to 63 bytes
}

// Event is one usage event. It is plain data; the zero Event is invalid (no account, metric or
// time).
//
// The meter deduplicates on (Metric, Account, Time, Value): two events equal in those four are one
// event, whatever their properties or operation. Give distinct events distinct timestamps (the
// nanoseconds are yours to use) and re-send a retried event with exactly the same ones.
type Event struct {
	// Account is the meter account; 0 is refused.
	Account uint64
	// Metric is the code of a defined metric.
	Metric string
	// Value is the quantity; it must fit in 64 bits of millionths. Count ignores it.
	Value Value
	// Time is when the usage happened, to the nanosecond; required, from 2000 to 2200.
	Time time.Time
	// Op is the CountUnique operation; other aggregations ignore it.
	Op Op
	// Properties are optional dimensions, at most 255.
	Properties []Property
}

// Validate reports why e cannot be stored as sent, with an error wrapping [ErrInvalidEvent]. It
// allocates only for the error. Meter implementations call it on every event they ingest.
func (e *Event) Validate() error {
	if e.Account == 0 {
		return fmt.Errorf("%w: account is 0", ErrInvalidEvent)
	}
	if err := checkCode(e.Metric); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return e.validateFields()
}

// validateFields is Validate without the metric code, for callers that checked the code already.
func (e *Event) validateFields() error {
	if e.Account == 0 {
		return fmt.Errorf("%w: account is 0", ErrInvalidEvent)
	}
	if _, ok := e.Value.Micros64(); !ok {
		return fmt.Errorf("%w %q: value %s exceeds the meter's 64-bit range", ErrInvalidEvent, e.Metric, e.Value)
	}
	if e.Time.Before(minTime) || !e.Time.Before(maxTime) {
		if e.Time.IsZero() {
			return fmt.Errorf("%w %q: time is required", ErrInvalidEvent, e.Metric)
		}
		return fmt.Errorf("%w %q: time %s is outside [2000-02-01, 2200-01-01)", ErrInvalidEvent, e.Metric, e.Time.UTC().Format(time.RFC3339))
	}
	if e.Op > OpRemove {
		return fmt.Errorf("%w %q: unknown operation %d", ErrInvalidEvent, e.Metric, e.Op)
	}
	if len(e.Properties) > MaxProperties {
		return fmt.Errorf("%w %q: %d properties, more than %d", ErrInvalidEvent, e.Metric, len(e.Properties), MaxProperties)
	}
	for _, p := range e.Properties {
		switch {
		case p.Key == "" || len(p.Key) > MaxPropertyKeyLen || !printable(p.Key):
			return fmt.Errorf("%w %q: property key %s must be 1 to %d printable bytes", ErrInvalidEvent, e.Metric, quote(p.Key), MaxPropertyKeyLen)
		case len(p.Value) > MaxPropertyValueLen || !printable(p.Value):
			return fmt.Errorf("%w %q: property %s value %s must be at most %d printable bytes", ErrInvalidEvent, e.Metric, quote(p.Key), quote(p.Value), MaxPropertyValueLen)
		}
	}
	return nil
}

// Usage is a meter's answer for one account, metric and window. It is plain data.
type Usage struct {
	// Account and Metric are what was queried.
	Account uint64 `json:"account"`
	Metric  Metric `json:"metric"`
	// Window is the bucket-aligned window the value covers (see [Metric.Window]).
	Window Period `json:"window"`
	// Value is the aggregate: the count for Count and CountUnique, the total for Sum, the maximum
	// for Max, the latest reading for Latest.
	Value Value `json:"value"`
	// LatestAt is the time of the latest reading, for Latest; zero otherwise or without data.
	LatestAt time.Time `json:"latest_at,omitzero"`
}

// IngestResult reports what the meter did with a batch. The zero value is an empty batch.
type IngestResult struct {
	Stored     int // events stored
	Duplicates int // events the meter already had (a retry that arrived twice counts here)
}

// Meter is where usage lives: Unimeter, the in-process [MemoryMeter], or an adapter of yours.
// Implementations must be safe for concurrent use.
type Meter interface {
	// Define registers metrics before any event for them is ingested. Redefining a metric
	// identically is a no-op; a change of aggregation, period type or cycle day to a metric that
	// has data fails with [ErrMetricConflict].
	Define(ctx context.Context, metrics ...Metric) error
	// Ingest stores a batch of at most [MaxBatchEvents] events. Duplicates (see [Event]) are
	// counted, not stored, and are not an error: a retried batch is safe. An error wrapping
	// [ErrInvalidEvent] or [ErrUnknownMetric] is permanent; any other error may be retried with
	// the same events.
	Ingest(ctx context.Context, events []Event) (IngestResult, error)
	// Query returns an account's usage of a metric over the whole periods that p touches.
	Query(ctx context.Context, account uint64, metric Metric, p Period) (Usage, error)
}

var _ Meter = (*MemoryMeter)(nil)

// MemoryMeter is an in-process [Meter] with Unimeter's semantics: the same period buckets, the same
// dedup key, the same aggregations and the same widening of query windows, so code tested on it
// behaves the same on a cluster. It is stricter than the server where the server loses data
// silently: events for undefined metrics and redefinitions that would re-bucket existing data are
// refused with an error.
//
// It keeps aggregates in memory for the life of the process: it suits tests, examples and a
// single process whose usage may be lost with it, not production billing. Unlike a Unimeter node,
// which remembers every dedup key until it restarts, it keeps them for a 24-hour window counted
// from each event's arrival: an event equal in (metric, account, time, value) to one stored less
// than 24 hours earlier is always a duplicate; one stored 48 hours or more earlier is stored
// again; in between, either. So memory is the aggregates plus the keys of the last one to two
// days (under 100 bytes an event), not every key ever stored. It is safe for concurrent use. The
// zero value is not usable; call [NewMemoryMeter].
type MemoryMeter struct {
	// mu orders Define against Ingest, so a definition cannot change under a batch being
	// validated against it. Ingests share it.
	mu  sync.RWMutex
	eng *memmeter.Engine
	buf sync.Pool // *[]memmeter.Event
}

// route puts every account's events on one stream of a [Recorder]: the meter is one process.
func (m *MemoryMeter) route(uint8) string { return "" }

// NewMemoryMeter returns an empty in-process meter.
func NewMemoryMeter() *MemoryMeter {
	return &MemoryMeter{eng: memmeter.New(nil)}
}

// Define implements [Meter]. It validates every metric before registering any.
func (m *MemoryMeter) Define(ctx context.Context, metrics ...Metric) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	seen := make(map[string]Metric, len(metrics))
	for _, mt := range metrics {
		if err := mt.Validate(); err != nil {
			return err
		}
		if prev, dup := seen[mt.Code]; dup && prev != mt {
			return fmt.Errorf("%w: %q is defined twice in one call, as %s and as %s", ErrMetricConflict, mt.Code, describe(prev), describe(mt))
		}
		seen[mt.Code] = mt
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mt := range metrics {
		old, ok := m.eng.Lookup(mt.Code)
		if ok && old != schemaOf(mt) && m.eng.HasData(mt.Code) {
			return fmt.Errorf("%w: %q holds data as %s, refusing %s", ErrMetricConflict, mt.Code, describe(metricOf(old)), describe(mt))
		}
	}
	for _, mt := range metrics {
		m.eng.Put(schemaOf(mt))
	}
	return nil
}

// Ingest implements [Meter]. It validates the whole batch first and stores nothing if any event
// is invalid or names an undefined metric; the error says which event.
func (m *MemoryMeter) Ingest(ctx context.Context, events []Event) (IngestResult, error) {
	if err := ctx.Err(); err != nil {
		return IngestResult{}, err
	}
	if err := checkBatch(events); err != nil {
		return IngestResult{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	bp, _ := m.buf.Get().(*[]memmeter.Event)
	if bp == nil {
		bp = new([]memmeter.Event)
	}
	defer func() { *bp = (*bp)[:0]; m.buf.Put(bp) }()
	batch := (*bp)[:0]
	for i := range events {
		e := &events[i]
		if err := e.Validate(); err != nil {
			return IngestResult{}, fmt.Errorf("%w (batch index %d)", err, i)
		}
		if _, ok := m.eng.Lookup(e.Metric); !ok {
			return IngestResult{}, fmt.Errorf("%w %q: define it first (batch index %d)", ErrUnknownMetric, e.Metric, i)
		}
		v, _ := e.Value.Micros64()
		batch = append(batch, memmeter.Event{Metric: e.Metric, Account: e.Account, Timestamp: e.Time.UnixNano(), Value: v, Op: uint8(e.Op)})
	}
	*bp = batch
	r := m.eng.Ingest(batch)
	return IngestResult{Stored: r.Stored, Duplicates: r.Duplicates}, nil
}

// Query implements [Meter]. The metric must be defined as given.
func (m *MemoryMeter) Query(ctx context.Context, account uint64, metric Metric, p Period) (Usage, error) {
	if err := ctx.Err(); err != nil {
		return Usage{}, err
	}
	if err := metric.Validate(); err != nil {
		return Usage{}, err
	}
	if err := p.Validate(); err != nil {
		return Usage{}, err
	}
	m.mu.RLock() // the definition checked is the one the engine buckets with
	defer m.mu.RUnlock()
	old, ok := m.eng.Lookup(metric.Code)
	if !ok {
		return Usage{}, fmt.Errorf("%w %q", ErrUnknownMetric, metric.Code)
	}
	if old != schemaOf(metric) {
		return Usage{}, fmt.Errorf("%w: %q is defined as %s, queried as %s", ErrMetricConflict, metric.Code, describe(metricOf(old)), describe(metric))
	}
	agg := m.eng.Query(account, metric.Code, p.Start.UnixNano(), p.End.UnixNano())
	return newUsage(account, metric, p, agg), nil
}

// newUsage reads the field of a Unimeter aggregate that metric's aggregation fills.
func newUsage(account uint64, metric Metric, p Period, agg memmeter.AggValue) Usage {
	u := Usage{Account: account, Metric: metric, Window: metric.Window(p)}
	switch metric.Aggregation {
	case Count, CountUnique:
		u.Value = Units(agg.Count)
	case Sum:
		u.Value = Micros128(agg.SumHi, agg.SumLo)
	case Max:
		u.Value = Micros(agg.Max)
	case Latest:
		u.Value = Micros(agg.LastValue)
		if agg.LastTimestamp != 0 {
			u.LatestAt = unixUTC(agg.LastTimestamp)
		}
	}
	return u
}

var _ Meter = (*UnimeterMeter)(nil)

// UnimeterMeter is a [Meter] backed by a Unimeter cluster, over its binary protocol. It routes
// each request to the node that leads the account's partition (account % 256), sends each
// partition's events in their own requests, keeps a few connections per node, puts a deadline
// on every request, follows the cluster's redirects, and retries what may succeed later with the
// same bytes, so the node's dedup recognises a retried event.
//
// It is stricter than the server where the server loses data silently: it refuses events for
// metrics the cluster does not know (the server would store them and never aggregate them), and
// a definition that disagrees with the cluster's (the server would overwrite it and re-bucket
// what follows). It is safe for concurrent use; call Close when done.
type UnimeterMeter struct {
	c *unimeter.Client

	// Nodes do not share a registry, so what is known is known per node.
	mu      sync.RWMutex
	metrics map[string]map[string]Metric // node -> code -> definition, as that node lists it
	suspect map[string]map[string]bool   // node -> codes it answered UNKNOWN_METRIC for: list again first

	buf sync.Pool // *[]unimeter.Event, one batch's wire events
}

// DialUnimeter connects to the Unimeter cluster whose nodes are given as "host:port" seeds
// (such as the comma-separated BILLING_NODES) and learns its partition map from the first that
// answers. Options: [WithRequestTimeout], [WithConnsPerNode], [WithSyncIngest], [WithLogger].
func DialUnimeter(ctx context.Context, nodes []string, opts ...UnimeterOption) (*UnimeterMeter, error) {
	o, err := newOptions(opts, UnimeterOption.applyUnimeter)
	if err != nil {
		return nil, err
	}
	c, err := unimeter.Dial(ctx, unimeter.Config{
		Seeds: nodes, Timeout: o.requestTimeout, ConnsPerNode: o.connsPerNode, Sync: o.syncIngest, Logger: o.logger,
	})
	if err != nil {
		return nil, meterError("dial", err)
	}
	return &UnimeterMeter{c: c, metrics: map[string]map[string]Metric{}, suspect: map[string]map[string]bool{}}, nil
}

// route is the node a partition's events go to now: a [Recorder] delivers each node's events on
// a stream of its own.
func (m *UnimeterMeter) route(partition uint8) string { return m.c.Leader(uint16(partition)) }

// Close closes the meter's connections; calls in flight fail. It is idempotent.
func (m *UnimeterMeter) Close() error {
	m.c.Close()
	return nil
}

// Define implements [Meter]. METRIC_PUT is an upsert that would silently re-bucket a metric, so
// Define first reads each node's definitions (METRIC_LIST) and refuses, with
// [ErrMetricConflict], a metric that exists with another aggregation, period type or cycle day;
// then it registers the missing ones on every node and reads them back, refusing a node that
// does not echo them (a server that predates WEEK periods would bucket them as 30-day windows).
func (m *UnimeterMeter) Define(ctx context.Context, metrics ...Metric) error {
	seen := make(map[string]Metric, len(metrics))
	for _, mt := range metrics {
		if err := mt.Validate(); err != nil {
			return err
		}
		if prev, dup := seen[mt.Code]; dup && prev != mt {
			return fmt.Errorf("%w: %q is defined twice in one call, as %s and as %s", ErrMetricConflict, mt.Code, describe(prev), describe(mt))
		}
		seen[mt.Code] = mt
	}
	for _, node := range m.c.Nodes() {
		held, err := m.list(ctx, node)
		if err != nil {
			return err
		}
		for _, mt := range metrics {
			if old, ok := held[mt.Code]; ok && old != mt {
				return fmt.Errorf("%w: %q is defined on %s as %s, refusing %s (use a new code to change it)", ErrMetricConflict, mt.Code, node, describe(old), describe(mt))
			}
		}
		for _, mt := range metrics {
			if _, ok := held[mt.Code]; ok {
				continue
			}
			s := unimeter.Schema{Code: mt.Code, Agg: unimeter.AggType(mt.Aggregation), Period: unimeter.PeriodType(mt.Period), CycleDay: uint8(mt.CycleDay)}
			if err := m.c.MetricPut(ctx, node, &s); err != nil {
				return meterError("define", err)
			}
		}
		if held, err = m.list(ctx, node); err != nil {
			return err
		}
		for _, mt := range metrics {
			if got := held[mt.Code]; got != mt {
				return fmt.Errorf("%w: %q defined as %s reads back from %s as %s (an older server without %s periods?)", ErrMetricConflict, mt.Code, describe(mt), node, describe(got), mt.Period)
			}
		}
	}
	return nil
}

// list reads a node's definitions and remembers them as that node's.
func (m *UnimeterMeter) list(ctx context.Context, node string) (map[string]Metric, error) {
	schemas, err := m.c.MetricList(ctx, node)
	if err != nil {
		return nil, meterError("list metrics", err)
	}
	held := make(map[string]Metric, len(schemas))
	for _, s := range schemas {
		mt := Metric{Code: s.Code, Aggregation: Aggregation(s.Agg), Period: PeriodType(s.Period), CycleDay: int(s.CycleDay)}
		if mt.Period == Calendar && mt.CycleDay == 0 {
			mt.CycleDay = 1 // the server reads 0 as 1
		}
		if mt.Period != Calendar {
			mt.CycleDay = 0
		}
		held[mt.Code] = mt
	}
	m.mu.Lock()
	m.metrics[node] = held
	for code := range m.suspect[node] {
		if _, ok := held[code]; ok {
			delete(m.suspect[node], code)
		}
	}
	m.mu.Unlock()
	return held, nil
}

// lookup returns node's definition of code. It asks node when code is not known there yet, or
// when node answered UNKNOWN_METRIC for it since (a metric deleted on the server, or registered
// on some nodes only): only node's own list clears that.
func (m *UnimeterMeter) lookup(ctx context.Context, code, node string) (Metric, error) {
	m.mu.RLock()
	mt, ok := m.metrics[node][code]
	suspect := m.suspect[node][code]
	m.mu.RUnlock()
	if ok && !suspect {
		return mt, nil
	}
	held, err := m.list(ctx, node)
	if err != nil {
		return Metric{}, err
	}
	if mt, ok = held[code]; !ok {
		return Metric{}, fmt.Errorf("%w %q: %s does not know it; define it first", ErrUnknownMetric, code, node)
	}
	return mt, nil
}

// markSuspect records that node answered UNKNOWN_METRIC to a request holding codes.
func (m *UnimeterMeter) markSuspect(node string, events []unimeter.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.suspect[node] == nil {
		m.suspect[node] = map[string]bool{}
	}
	for _, w := range events {
		m.suspect[node][w.Metric] = true
	}
}

// Ingest implements [Meter]. It validates the whole batch and sends nothing if any event is
// invalid or names a metric the cluster does not know. Events of different partitions go in
// separate requests; if one of them fails the error is returned, and the whole batch may be
// retried (what was stored is recognised as duplicate).
func (m *UnimeterMeter) Ingest(ctx context.Context, events []Event) (IngestResult, error) {
	if err := checkBatch(events); err != nil {
		return IngestResult{}, err
	}
	bp, _ := m.buf.Get().(*[]unimeter.Event)
	if bp == nil {
		bp = new([]unimeter.Event)
	}
	defer func() { clear(*bp); m.buf.Put(bp) }()
	wire := slices.Grow((*bp)[:0], len(events))[:len(events)]
	*bp = wire
	mixed := false
	for i := range events {
		e := &events[i]
		if err := e.Validate(); err != nil {
			return IngestResult{}, fmt.Errorf("%w (batch index %d)", err, i)
		}
		if node := m.c.Leader(unimeter.Partition(e.Account)); i == 0 || e.Metric != events[i-1].Metric || node != m.c.Leader(unimeter.Partition(events[i-1].Account)) {
			if _, err := m.lookup(ctx, e.Metric, node); err != nil {
				return IngestResult{}, fmt.Errorf("%w (batch index %d)", err, i)
			}
		}
		v, _ := e.Value.Micros64()
		w := unimeter.Event{Metric: e.Metric, Account: e.Account, Timestamp: e.Time.UnixNano(), Value: v, Op: uint8(e.Op)}
		if len(e.Properties) > 0 {
			w.Props = make([]unimeter.Prop, len(e.Properties))
			for j, p := range e.Properties {
				w.Props[j] = unimeter.Prop(p)
			}
		}
		wire[i] = w
		mixed = mixed || unimeter.Partition(e.Account) != unimeter.Partition(events[0].Account)
	}
	if mixed { // a Recorder's batches are one partition already
		slices.SortStableFunc(wire, func(a, b unimeter.Event) int {
			return cmp.Compare(unimeter.Partition(a.Account), unimeter.Partition(b.Account))
		})
	}
	var res IngestResult
	for len(wire) > 0 {
		n := 1
		for n < len(wire) && unimeter.Partition(wire[n].Account) == unimeter.Partition(wire[0].Account) {
			n++
		}
		r, err := m.c.Ingest(ctx, wire[:n])
		if err != nil {
			var ue *unimeter.Error
			if errors.As(err, &ue) && ue.Status == unimeter.StatusUnknownMetric {
				// The node stored the events and will never aggregate them, and a re-send would be
				// a DUPLICATE, which looks like success. Check each metric of the request against
				// that node before sending any of them there again, so that the Recorder reports
				// the events of the unknown one instead of counting them delivered.
				m.markSuspect(ue.Addr, wire[:n])
			}
			return res, meterError("ingest", err)
		}
		res.Stored += int(r.Stored)
		res.Duplicates += int(r.Duplicates)
		wire = wire[n:]
	}
	return res, nil
}

// Query implements [Meter]. The metric must be defined on the cluster as given. The query goes
// to the leader of the account's partition, the node that ingested its events.
func (m *UnimeterMeter) Query(ctx context.Context, account uint64, metric Metric, p Period) (Usage, error) {
	if err := metric.Validate(); err != nil {
		return Usage{}, err
	}
	if err := p.Validate(); err != nil {
		return Usage{}, err
	}
	held, err := m.lookup(ctx, metric.Code, m.c.Leader(unimeter.Partition(account)))
	if err != nil {
		return Usage{}, err
	}
	if held != metric {
		return Usage{}, fmt.Errorf("%w: %q is defined as %s, queried as %s", ErrMetricConflict, metric.Code, describe(held), describe(metric))
	}
	v, err := m.c.Query(ctx, &unimeter.UsageQuery{Account: account, Start: p.Start.UnixNano(), End: p.End.UnixNano(), Metric: metric.Code})
	if err != nil {
		return Usage{}, meterError("query", err)
	}
	return newUsage(account, metric, p, memmeter.AggValue{
		SumLo: v.SumLo, SumHi: v.SumHi, Count: v.Count, Max: v.Max, LastValue: v.LastValue, LastTimestamp: v.LastTimestamp,
	}), nil
}

// MeterError is a request a meter did not carry out: the node did not answer, or answered with
// a failure status.
type MeterError struct {
	Op     string // "ingest", "query", "define", "list metrics", "dial"
	Node   string // the node last asked, "host:port"
	Status string // the server's reply status, such as "BACKPRESSURE"; "" when no reply arrived
	Err    error  // the cause
}

// Error describes the failure.
func (e *MeterError) Error() string {
	return fmt.Sprintf("meterbill: meter %s: %v", e.Op, e.Err)
}

// Unwrap returns the cause.
func (e *MeterError) Unwrap() error { return e.Err }

// Retryable reports whether the same request may succeed later: a node that did not answer
// in time or at all, BACKPRESSURE, NOT_LEADER, an ERR to an ingest. Not retryable: a closed
// meter, the caller's context ending, a reply that does not decode.
func (e *MeterError) Retryable() bool {
	var ue *unimeter.Error
	return errors.As(e.Err, &ue) && ue.Retryable()
}

// meterError wraps a wire client's error: UNKNOWN_METRIC becomes [ErrUnknownMetric] (the events
// were stored but will never be aggregated, and re-sending them is deduplicated), anything else
// a [MeterError].
func meterError(op string, err error) error {
	var ue *unimeter.Error
	if !errors.As(err, &ue) {
		return &MeterError{Op: op, Err: err}
	}
	if ue.Status == unimeter.StatusUnknownMetric {
		return fmt.Errorf("%w: %s answered UNKNOWN_METRIC: those events are stored but will never be aggregated", ErrUnknownMetric, ue.Addr)
	}
	me := &MeterError{Op: op, Node: ue.Addr, Err: err}
	if ue.Err == nil {
		me.Status = ue.Status.String()
	}
	return me
}

// observedMeter times every call to a Meter. NewRecorder and NewHandler wrap their meter in it.
type observedMeter struct {
	Meter
	obs Observer
}

var _ Meter = observedMeter{}

func (m observedMeter) observe(op string, start time.Time, err error) {
	status := "ok"
	if err != nil {
		status = "error"
	}
	m.obs.Observe(Measurement{Kind: MeterLatency, Op: op, Status: status, Duration: time.Since(start)})
}

func (m observedMeter) Define(ctx context.Context, metrics ...Metric) error {
	start := time.Now()
	err := m.Meter.Define(ctx, metrics...)
	m.observe("define", start, err)
	return err
}

func (m observedMeter) Ingest(ctx context.Context, events []Event) (IngestResult, error) {
	start := time.Now()
	res, err := m.Meter.Ingest(ctx, events)
	m.observe("ingest", start, err)
	return res, err
}

func (m observedMeter) Query(ctx context.Context, account uint64, metric Metric, p Period) (Usage, error) {
	start := time.Now()
	u, err := m.Meter.Query(ctx, account, metric, p)
	m.observe("query", start, err)
	return u, err
}

// checkBatch refuses batches the server would cut short: it ignores events past the 1024th and
// cannot safely take more than 1024 properties in one request.
func checkBatch(events []Event) error {
	if len(events) > MaxBatchEvents {
		return fmt.Errorf("%w: a batch of %d events, more than %d", ErrInvalidEvent, len(events), MaxBatchEvents)
	}
	props := 0
	for i := range events {
		props += len(events[i].Properties)
	}
	if props > MaxBatchProperties {
		return fmt.Errorf("%w: a batch with %d properties, more than %d", ErrInvalidEvent, props, MaxBatchProperties)
	}
	return nil
}

func schemaOf(m Metric) memmeter.Schema {
	return memmeter.Schema{Code: m.Code, Agg: memmeter.Agg(m.Aggregation), Period: m.spec()}
}

func metricOf(s memmeter.Schema) Metric {
	return Metric{Code: s.Code, Aggregation: Aggregation(s.Agg), Period: PeriodType(s.Period.Type), CycleDay: int(s.Period.CycleDay)}
}

func describe(m Metric) string {
	if m.Period == Calendar {
		return fmt.Sprintf("%s/%s day %d", m.Aggregation, m.Period, m.CycleDay)
	}
	return fmt.Sprintf("%s/%s", m.Aggregation, m.Period)
}

func unixUTC(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// quote quotes s for an error message, cut short so hostile input cannot flood a log.
func quote(s string) string {
	const limit = 40
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "…"
	}
	return strconv.Quote(s)
}
