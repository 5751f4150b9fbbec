package memmeter

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill/internal/period"
)

var (
	april  = time.Date(2026, 4, 17, 12, 0, 0, 0, time.UTC).UnixNano()
	month  = period.Spec{Type: period.Calendar, CycleDay: 1}
	aprilA = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	mayA   = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
)

// TestServerPermissiveness pins the behaviour the fake cluster relies on: the engine is as lax as
// the server, and the public MemoryMeter is the one that refuses.
func TestServerPermissiveness(t *testing.T) {
	tests := []struct {
		name      string
		schemas   []Schema
		events    []Event
		query     string
		wantRes   Result
		wantValue AggValue
	}{
		{
			name:    "unknown metric is stored but never aggregated",
			events:  []Event{{Metric: "ghost", Account: 1, Timestamp: april, Value: 1}},
			query:   "ghost",
			wantRes: Result{Stored: 1, Unknown: 1},
		},
		{
			name:    "registering after the fact does not re-aggregate",
			schemas: []Schema{{Code: "calls", Agg: Count, Period: month}},
			events: []Event{
				{Metric: "late", Account: 1, Timestamp: april, Value: 1},
				{Metric: "calls", Account: 1, Timestamp: april, Value: 1},
			},
			query:     "calls",
			wantRes:   Result{Stored: 2, Unknown: 1},
			wantValue: AggValue{Count: 1},
		},
		{
			name:    "zero timestamps get clock plus index, so a batch of equal events is kept",
			schemas: []Schema{{Code: "calls", Agg: Count, Period: month}},
			events: []Event{
				{Metric: "calls", Account: 1, Value: 1},
				{Metric: "calls", Account: 1, Value: 1},
				{Metric: "calls", Account: 1, Value: 1},
			},
			query:     "calls",
			wantRes:   Result{Stored: 3},
			wantValue: AggValue{Count: 3},
		},
		{
			name:    "operation and properties are not in the dedup key",
			schemas: []Schema{{Code: "seats", Agg: CountUnique, Period: month}},
			events: []Event{
				{Metric: "seats", Account: 1, Timestamp: april, Value: 7, Op: OpAdd},
				{Metric: "seats", Account: 1, Timestamp: april, Value: 7, Op: OpRemove},
			},
			query:     "seats",
			wantRes:   Result{Stored: 1, Duplicates: 1},
			wantValue: AggValue{Count: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New(func() int64 { return april })
			for _, s := range tt.schemas {
				e.Put(s)
			}
			if diff := cmp.Diff(tt.wantRes, e.Ingest(tt.events)); diff != "" {
				t.Errorf("Ingest result mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantValue, e.Query(1, tt.query, aprilA, mayA)); diff != "" {
				t.Errorf("Query mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUpsertKeepsAggregatesAndHasData(t *testing.T) {
	e := New(nil)
	if e.HasData("calls") {
		t.Fatal("HasData before any metric")
	}
	e.Put(Schema{Code: "calls", Agg: Count, Period: month})
	if e.HasData("calls") {
		t.Fatal("HasData before any event")
	}
	e.Ingest([]Event{{Metric: "calls", Account: 9, Timestamp: april, Value: 1}})
	if !e.HasData("calls") {
		t.Fatal("HasData false after an event")
	}
	e.Put(Schema{Code: "calls", Agg: Count, Period: period.Spec{Type: period.Calendar, CycleDay: 15}})
	if got := e.Query(9, "calls", aprilA, mayA).Count; got != 1 {
		t.Errorf("count after upsert = %d, want 1 (aggregates are not rebucketed or dropped)", got)
	}
	e.Delete("calls")
	if _, ok := e.Lookup("calls"); ok {
		t.Error("Lookup after Delete found the schema")
	}
	if got := e.Ingest([]Event{{Metric: "calls", Account: 9, Timestamp: april + 1, Value: 1}}); got.Unknown != 1 {
		t.Errorf("ingest after delete = %+v, want one unknown", got)
	}
}

func TestForgetDuplicatesLikeARestart(t *testing.T) {
	e := New(nil)
	e.Put(Schema{Code: "calls", Agg: Count, Period: month})
	ev := []Event{{Metric: "calls", Account: 3, Timestamp: april, Value: 1}}
	e.Ingest(ev)
	if got := e.Ingest(ev); got.Duplicates != 1 {
		t.Fatalf("resend before restart = %+v, want a duplicate", got)
	}
	e.ForgetDuplicates()
	if got := e.Ingest(ev); got.Stored != 1 {
		t.Fatalf("resend after restart = %+v, want stored again (the server's dedup is in memory)", got)
	}
	if got := e.Query(3, "calls", aprilA, mayA).Count; got != 2 {
		t.Errorf("count = %d, want 2: the restart double-counts, as on the server", got)
	}
}

func TestSumCarriesInto128Bits(t *testing.T) {
	e := New(nil)
	e.Put(Schema{Code: "bytes", Agg: Sum, Period: month})
	e.Ingest([]Event{
		{Metric: "bytes", Account: 1, Timestamp: april, Value: ^uint64(0)},
		{Metric: "bytes", Account: 1, Timestamp: april + 1, Value: 2},
	})
	want := AggValue{SumLo: 1, SumHi: 1}
	if diff := cmp.Diff(want, e.Query(1, "bytes", aprilA, mayA)); diff != "" {
		t.Errorf("sum mismatch (-want +got):\n%s", diff)
	}
}

func TestConcurrentDuplicatesStoreOnce(t *testing.T) {
	e := New(nil)
	e.Put(Schema{Code: "calls", Agg: Count, Period: month})
	const workers, events = 8, 2000
	batch := make([]Event, events)
	for i := range batch {
		batch[i] = Event{Metric: "calls", Account: uint64(i%512) + 1, Timestamp: april + int64(i), Value: 1}
	}
	var wg sync.WaitGroup
	stored := make([]int, workers)
	for w := range workers {
		wg.Go(func() { stored[w] = e.Ingest(batch).Stored })
	}
	wg.Wait()
	total := 0
	for _, s := range stored {
		total += s
	}
	if total != events {
		t.Errorf("stored %d events across %d identical concurrent batches, want %d", total, workers, events)
	}
}

func BenchmarkEngineIngest(b *testing.B) {
	e := New(nil)
	e.Put(Schema{Code: "calls", Agg: Sum, Period: month})
	batch := make([]Event, 500)
	b.ReportAllocs()
	ts := april
	for b.Loop() {
		for i := range batch {
			ts++
			batch[i] = Event{Metric: "calls", Account: 7, Timestamp: ts, Value: 1_000_000}
		}
		e.Ingest(batch)
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}
