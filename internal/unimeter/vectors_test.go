package unimeter

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// unhex decodes hex with any whitespace removed; it panics on bad input (test data only).
func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// zeros returns n zero bytes.
func zeros(n int) []byte { return make([]byte, n) }

// cat concatenates byte slices into a new slice.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// field returns s NUL-padded to width bytes.
func field(s string, width int) []byte {
	b := make([]byte, width)
	copy(b, s)
	return b
}

// Test vectors of research/unimeter.md §8, as bytes.
var (
	vec1RequestHeader  = unhex("01eeffc00100ffff640000002a000000")
	vec2RequestHeader  = unhex("01eeffc0013005006000000007000000")
	vec3ResponseHeader = unhex("000000002a00000038000000")
	vec4Ingest         = unhex(`
		01000000000000006170695f63616c6c73000000000000000000000000000000
		0000000000000000000000000000000000000000000000000000000000000000
		00000000000000002a0000000000000000000000000000000100000000000000
		0000000000000000`)
	vec5Ingest = unhex(`
		0100000001000000636f6d707574650000000000000000000000000000000000
		0000000000000000000000000000000000000000000000000000000000000000
		0000000000000000010000000000000000000000000000006400000000000000
		0001000000000000726567696f6e000000000000000000000000000000000000
		000000000000000075732d656173740000000000000000000000000000000000
		0000000000000000000000000000000000000000000000000000000000000000
		0000000000000000`)
	vec6IngestResult = unhex("0a00000002000000e703000000000000")
	vec7AggValue     = unhex(`
		881300000000000000000000000000000a00000000000000f401000000000000
		6400000000000000d2029649000000000000000000000000`)
	vec8MetricPut    = cat(unhex("6170695f63616c6c730000000000000000000000000000000000000000000000"), zeros(148-32))
	vec9MetricDelete = cat(unhex("6170695f63616c6c73"), zeros(55))
	vec10UsageQuery  = unhex(`
		2a00000000000000e803000000000000d0070000000000006170695f63616c6c
		7300000000000000000000000000000000000000000000000000000000000000
		0000000000000000000000000000000000000000000000000000000000000000`)
	vec11UsageRealtime = cat(unhex("2a00000000000000"), unhex("6170695f63616c6c73"), zeros(55))
	vec12Breakdown     = unhex(`
		2a0000000000000040420f000000000080841e00000000006170695f63616c6c
		7300000000000000000000000000000000000000000000000000000000000000
		0000000000000000000000000000000000000000000000000200000000000000
		6d6f64656c000000000000000000000000000000000000000000000000000000
		746f6b656e5f7479706500000000000000000000000000000000000000000000`)
	vec13MetricPut  = vector13()
	vec14UsageQuery = vector14()
)

// vector13 builds §8 vector 13 from the offsets it states; every other byte is zero.
func vector13() []byte {
	b := make([]byte, 488)
	copy(b[0:], "compute_seconds")
	copy(b[64:], []byte{0x01, 0x00, 0x01, 0x00})
	copy(b[132:], "provider")
	b[164] = 3
	copy(b[168:], "aws")
	copy(b[200:], "gcp")
	copy(b[232:], "azure")
	b[424] = 1
	copy(b[432:], "soft_cap")
	copy(b[464:], unhex("a086010000000000"))
	b[472] = 0
	copy(b[480:], unhex("0101000000000000"))
	return b
}

// vector14 builds §8 vector 14: vector 10's base with code "compute_seconds" and one filter.
func vector14() []byte {
	b := make([]byte, 388)
	copy(b, vec10UsageQuery[:24])
	copy(b[24:], "compute_seconds")
	b[88] = 1
	copy(b[96:], "provider")
	b[128] = 1
	copy(b[132:], "aws")
	return b
}

var vec13Schema = Schema{
	Code:       "compute_seconds",
	Agg:        AggSum,
	Filters:    []Filter{{Key: "provider", Values: []string{"aws", "gcp", "azure"}}},
	Thresholds: []Threshold{{Code: "soft_cap", Value: 100000}},
	Period:     PeriodCalendar,
	CycleDay:   1,
}

func TestVectors(t *testing.T) {
	tests := []struct {
		name   string
		encode func() ([]byte, error)
		want   []byte
		// decode decodes the vector; value is what it must return.
		decode func([]byte) (any, error)
		value  any
	}{
		{
			name: "1 request header INGEST_ASYNC",
			encode: func() ([]byte, error) {
				return AppendRequestHeader(nil, RequestHeader{Type: PacketIngestAsync, Partition: PartitionAll, PayloadLen: 100, RequestID: 42})
			},
			want:   vec1RequestHeader,
			decode: func(p []byte) (any, error) { return DecodeRequestHeader(p) },
			value:  RequestHeader{Type: PacketIngestAsync, Partition: PartitionAll, PayloadLen: 100, RequestID: 42},
		},
		{
			name: "2 request header USAGE_QUERY",
			encode: func() ([]byte, error) {
				return AppendRequestHeader(nil, RequestHeader{Type: PacketUsageQuery, Partition: 5, PayloadLen: 96, RequestID: 7})
			},
			want:   vec2RequestHeader,
			decode: func(p []byte) (any, error) { return DecodeRequestHeader(p) },
			value:  RequestHeader{Type: PacketUsageQuery, Partition: 5, PayloadLen: 96, RequestID: 7},
		},
		{
			name: "3 response header",
			encode: func() ([]byte, error) {
				return AppendResponseHeader(nil, ResponseHeader{Status: StatusOK, RequestID: 42, PayloadLen: 56})
			},
			want:   vec3ResponseHeader,
			decode: func(p []byte) (any, error) { return DecodeResponseHeader(p) },
			value:  ResponseHeader{Status: StatusOK, RequestID: 42, PayloadLen: 56},
		},
		{
			name: "4 ingest one event no props",
			encode: func() ([]byte, error) {
				return AppendIngest(nil, []Event{{Metric: "api_calls", Account: 42, Value: 1}})
			},
			want:   vec4Ingest,
			decode: func(p []byte) (any, error) { return DecodeIngest(p) },
			value:  []Event{{Metric: "api_calls", Account: 42, Value: 1}},
		},
		{
			name: "5 ingest one event one prop",
			encode: func() ([]byte, error) {
				return AppendIngest(nil, []Event{{Metric: "compute", Account: 1, Value: 100, Props: []Prop{{Key: "region", Value: "us-east"}}}})
			},
			want:   vec5Ingest,
			decode: func(p []byte) (any, error) { return DecodeIngest(p) },
			value:  []Event{{Metric: "compute", Account: 1, Value: 100, Props: []Prop{{Key: "region", Value: "us-east"}}}},
		},
		{
			name: "6 ingest result",
			encode: func() ([]byte, error) {
				return AppendIngestResult(nil, IngestResult{Stored: 10, Duplicates: 2, LastOffset: 999}), nil
			},
			want:   vec6IngestResult,
			decode: func(p []byte) (any, error) { return DecodeIngestResult(p) },
			value:  IngestResult{Stored: 10, Duplicates: 2, LastOffset: 999},
		},
		{
			name: "7 agg value",
			encode: func() ([]byte, error) {
				return AppendAggValue(nil, AggValue{SumLo: 5000, Count: 10, Max: 500, LastValue: 100, LastTimestamp: 1234567890}), nil
			},
			want:   vec7AggValue,
			decode: func(p []byte) (any, error) { return DecodeAggValue(p) },
			value:  AggValue{SumLo: 5000, Count: 10, Max: 500, LastValue: 100, LastTimestamp: 1234567890},
		},
		{
			name:   "8 metric put defaults",
			encode: func() ([]byte, error) { return AppendMetricPut(nil, &Schema{Code: "api_calls", Agg: AggCount}) },
			want:   vec8MetricPut,
			decode: func(p []byte) (any, error) { return DecodeMetricPut(p) },
			value:  Schema{Code: "api_calls", Agg: AggCount},
		},
		{
			name:   "9 metric delete",
			encode: func() ([]byte, error) { return AppendMetricDelete(nil, "api_calls") },
			want:   vec9MetricDelete,
			decode: func(p []byte) (any, error) { return DecodeMetricDelete(p) },
			value:  "api_calls",
		},
		{
			name: "10 usage query",
			encode: func() ([]byte, error) {
				return AppendUsageQuery(nil, &UsageQuery{Account: 42, Start: 1000, End: 2000, Metric: "api_calls"})
			},
			want:   vec10UsageQuery,
			decode: func(p []byte) (any, error) { return DecodeUsageQuery(p) },
			value:  UsageQuery{Account: 42, Start: 1000, End: 2000, Metric: "api_calls"},
		},
		{
			name: "11 usage realtime",
			encode: func() ([]byte, error) {
				return AppendUsageRealtime(nil, RealtimeQuery{Account: 42, Metric: "api_calls"})
			},
			want:   vec11UsageRealtime,
			decode: func(p []byte) (any, error) { return DecodeUsageRealtime(p) },
			value:  RealtimeQuery{Account: 42, Metric: "api_calls"},
		},
		{
			name: "12 breakdown query",
			encode: func() ([]byte, error) {
				return AppendBreakdownQuery(nil, &BreakdownQuery{Account: 42, Start: 1_000_000, End: 2_000_000, Metric: "api_calls", GroupBy: []string{"model", "token_type"}})
			},
			want:   vec12Breakdown,
			decode: func(p []byte) (any, error) { return DecodeBreakdownQuery(p) },
			value:  BreakdownQuery{Account: 42, Start: 1_000_000, End: 2_000_000, Metric: "api_calls", GroupBy: []string{"model", "token_type"}},
		},
		{
			name:   "13 metric put README example",
			encode: func() ([]byte, error) { return AppendMetricPut(nil, &vec13Schema) },
			want:   vec13MetricPut,
			decode: func(p []byte) (any, error) { return DecodeMetricPut(p) },
			value:  vec13Schema,
		},
		{
			name: "14 usage query with filter",
			encode: func() ([]byte, error) {
				return AppendUsageQuery(nil, &UsageQuery{Account: 42, Start: 1000, End: 2000, Metric: "compute_seconds", Filters: []Dim{{Key: "provider", Value: "aws"}}})
			},
			want:   vec14UsageQuery,
			decode: func(p []byte) (any, error) { return DecodeUsageQuery(p) },
			value:  UsageQuery{Account: 42, Start: 1000, End: 2000, Metric: "compute_seconds", Filters: []Dim{{Key: "provider", Value: "aws"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.encode()
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("encode mismatch (-want +got):\n%s\nwant %x\ngot  %x", diff, tt.want, got)
			}
			v, err := tt.decode(tt.want)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(tt.value, v); diff != "" {
				t.Errorf("decode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVectorOffsets checks the individual bytes and offsets §8 states, independently of the
// whole-vector comparison above.
func TestVectorOffsets(t *testing.T) {
	put, err := AppendMetricPut(nil, &vec13Schema)
	if err != nil {
		t.Fatal(err)
	}
	q, err := AppendUsageQuery(nil, &UsageQuery{Account: 42, Start: 1000, End: 2000, Metric: "compute_seconds", Filters: []Dim{{Key: "provider", Value: "aws"}}})
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := AppendRequestHeader(nil, RequestHeader{Type: PacketIngestAsync, Partition: PartitionAll, PayloadLen: 100, RequestID: 42})
	if err != nil {
		t.Fatal(err)
	}
	ing, err := AppendIngest(nil, []Event{{Metric: "compute", Account: 1, Value: 100, Props: []Prop{{Key: "region", Value: "us-east"}}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		buf  []byte
		off  int
		want []byte
	}{
		{name: "header magic on the wire", buf: hdr, off: 0, want: []byte{0x01, 0xee, 0xff, 0xc0}},
		{name: "ingest per-event props_count byte 97", buf: ing, off: 97, want: []byte{0x01}},
		{name: "ingest prop key at 104", buf: ing, off: 104, want: field("region", 32)},
		{name: "ingest prop value at 136", buf: ing, off: 136, want: field("us-east", 64)},
		{name: "metric put bytes 64..67", buf: put, off: 64, want: []byte{0x01, 0x00, 0x01, 0x00}},
		{name: "metric put filter key at 132", buf: put, off: 132, want: field("provider", 32)},
		{name: "metric put value_count at 164", buf: put, off: 164, want: []byte{3}},
		{name: "metric put aws at 168", buf: put, off: 168, want: field("aws", 32)},
		{name: "metric put gcp at 200", buf: put, off: 200, want: field("gcp", 32)},
		{name: "metric put azure at 232", buf: put, off: 232, want: field("azure", 32)},
		{name: "metric put thresholds count at 424", buf: put, off: 424, want: []byte{1}},
		{name: "metric put soft_cap at 432", buf: put, off: 432, want: field("soft_cap", 32)},
		{name: "metric put threshold value at 464", buf: put, off: 464, want: unhex("a086010000000000")},
		{name: "metric put threshold recurring at 472", buf: put, off: 472, want: []byte{0}},
		{name: "metric put period section at 480", buf: put, off: 480, want: unhex("0101000000000000")},
		{name: "usage query filters_count at 88", buf: q, off: 88, want: []byte{1}},
		{name: "usage query filter key at 96", buf: q, off: 96, want: field("provider", 32)},
		{name: "usage query value_count at 128", buf: q, off: 128, want: []byte{1}},
		{name: "usage query value slot 0 at 132", buf: q, off: 132, want: field("aws", 32)},
		{name: "usage query other slots zero", buf: q, off: 164, want: zeros(7 * 32)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.off+len(tt.want) > len(tt.buf) {
				t.Fatalf("buffer of %d bytes too short for offset %d", len(tt.buf), tt.off)
			}
			if diff := cmp.Diff(tt.want, tt.buf[tt.off:tt.off+len(tt.want)]); diff != "" {
				t.Errorf("bytes at %d (-want +got):\n%s", tt.off, diff)
			}
		})
	}
}

// TestOtherFacts pins §8 item 15 and the sizes of §1.18.
func TestOtherFacts(t *testing.T) {
	if got := Partition(12345); got != 57 {
		t.Errorf("Partition(12345) = %d, want 57", got)
	}
	if got := Partition(256); got != 0 {
		t.Errorf("Partition(256) = %d, want 0", got)
	}
	// 2^70 + 12345 as u128: hi = 2^6, lo = 12345.
	e := []BreakdownEntry{{Dims: []Dim{{Key: "model", Value: "gpt"}}, Value: AggValue{SumLo: 12345, SumHi: 1 << 6}}}
	b, err := AppendBreakdown(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 320 {
		t.Errorf("breakdown entry is %d bytes, want 320", len(b))
	}
	got, err := DecodeBreakdown(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("u128 sum round trip (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		name      string
		got, want int
	}{
		{name: "RequestHeaderSize", got: RequestHeaderSize, want: 16},
		{name: "ResponseHeaderSize", got: ResponseHeaderSize, want: 12},
		{name: "MaxPayload", got: MaxPayload, want: 196_616},
		{name: "MaxPayload formula", got: MaxPayload, want: 8 + 1024*96 + 1024*96},
		{name: "WireEventSize", got: WireEventSize, want: 96},
		{name: "PropPairSize", got: PropPairSize, want: 96},
		{name: "SchemaBaseSize", got: SchemaBaseSize, want: 132},
		{name: "FilterSize", got: FilterSize, want: 292},
		{name: "ThresholdSize", got: ThresholdSize, want: 48},
		{name: "MinSchemaSize", got: MinSchemaSize, want: 148},
		{name: "AggValueSize", got: AggValueSize, want: 56},
		{name: "BreakdownEntrySize", got: BreakdownEntrySize, want: 320},
		{name: "MaxBreakdownEntries", got: MaxBreakdownEntries, want: 614},
		{name: "PartitionMapSize", got: PartitionMapSize, want: 24_576},
		{name: "ClusterStatusSize", got: ClusterStatusSize, want: 2_088},
		{name: "RedirectSize", got: RedirectSize, want: 24},
		{name: "MetricDeleteSize", got: MetricDeleteSize, want: 64},
		{name: "UsageRealtimeSize", got: UsageRealtimeSize, want: 72},
		{name: "UsageQueryBaseSize", got: UsageQueryBaseSize, want: 96},
		{name: "beAgg offset", got: beAgg, want: 264},
		{name: "beValues offset", got: beValues, want: 136},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}
