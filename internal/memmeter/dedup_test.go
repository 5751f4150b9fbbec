package memmeter

import (
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock is an engine clock the test moves by hand.
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() int64          { return c.t.Load() }
func (c *fakeClock) add(d time.Duration) { c.t.Add(int64(d)) }
func newClock(start int64) *fakeClock    { c := &fakeClock{}; c.t.Store(start); return c }
func call(account uint64, ts int64) Event {
	return Event{Metric: "calls", Account: account, Timestamp: ts, Value: 1}
}
func countSchema() Schema                    { return Schema{Code: "calls", Agg: Count, Period: month} }
func resultOf(stored, duplicates int) Result { return Result{Stored: stored, Duplicates: duplicates} }

// TestDedupWindow pins what DedupWindow promises: a re-send within the window of the first
// arrival is a duplicate, whatever the event's own timestamp and however the windows fall; after
// two windows the key is gone and the event is stored again.
func TestDedupWindow(t *testing.T) {
	const w = DedupWindow
	tests := []struct {
		name string
		// before moves the clock after New, before the first send; gap is the time between the
		// first send and the re-send.
		before, gap time.Duration
		ts          int64 // the event's timestamp
		want        Result
	}{
		{name: "at once", gap: 0, ts: april, want: resultOf(0, 1)},
		{name: "just inside the window", gap: w - 1, ts: april, want: resultOf(0, 1)},
		{name: "stored late in a generation, re-sent just inside the window", before: w - time.Nanosecond, gap: w - 1, ts: april, want: resultOf(0, 1)},
		{name: "stored just after a rotation, re-sent just inside the window", before: w, gap: w - 1, ts: april, want: resultOf(0, 1)},
		{name: "a back-filled event counts from its arrival", gap: w - time.Second, ts: april - int64(365*24*time.Hour), want: resultOf(0, 1)},
		{name: "a future-dated event counts from its arrival", gap: w - time.Second, ts: april + int64(365*24*time.Hour), want: resultOf(0, 1)},
		{name: "forgotten after two windows", gap: 2 * w, ts: april, want: resultOf(1, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(april)
			e := New(clk.now)
			e.Put(countSchema())
			clk.add(tt.before)
			if got := e.Ingest([]Event{call(7, tt.ts)}); got != resultOf(1, 0) {
				t.Fatalf("first send: %+v", got)
			}
			// Other traffic on the same shard in between, so rotations happen while it waits.
			for step := time.Duration(0); step < tt.gap; step += w / 3 {
				clk.add(min(w/3, tt.gap-step))
				e.Ingest([]Event{call(7+Partitions, april+1+int64(step))})
			}
			if diff := cmp.Diff(tt.want, e.Ingest([]Event{call(7, tt.ts)})); diff != "" {
				t.Errorf("re-send after %v mismatch (-want +got):\n%s", tt.gap, diff)
			}
		})
	}
}

// TestDedupExactInsideTheWindow replays a random schedule of sends and re-sends on a clock that
// advances by random steps, against a model that remembers when each key was last stored: a
// re-send less than a window after that is always a duplicate, one two windows or more after it
// is always stored again, and the aggregate counts exactly the events stored.
func TestDedupExactInsideTheWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	clk := newClock(april)
	e := New(clk.now)
	e.Put(countSchema())
	storedAt := map[Event]int64{} // key -> clock when it was last stored
	var sent []Event
	stored := map[uint64]uint64{} // account -> events stored
	for range 20_000 {
		clk.add(time.Duration(rng.Int64N(int64(DedupWindow / 50))))
		var ev Event
		if len(sent) > 0 && rng.IntN(2) == 0 {
			ev = sent[rng.IntN(len(sent))] // a re-send
		} else {
			ev = call(uint64(rng.IntN(8)+1), april+rng.Int64N(int64(time.Hour)))
			sent = append(sent, ev)
		}
		got := e.Ingest([]Event{ev})
		last, seen := storedAt[ev]
		age := time.Duration(clk.now() - last)
		switch {
		case seen && age < DedupWindow && got != resultOf(0, 1):
			t.Fatalf("re-send %v after it was stored: %+v, want a duplicate", age, got)
		case seen && age >= 2*DedupWindow && got != resultOf(1, 0):
			t.Fatalf("re-send %v after it was stored: %+v, want it stored again", age, got)
		case !seen && got != resultOf(1, 0):
			t.Fatalf("first send: %+v, want it stored", got)
		}
		if got.Stored == 1 {
			storedAt[ev] = clk.now()
			stored[ev.Account]++
		}
	}
	for acct, n := range stored {
		if got := e.Query(acct, "calls", aprilA, mayA).Count; got != n {
			t.Errorf("account %d: count %d, want the %d events stored", acct, got, n)
		}
	}
}

// TestDedupMemoryIsBounded: after many windows of steady traffic the engine holds the keys of the
// last two windows at most, not every key it ever stored.
func TestDedupMemoryIsBounded(t *testing.T) {
	clk := newClock(april)
	e := New(clk.now)
	e.Put(countSchema())
	const perWindow = 1000
	for i := range 20 * perWindow {
		clk.add(DedupWindow / perWindow)
		e.Ingest([]Event{call(uint64(i%Partitions+1), int64(i+1))})
	}
	keys := 0
	for i := range e.shards {
		keys += len(e.shards[i].seen) + len(e.shards[i].prev)
	}
	if keys > 2*perWindow+Partitions {
		t.Errorf("%d dedup keys held after 20 windows of %d events, want at most two windows' worth", keys, perWindow)
	}
}

// BenchmarkDedupHeap ingests b.N events over 1,000 accounts, arriving at the rate of 10 million
// a month (one every 259 ms of engine clock, stamped with their arrival), in batches of 500, and
// reports the live heap after GC. Memory is bounded by the events of the last one or two dedup
// windows, so it levels off; the benchmark fails if it passes 64 MiB. The figure in docs/figures.md is
//
//	go test -run '^$' -bench DedupHeap -benchtime 10000000x ./internal/memmeter
func BenchmarkDedupHeap(b *testing.B) {
	const (
		accounts = 1000
		batch    = 500
		step     = 30 * 24 * time.Hour / 10_000_000
		limit    = 64 << 20
	)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	clk := newClock(april)
	e := New(clk.now)
	e.Put(countSchema())
	events := make([]Event, batch)
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		for j := range n {
			clk.add(step)
			events[j] = call(uint64((i+j)%accounts+1), clk.now())
		}
		e.Ingest(events[:n])
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(b.N)/1e6, "Mevents")
	runtime.KeepAlive(e)
	if heap > limit {
		b.Fatalf("heap after %d events: %d MiB, want under %d MiB", b.N, heap>>20, limit>>20)
	}
}
