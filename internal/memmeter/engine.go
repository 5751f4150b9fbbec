// Package memmeter is an in-process engine with the aggregation semantics of a Unimeter node
// (research/unimeter.md §2–§4): per-(account, metric, bucket) aggregates, dedup on
// (metric, account, timestamp, value), COUNT/SUM/MAX/LATEST/COUNT_UNIQUE updates, and queries
// widened outward to whole buckets.
//
// It is deliberately as permissive as the server, because the fake cluster must behave like one:
// metric definitions are upserts, events for unregistered metrics are stored (their dedup keys are
// consumed) but never aggregated, a zero timestamp is replaced by the engine's clock plus the
// event's index in the batch, and a query for an unknown metric returns zeros. meterbill's public
// MemoryMeter adds the stricter checks on top.
//
// Unlike the server, it does not remember dedup keys for ever: a key is kept for at least
// [DedupWindow] after its event was stored (and at most twice that), so memory is bounded by the
// events of the last one or two windows rather than growing with every event ever stored.
//
// Engine is safe for concurrent use. State is sharded by partition (account % 256), like the server.
package memmeter

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meterbill/meterbill/internal/period"
)

// Agg is an aggregation type, numbered as on the wire.
type Agg uint8

// The aggregation types.
const (
	Count       Agg = 0
	Sum         Agg = 1
	Max         Agg = 2
	Latest      Agg = 3
	CountUnique Agg = 4
)

// Operation types for COUNT_UNIQUE, as on the wire. Any value other than OpRemove inserts.
const (
	OpNone   uint8 = 0
	OpAdd    uint8 = 1
	OpRemove uint8 = 2
)

// Partitions is the number of partitions; an account's partition is account % Partitions.
const Partitions = 256

// DedupWindow is how long the engine remembers that it stored an event, by its engine clock: an
// event equal in (metric, account, timestamp, value) to one stored less than DedupWindow earlier
// is always recognised as a duplicate; one stored two windows ago or more is forgotten (keys are
// dropped between one and two windows after they were stored) and is stored again. The window is
// counted from when an event arrived, not from its timestamp, so back-filled and future-dated
// events are deduplicated the same way. A day outlives any retry of the recorder (its backoff is
// at most 5 s, and it stops at Close) and matches the 24 hours for which Stripe deduplicates
// meter event identifiers.
const DedupWindow = 24 * time.Hour

// Schema is a metric definition as the server stores it.
type Schema struct {
	Code   string
	Agg    Agg
	Period period.Spec
}

// Event is one usage event as it appears on the wire. Value is scaled by 10^6.
type Event struct {
	Metric    string
	Account   uint64
	Timestamp int64
	Value     uint64
	Op        uint8
}

// AggValue is a query result, with the fields of the wire's AggValueWire. Which field answers
// depends on the metric's aggregation: Count for COUNT and COUNT_UNIQUE, SumHi:SumLo for SUM, Max,
// LastValue/LastTimestamp for LATEST.
type AggValue struct {
	SumLo, SumHi  uint64
	Count         uint64
	Max           uint64
	LastValue     uint64
	LastTimestamp int64
}

// Result reports what one Ingest call did.
type Result struct {
	Stored     int // events stored, including those with an unknown metric
	Duplicates int // events recognised as duplicates and dropped
	Unknown    int // stored events whose metric is not registered (never aggregated)
}

type metric struct {
	Schema
	idx uint32 // stable per code across redefinitions; aggregates are keyed by it
}

type dedupKey struct {
	code    string
	account uint64
	ts      int64
	value   uint64
}

type aggKey struct {
	account uint64
	metric  uint32
	bucket  uint32
}

type bucket struct {
	AggValue
	unique map[uint64]struct{} // COUNT_UNIQUE: the set of values in this bucket
}

type shard struct {
	mu sync.Mutex
	// seen holds the dedup keys stored in the window that started when the clock read since,
	// prev those of the window before; older keys are dropped (see DedupWindow and rotate).
	seen, prev map[dedupKey]struct{}
	since      int64
	aggs       map[aggKey]*bucket
	_          [24]byte // keep neighbouring shards' locks off one cache line
}

// rotate moves the dedup keys to a new generation at each whole window of the clock since New:
// seen holds the keys stored in the current window [since, since+DedupWindow), prev those of the
// window before, and older keys are dropped. A key stored at t is therefore kept while the clock
// reads less than t+DedupWindow (always) and dropped once it reads t+2*DedupWindow (by the next
// ingest into its shard). The caller holds sh.mu and read now while holding it, so that the
// readings of one shard are in the order its keys were stored.
func (sh *shard) rotate(now int64) {
	const w = int64(DedupWindow)
	windows := (now - sh.since) / w
	if windows < 1 {
		return // and a clock that went back keeps the keys longer, never shorter
	}
	sh.prev = nil
	if windows == 1 && len(sh.seen) > 0 {
		sh.prev = sh.seen
	}
	sh.seen = map[dedupKey]struct{}{}
	sh.since += windows * w
}

// Engine holds the metric registry and the aggregates. The zero value is not usable; call New.
type Engine struct {
	regMu    sync.Mutex                        // serialises registry writers
	registry atomic.Pointer[map[string]metric] // copy-on-write, read without locks
	indexes  map[string]uint32                 // code -> idx, never forgotten (guarded by regMu)
	hasData  sync.Map                          // idx (uint32) -> struct{}: some bucket exists
	shards   [Partitions]shard
	now      func() int64 // stamps events sent with timestamp 0
	clock    func() int64 // ages dedup keys
}

// New returns an empty engine. now supplies the time for events sent with timestamp 0, and the
// clock [DedupWindow] is measured by; nil means the wall clock for the first and the monotonic
// clock for the second, so that a wall clock stepped forward cannot drop keys early.
func New(now func() int64) *Engine {
	clock := now
	if now == nil {
		now = func() int64 { return time.Now().UnixNano() }
		start := time.Now()
		clock = func() int64 { return int64(time.Since(start)) }
	}
	e := &Engine{indexes: map[string]uint32{}, now: now, clock: clock}
	empty := map[string]metric{}
	e.registry.Store(&empty)
	t := clock()
	for i := range e.shards {
		e.shards[i].seen = map[dedupKey]struct{}{}
		e.shards[i].since = t
		e.shards[i].aggs = map[aggKey]*bucket{}
	}
	return e
}

// Put defines or redefines a metric (an upsert, as METRIC_PUT). Existing aggregates are not
// rebucketed.
func (e *Engine) Put(s Schema) {
	e.regMu.Lock()
	defer e.regMu.Unlock()
	idx, ok := e.indexes[s.Code]
	if !ok {
		idx = uint32(len(e.indexes))
		e.indexes[s.Code] = idx
	}
	old := *e.registry.Load()
	next := make(map[string]metric, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[s.Code] = metric{Schema: s, idx: idx}
	e.registry.Store(&next)
}

// Delete removes a metric's schema (METRIC_DELETE). Its aggregates stay.
func (e *Engine) Delete(code string) {
	e.regMu.Lock()
	defer e.regMu.Unlock()
	old := *e.registry.Load()
	next := make(map[string]metric, len(old))
	for k, v := range old {
		if k != code {
			next[k] = v
		}
	}
	e.registry.Store(&next)
}

// Lookup returns the schema of code.
func (e *Engine) Lookup(code string) (Schema, bool) {
	m, ok := (*e.registry.Load())[code]
	return m.Schema, ok
}

// Metrics returns every registered schema, in no particular order.
func (e *Engine) Metrics() []Schema {
	reg := *e.registry.Load()
	out := make([]Schema, 0, len(reg))
	for _, m := range reg {
		out = append(out, m.Schema)
	}
	return out
}

// HasData reports whether any aggregate exists for code.
func (e *Engine) HasData(code string) bool {
	e.regMu.Lock()
	idx, ok := e.indexes[code]
	e.regMu.Unlock()
	if !ok {
		return false
	}
	_, ok = e.hasData.Load(idx)
	return ok
}

// Ingest stores events with the server's semantics and reports what it did.
func (e *Engine) Ingest(events []Event) Result {
	var res Result
	if len(events) == 0 {
		return res
	}
	reg := *e.registry.Load()
	var now int64
	var sh *shard
	for i := range events {
		ev := &events[i]
		ts := ev.Timestamp
		if ts == 0 {
			if now == 0 {
				now = e.now()
			}
			ts = now + int64(i)
		}
		next := &e.shards[ev.Account%Partitions]
		if next != sh {
			if sh != nil {
				sh.mu.Unlock()
			}
			sh = next
			sh.mu.Lock()
			sh.rotate(e.clock()) // read under the lock, so a shard's readings never go back
		}
		m, ok := reg[ev.Metric]
		code := ev.Metric
		if ok {
			code = m.Code // the registry's copy: keys share it instead of keeping each event's
		}
		k := dedupKey{code: code, account: ev.Account, ts: ts, value: ev.Value}
		if _, dup := sh.seen[k]; dup {
			res.Duplicates++
			continue
		}
		if _, dup := sh.prev[k]; dup {
			res.Duplicates++
			continue
		}
		sh.seen[k] = struct{}{}
		res.Stored++
		if !ok {
			res.Unknown++
			continue
		}
		e.apply(sh, m, ev, ts)
	}
	sh.mu.Unlock()
	return res
}

// apply updates the event's bucket. The caller holds sh.mu.
func (e *Engine) apply(sh *shard, m metric, ev *Event, ts int64) {
	key := aggKey{account: ev.Account, metric: m.idx, bucket: m.Period.ID(ts)}
	b := sh.aggs[key]
	if b == nil {
		b = &bucket{}
		sh.aggs[key] = b
		e.hasData.LoadOrStore(m.idx, struct{}{})
	}
	switch m.Agg {
	case Count:
		b.Count++
	case Sum:
		var carry uint64
		b.SumLo, carry = bits.Add64(b.SumLo, ev.Value, 0)
		b.SumHi += carry
	case Max:
		b.Max = max(b.Max, ev.Value)
	case Latest:
		if ts > b.LastTimestamp {
			b.LastValue, b.LastTimestamp = ev.Value, ts
		}
	case CountUnique:
		if b.unique == nil {
			b.unique = map[uint64]struct{}{}
		}
		if ev.Op == OpRemove {
			delete(b.unique, ev.Value)
		} else {
			b.unique[ev.Value] = struct{}{}
		}
		b.Count = uint64(len(b.unique))
	}
}

// Query merges every whole bucket the window [start, end) touches, with the metric's own period
// settings, as USAGE_QUERY does: sums and counts add (so COUNT_UNIQUE counts add across buckets,
// they are not unioned), max takes the maximum, latest the reading with the greatest timestamp.
// An unknown metric buckets as Fixed, as on the server.
func (e *Engine) Query(account uint64, code string, start, end int64) AggValue {
	var out AggValue
	m, ok := (*e.registry.Load())[code]
	if !ok {
		e.regMu.Lock()
		idx, known := e.indexes[code]
		e.regMu.Unlock()
		if !known {
			return out
		}
		m = metric{Schema: Schema{Code: code, Period: period.Spec{Type: period.Fixed}}, idx: idx}
	}
	first, last := m.Period.Range(start, end)
	sh := &e.shards[account%Partitions]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for id := first; ; id++ {
		if b := sh.aggs[aggKey{account: account, metric: m.idx, bucket: id}]; b != nil {
			var carry uint64
			out.SumLo, carry = bits.Add64(out.SumLo, b.SumLo, 0)
			out.SumHi += b.SumHi + carry
			out.Count += b.Count
			out.Max = max(out.Max, b.Max)
			if b.LastTimestamp > out.LastTimestamp {
				out.LastValue, out.LastTimestamp = b.LastValue, b.LastTimestamp
			}
		}
		if id == last {
			break
		}
	}
	return out
}

// ForgetDuplicates empties every node-local dedup set, as a server restart does: events re-sent
// afterwards are stored again. The fake cluster uses it to model restarts.
func (e *Engine) ForgetDuplicates() {
	t := e.clock()
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		sh.seen, sh.prev, sh.since = map[dedupKey]struct{}{}, nil, t
		sh.mu.Unlock()
	}
}
