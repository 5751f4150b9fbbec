package unimeter

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// withByte returns a copy of b with b[i] = v.
func withByte(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}

// nProps returns n props.
func nProps(n int) []Prop {
	p := make([]Prop, n)
	for i := range p {
		p[i] = Prop{Key: "k", Value: "v"}
	}
	return p
}

// schemaWith returns vector 13's schema changed by f.
func schemaWith(f func(s *Schema)) *Schema {
	s := vec13Schema
	s.Filters = []Filter{{Key: "provider", Values: []string{"aws", "gcp", "azure"}}}
	s.Thresholds = []Threshold{{Code: "soft_cap", Value: 100000}}
	f(&s)
	return &s
}

func TestEncodersRefuse(t *testing.T) {
	long64 := strings.Repeat("x", 64)
	long32 := strings.Repeat("x", 32)
	tests := []struct {
		name string
		enc  func(dst []byte) ([]byte, error)
		want error
	}{
		// Request and response headers.
		{name: "request header partition 256", enc: func(d []byte) ([]byte, error) {
			return AppendRequestHeader(d, RequestHeader{Partition: 256})
		}, want: ErrInvalid},
		{name: "request header partition 0xFFFE", enc: func(d []byte) ([]byte, error) {
			return AppendRequestHeader(d, RequestHeader{Partition: 0xFFFE})
		}, want: ErrInvalid},
		{name: "request header payload_len > MaxPayload", enc: func(d []byte) ([]byte, error) {
			return AppendRequestHeader(d, RequestHeader{PayloadLen: MaxPayload + 1})
		}, want: ErrPayloadTooLarge},
		{name: "response header payload_len > MaxPayload", enc: func(d []byte) ([]byte, error) {
			return AppendResponseHeader(d, ResponseHeader{PayloadLen: MaxPayload + 1})
		}, want: ErrPayloadTooLarge},
		// Ingest.
		{name: "ingest 1025 events", enc: func(d []byte) ([]byte, error) {
			return AppendIngest(d, make([]Event, MaxEvents+1))
		}, want: ErrTooMany},
		{name: "ingest 1025 props", enc: func(d []byte) ([]byte, error) {
			ev := maxEvents()
			ev[0].Props = nProps(2)
			return AppendIngest(d, ev)
		}, want: ErrTooMany},
		{name: "ingest 256 props on one event", enc: func(d []byte) ([]byte, error) {
			return AppendIngest(d, []Event{{Metric: "m", Props: nProps(MaxPropsPerEvent + 1)}})
		}, want: ErrTooMany},
		{name: "ingest 64-byte metric code", enc: func(d []byte) ([]byte, error) {
			return AppendIngest(d, []Event{{Metric: long64}})
		}, want: ErrTooLong},
		{name: "ingest NUL in metric code", enc: func(d []byte) ([]byte, error) {
			return AppendIngest(d, []Event{{Metric: "a\x00b"}})
		}, want: ErrNUL},
		{name: "ingest 32-byte prop key", enc: func(d []byte) ([]byte, error) {
			return AppendIngest(d, []Event{{Metric: "m", Props: []Prop{{Key: long32}}}})
		}, want: ErrTooLong},
		{name: "ingest 64-byte prop value", enc: func(d []byte) ([]byte, error) {
			return AppendIngest(d, []Event{{Metric: "m", Props: []Prop{{Key: "k", Value: long64}}}})
		}, want: ErrTooLong},
		{name: "ingest NUL in prop value", enc: func(d []byte) ([]byte, error) {
			return AppendIngest(d, []Event{{Metric: "m", Props: []Prop{{Key: "k", Value: "\x00"}}}})
		}, want: ErrNUL},
		{name: "ingest unknown op", enc: func(d []byte) ([]byte, error) {
			return AppendIngest(d, []Event{{Metric: "m", Op: 3}})
		}, want: ErrInvalid},
		// METRIC_PUT.
		{name: "metric put empty code", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, &Schema{})
		}, want: ErrEmpty},
		{name: "metric put 64-byte code", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, &Schema{Code: long64})
		}, want: ErrTooLong},
		{name: "metric put NUL in code", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, &Schema{Code: "api\x00calls"})
		}, want: ErrNUL},
		{name: "metric put 64-byte field name", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, &Schema{Code: "m", FieldName: long64})
		}, want: ErrTooLong},
		{name: "metric put unknown agg", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, &Schema{Code: "m", Agg: 5})
		}, want: ErrInvalid},
		{name: "metric put unknown period", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, &Schema{Code: "m", Period: 4})
		}, want: ErrInvalid},
		{name: "metric put cycle day 29", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, &Schema{Code: "m", CycleDay: 29})
		}, want: ErrInvalid},
		{name: "metric put 5 filters", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, schemaWith(func(s *Schema) { s.Filters = make([]Filter, 5) }))
		}, want: ErrTooMany},
		{name: "metric put 9 values", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, schemaWith(func(s *Schema) { s.Filters[0].Values = make([]string, 9) }))
		}, want: ErrTooMany},
		{name: "metric put 32-byte filter key", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, schemaWith(func(s *Schema) { s.Filters[0].Key = long32 }))
		}, want: ErrTooLong},
		{name: "metric put 32-byte filter value", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, schemaWith(func(s *Schema) { s.Filters[0].Values[2] = long32 }))
		}, want: ErrTooLong},
		{name: "metric put NUL in filter value", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, schemaWith(func(s *Schema) { s.Filters[0].Values[1] = "g\x00" }))
		}, want: ErrNUL},
		{name: "metric put 9 thresholds", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, schemaWith(func(s *Schema) { s.Thresholds = make([]Threshold, 9) }))
		}, want: ErrTooMany},
		{name: "metric put 32-byte threshold code", enc: func(d []byte) ([]byte, error) {
			return AppendMetricPut(d, schemaWith(func(s *Schema) { s.Thresholds[0].Code = long32 }))
		}, want: ErrTooLong},
		{name: "schema size 5 filters", enc: func(d []byte) ([]byte, error) {
			_, err := SchemaSize(&Schema{Code: "m", Filters: make([]Filter, 5)})
			return d, err
		}, want: ErrTooMany},
		// METRIC_DELETE and METRIC_LIST.
		{name: "metric delete empty", enc: func(d []byte) ([]byte, error) { return AppendMetricDelete(d, "") }, want: ErrEmpty},
		{name: "metric delete 64-byte code", enc: func(d []byte) ([]byte, error) { return AppendMetricDelete(d, long64) }, want: ErrTooLong},
		{name: "metric delete NUL", enc: func(d []byte) ([]byte, error) { return AppendMetricDelete(d, "\x00") }, want: ErrNUL},
		{name: "metric list bad schema", enc: func(d []byte) ([]byte, error) {
			return AppendMetricList(d, []Schema{{Code: "ok"}, {Code: long64}})
		}, want: ErrTooLong},
		{name: "metric list larger than MaxPayload", enc: func(d []byte) ([]byte, error) {
			return AppendMetricList(d, make1329Schemas())
		}, want: ErrPayloadTooLarge},
		// USAGE_QUERY.
		{name: "usage query empty metric", enc: func(d []byte) ([]byte, error) {
			return AppendUsageQuery(d, &UsageQuery{})
		}, want: ErrEmpty},
		{name: "usage query 64-byte metric", enc: func(d []byte) ([]byte, error) {
			return AppendUsageQuery(d, &UsageQuery{Metric: long64})
		}, want: ErrTooLong},
		{name: "usage query 5 filters", enc: func(d []byte) ([]byte, error) {
			return AppendUsageQuery(d, &UsageQuery{Metric: "m", Filters: []Dim{{"a", "1"}, {"b", "1"}, {"c", "1"}, {"d", "1"}, {"e", "1"}}})
		}, want: ErrTooMany},
		{name: "usage query empty filter key", enc: func(d []byte) ([]byte, error) {
			return AppendUsageQuery(d, &UsageQuery{Metric: "m", Filters: []Dim{{Value: "v"}}})
		}, want: ErrEmpty},
		{name: "usage query 32-byte filter key", enc: func(d []byte) ([]byte, error) {
			return AppendUsageQuery(d, &UsageQuery{Metric: "m", Filters: []Dim{{Key: long32, Value: "v"}}})
		}, want: ErrTooLong},
		{name: "usage query 32-byte filter value", enc: func(d []byte) ([]byte, error) {
			return AppendUsageQuery(d, &UsageQuery{Metric: "m", Filters: []Dim{{Key: "k", Value: long32}}})
		}, want: ErrTooLong},
		{name: "usage query NUL in filter value", enc: func(d []byte) ([]byte, error) {
			return AppendUsageQuery(d, &UsageQuery{Metric: "m", Filters: []Dim{{Key: "k", Value: "a\x00"}}})
		}, want: ErrNUL},
		// USAGE_REALTIME.
		{name: "realtime empty metric", enc: func(d []byte) ([]byte, error) {
			return AppendUsageRealtime(d, RealtimeQuery{Account: 1})
		}, want: ErrEmpty},
		{name: "realtime 64-byte metric", enc: func(d []byte) ([]byte, error) {
			return AppendUsageRealtime(d, RealtimeQuery{Metric: long64})
		}, want: ErrTooLong},
		{name: "realtime NUL in metric", enc: func(d []byte) ([]byte, error) {
			return AppendUsageRealtime(d, RealtimeQuery{Metric: "\x00x"})
		}, want: ErrNUL},
		// USAGE_QUERY_BREAKDOWN.
		{name: "breakdown query group-by 0", enc: func(d []byte) ([]byte, error) {
			return AppendBreakdownQuery(d, &BreakdownQuery{Metric: "m"})
		}, want: ErrEmpty},
		{name: "breakdown query group-by 5", enc: func(d []byte) ([]byte, error) {
			return AppendBreakdownQuery(d, &BreakdownQuery{Metric: "m", GroupBy: []string{"a", "b", "c", "d", "e"}})
		}, want: ErrTooMany},
		{name: "breakdown query empty key", enc: func(d []byte) ([]byte, error) {
			return AppendBreakdownQuery(d, &BreakdownQuery{Metric: "m", GroupBy: []string{"a", ""}})
		}, want: ErrEmpty},
		{name: "breakdown query 32-byte key", enc: func(d []byte) ([]byte, error) {
			return AppendBreakdownQuery(d, &BreakdownQuery{Metric: "m", GroupBy: []string{long32}})
		}, want: ErrTooLong},
		{name: "breakdown query 64-byte metric", enc: func(d []byte) ([]byte, error) {
			return AppendBreakdownQuery(d, &BreakdownQuery{Metric: long64, GroupBy: []string{"a"}})
		}, want: ErrTooLong},
		// Breakdown reply.
		{name: "breakdown 615 entries", enc: func(d []byte) ([]byte, error) {
			return AppendBreakdown(d, make([]BreakdownEntry, MaxBreakdownEntries+1))
		}, want: ErrTooMany},
		{name: "breakdown 5 dims", enc: func(d []byte) ([]byte, error) {
			return AppendBreakdown(d, []BreakdownEntry{{Dims: make([]Dim, 5)}})
		}, want: ErrTooMany},
		{name: "breakdown 32-byte dim value", enc: func(d []byte) ([]byte, error) {
			return AppendBreakdown(d, []BreakdownEntry{{Dims: []Dim{{Key: "k", Value: long32}}}})
		}, want: ErrTooLong},
		{name: "breakdown NUL in dim key", enc: func(d []byte) ([]byte, error) {
			return AppendBreakdown(d, []BreakdownEntry{{Dims: []Dim{{Key: "\x00"}}}})
		}, want: ErrNUL},
		// Cluster replies.
		{name: "partition map 25-byte address", enc: func(d []byte) ([]byte, error) {
			var m PartitionMap
			m[200].Replica1 = strings.Repeat("a", 25)
			return AppendPartitionMap(d, &m)
		}, want: ErrTooLong},
		{name: "partition map NUL in address", enc: func(d []byte) ([]byte, error) {
			var m PartitionMap
			m[0].Leader = "a\x00:1"
			return AppendPartitionMap(d, &m)
		}, want: ErrNUL},
		{name: "redirect 25-byte address", enc: func(d []byte) ([]byte, error) {
			return AppendRedirect(d, strings.Repeat("a", 25))
		}, want: ErrTooLong},
		{name: "redirect NUL in address", enc: func(d []byte) ([]byte, error) {
			return AppendRedirect(d, "h\x00:1")
		}, want: ErrNUL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]byte, 3, 1<<20)
			copy(dst, "abc")
			got, err := tt.enc(dst)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !bytes.Equal(got, []byte("abc")) {
				t.Errorf("dst changed on error: %q", got)
			}
		})
	}
}

// make1329Schemas returns one more defaults schema than fits in a METRIC_LIST reply.
func make1329Schemas() []Schema {
	s := make([]Schema, (MaxPayload-MetricListHeaderSize)/MinSchemaSize+1)
	for i := range s {
		s[i].Code = "m"
	}
	return s
}

func TestDecodersRefuse(t *testing.T) {
	// vec13 with the filter and thresholds counts changed (the rest is then misaligned).
	put := vec13MetricPut
	list, err := AppendMetricList(nil, []Schema{vec13Schema, {Code: "api_calls"}})
	if err != nil {
		t.Fatal(err)
	}
	emptyList := []byte{0, 0, 0, 0, 0, 0, 0, 0}
	entry, err := AppendBreakdown(nil, []BreakdownEntry{{Dims: []Dim{{"k", "v"}}}})
	if err != nil {
		t.Fatal(err)
	}
	pmap, err := AppendPartitionMap(nil, new(PartitionMap))
	if err != nil {
		t.Fatal(err)
	}
	status := AppendClusterStatus(nil, new(ClusterStatus))
	tests := []struct {
		name string
		dec  func() error
		want error
	}{
		// Request header.
		{name: "request header bad magic", dec: decErr(DecodeRequestHeader, withByte(vec1RequestHeader, 0, 0x02)), want: ErrBadMagic},
		{name: "request header bad version", dec: decErr(DecodeRequestHeader, withByte(vec1RequestHeader, 4, 2)), want: ErrBadVersion},
		{name: "request header bad partition", dec: decErr(DecodeRequestHeader, withByte(vec2RequestHeader, 7, 1)), want: ErrInvalid},
		{name: "request header payload_len > MaxPayload", dec: decErr(DecodeRequestHeader, withByte(vec1RequestHeader, 10, 0x04)), want: ErrPayloadTooLarge},
		{name: "request header truncated", dec: decErr(DecodeRequestHeader, vec1RequestHeader[:15]), want: ErrTruncated},
		{name: "request header over-long", dec: decErr(DecodeRequestHeader, cat(vec1RequestHeader, zeros(1))), want: ErrLength},
		// Response header.
		{name: "response header payload_len > MaxPayload", dec: decErr(DecodeResponseHeader, withByte(vec3ResponseHeader, 10, 0x04)), want: ErrPayloadTooLarge},
		{name: "response header truncated", dec: decErr(DecodeResponseHeader, vec3ResponseHeader[:11]), want: ErrTruncated},
		{name: "response header over-long", dec: decErr(DecodeResponseHeader, cat(vec3ResponseHeader, zeros(1))), want: ErrLength},
		// Ingest.
		{name: "ingest truncated header", dec: decErr(DecodeIngest, vec4Ingest[:7]), want: ErrTruncated},
		{name: "ingest truncated event", dec: decErr(DecodeIngest, vec4Ingest[:103]), want: ErrLength},
		{name: "ingest over-long", dec: decErr(DecodeIngest, cat(vec4Ingest, zeros(96))), want: ErrLength},
		{name: "ingest 1025 events", dec: decErr(DecodeIngest, []byte{0x01, 0x04, 0, 0, 0, 0, 0, 0}), want: ErrTooMany},
		{name: "ingest 1025 props", dec: decErr(DecodeIngest, []byte{0, 0, 0, 0, 0x01, 0x04, 0, 0}), want: ErrTooMany},
		{name: "ingest props without events", dec: decErr(DecodeIngest, cat([]byte{0, 0, 0, 0, 1, 0, 0, 0}, zeros(96))), want: ErrInvalid},
		{name: "ingest per-event props exceed total", dec: decErr(DecodeIngest, withByte(vec5Ingest, 97, 2)), want: ErrInvalid},
		{name: "ingest per-event props short of total", dec: decErr(DecodeIngest, withByte(vec5Ingest, 97, 0)), want: ErrInvalid},
		{name: "ingest unknown op", dec: decErr(DecodeIngest, withByte(vec4Ingest, 8+88, 3)), want: ErrInvalid},
		{name: "ingest non-zero event padding", dec: decErr(DecodeIngest, withByte(vec4Ingest, 8+95, 1)), want: ErrInvalid},
		{name: "ingest 64-byte metric code", dec: decErr(DecodeIngest, copyAt(vec4Ingest, 8, strings.Repeat("m", 64))), want: ErrTooLong},
		{name: "ingest garbage after code NUL", dec: decErr(DecodeIngest, withByte(vec4Ingest, 8+63, 'x')), want: ErrInvalid},
		{name: "ingest 32-byte prop key", dec: decErr(DecodeIngest, copyAt(vec5Ingest, 104, strings.Repeat("k", 32))), want: ErrTooLong},
		// Ingest result.
		{name: "ingest result truncated", dec: decErr(DecodeIngestResult, vec6IngestResult[:15]), want: ErrTruncated},
		{name: "ingest result over-long", dec: decErr(DecodeIngestResult, cat(vec6IngestResult, zeros(1))), want: ErrLength},
		// METRIC_PUT.
		{name: "metric put < 132 bytes", dec: decErr(DecodeMetricPut, put[:131]), want: ErrTruncated},
		{name: "metric put empty", dec: decErr(DecodeMetricPut, nil), want: ErrTruncated},
		{name: "metric put filter cut short", dec: decErr(DecodeMetricPut, put[:132+291]), want: ErrTruncated},
		{name: "metric put thresholds header cut short", dec: decErr(DecodeMetricPut, put[:132+292+7]), want: ErrTruncated},
		{name: "metric put threshold cut short", dec: decErr(DecodeMetricPut, put[:132+292+8+47]), want: ErrTruncated},
		{name: "metric put period cut short", dec: decErr(DecodeMetricPut, put[:487]), want: ErrTruncated},
		{name: "metric put over-long", dec: decErr(DecodeMetricPut, cat(put, zeros(1))), want: ErrLength},
		{name: "metric put 5 filters", dec: decErr(DecodeMetricPut, withByte(put, 66, 5)), want: ErrTooMany},
		{name: "metric put 9 values", dec: decErr(DecodeMetricPut, withByte(put, 164, 9)), want: ErrTooMany},
		{name: "metric put 9 thresholds", dec: decErr(DecodeMetricPut, withByte(put, 424, 9)), want: ErrTooMany},
		{name: "metric put empty code", dec: decErr(DecodeMetricPut, zeros(148)), want: ErrEmpty},
		{name: "metric put 64-byte code", dec: decErr(DecodeMetricPut, copyAt(put, 0, strings.Repeat("c", 64))), want: ErrTooLong},
		{name: "metric put 64-byte field name", dec: decErr(DecodeMetricPut, copyAt(put, 68, strings.Repeat("f", 64))), want: ErrTooLong},
		{name: "metric put 32-byte filter value", dec: decErr(DecodeMetricPut, copyAt(put, 168, strings.Repeat("v", 32))), want: ErrTooLong},
		{name: "metric put 32-byte threshold code", dec: decErr(DecodeMetricPut, copyAt(put, 432, strings.Repeat("t", 32))), want: ErrTooLong},
		{name: "metric put unknown agg", dec: decErr(DecodeMetricPut, withByte(put, 64, 5)), want: ErrInvalid},
		{name: "metric put recurring 2", dec: decErr(DecodeMetricPut, withByte(put, 65, 2)), want: ErrInvalid},
		{name: "metric put base padding", dec: decErr(DecodeMetricPut, withByte(put, 67, 1)), want: ErrInvalid},
		{name: "metric put filter padding", dec: decErr(DecodeMetricPut, withByte(put, 165, 1)), want: ErrInvalid},
		{name: "metric put unused value slot", dec: decErr(DecodeMetricPut, withByte(put, 264, 'x')), want: ErrInvalid},
		{name: "metric put thresholds padding", dec: decErr(DecodeMetricPut, withByte(put, 425, 1)), want: ErrInvalid},
		{name: "metric put threshold recurring 2", dec: decErr(DecodeMetricPut, withByte(put, 472, 2)), want: ErrInvalid},
		{name: "metric put threshold padding", dec: decErr(DecodeMetricPut, withByte(put, 479, 1)), want: ErrInvalid},
		{name: "metric put unknown period", dec: decErr(DecodeMetricPut, withByte(put, 480, 4)), want: ErrInvalid},
		{name: "metric put cycle day 29", dec: decErr(DecodeMetricPut, withByte(put, 481, 29)), want: ErrInvalid},
		{name: "metric put period padding", dec: decErr(DecodeMetricPut, withByte(put, 487, 1)), want: ErrInvalid},
		{name: "metric put NUL inside code", dec: decErr(DecodeMetricPut, withByte(put, 3, 0)), want: ErrInvalid},
		// METRIC_DELETE.
		{name: "metric delete truncated", dec: decErr(DecodeMetricDelete, vec9MetricDelete[:63]), want: ErrTruncated},
		{name: "metric delete over-long", dec: decErr(DecodeMetricDelete, cat(vec9MetricDelete, zeros(1))), want: ErrLength},
		{name: "metric delete empty code", dec: decErr(DecodeMetricDelete, zeros(64)), want: ErrEmpty},
		{name: "metric delete 64-byte code", dec: decErr(DecodeMetricDelete, []byte(strings.Repeat("c", 64))), want: ErrTooLong},
		{name: "metric delete garbage after NUL", dec: decErr(DecodeMetricDelete, withByte(vec9MetricDelete, 63, 'x')), want: ErrInvalid},
		// METRIC_LIST.
		{name: "metric list truncated header", dec: decErr(DecodeMetricList, emptyList[:7]), want: ErrTruncated},
		{name: "metric list count too large for length", dec: decErr(DecodeMetricList, withByte(list, 0, 3)), want: ErrLength},
		{name: "metric list count 1 without record", dec: decErr(DecodeMetricList, withByte(emptyList, 0, 1)), want: ErrLength},
		{name: "metric list huge count", dec: decErr(DecodeMetricList, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}), want: ErrLength},
		{name: "metric list count too small for length", dec: decErr(DecodeMetricList, withByte(list, 0, 1)), want: ErrLength},
		{name: "metric list trailing bytes", dec: decErr(DecodeMetricList, cat(list, zeros(1))), want: ErrLength},
		{name: "metric list record cut short", dec: decErr(DecodeMetricList, list[:len(list)-1]), want: ErrLength},
		{name: "metric list record without period", dec: decErr(DecodeMetricList, cat(cat([]byte{2, 0, 0, 0, 0, 0, 0, 0}, vec8MetricPut[:140]), vec8MetricPut)), want: ErrLength},
		{name: "metric list 5 filters", dec: decErr(DecodeMetricList, withByte(list, 8+66, 5)), want: ErrTooMany},
		{name: "metric list 9 values", dec: decErr(DecodeMetricList, withByte(list, 8+164, 9)), want: ErrTooMany},
		{name: "metric list 9 thresholds", dec: decErr(DecodeMetricList, withByte(list, 8+424, 9)), want: ErrTooMany},
		{name: "metric list 64-byte code", dec: decErr(DecodeMetricList, copyAt(list, 8, strings.Repeat("c", 64))), want: ErrTooLong},
		{name: "metric list empty code", dec: decErr(DecodeMetricList, setField(list, 8, 64)), want: ErrEmpty},
		// USAGE_QUERY.
		{name: "usage query < 88 bytes", dec: decErr(DecodeUsageQuery, vec10UsageQuery[:87]), want: ErrTruncated},
		{name: "usage query over-long", dec: decErr(DecodeUsageQuery, cat(vec10UsageQuery, zeros(1))), want: ErrLength},
		{name: "usage query over-long with filter", dec: decErr(DecodeUsageQuery, cat(vec14UsageQuery, zeros(292))), want: ErrLength},
		{name: "usage query 5 filters", dec: decErr(DecodeUsageQuery, cat(withByte(vec10UsageQuery, 88, 5), zeros(5*292))), want: ErrTooMany},
		{name: "usage query empty metric", dec: decErr(DecodeUsageQuery, setField(vec10UsageQuery, 24, 64)), want: ErrEmpty},
		{name: "usage query 64-byte metric", dec: decErr(DecodeUsageQuery, copyAt(vec10UsageQuery, 24, strings.Repeat("m", 64))), want: ErrTooLong},
		{name: "usage query padding", dec: decErr(DecodeUsageQuery, withByte(vec10UsageQuery, 95, 1)), want: ErrInvalid},
		{name: "usage query value_count 2", dec: decErr(DecodeUsageQuery, withByte(vec14UsageQuery, 128, 2)), want: ErrInvalid},
		{name: "usage query value_count 0", dec: decErr(DecodeUsageQuery, withByte(vec14UsageQuery, 128, 0)), want: ErrInvalid},
		{name: "usage query value in slot 1", dec: decErr(DecodeUsageQuery, withByte(vec14UsageQuery, 164, 'x')), want: ErrInvalid},
		{name: "usage query empty filter key", dec: decErr(DecodeUsageQuery, setField(vec14UsageQuery, 96, 32)), want: ErrEmpty},
		{name: "usage query 32-byte filter value", dec: decErr(DecodeUsageQuery, copyAt(vec14UsageQuery, 132, strings.Repeat("v", 32))), want: ErrTooLong},
		// Agg value.
		{name: "agg value truncated", dec: decErr(DecodeAggValue, vec7AggValue[:55]), want: ErrTruncated},
		{name: "agg value over-long", dec: decErr(DecodeAggValue, cat(vec7AggValue, zeros(1))), want: ErrLength},
		// USAGE_REALTIME.
		{name: "realtime truncated", dec: decErr(DecodeUsageRealtime, vec11UsageRealtime[:71]), want: ErrTruncated},
		{name: "realtime over-long", dec: decErr(DecodeUsageRealtime, cat(vec11UsageRealtime, zeros(8))), want: ErrLength},
		{name: "realtime empty metric", dec: decErr(DecodeUsageRealtime, zeros(72)), want: ErrEmpty},
		{name: "realtime 64-byte metric", dec: decErr(DecodeUsageRealtime, copyAt(vec11UsageRealtime, 8, strings.Repeat("m", 64))), want: ErrTooLong},
		{name: "realtime garbage after NUL", dec: decErr(DecodeUsageRealtime, withByte(vec11UsageRealtime, 71, 'x')), want: ErrInvalid},
		// USAGE_QUERY_BREAKDOWN.
		{name: "breakdown query < 96 bytes", dec: decErr(DecodeBreakdownQuery, vec12Breakdown[:95]), want: ErrTruncated},
		{name: "breakdown query key cut short", dec: decErr(DecodeBreakdownQuery, vec12Breakdown[:159]), want: ErrTruncated},
		{name: "breakdown query over-long", dec: decErr(DecodeBreakdownQuery, cat(vec12Breakdown, zeros(32))), want: ErrLength},
		{name: "breakdown query group-by 0", dec: decErr(DecodeBreakdownQuery, withByte(vec12Breakdown[:96], 88, 0)), want: ErrEmpty},
		{name: "breakdown query group-by 5", dec: decErr(DecodeBreakdownQuery, cat(withByte(vec12Breakdown, 88, 5), zeros(3*32))), want: ErrTooMany},
		{name: "breakdown query empty key", dec: decErr(DecodeBreakdownQuery, setField(vec12Breakdown, 128, 32)), want: ErrEmpty},
		{name: "breakdown query 32-byte key", dec: decErr(DecodeBreakdownQuery, copyAt(vec12Breakdown, 96, strings.Repeat("k", 32))), want: ErrTooLong},
		{name: "breakdown query padding", dec: decErr(DecodeBreakdownQuery, withByte(vec12Breakdown, 89, 1)), want: ErrInvalid},
		{name: "breakdown query empty metric", dec: decErr(DecodeBreakdownQuery, setField(vec12Breakdown, 24, 64)), want: ErrEmpty},
		// Breakdown reply.
		{name: "breakdown not a multiple of 320", dec: decErr(DecodeBreakdown, entry[:319]), want: ErrLength},
		{name: "breakdown over-long", dec: decErr(DecodeBreakdown, cat(entry, zeros(1))), want: ErrLength},
		{name: "breakdown 615 entries", dec: decErr(DecodeBreakdown, zeros((MaxBreakdownEntries+1)*320)), want: ErrTooMany},
		{name: "breakdown 5 dims", dec: decErr(DecodeBreakdown, withByte(entry, 0, 5)), want: ErrTooMany},
		{name: "breakdown 32-byte dim key", dec: decErr(DecodeBreakdown, copyAt(entry, 8, strings.Repeat("k", 32))), want: ErrTooLong},
		// Cluster replies.
		{name: "partition map truncated", dec: decErr(DecodePartitionMap, pmap[:PartitionMapSize-1]), want: ErrTruncated},
		{name: "partition map over-long", dec: decErr(DecodePartitionMap, cat(pmap, zeros(1))), want: ErrLength},
		{name: "cluster status truncated", dec: decErr(DecodeClusterStatus, status[:ClusterStatusSize-1]), want: ErrTruncated},
		{name: "cluster status over-long", dec: decErr(DecodeClusterStatus, cat(status, zeros(8))), want: ErrLength},
		{name: "redirect truncated", dec: decErr(DecodeRedirect, zeros(23)), want: ErrTruncated},
		{name: "redirect over-long", dec: decErr(DecodeRedirect, zeros(25)), want: ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.dec(); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// decErr returns a function that decodes p with dec and returns only the error.
func decErr[T any](dec func([]byte) (T, error), p []byte) func() error {
	return func() error {
		_, err := dec(p)
		return err
	}
}

// setField returns a copy of b with the width bytes at off zeroed (an empty string).
func setField(b []byte, off, width int) []byte {
	c := bytes.Clone(b)
	clear(c[off : off+width])
	return c
}

// copyAt returns a copy of b with s written at off.
func copyAt(b []byte, off int, s string) []byte {
	c := bytes.Clone(b)
	copy(c[off:], s)
	return c
}

// TestLenientDecoders checks that reply decoders ignore padding and bytes after NULs, and that
// an address may fill its whole field.
func TestLenientDecoders(t *testing.T) {
	redirect := []byte("abcdefghijklmnopqrst:700")
	if got, err := DecodeRedirect(redirect); err != nil || got != string(redirect) {
		t.Errorf("24-byte redirect: got %q, %v", got, err)
	}
	if got, err := DecodeRedirect(cat([]byte("h:1\x00junk"), zeros(16))); err != nil || got != "h:1" {
		t.Errorf("redirect with junk after NUL: got %q, %v", got, err)
	}
	if got, err := DecodeRedirect(zeros(24)); err != nil || got != "" {
		t.Errorf("empty redirect: got %q, %v", got, err)
	}
	pmap := zeros(PartitionMapSize)
	copy(pmap[96*7:], "leader:1\x00zz")
	copy(pmap[96*7+72:], "padding junk")
	m, err := DecodePartitionMap(pmap)
	if err != nil {
		t.Fatal(err)
	}
	if m[7].Leader != "leader:1" {
		t.Errorf("partition 7 leader = %q", m[7].Leader)
	}
	st := AppendClusterStatus(nil, &ClusterStatus{NodeID: 1})
	st[2] = 0xff // padding
	if s, err := DecodeClusterStatus(st); err != nil || s.NodeID != 1 {
		t.Errorf("cluster status with padding: %v, %v", s, err)
	}
	e, err := AppendBreakdown(nil, []BreakdownEntry{{Dims: []Dim{{"k", "v"}}}})
	if err != nil {
		t.Fatal(err)
	}
	e[1] = 0xff    // padding
	e[8+32] = 'x'  // unused key slot
	e[136+5] = 'x' // after the value's NUL
	got, err := DecodeBreakdown(e)
	if err != nil || len(got) != 1 || got[0].Dims[0] != (Dim{"k", "v"}) || len(got[0].Dims) != 1 {
		t.Errorf("lenient breakdown: %v, %v", got, err)
	}
	// A schema another client registered with values this codec would not send stays readable:
	// one foreign metric must not hide the others.
	list, err := AppendMetricList(nil, []Schema{vec13Schema})
	if err != nil {
		t.Fatal(err)
	}
	odd := withByte(withByte(withByte(list, 8+64, 9), 8+480, 9), 8+481, 31)
	if got, err := DecodeMetricList(odd); err != nil || len(got) != 1 || got[0].Agg != 9 || got[0].Period != 9 || got[0].CycleDay != 31 {
		t.Errorf("lenient metric list with unknown agg, period and cycle day: %+v, %v", got, err)
	}
	r := AppendIngestResult(nil, IngestResult{})
	h := bytes.Clone(vec3ResponseHeader)
	h[2] = 0xff // padding
	if _, err := DecodeResponseHeader(h); err != nil {
		t.Errorf("response header padding: %v", err)
	}
	if _, err := DecodeIngestResult(r); err != nil {
		t.Error(err)
	}
	// A request header with an error still returns the fields so the server can echo the id.
	rh, err := DecodeRequestHeader(withByte(vec1RequestHeader, 0, 0))
	if !errors.Is(err, ErrBadMagic) || rh.RequestID != 42 {
		t.Errorf("bad magic: %v, %v", rh, err)
	}
}
