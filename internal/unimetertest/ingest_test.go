package unimetertest_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill/internal/unimeter"
	"github.com/meterbill/meterbill/internal/unimetertest"
)

func TestIngestAndQuery(t *testing.T) {
	const acct = 42
	h := int64(time.Hour)
	calendar := func(code string, agg unimeter.AggType) unimeter.Schema {
		return unimeter.Schema{Code: code, Agg: agg, Period: unimeter.PeriodCalendar, CycleDay: 1}
	}
	tests := []struct {
		name       string
		schema     unimeter.Schema
		events     []unimeter.Event
		start, end int64
		wantStatus unimeter.Status
		wantResult unimeter.IngestResult
		want       unimeter.AggValue
	}{
		{
			name:       "count",
			schema:     calendar("api_calls", unimeter.AggCount),
			events:     []unimeter.Event{ev("api_calls", acct, april10, 1), ev("api_calls", acct, april10+1, 1), ev("api_calls", acct, april10+2, 1)},
			start:      april,
			end:        may,
			wantResult: unimeter.IngestResult{Stored: 3, LastOffset: 3},
			want:       unimeter.AggValue{Count: 3},
		},
		{
			name:       "sum",
			schema:     calendar("gb", unimeter.AggSum),
			events:     []unimeter.Event{ev("gb", acct, april10, 1_000_000), ev("gb", acct, april10+h, 2_500_000)},
			start:      april,
			end:        may,
			wantResult: unimeter.IngestResult{Stored: 2, LastOffset: 2},
			want:       unimeter.AggValue{SumLo: 3_500_000},
		},
		{
			name:       "max",
			schema:     calendar("peak", unimeter.AggMax),
			events:     []unimeter.Event{ev("peak", acct, april10, 5), ev("peak", acct, april10+h, 9), ev("peak", acct, april10+2*h, 7)},
			start:      april,
			end:        may,
			wantResult: unimeter.IngestResult{Stored: 3, LastOffset: 3},
			want:       unimeter.AggValue{Max: 9},
		},
		{
			name:       "latest ignores older readings",
			schema:     calendar("seats", unimeter.AggLatest),
			events:     []unimeter.Event{ev("seats", acct, april10, 5), ev("seats", acct, april10+2*h, 7), ev("seats", acct, april10+h, 9)},
			start:      april,
			end:        may,
			wantResult: unimeter.IngestResult{Stored: 3, LastOffset: 3},
			want:       unimeter.AggValue{LastValue: 7, LastTimestamp: april10 + 2*h},
		},
		{
			name:   "count unique with a removal",
			schema: calendar("users", unimeter.AggCountUnique),
			events: []unimeter.Event{
				ev("users", acct, april10, 1), ev("users", acct, april10+1, 2), ev("users", acct, april10+2, 2),
				ev("users", acct, april10+3, 3), {Metric: "users", Account: acct, Timestamp: april10 + 4, Value: 3, Op: unimeter.OpRemove},
			},
			start:      april,
			end:        may,
			wantResult: unimeter.IngestResult{Stored: 5, LastOffset: 5},
			want:       unimeter.AggValue{Count: 2},
		},
		{
			name:       "zero timestamps take the clock plus the index",
			schema:     calendar("api_calls", unimeter.AggLatest),
			events:     []unimeter.Event{ev("api_calls", acct, 0, 1), ev("api_calls", acct, 0, 1)},
			start:      april,
			end:        may,
			wantResult: unimeter.IngestResult{Stored: 2, LastOffset: 2},
			want:       unimeter.AggValue{LastValue: 1, LastTimestamp: now + 1},
		},
		{
			name:       "window widened to the whole day",
			schema:     unimeter.Schema{Code: "api_calls", Agg: unimeter.AggCount, Period: unimeter.PeriodDay},
			events:     []unimeter.Event{ev("api_calls", acct, april10, 1), ev("api_calls", acct, april10+20*h, 1)},
			start:      april10 + h,
			end:        april10 + 2*h,
			wantResult: unimeter.IngestResult{Stored: 2, LastOffset: 2},
			want:       unimeter.AggValue{Count: 1},
		},
		{
			name:       "other accounts and periods excluded",
			schema:     calendar("api_calls", unimeter.AggCount),
			events:     []unimeter.Event{ev("api_calls", acct, april10, 1), ev("api_calls", acct+256, april10, 1), ev("api_calls", acct, april-1, 1)},
			start:      april,
			end:        may,
			wantResult: unimeter.IngestResult{Stored: 3, LastOffset: 3},
			want:       unimeter.AggValue{Count: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := start(t, unimetertest.Options{})
			cl := dial(t, c.Addrs()[0])
			cl.putMetric(tt.schema)
			status, res := cl.ingest(unimeter.PartitionAll, tt.events...)
			if status != tt.wantStatus {
				t.Errorf("ingest status = %v, want %v", status, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantResult, res); diff != "" {
				t.Errorf("ingest result (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, cl.query(acct, tt.schema.Code, tt.start, tt.end)); diff != "" {
				t.Errorf("USAGE_QUERY (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, c.Query(0, acct, tt.schema.Code, tt.start, tt.end)); diff != "" {
				t.Errorf("Cluster.Query (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIngestStatus(t *testing.T) {
	const acct = 7
	e1 := ev("api_calls", acct, april10, 1)
	e2 := ev("api_calls", acct, april10+1, 1)
	unknown := ev("nope", acct, april10, 1)
	type step struct {
		events     []unimeter.Event
		wantStatus unimeter.Status
		wantResult unimeter.IngestResult
	}
	tests := []struct {
		name      string
		steps     []step
		wantCount uint64 // api_calls in April afterwards
	}{
		{
			name: "resent event is a duplicate",
			steps: []step{
				{events: []unimeter.Event{e1}, wantStatus: unimeter.StatusOK, wantResult: unimeter.IngestResult{Stored: 1, LastOffset: 1}},
				{events: []unimeter.Event{e1}, wantStatus: unimeter.StatusDuplicate, wantResult: unimeter.IngestResult{Duplicates: 1, LastOffset: 1}},
			},
			wantCount: 1,
		},
		{
			name: "partly duplicate batch is OK",
			steps: []step{
				{events: []unimeter.Event{e1}, wantStatus: unimeter.StatusOK, wantResult: unimeter.IngestResult{Stored: 1, LastOffset: 1}},
				{events: []unimeter.Event{e1, e2}, wantStatus: unimeter.StatusOK, wantResult: unimeter.IngestResult{Stored: 1, Duplicates: 1, LastOffset: 2}},
			},
			wantCount: 2,
		},
		{
			name: "duplicate within one batch",
			steps: []step{
				{events: []unimeter.Event{e1, e1}, wantStatus: unimeter.StatusOK, wantResult: unimeter.IngestResult{Stored: 1, Duplicates: 1, LastOffset: 1}},
			},
			wantCount: 1,
		},
		{
			name: "unknown metric is stored but not aggregated, and its resend is a duplicate",
			steps: []step{
				{events: []unimeter.Event{unknown}, wantStatus: unimeter.StatusUnknownMetric, wantResult: unimeter.IngestResult{Stored: 1, LastOffset: 1}},
				{events: []unimeter.Event{unknown}, wantStatus: unimeter.StatusDuplicate, wantResult: unimeter.IngestResult{Duplicates: 1, LastOffset: 1}},
			},
		},
		{
			name: "known and unknown in one batch",
			steps: []step{
				{events: []unimeter.Event{e1, unknown}, wantStatus: unimeter.StatusUnknownMetric, wantResult: unimeter.IngestResult{Stored: 2, LastOffset: 2}},
			},
			wantCount: 1,
		},
		{
			name: "empty batch",
			steps: []step{
				{events: nil, wantStatus: unimeter.StatusOK, wantResult: unimeter.IngestResult{}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := start(t, unimetertest.Options{})
			cl := dial(t, c.Addrs()[0])
			cl.putMetric(unimeter.Schema{Code: "api_calls", Agg: unimeter.AggCount, Period: unimeter.PeriodCalendar})
			for i, s := range tt.steps {
				status, res := cl.ingest(unimeter.PartitionAll, s.events...)
				if status != s.wantStatus {
					t.Errorf("step %d: status = %v, want %v", i, status, s.wantStatus)
				}
				if diff := cmp.Diff(s.wantResult, res); diff != "" {
					t.Errorf("step %d: result (-want +got):\n%s", i, diff)
				}
			}
			want := unimeter.AggValue{Count: tt.wantCount}
			if diff := cmp.Diff(want, cl.query(acct, "api_calls", april, may)); diff != "" {
				t.Errorf("api_calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(unimeter.AggValue{}, cl.query(acct, "nope", april, may)); diff != "" {
				t.Errorf("unknown metric (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIngestFirst1024Events(t *testing.T) {
	const total = 1100
	c := start(t, unimetertest.Options{})
	cl := dial(t, c.Addrs()[0])
	cl.putMetric(unimeter.Schema{Code: "api_calls", Agg: unimeter.AggCount, Period: unimeter.PeriodCalendar})

	// The codec refuses more than 1024 events, so build the payload by hand from one event.
	one := ingestPayload(t, ev("api_calls", 1, april10, 1))[unimeter.IngestHeaderSize:]
	p := binary.LittleEndian.AppendUint32(nil, total)
	p = binary.LittleEndian.AppendUint32(p, 0)
	for i := range total {
		e := append([]byte(nil), one...)
		binary.LittleEndian.PutUint64(e[72:], uint64(april10+int64(i))) // timestamp
		p = append(p, e...)
	}
	r := cl.call(unimeter.PacketIngestAsync, unimeter.PartitionAll, p)
	if r.Status != unimeter.StatusOK {
		t.Fatalf("status = %v, want OK", r.Status)
	}
	want := unimeter.IngestResult{Stored: unimeter.MaxEvents, LastOffset: unimeter.MaxEvents}
	if diff := cmp.Diff(want, ingestResult(t, r)); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(unimeter.AggValue{Count: unimeter.MaxEvents}, cl.query(1, "api_calls", april, may)); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
}

func TestIngestUndecodableBody(t *testing.T) {
	c := start(t, unimetertest.Options{})
	cl := dial(t, c.Addrs()[0])
	// event_count 1 but no event: the body is read, then refused.
	p := binary.LittleEndian.AppendUint32(nil, 1)
	p = binary.LittleEndian.AppendUint32(p, 0)
	if r := cl.call(unimeter.PacketIngestSync, unimeter.PartitionAll, p); r.Status != unimeter.StatusErr || len(r.Payload) != 0 {
		t.Fatalf("reply = %v with %d bytes, want ERR without payload", r.Status, len(r.Payload))
	}
	// The body was consumed: the connection is still in step.
	if r := cl.call(unimeter.PacketMetricList, unimeter.PartitionAll, nil); r.Status != unimeter.StatusOK {
		t.Fatalf("next request: status %v, want OK", r.Status)
	}
}

func TestFilteredQueryAnswersZeros(t *testing.T) {
	c := start(t, unimetertest.Options{})
	cl := dial(t, c.Addrs()[0])
	cl.putMetric(unimeter.Schema{
		Code: "compute", Agg: unimeter.AggSum, Period: unimeter.PeriodCalendar,
		Filters: []unimeter.Filter{{Key: "region", Values: []string{"us", "eu"}}},
	})
	e := ev("compute", 3, april10, 100)
	e.Props = []unimeter.Prop{{Key: "region", Value: "us"}}
	if status, _ := cl.ingest(unimeter.PartitionAll, e); status != unimeter.StatusOK {
		t.Fatalf("ingest status %v", status)
	}
	tests := []struct {
		name    string
		filters []unimeter.Dim
		want    unimeter.AggValue
	}{
		{name: "unfiltered", want: unimeter.AggValue{SumLo: 100}},
		{name: "filtered (no dimension aggregates in the fake)", filters: []unimeter.Dim{{Key: "region", Value: "us"}}, want: unimeter.AggValue{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dial(t, c.Addrs()[0]).queryWith(unimeter.UsageQuery{Account: 3, Metric: "compute", Start: april, End: may, Filters: tt.filters})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestUsageRealtime(t *testing.T) {
	c := start(t, unimetertest.Options{})
	cl := dial(t, c.Addrs()[0])
	cl.putMetric(unimeter.Schema{Code: "api_calls", Agg: unimeter.AggCount, Period: unimeter.PeriodDay})
	day := int64(24 * time.Hour)
	cl.ingest(unimeter.PartitionAll, ev("api_calls", 9, now-1, 1), ev("api_calls", 9, now-day, 1), ev("api_calls", 9, 0, 1))
	tests := []struct {
		name   string
		metric string
		want   unimeter.AggValue
	}{
		{name: "bucket of now", metric: "api_calls", want: unimeter.AggValue{Count: 2}}, // now-1 and the zero timestamp (now+2), not yesterday
		{name: "unknown metric", metric: "nope", want: unimeter.AggValue{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := unimeter.AppendUsageRealtime(nil, unimeter.RealtimeQuery{Account: 9, Metric: tt.metric})
			if err != nil {
				t.Fatal(err)
			}
			r := dial(t, c.Addrs()[0]).call(unimeter.PacketUsageRealtime, unimeter.PartitionAll, p)
			if r.Status != unimeter.StatusOK {
				t.Fatalf("status %v", r.Status)
			}
			got, err := unimeter.DecodeAggValue(r.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestBreakdown(t *testing.T) {
	c := start(t, unimetertest.Options{})
	cl := dial(t, c.Addrs()[0])
	cl.putMetric(unimeter.Schema{
		Code: "compute", Agg: unimeter.AggSum, Period: unimeter.PeriodCalendar,
		Filters: []unimeter.Filter{{Key: "region", Values: []string{"us", "eu"}}},
	})
	tests := []struct {
		name       string
		metric     string
		groupBy    []string
		wantStatus unimeter.Status
	}{
		{name: "declared key: empty reply", metric: "compute", groupBy: []string{"region"}, wantStatus: unimeter.StatusOK},
		{name: "undeclared key", metric: "compute", groupBy: []string{"tier"}, wantStatus: unimeter.StatusErr},
		{name: "unknown metric", metric: "nope", groupBy: []string{"region"}, wantStatus: unimeter.StatusErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := unimeter.AppendBreakdownQuery(nil, &unimeter.BreakdownQuery{Account: 1, Metric: tt.metric, Start: april, End: may, GroupBy: tt.groupBy})
			if err != nil {
				t.Fatal(err)
			}
			r := dial(t, c.Addrs()[0]).call(unimeter.PacketUsageQueryBreakdown, unimeter.PartitionAll, p)
			if r.Status != tt.wantStatus || len(r.Payload) != 0 {
				t.Errorf("reply = %v with %d bytes, want %v with none", r.Status, len(r.Payload), tt.wantStatus)
			}
		})
	}
}

func TestMetricListAndDelete(t *testing.T) {
	c := start(t, unimetertest.Options{})
	cl := dial(t, c.Addrs()[0])
	compute := unimeter.Schema{
		Code: "compute_seconds", Agg: unimeter.AggSum, Recurring: true, FieldName: "seconds",
		Filters:    []unimeter.Filter{{Key: "provider", Values: []string{"aws", "gcp", "azure"}}},
		Thresholds: []unimeter.Threshold{{Code: "soft_cap", Value: 100000}},
		Period:     unimeter.PeriodCalendar, CycleDay: 15,
	}
	calls := unimeter.Schema{Code: "api_calls", Agg: unimeter.AggCount}
	cl.putMetric(compute)
	cl.putMetric(calls)
	if diff := cmp.Diff([]unimeter.Schema{calls, compute}, cl.metricList()); diff != "" {
		t.Errorf("after put (-want +got):\n%s", diff)
	}

	calls.Agg = unimeter.AggMax // upsert
	cl.putMetric(calls)
	if diff := cmp.Diff([]unimeter.Schema{calls, compute}, cl.metricList()); diff != "" {
		t.Errorf("after upsert (-want +got):\n%s", diff)
	}

	for _, code := range []string{"compute_seconds", "absent"} { // deleting an absent code is OK
		p, err := unimeter.AppendMetricDelete(nil, code)
		if err != nil {
			t.Fatal(err)
		}
		if r := cl.call(unimeter.PacketMetricDelete, unimeter.PartitionAll, p); r.Status != unimeter.StatusOK {
			t.Errorf("METRIC_DELETE %s: status %v", code, r.Status)
		}
	}
	if diff := cmp.Diff([]unimeter.Schema{calls}, cl.metricList()); diff != "" {
		t.Errorf("after delete (-want +got):\n%s", diff)
	}
	if status, _ := cl.ingest(unimeter.PartitionAll, ev("compute_seconds", 1, april10, 5)); status != unimeter.StatusUnknownMetric {
		t.Errorf("ingest of a deleted metric: status %v, want UNKNOWN_METRIC", status)
	}
}

func TestNoWeek(t *testing.T) {
	monday := time.Date(2026, 4, 13, 8, 0, 0, 0, time.UTC).UnixNano()
	sunday := time.Date(2026, 4, 12, 8, 0, 0, 0, time.UTC).UnixNano() // previous ISO week, same 30-day window
	nextMonday := time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC).UnixNano()
	tests := []struct {
		name       string
		noWeek     bool
		wantPeriod unimeter.PeriodType
		wantCount  uint64 // events in [Monday, next Monday)
	}{
		{name: "week supported", wantPeriod: unimeter.PeriodWeek, wantCount: 1},
		{name: "server predates WEEK", noWeek: true, wantPeriod: unimeter.PeriodFixed, wantCount: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := start(t, unimetertest.Options{NoWeek: tt.noWeek})
			cl := dial(t, c.Addrs()[0])
			cl.putMetric(unimeter.Schema{Code: "weekly", Agg: unimeter.AggCount, Period: unimeter.PeriodWeek})
			want := []unimeter.Schema{{Code: "weekly", Agg: unimeter.AggCount, Period: tt.wantPeriod}}
			if diff := cmp.Diff(want, cl.metricList()); diff != "" {
				t.Errorf("METRIC_LIST (-want +got):\n%s", diff)
			}
			cl.ingest(unimeter.PartitionAll, ev("weekly", 1, monday, 1), ev("weekly", 1, sunday, 1))
			if diff := cmp.Diff(unimeter.AggValue{Count: tt.wantCount}, cl.query(1, "weekly", monday, nextMonday)); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPipelining(t *testing.T) {
	c := start(t, unimetertest.Options{})
	cl := dial(t, c.Addrs()[0])
	put, err := unimeter.AppendMetricPut(nil, &unimeter.Schema{Code: "api_calls", Agg: unimeter.AggCount, Period: unimeter.PeriodCalendar})
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	b = append(b, frame(t, unimeter.PacketMetricPut, unimeter.PartitionAll, 10, put)...)
	b = append(b, frame(t, unimeter.PacketIngestSync, unimeter.PartitionAll, 11, ingestPayload(t, ev("api_calls", 5, april10, 1)))...)
	b = append(b, frame(t, unimeter.PacketUsageQuery, unimeter.PartitionAll, 12, queryPayload(t, unimeter.UsageQuery{Account: 5, Metric: "api_calls", Start: april, End: may}))...)
	cl.write(b) // all three in one write

	type got struct {
		ID     uint32
		Status unimeter.Status
	}
	var ids []got
	var replies []reply
	for range 3 {
		r := cl.recv()
		ids = append(ids, got{ID: r.ID, Status: r.Status})
		replies = append(replies, r)
	}
	want := []got{{10, unimeter.StatusOK}, {11, unimeter.StatusOK}, {12, unimeter.StatusOK}}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Fatalf("replies (-want +got):\n%s", diff)
	}
	v, err := unimeter.DecodeAggValue(replies[2].Payload)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(unimeter.AggValue{Count: 1}, v); diff != "" {
		t.Errorf("query answered after the ingest (-want +got):\n%s", diff)
	}
}

func TestAlertAndEventStubs(t *testing.T) {
	tests := []struct {
		name        string
		typ         unimeter.PacketType
		payload     []byte
		wantStatus  unimeter.Status
		wantPayload []byte
	}{
		{name: "alert push enable", typ: unimeter.PacketAlertPushEnable, wantStatus: unimeter.StatusOK, wantPayload: []byte{}},
		{name: "events list is empty", typ: unimeter.PacketEventsList, payload: make([]byte, 24), wantStatus: unimeter.StatusOK, wantPayload: make([]byte, 8)},
		{name: "events list too short", typ: unimeter.PacketEventsList, payload: make([]byte, 16), wantStatus: unimeter.StatusErr, wantPayload: []byte{}},
		{name: "alerts list is empty", typ: unimeter.PacketAlertsList, payload: make([]byte, 16), wantStatus: unimeter.StatusOK, wantPayload: make([]byte, 8)},
		{name: "alerts list too short", typ: unimeter.PacketAlertsList, payload: make([]byte, 8), wantStatus: unimeter.StatusErr, wantPayload: []byte{}},
	}
	c := start(t, unimetertest.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dial(t, c.Addrs()[0]).call(tt.typ, unimeter.PartitionAll, tt.payload)
			if r.Status != tt.wantStatus {
				t.Errorf("status %v, want %v", r.Status, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantPayload, r.Payload); diff != "" {
				t.Errorf("payload (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDiscard: with Discard, every well-formed ingest is acknowledged as stored, a re-send too
// (nothing is remembered), nothing is aggregated, and a malformed one is still refused.
func TestDiscard(t *testing.T) {
	c := start(t, unimetertest.Options{Discard: true})
	cl := dial(t, c.Addrs()[0])
	cl.putMetric(unimeter.Schema{Code: "api_calls", Agg: unimeter.AggCount, Period: unimeter.PeriodCalendar})
	for range 2 {
		status, res := cl.ingest(unimeter.PartitionAll, ev("api_calls", 5, april10, 1), ev("api_calls", 5, april10+1, 1))
		if status != unimeter.StatusOK || res.Stored != 2 || res.Duplicates != 0 {
			t.Errorf("ingest: %v %+v, want OK with 2 stored", status, res)
		}
	}
	if diff := cmp.Diff(unimeter.AggValue{}, cl.query(5, "api_calls", april, may)); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
	if r := cl.call(unimeter.PacketIngestSync, unimeter.PartitionAll, []byte{1, 0, 0, 0, 0, 0, 0, 0}); r.Status != unimeter.StatusErr {
		t.Errorf("malformed ingest: %v, want ERR", r.Status)
	}
}
