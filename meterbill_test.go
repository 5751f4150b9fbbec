package meterbill_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill"
)

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func at(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, time.UTC)
}

func mustValue(t testing.TB, s string) meterbill.Value {
	t.Helper()
	v, err := meterbill.ParseValue(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var (
	calls   = meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
	storage = meterbill.Metric{Code: "storage_gb", Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 15}
	peak    = meterbill.Metric{Code: "peak_conns", Aggregation: meterbill.Max, Period: meterbill.Day}
	gauge   = meterbill.Metric{Code: "plan_level", Aggregation: meterbill.Latest, Period: meterbill.Week}
	seats   = meterbill.Metric{Code: "seats", Aggregation: meterbill.CountUnique, Period: meterbill.Calendar, CycleDay: 1}
)

// meterFactories lists every Meter implementation the contract suite runs against.
var meterFactories = map[string]func(t *testing.T) meterbill.Meter{
	"memory": func(*testing.T) meterbill.Meter { return meterbill.NewMemoryMeter() },
}

// TestMeterContract runs one suite of Unimeter semantics against every Meter implementation.
func TestMeterContract(t *testing.T) {
	type query struct {
		account    uint64
		metric     meterbill.Metric
		period     meterbill.Period
		wantValue  string
		wantWindow meterbill.Period
	}
	tests := []struct {
		name       string
		events     []meterbill.Event
		wantResult meterbill.IngestResult
		queries    []query
	}{
		{
			name: "count ignores values and counts each event",
			events: []meterbill.Event{
				{Account: 1, Metric: "api_calls", Value: meterbill.Units(1), Time: at(2026, 4, 1, 0, 0)},
				{Account: 1, Metric: "api_calls", Value: meterbill.Units(5), Time: at(2026, 4, 17, 9, 0)},
				{Account: 1, Metric: "api_calls", Value: meterbill.Units(1), Time: at(2026, 4, 30, 23, 59)},
				{Account: 1, Metric: "api_calls", Value: meterbill.Units(1), Time: at(2026, 5, 1, 0, 0)},
				{Account: 2, Metric: "api_calls", Value: meterbill.Units(1), Time: at(2026, 4, 2, 0, 0)},
			},
			wantResult: meterbill.IngestResult{Stored: 5},
			queries: []query{
				{account: 1, metric: calls, period: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}, wantValue: "3", wantWindow: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}},
				{account: 1, metric: calls, period: meterbill.Period{Start: date(2026, 5, 1), End: date(2026, 6, 1)}, wantValue: "1", wantWindow: meterbill.Period{Start: date(2026, 5, 1), End: date(2026, 6, 1)}},
				{account: 2, metric: calls, period: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}, wantValue: "1", wantWindow: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}},
				{account: 3, metric: calls, period: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}, wantValue: "0", wantWindow: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}},
			},
		},
		{
			name: "sum is exact with fractions and buckets on cycle day 15",
			events: []meterbill.Event{
				{Account: 7, Metric: "storage_gb", Value: mustValue(t, "0.5"), Time: at(2026, 4, 14, 23, 59)},
				{Account: 7, Metric: "storage_gb", Value: mustValue(t, "0.000001"), Time: at(2026, 4, 15, 0, 0)},
				{Account: 7, Metric: "storage_gb", Value: mustValue(t, "1.25"), Time: at(2026, 5, 14, 12, 0)},
				{Account: 7, Metric: "storage_gb", Value: mustValue(t, "2"), Time: at(2026, 5, 15, 0, 0)},
			},
			wantResult: meterbill.IngestResult{Stored: 4},
			queries: []query{
				{account: 7, metric: storage, period: meterbill.Period{Start: date(2026, 4, 15), End: date(2026, 5, 15)}, wantValue: "1.250001", wantWindow: meterbill.Period{Start: date(2026, 4, 15), End: date(2026, 5, 15)}},
				// Widening: a calendar-month query on a cycle-15 metric covers Mar 15 to May 15.
				{account: 7, metric: storage, period: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}, wantValue: "1.750001", wantWindow: meterbill.Period{Start: date(2026, 3, 15), End: date(2026, 5, 15)}},
			},
		},
		{
			name: "max per day, merged across days",
			events: []meterbill.Event{
				{Account: 9, Metric: "peak_conns", Value: meterbill.Units(40), Time: at(2026, 4, 17, 1, 0)},
				{Account: 9, Metric: "peak_conns", Value: meterbill.Units(12), Time: at(2026, 4, 17, 2, 0)},
				{Account: 9, Metric: "peak_conns", Value: meterbill.Units(75), Time: at(2026, 4, 18, 2, 0)},
			},
			wantResult: meterbill.IngestResult{Stored: 3},
			queries: []query{
				{account: 9, metric: peak, period: meterbill.Period{Start: at(2026, 4, 17, 6, 0), End: at(2026, 4, 17, 7, 0)}, wantValue: "40", wantWindow: meterbill.Period{Start: date(2026, 4, 17), End: date(2026, 4, 18)}},
				{account: 9, metric: peak, period: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}, wantValue: "75", wantWindow: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}},
			},
		},
		{
			name: "latest keeps the strictly newest reading",
			events: []meterbill.Event{
				{Account: 4, Metric: "plan_level", Value: meterbill.Units(3), Time: at(2026, 11, 24, 10, 0)},
				{Account: 4, Metric: "plan_level", Value: meterbill.Units(1), Time: at(2026, 11, 23, 10, 0)}, // older: ignored
				{Account: 4, Metric: "plan_level", Value: meterbill.Units(8), Time: at(2026, 11, 24, 10, 0)}, // equal time: ignored
			},
			wantResult: meterbill.IngestResult{Stored: 3},
			queries: []query{
				// 2026-11-25 is a Wednesday: its ISO week runs Monday 23rd to Monday 30th.
				{account: 4, metric: gauge, period: meterbill.Period{Start: date(2026, 11, 25), End: date(2026, 11, 26)}, wantValue: "3", wantWindow: meterbill.Period{Start: date(2026, 11, 23), End: date(2026, 11, 30)}},
			},
		},
		{
			name: "count unique adds and removes per period and sums across periods",
			events: []meterbill.Event{
				{Account: 5, Metric: "seats", Value: meterbill.Units(101), Time: at(2026, 3, 3, 0, 0), Op: meterbill.OpAdd},
				{Account: 5, Metric: "seats", Value: meterbill.Units(102), Time: at(2026, 3, 4, 0, 0), Op: meterbill.OpAdd},
				{Account: 5, Metric: "seats", Value: meterbill.Units(101), Time: at(2026, 3, 5, 0, 0), Op: meterbill.OpAdd},    // already in the set
				{Account: 5, Metric: "seats", Value: meterbill.Units(102), Time: at(2026, 3, 6, 0, 0), Op: meterbill.OpRemove}, // leaves the set
				{Account: 5, Metric: "seats", Value: meterbill.Units(999), Time: at(2026, 3, 7, 0, 0), Op: meterbill.OpRemove}, // absent: no-op
				{Account: 5, Metric: "seats", Value: meterbill.Units(101), Time: at(2026, 4, 2, 0, 0)},                         // OpNone adds
				{Account: 5, Metric: "seats", Value: meterbill.Units(103), Time: at(2026, 4, 3, 0, 0), Op: meterbill.OpAdd},
			},
			wantResult: meterbill.IngestResult{Stored: 7},
			queries: []query{
				{account: 5, metric: seats, period: meterbill.Period{Start: date(2026, 3, 1), End: date(2026, 4, 1)}, wantValue: "1", wantWindow: meterbill.Period{Start: date(2026, 3, 1), End: date(2026, 4, 1)}},
				{account: 5, metric: seats, period: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}, wantValue: "2", wantWindow: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}},
				// Seat 101 is in both months: summed, not unioned.
				{account: 5, metric: seats, period: meterbill.Period{Start: date(2026, 3, 1), End: date(2026, 5, 1)}, wantValue: "3", wantWindow: meterbill.Period{Start: date(2026, 3, 1), End: date(2026, 5, 1)}},
			},
		},
		{
			name: "dedup key is metric, account, time and value; nothing else",
			events: []meterbill.Event{
				{Account: 6, Metric: "api_calls", Value: meterbill.Units(1), Time: at(2026, 4, 3, 0, 0), Properties: []meterbill.Property{{Key: "region", Value: "us"}}},
				{Account: 6, Metric: "api_calls", Value: meterbill.Units(1), Time: at(2026, 4, 3, 0, 0), Properties: []meterbill.Property{{Key: "region", Value: "eu"}}}, // collides
				{Account: 6, Metric: "api_calls", Value: meterbill.Units(2), Time: at(2026, 4, 3, 0, 0)},                                                                 // other value: distinct
				{Account: 6, Metric: "api_calls", Value: meterbill.Units(1), Time: at(2026, 4, 3, 0, 0).Add(time.Nanosecond)},                                            // other time: distinct
				{Account: 8, Metric: "api_calls", Value: meterbill.Units(1), Time: at(2026, 4, 3, 0, 0)},                                                                 // other account: distinct
			},
			wantResult: meterbill.IngestResult{Stored: 4, Duplicates: 1},
			queries: []query{
				{account: 6, metric: calls, period: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}, wantValue: "3", wantWindow: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}},
			},
		},
		{
			name: "the metric is part of the dedup key",
			events: []meterbill.Event{
				{Account: 6, Metric: "api_calls", Value: meterbill.Units(1), Time: at(2026, 4, 3, 0, 0)},
				{Account: 6, Metric: "storage_gb", Value: meterbill.Units(1), Time: at(2026, 4, 3, 0, 0)},
			},
			wantResult: meterbill.IngestResult{Stored: 2},
			queries: []query{
				{account: 6, metric: calls, period: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}, wantValue: "1", wantWindow: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}},
			},
		},
		{
			name: "latest across weeks is the newest reading of any week",
			events: []meterbill.Event{
				{Account: 4, Metric: "plan_level", Value: meterbill.Units(9), Time: at(2026, 11, 10, 10, 0)},
				{Account: 4, Metric: "plan_level", Value: meterbill.Units(2), Time: at(2026, 11, 24, 10, 0)},
				{Account: 4, Metric: "plan_level", Value: meterbill.Units(5), Time: at(2026, 11, 17, 10, 0)},
			},
			wantResult: meterbill.IngestResult{Stored: 3},
			queries: []query{
				{account: 4, metric: gauge, period: meterbill.Period{Start: date(2026, 11, 9), End: date(2026, 11, 30)}, wantValue: "2", wantWindow: meterbill.Period{Start: date(2026, 11, 9), End: date(2026, 11, 30)}},
			},
		},
		{
			name: "an add and a remove of the same seat at the same instant collapse",
			events: []meterbill.Event{
				{Account: 5, Metric: "seats", Value: meterbill.Units(7), Time: at(2026, 6, 1, 0, 0), Op: meterbill.OpAdd},
				{Account: 5, Metric: "seats", Value: meterbill.Units(7), Time: at(2026, 6, 1, 0, 0), Op: meterbill.OpRemove},
			},
			wantResult: meterbill.IngestResult{Stored: 1, Duplicates: 1},
			queries: []query{
				{account: 5, metric: seats, period: meterbill.Period{Start: date(2026, 6, 1), End: date(2026, 7, 1)}, wantValue: "1", wantWindow: meterbill.Period{Start: date(2026, 6, 1), End: date(2026, 7, 1)}},
			},
		},
	}
	for name, newMeter := range meterFactories {
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				m := newMeter(t)
				if err := m.Define(ctx, calls, storage, peak, gauge, seats); err != nil {
					t.Fatal(err)
				}
				got, err := m.Ingest(ctx, tt.events)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.wantResult, got); diff != "" {
					t.Errorf("Ingest mismatch (-want +got):\n%s", diff)
				}
				// A retried batch is all duplicates and changes nothing.
				again, err := m.Ingest(ctx, tt.events)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(meterbill.IngestResult{Duplicates: len(tt.events)}, again); diff != "" {
					t.Errorf("retried Ingest mismatch (-want +got):\n%s", diff)
				}
				for _, q := range tt.queries {
					u, err := m.Query(ctx, q.account, q.metric, q.period)
					if err != nil {
						t.Fatal(err)
					}
					gotQ := [2]string{u.Value.String(), u.Window.String()}
					wantQ := [2]string{q.wantValue, q.wantWindow.String()}
					if diff := cmp.Diff(wantQ, gotQ); diff != "" {
						t.Errorf("Query(%d, %s, %s) mismatch (-want +got):\n%s", q.account, q.metric.Code, q.period, diff)
					}
				}
			})
		}
	}
}

func TestValueConstructors(t *testing.T) {
	tests := []struct {
		name string
		v    meterbill.Value
		want string
	}{
		{name: "units", v: meterbill.Units(3), want: "3"},
		{name: "largest units", v: meterbill.Units(^uint64(0)), want: "18446744073709551615"},
		{name: "micros", v: meterbill.Micros(1_500_000), want: "1.5"},
		{name: "micros128 carries the high word", v: meterbill.Micros128(1, 0), want: "18446744073709.551616"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			text, err := tt.v.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			var back meterbill.Value
			if err := back.UnmarshalText(text); err != nil || back != tt.v {
				t.Errorf("text round trip = %v, %v; want %v", back, err, tt.v)
			}
		})
	}
	for _, bad := range []string{"1.0000001", "-1", "", "1e3", ".5", "5.", " 1", "0x10", "340282366920938463463374607431768.211456"} {
		if _, err := meterbill.ParseValue(bad); !errors.Is(err, meterbill.ErrInvalidValue) {
			t.Errorf("ParseValue(%q) = %v, want ErrInvalidValue", bad, err)
		}
	}
	var v meterbill.Value
	if err := v.UnmarshalText([]byte("-1")); !errors.Is(err, meterbill.ErrInvalidValue) || !v.IsZero() {
		t.Errorf("UnmarshalText(-1) = %v leaving %v, want ErrInvalidValue and no change", err, v)
	}
	if sum, ok := meterbill.Micros128(^uint64(0), ^uint64(0)).Add(meterbill.Micros(1)); ok || !sum.IsZero() {
		t.Errorf("Add past 2^128 = %v, %v; want overflow", sum, ok)
	}
	if meterbill.Units(2).Cmp(meterbill.Micros(2_000_001)) != -1 {
		t.Error("Cmp(2, 2.000001) != -1")
	}
}

func TestLatestReportsItsTime(t *testing.T) {
	ctx := context.Background()
	m := meterbill.NewMemoryMeter()
	if err := m.Define(ctx, gauge); err != nil {
		t.Fatal(err)
	}
	when := at(2026, 11, 24, 10, 0).Add(123 * time.Nanosecond)
	if _, err := m.Ingest(ctx, []meterbill.Event{{Account: 1, Metric: gauge.Code, Value: meterbill.Units(2), Time: when}}); err != nil {
		t.Fatal(err)
	}
	u, err := m.Query(ctx, 1, gauge, meterbill.Period{Start: date(2026, 11, 23), End: date(2026, 11, 30)})
	if err != nil {
		t.Fatal(err)
	}
	if !u.LatestAt.Equal(when) {
		t.Errorf("LatestAt = %v, want %v", u.LatestAt, when)
	}
}

func TestDefineRejects(t *testing.T) {
	tests := []struct {
		name    string
		metric  meterbill.Metric
		wantErr error
	}{
		{name: "empty code", metric: meterbill.Metric{Code: "", Period: meterbill.Day}, wantErr: meterbill.ErrInvalidMetric},
		{name: "64-byte code", metric: meterbill.Metric{Code: strings.Repeat("a", 64), Period: meterbill.Day}, wantErr: meterbill.ErrInvalidMetric},
		{name: "control character", metric: meterbill.Metric{Code: "a\x00b", Period: meterbill.Day}, wantErr: meterbill.ErrInvalidMetric},
		{name: "invalid utf-8", metric: meterbill.Metric{Code: "a\xffb", Period: meterbill.Day}, wantErr: meterbill.ErrInvalidMetric},
		{name: "cycle day 0", metric: meterbill.Metric{Code: "m", Period: meterbill.Calendar, CycleDay: 0}, wantErr: meterbill.ErrInvalidMetric},
		{name: "cycle day 29", metric: meterbill.Metric{Code: "m", Period: meterbill.Calendar, CycleDay: 29}, wantErr: meterbill.ErrInvalidMetric},
		{name: "cycle day on a day metric", metric: meterbill.Metric{Code: "m", Period: meterbill.Day, CycleDay: 3}, wantErr: meterbill.ErrInvalidMetric},
		{name: "fixed period is not billable", metric: meterbill.Metric{Code: "m"}, wantErr: meterbill.ErrInvalidMetric},
		{name: "unknown period type", metric: meterbill.Metric{Code: "m", Period: 9}, wantErr: meterbill.ErrInvalidMetric},
		{name: "unknown aggregation", metric: meterbill.Metric{Code: "m", Period: meterbill.Day, Aggregation: 5}, wantErr: meterbill.ErrInvalidMetric},
		{name: "63-byte code is fine", metric: meterbill.Metric{Code: strings.Repeat("a", 63), Period: meterbill.Day}},
		{name: "cycle day 28 is fine", metric: meterbill.Metric{Code: "m", Period: meterbill.Calendar, CycleDay: 28}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := meterbill.NewMemoryMeter().Define(context.Background(), tt.metric)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Define(%+v) = %v, want %v", tt.metric, err, tt.wantErr)
			}
		})
	}
}

func TestRedefinition(t *testing.T) {
	tests := []struct {
		name     string
		withData bool
		redefine meterbill.Metric
		wantErr  error
	}{
		{name: "identical with data", withData: true, redefine: storage},
		{name: "new cycle day without data", redefine: meterbill.Metric{Code: storage.Code, Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 1}},
		{name: "new cycle day with data", withData: true, redefine: meterbill.Metric{Code: storage.Code, Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 1}, wantErr: meterbill.ErrMetricConflict},
		{name: "new period type with data", withData: true, redefine: meterbill.Metric{Code: storage.Code, Aggregation: meterbill.Sum, Period: meterbill.Day}, wantErr: meterbill.ErrMetricConflict},
		{name: "new aggregation with data", withData: true, redefine: meterbill.Metric{Code: storage.Code, Aggregation: meterbill.Max, Period: meterbill.Calendar, CycleDay: 15}, wantErr: meterbill.ErrMetricConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			m := meterbill.NewMemoryMeter()
			if err := m.Define(ctx, storage); err != nil {
				t.Fatal(err)
			}
			if tt.withData {
				if _, err := m.Ingest(ctx, []meterbill.Event{{Account: 1, Metric: storage.Code, Value: meterbill.Units(1), Time: date(2026, 4, 20)}}); err != nil {
					t.Fatal(err)
				}
			}
			err := m.Define(ctx, tt.redefine)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Define = %v, want %v", err, tt.wantErr)
			}
			// A refused definition leaves the old one in force; an accepted one replaces it.
			want := tt.redefine
			if tt.wantErr != nil {
				want = storage
			}
			if _, err := m.Query(ctx, 1, want, meterbill.Period{Start: date(2026, 4, 15), End: date(2026, 5, 15)}); err != nil {
				t.Errorf("Query with the definition in force: %v", err)
			}
		})
	}
}

func TestIngestRejects(t *testing.T) {
	ok := meterbill.Event{Account: 1, Metric: calls.Code, Value: meterbill.Units(1), Time: date(2026, 4, 2)}
	with := func(f func(*meterbill.Event)) meterbill.Event { e := ok; f(&e); return e }
	props := func(n int) []meterbill.Property {
		ps := make([]meterbill.Property, n)
		for i := range ps {
			ps[i] = meterbill.Property{Key: fmt.Sprint("k", i), Value: "v"}
		}
		return ps
	}
	tests := []struct {
		name    string
		event   meterbill.Event
		wantErr error
	}{
		{name: "zero account", event: with(func(e *meterbill.Event) { e.Account = 0 }), wantErr: meterbill.ErrInvalidEvent},
		{name: "empty metric", event: with(func(e *meterbill.Event) { e.Metric = "" }), wantErr: meterbill.ErrInvalidEvent},
		{name: "64-byte metric", event: with(func(e *meterbill.Event) { e.Metric = strings.Repeat("m", 64) }), wantErr: meterbill.ErrInvalidEvent},
		{name: "unknown metric", event: with(func(e *meterbill.Event) { e.Metric = "nope" }), wantErr: meterbill.ErrUnknownMetric},
		{name: "value beyond 64 bits", event: with(func(e *meterbill.Event) { e.Value = meterbill.Units(1 << 50) }), wantErr: meterbill.ErrInvalidEvent},
		{name: "zero time", event: with(func(e *meterbill.Event) { e.Time = time.Time{} }), wantErr: meterbill.ErrInvalidEvent},
		{name: "before 2000", event: with(func(e *meterbill.Event) { e.Time = date(1999, 12, 31) }), wantErr: meterbill.ErrInvalidEvent},
		{name: "january 2000, before the first bucket of a late cycle day", event: with(func(e *meterbill.Event) { e.Time = date(2000, 1, 5) }), wantErr: meterbill.ErrInvalidEvent},
		{name: "2000-02-01 is fine", event: with(func(e *meterbill.Event) { e.Time = date(2000, 2, 1) })},
		{name: "after 2200", event: with(func(e *meterbill.Event) { e.Time = date(2200, 1, 1) }), wantErr: meterbill.ErrInvalidEvent},
		{name: "unknown op", event: with(func(e *meterbill.Event) { e.Op = 3 }), wantErr: meterbill.ErrInvalidEvent},
		{name: "256 properties", event: with(func(e *meterbill.Event) { e.Properties = props(256) }), wantErr: meterbill.ErrInvalidEvent},
		{name: "32-byte property key", event: with(func(e *meterbill.Event) { e.Properties = []meterbill.Property{{Key: strings.Repeat("k", 32)}} }), wantErr: meterbill.ErrInvalidEvent},
		{name: "empty property key", event: with(func(e *meterbill.Event) { e.Properties = []meterbill.Property{{Value: "v"}} }), wantErr: meterbill.ErrInvalidEvent},
		{name: "64-byte property value", event: with(func(e *meterbill.Event) {
			e.Properties = []meterbill.Property{{Key: "k", Value: strings.Repeat("v", 64)}}
		}), wantErr: meterbill.ErrInvalidEvent},
		{name: "255 properties at their limits are fine", event: with(func(e *meterbill.Event) {
			e.Properties = props(255)
			e.Properties[0] = meterbill.Property{Key: strings.Repeat("k", 31), Value: strings.Repeat("v", 63)}
		})},
		{name: "largest 64-bit value is fine", event: with(func(e *meterbill.Event) { e.Value = meterbill.Micros(^uint64(0)) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			m := meterbill.NewMemoryMeter()
			if err := m.Define(ctx, calls); err != nil {
				t.Fatal(err)
			}
			// The bad event sits behind a good one: a refused batch stores nothing.
			res, err := m.Ingest(ctx, []meterbill.Event{with(func(e *meterbill.Event) { e.Account = 99 }), tt.event})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Ingest = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "batch index 1") {
				t.Errorf("error %q does not name the event's index", err)
			}
			u, qerr := m.Query(ctx, 99, calls, meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)})
			if qerr != nil {
				t.Fatal(qerr)
			}
			wantStored := "1" // the good event is account 99's only one
			if tt.wantErr != nil {
				wantStored = "0"
				if res != (meterbill.IngestResult{}) {
					t.Errorf("refused batch reported %+v", res)
				}
			}
			if got := u.Value.String(); got != wantStored {
				t.Errorf("account 99 has %s events, want %s", got, wantStored)
			}
		})
	}
}

func TestQueryRejects(t *testing.T) {
	april := meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}
	tests := []struct {
		name    string
		metric  meterbill.Metric
		period  meterbill.Period
		wantErr error
	}{
		{name: "undefined metric", metric: seats, period: april, wantErr: meterbill.ErrUnknownMetric},
		{name: "metric queried with another definition", metric: meterbill.Metric{Code: calls.Code, Period: meterbill.Day}, period: april, wantErr: meterbill.ErrMetricConflict},
		{name: "empty period", metric: calls, period: meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 4, 1)}, wantErr: meterbill.ErrInvalidPeriod},
		{name: "reversed period", metric: calls, period: meterbill.Period{Start: date(2026, 5, 1), End: date(2026, 4, 1)}, wantErr: meterbill.ErrInvalidPeriod},
		{name: "zero period", metric: calls, wantErr: meterbill.ErrInvalidPeriod},
		{name: "invalid metric", metric: meterbill.Metric{Code: "x"}, period: april, wantErr: meterbill.ErrInvalidMetric},
		{name: "before 2000-02", metric: calls, period: meterbill.Period{Start: date(2000, 1, 1), End: date(2000, 3, 1)}, wantErr: meterbill.ErrInvalidPeriod},
		{name: "after 2200", metric: calls, period: meterbill.Period{Start: date(2199, 12, 1), End: date(2200, 2, 1)}, wantErr: meterbill.ErrInvalidPeriod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := meterbill.NewMemoryMeter()
			if err := m.Define(context.Background(), calls); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Query(context.Background(), 1, tt.metric, tt.period); !errors.Is(err, tt.wantErr) {
				t.Errorf("Query = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestBatchLimits(t *testing.T) {
	ctx := context.Background()
	m := meterbill.NewMemoryMeter()
	if err := m.Define(ctx, calls); err != nil {
		t.Fatal(err)
	}
	batch := func(n, propsEach int) []meterbill.Event {
		es := make([]meterbill.Event, n)
		for i := range es {
			es[i] = meterbill.Event{Account: 1, Metric: calls.Code, Value: meterbill.Units(1), Time: date(2026, 4, 2).Add(time.Duration(i))}
			for p := range propsEach {
				es[i].Properties = append(es[i].Properties, meterbill.Property{Key: fmt.Sprint("k", p), Value: "v"})
			}
		}
		return es
	}
	tests := []struct {
		name    string
		events  []meterbill.Event
		wantErr error
	}{
		{name: "1024 events", events: batch(1024, 0)},
		{name: "1025 events: the server would ignore the last", events: batch(1025, 0), wantErr: meterbill.ErrInvalidEvent},
		{name: "1025 properties across the batch", events: batch(5, 205), wantErr: meterbill.ErrInvalidEvent},
		{name: "1020 properties across the batch", events: batch(4, 255)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Ingest(ctx, tt.events)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Ingest = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestDefineRefusesContradictionsInOneCall(t *testing.T) {
	d := meterbill.Metric{Code: "d", Aggregation: meterbill.Sum, Period: meterbill.Day}
	w := meterbill.Metric{Code: "d", Aggregation: meterbill.Max, Period: meterbill.Week}
	m := meterbill.NewMemoryMeter()
	if err := m.Define(context.Background(), d, w); !errors.Is(err, meterbill.ErrMetricConflict) {
		t.Errorf("Define(d, w) = %v, want ErrMetricConflict", err)
	}
	if err := m.Define(context.Background(), d, d); err != nil {
		t.Errorf("Define(d, d) = %v, want nil: the same definition twice agrees", err)
	}
}

func TestInvalidMetricHasNoWindow(t *testing.T) {
	bad := meterbill.Metric{Code: "x"} // no period type: FIXED, refused
	if w := bad.Window(meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}); w != (meterbill.Period{}) {
		t.Errorf("Window of an invalid metric = %s, want the zero Period", w)
	}
	if b := (meterbill.Metric{Code: "x", Period: meterbill.Calendar, CycleDay: 300}).Bucket(date(2026, 4, 1)); b != (meterbill.Period{}) {
		t.Errorf("Bucket with cycle day 300 = %s, want the zero Period", b)
	}
}

func TestCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := meterbill.NewMemoryMeter()
	if err := m.Define(ctx, calls); !errors.Is(err, context.Canceled) {
		t.Errorf("Define = %v, want context.Canceled", err)
	}
	if _, err := m.Ingest(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Ingest = %v, want context.Canceled", err)
	}
	if _, err := m.Query(ctx, 1, calls, meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Query = %v, want context.Canceled", err)
	}
}

func TestMetricBucketAndWindow(t *testing.T) {
	tests := []struct {
		name   string
		metric meterbill.Metric
		t      time.Time
		want   meterbill.Period
	}{
		{name: "calendar cycle 15 before the cycle day", metric: storage, t: at(2026, 1, 5, 3, 0), want: meterbill.Period{Start: date(2025, 12, 15), End: date(2026, 1, 15)}},
		{name: "calendar leap february", metric: calls, t: at(2024, 2, 29, 23, 0), want: meterbill.Period{Start: date(2024, 2, 1), End: date(2024, 3, 1)}},
		{name: "day", metric: peak, t: at(2026, 4, 17, 23, 59), want: meterbill.Period{Start: date(2026, 4, 17), End: date(2026, 4, 18)}},
		{name: "iso week across a year end", metric: gauge, t: at(2026, 1, 1, 12, 0), want: meterbill.Period{Start: date(2025, 12, 29), End: date(2026, 1, 5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.metric.Bucket(tt.t)
			if diff := cmp.Diff(tt.want.String(), got.String()); diff != "" {
				t.Errorf("Bucket mismatch (-want +got):\n%s", diff)
			}
			if w := tt.metric.Window(got); w != got {
				t.Errorf("Window of a whole bucket = %s, want it unchanged", w)
			}
		})
	}
}

func TestConcurrentIngestAndQuery(t *testing.T) {
	ctx := context.Background()
	m := meterbill.NewMemoryMeter()
	if err := m.Define(ctx, calls); err != nil {
		t.Fatal(err)
	}
	const goroutines, perG = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				ev := meterbill.Event{Account: uint64(i%4 + 1), Metric: calls.Code, Value: meterbill.Units(1), Time: date(2026, 4, 2).Add(time.Duration(g*perG + i))}
				if _, err := m.Ingest(ctx, []meterbill.Event{ev}); err != nil {
					t.Error(err)
					return
				}
				if _, err := m.Query(ctx, ev.Account, calls, meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if err := m.Define(ctx, calls); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	total := 0
	for acct := uint64(1); acct <= 4; acct++ {
		u, err := m.Query(ctx, acct, calls, meterbill.Period{Start: date(2026, 4, 1), End: date(2026, 5, 1)})
		if err != nil {
			t.Fatal(err)
		}
		n, _ := u.Value.Micros64()
		total += int(n / 1e6)
	}
	if total != goroutines*perG {
		t.Errorf("stored %d events, want %d", total, goroutines*perG)
	}
}
