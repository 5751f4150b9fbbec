package unimeter

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fullSchema is a schema at every cap: longest strings, 4 filters of 8 values, 8 thresholds.
func fullSchema() Schema {
	s := Schema{
		Code:      strings.Repeat("c", MaxMetricCodeLen),
		Agg:       AggCountUnique,
		Recurring: true,
		FieldName: strings.Repeat("f", MaxFieldNameLen),
		Period:    PeriodWeek,
		CycleDay:  MaxCycleDay,
	}
	for i := range MaxFilters {
		f := Filter{Key: strings.Repeat(strconv.Itoa(i), MaxDimKeyLen)}
		for j := range MaxFilterValues {
			f.Values = append(f.Values, strings.Repeat(strconv.Itoa(j), MaxDimValueLen))
		}
		s.Filters = append(s.Filters, f)
	}
	for i := range MaxThresholds {
		s.Thresholds = append(s.Thresholds, Threshold{Code: strings.Repeat("t", MaxThresholdCodeLen-i), Value: ^uint64(0) - uint64(i), Recurring: i%2 == 0})
	}
	return s
}

func TestSchemaRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		schema Schema
		size   int
	}{
		{name: "defaults", schema: Schema{Code: "api_calls"}, size: 148},
		{name: "vector 13", schema: vec13Schema, size: 132 + 292 + 8 + 48 + 8},
		{name: "filter without values", schema: Schema{Code: "x", Filters: []Filter{{Key: "k"}}}, size: 148 + 292},
		{name: "empty strings in values", schema: Schema{Code: "x", Filters: []Filter{{Key: "k", Values: []string{"", "b"}}}}, size: 148 + 292},
		{name: "day period", schema: Schema{Code: "x", Agg: AggLatest, Period: PeriodDay, Thresholds: []Threshold{{Code: "a", Value: 1, Recurring: true}}}, size: 148 + 48},
		{name: "every cap", schema: fullSchema(), size: 132 + 4*292 + 8 + 8*48 + 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := SchemaSize(&tt.schema)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.size {
				t.Errorf("SchemaSize = %d, want %d", n, tt.size)
			}
			prefix := []byte("prefix")
			b, err := AppendMetricPut(bytes.Clone(prefix), &tt.schema)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, prefix) || len(b)-len(prefix) != tt.size {
				t.Fatalf("AppendMetricPut wrote %d bytes after the prefix, want %d", len(b)-len(prefix), tt.size)
			}
			got, err := DecodeMetricPut(b[len(prefix):])
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.schema, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMetricPutShortForms checks the forms the server tolerates: no thresholds and period
// sections, or thresholds without the period section.
func TestMetricPutShortForms(t *testing.T) {
	full, err := AppendMetricPut(nil, &vec13Schema)
	if err != nil {
		t.Fatal(err)
	}
	noPeriod := vec13Schema
	noPeriod.Period, noPeriod.CycleDay = 0, 0
	bare := noPeriod
	bare.Thresholds = nil
	tests := []struct {
		name string
		in   []byte
		want Schema
	}{
		{name: "base only", in: vec8MetricPut[:SchemaBaseSize], want: Schema{Code: "api_calls"}},
		{name: "base and filters", in: full[:SchemaBaseSize+FilterSize], want: bare},
		{name: "thresholds without period", in: full[:len(full)-PeriodSectionSize], want: noPeriod},
		{name: "zero thresholds without period", in: vec8MetricPut[:SchemaBaseSize+ThresholdsHeaderSize], want: Schema{Code: "api_calls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeMetricPut(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestMetricListRoundTrip(t *testing.T) {
	// As many defaults schemas as fit: (196616 - 8) / 148 = 1328.
	var many []Schema
	for i := range (MaxPayload - MetricListHeaderSize) / MinSchemaSize {
		many = append(many, Schema{Code: "m" + strconv.Itoa(i)})
	}
	tests := []struct {
		name    string
		schemas []Schema
		size    int
	}{
		{name: "empty", schemas: nil, size: 8},
		{name: "one", schemas: []Schema{{Code: "api_calls"}}, size: 8 + 148},
		{name: "mixed", schemas: []Schema{vec13Schema, {Code: "api_calls"}, fullSchema()}, size: 8 + 488 + 148 + 132 + 4*292 + 8 + 8*48 + 8},
		{name: "fills MaxPayload", schemas: many, size: 8 + len(many)*148},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendMetricList(nil, tt.schemas)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tt.size {
				t.Errorf("len = %d, want %d", len(b), tt.size)
			}
			if got := int(le.Uint32(b)); got != len(tt.schemas) {
				t.Errorf("count = %d, want %d", got, len(tt.schemas))
			}
			got, err := DecodeMetricList(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.schemas, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMetricListLenient checks that the reply decoder ignores padding and bytes after NULs and
// reads any non-zero boolean as true.
func TestMetricListLenient(t *testing.T) {
	b, err := AppendMetricList(nil, []Schema{vec13Schema})
	if err != nil {
		t.Fatal(err)
	}
	r := 8            // record start
	b[4] = 0xff       // header padding
	b[r+65] = 7       // recurring
	b[r+67] = 0xff    // base padding
	b[r+20] = 'x'     // after the code's NUL
	b[r+164+1] = 0xff // filter padding
	b[r+168+4] = 'x'  // after "aws"
	b[r+264] = 'x'    // unused value slot
	b[r+425] = 0xff   // thresholds padding
	b[r+472] = 3      // threshold recurring
	b[r+473] = 0xff   // threshold padding
	b[r+487] = 0xff   // period padding
	got, err := DecodeMetricList(b)
	if err != nil {
		t.Fatal(err)
	}
	want := vec13Schema
	want.Recurring = true
	want.Thresholds = []Threshold{{Code: "soft_cap", Value: 100000, Recurring: true}}
	if diff := cmp.Diff([]Schema{want}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := DecodeMetricPut(b[r:]); !errors.Is(err, ErrInvalid) {
		t.Errorf("strict DecodeMetricPut of the same record: err = %v, want ErrInvalid", err)
	}
}

func TestMetricDeleteRoundTrip(t *testing.T) {
	for _, code := range []string{"a", "api_calls", strings.Repeat("z", MaxMetricCodeLen), "ünïcødé"} {
		t.Run(code, func(t *testing.T) {
			b, err := AppendMetricDelete(nil, code)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != MetricDeleteSize {
				t.Errorf("len = %d, want %d", len(b), MetricDeleteSize)
			}
			got, err := DecodeMetricDelete(b)
			if err != nil {
				t.Fatal(err)
			}
			if got != code {
				t.Errorf("got %q, want %q", got, code)
			}
		})
	}
}

func TestUsageQueryRoundTrip(t *testing.T) {
	var filters []Dim
	for i := range MaxFilters {
		filters = append(filters, Dim{Key: strings.Repeat(strconv.Itoa(i), MaxDimKeyLen), Value: strings.Repeat("v", MaxDimValueLen)})
	}
	tests := []struct {
		name string
		q    UsageQuery
		size int
	}{
		{name: "no filters", q: UsageQuery{Account: 1, Start: -5, End: 1 << 62, Metric: "m"}, size: 96},
		{name: "one filter", q: UsageQuery{Account: 42, Start: 1000, End: 2000, Metric: "compute_seconds", Filters: []Dim{{Key: "provider", Value: "aws"}}}, size: 388},
		{name: "empty value", q: UsageQuery{Metric: "m", Filters: []Dim{{Key: "k"}}}, size: 388},
		{name: "every cap", q: UsageQuery{Account: ^uint64(0), Metric: strings.Repeat("m", MaxMetricCodeLen), Filters: filters}, size: 96 + 4*292},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendUsageQuery(nil, &tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tt.size {
				t.Errorf("len = %d, want %d", len(b), tt.size)
			}
			got, err := DecodeUsageQuery(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.q, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUsageQueryShortForms checks the forms the server accepts: 88 bytes (no filters_count),
// and payloads too short for their filters (filters ignored).
func TestUsageQueryShortForms(t *testing.T) {
	base := UsageQuery{Account: 42, Start: 1000, End: 2000, Metric: "compute_seconds"}
	withCount := func(n int, count byte) []byte {
		b := bytes.Clone(vec14UsageQuery[:n])
		if n > 88 {
			b[88] = count
		}
		return b
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{name: "88 bytes", in: vec14UsageQuery[:88]},
		{name: "89 bytes with count 1", in: vec14UsageQuery[:89]},
		{name: "96 bytes with count 1", in: vec14UsageQuery[:96]},
		{name: "filter cut short", in: vec14UsageQuery[:387]},
		{name: "count 2 with one filter", in: withCount(388, 2)},
		{name: "count 9 with one filter", in: withCount(388, 9)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeUsageQuery(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(base, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAggValueRoundTrip(t *testing.T) {
	for _, v := range []AggValue{
		{},
		{SumLo: 12345, SumHi: 1 << 6, Count: 1, Max: 2, LastValue: 3, LastTimestamp: -4, AlertFlags: 0xff},
		{SumLo: ^uint64(0), SumHi: ^uint64(0), Count: ^uint64(0), Max: ^uint64(0), LastValue: ^uint64(0), LastTimestamp: -1 << 63, AlertFlags: ^uint64(0)},
	} {
		b := AppendAggValue([]byte("x"), v)
		if len(b) != 1+AggValueSize {
			t.Errorf("len = %d, want %d", len(b), 1+AggValueSize)
		}
		got, err := DecodeAggValue(b[1:])
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(v, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

func TestUsageRealtimeRoundTrip(t *testing.T) {
	for _, q := range []RealtimeQuery{{Account: 0, Metric: "a"}, {Account: ^uint64(0), Metric: strings.Repeat("m", MaxMetricCodeLen)}} {
		b, err := AppendUsageRealtime(nil, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != UsageRealtimeSize {
			t.Errorf("len = %d, want %d", len(b), UsageRealtimeSize)
		}
		got, err := DecodeUsageRealtime(b)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(q, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

func TestBreakdownQueryRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		q    BreakdownQuery
		size int
	}{
		{name: "one key", q: BreakdownQuery{Account: 1, Start: 2, End: 3, Metric: "m", GroupBy: []string{"k"}}, size: 128},
		{name: "vector 12", q: BreakdownQuery{Account: 42, Start: 1_000_000, End: 2_000_000, Metric: "api_calls", GroupBy: []string{"model", "token_type"}}, size: 160},
		{name: "four keys", q: BreakdownQuery{Metric: strings.Repeat("m", 63), GroupBy: []string{"a", "b", "c", strings.Repeat("d", MaxDimKeyLen)}}, size: 224},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendBreakdownQuery(nil, &tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tt.size {
				t.Errorf("len = %d, want %d", len(b), tt.size)
			}
			got, err := DecodeBreakdownQuery(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.q, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBreakdownRoundTrip(t *testing.T) {
	var most []BreakdownEntry
	for i := range MaxBreakdownEntries {
		most = append(most, BreakdownEntry{Dims: []Dim{{Key: "k", Value: strconv.Itoa(i)}}, Value: AggValue{Count: uint64(i)}})
	}
	four := []Dim{{"a", "1"}, {"b", "2"}, {"c", "3"}, {strings.Repeat("k", 31), strings.Repeat("v", 31)}}
	tests := []struct {
		name    string
		entries []BreakdownEntry
	}{
		{name: "none", entries: nil},
		{name: "no dims", entries: []BreakdownEntry{{Value: AggValue{Max: 9}}}},
		{name: "four dims", entries: []BreakdownEntry{{Dims: four, Value: AggValue{SumLo: 1, SumHi: 2, Count: 3, Max: 4, LastValue: 5, LastTimestamp: 6, AlertFlags: 7}}}},
		{name: "MaxBreakdownEntries", entries: most},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendBreakdown(nil, tt.entries)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != len(tt.entries)*BreakdownEntrySize {
				t.Errorf("len = %d, want %d", len(b), len(tt.entries)*BreakdownEntrySize)
			}
			if len(b) > MaxPayload {
				t.Errorf("len %d > MaxPayload", len(b))
			}
			got, err := DecodeBreakdown(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.entries, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPartitionMapRoundTrip(t *testing.T) {
	var m PartitionMap
	for p := range m {
		m[p] = PartitionEntry{Leader: "10.0.0." + strconv.Itoa(p%3) + ":7001"}
		if p%2 == 0 {
			m[p].Replica0 = "node-b:7001"
		}
		if p%5 == 0 {
			m[p].Replica1 = strings.Repeat("h", MaxAddrLen-5) + ":7001" // 24 bytes, no NUL
		}
	}
	for _, tt := range []struct {
		name string
		m    *PartitionMap
	}{
		{name: "empty (single node without --bind)", m: new(PartitionMap)},
		{name: "filled", m: &m},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendPartitionMap(nil, tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != PartitionMapSize {
				t.Errorf("len = %d, want %d", len(b), PartitionMapSize)
			}
			if tt.m[5].Replica1 != "" && !bytes.Equal(b[5*96+48:5*96+72], []byte(tt.m[5].Replica1)) {
				t.Errorf("partition 5 replica1 at %d not written in full", 5*96+48)
			}
			got, err := DecodePartitionMap(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.m, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClusterStatusRoundTrip(t *testing.T) {
	s := &ClusterStatus{NodeID: 2, Nodes: 3, WALOffset: 0, Segments: 7, MemtableEntries: 1 << 40, Uptime: 123456789}
	for p := range s.Partitions {
		s.Partitions[p] = PartitionStatus{View: uint32(p) * 1000, Commit: uint16(p), Role: uint8(p % 2), Leader: uint8(p % 3)}
	}
	b := AppendClusterStatus([]byte{0xAA}, s)
	if len(b) != 1+ClusterStatusSize {
		t.Fatalf("len = %d, want %d", len(b), 1+ClusterStatusSize)
	}
	b = b[1:]
	if b[1] != 3 || b[40+8*255+7] != uint8(255%3) {
		t.Errorf("offsets: n_nodes %d at 1, last leader %d at %d", b[1], b[40+8*255+7], 40+8*255+7)
	}
	got, err := DecodeClusterStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestRedirectRoundTrip(t *testing.T) {
	for _, addr := range []string{"", "10.0.0.2:7001", strings.Repeat("a", 19) + ":7001"} {
		b, err := AppendRedirect(nil, addr)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != RedirectSize {
			t.Errorf("len = %d, want %d", len(b), RedirectSize)
		}
		got, err := DecodeRedirect(b)
		if err != nil {
			t.Fatal(err)
		}
		if got != addr {
			t.Errorf("got %q, want %q", got, addr)
		}
	}
}

func TestHeaderAndIngestRoundTrip(t *testing.T) {
	for _, h := range []RequestHeader{
		{Type: PacketIngestSync, Partition: 0, PayloadLen: 0, RequestID: 1},
		{Type: PacketMetricList, Partition: 255, PayloadLen: MaxPayload, RequestID: ^uint32(0)},
		{Type: PacketType(0x99), Partition: PartitionAll},
	} {
		b, err := AppendRequestHeader(nil, h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRequestHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(h, got); diff != "" {
			t.Errorf("request header (-want +got):\n%s", diff)
		}
	}
	for _, h := range []ResponseHeader{{Status: StatusBackpressure, RequestID: 9, PayloadLen: MaxPayload}, {Status: Status(PacketAlertPush), PayloadLen: 144}} {
		b, err := AppendResponseHeader(nil, h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeResponseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(h, got); diff != "" {
			t.Errorf("response header (-want +got):\n%s", diff)
		}
	}
	tests := []struct {
		name   string
		events []Event
		size   int
	}{
		{name: "none", events: nil, size: 8},
		{name: "mixed props", events: []Event{
			{Metric: "a", Account: 1, Timestamp: -1, Value: 2, Op: OpAdd, Props: []Prop{{"k1", "v1"}, {"k2", strings.Repeat("v", MaxPropValueLen)}}},
			{Metric: strings.Repeat("m", MaxMetricCodeLen), Account: ^uint64(0), Op: OpRemove},
			{Metric: "c", Props: []Prop{{strings.Repeat("k", MaxPropKeyLen), ""}}},
		}, size: 8 + 3*96 + 3*96},
		{name: "max events and props", events: maxEvents(), size: MaxPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := IngestSize(tt.events)
			if err != nil {
				t.Fatal(err)
			}
			b, err := AppendIngest(nil, tt.events)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.size || len(b) != tt.size {
				t.Errorf("IngestSize = %d, len = %d, want %d", n, len(b), tt.size)
			}
			got, err := DecodeIngest(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.events, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// maxEvents returns MaxEvents events carrying MaxProps props in total (one each).
func maxEvents() []Event {
	ev := make([]Event, MaxEvents)
	for i := range ev {
		ev[i] = Event{Metric: "m", Account: uint64(i), Timestamp: int64(i + 1), Value: 1, Props: []Prop{{Key: "k", Value: strconv.Itoa(i)}}}
	}
	return ev
}
