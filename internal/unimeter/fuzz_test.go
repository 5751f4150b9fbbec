package unimeter

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Fuzz targets: no decoder panics; whatever a decoder accepts re-encodes, and decoding the
// re-encoding gives the same value. Strict request decoders also give back the input bytes
// when the input was the full form.

// addSeeds adds each seed and a few cut or extended variants of it.
func addSeeds(f *testing.F, seeds ...[]byte) {
	f.Helper()
	for _, s := range seeds {
		f.Add(s)
		if len(s) > 0 {
			f.Add(s[:len(s)-1])
		}
		f.Add(cat(s, zeros(1)))
	}
}

// sameBytes fails t if the re-encoding differs from the input.
func sameBytes(t *testing.T, in, out []byte) {
	t.Helper()
	if !bytes.Equal(in, out) {
		t.Fatalf("re-encoding differs:\nin  %x\nout %x", in, out)
	}
}

// sameValue fails t if two decoded values differ.
func sameValue(t *testing.T, want, got any) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("decode(encode(decode(in))) differs (-want +got):\n%s", diff)
	}
}

func FuzzDecodeRequestHeader(f *testing.F) {
	addSeeds(f, vec1RequestHeader, vec2RequestHeader)
	f.Fuzz(func(t *testing.T, p []byte) {
		h, err := DecodeRequestHeader(p)
		if err != nil {
			return
		}
		b, err := AppendRequestHeader(nil, h)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		sameBytes(t, p, b)
	})
}

func FuzzDecodeResponseHeader(f *testing.F) {
	addSeeds(f, vec3ResponseHeader)
	f.Fuzz(func(t *testing.T, p []byte) {
		h, err := DecodeResponseHeader(p)
		if err != nil {
			return
		}
		b, err := AppendResponseHeader(nil, h)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		h2, err := DecodeResponseHeader(b)
		if err != nil {
			t.Fatalf("decode re-encoding: %v", err)
		}
		sameValue(t, h, h2)
	})
}

func FuzzDecodeIngest(f *testing.F) {
	addSeeds(f, vec4Ingest, vec5Ingest)
	f.Fuzz(func(t *testing.T, p []byte) {
		ev, err := DecodeIngest(p)
		if err != nil {
			return
		}
		b, err := AppendIngest(nil, ev)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		sameBytes(t, p, b)
		ev2, err := DecodeIngest(b)
		if err != nil {
			t.Fatalf("decode re-encoding: %v", err)
		}
		sameValue(t, ev, ev2)
	})
}

func FuzzDecodeIngestResult(f *testing.F) {
	addSeeds(f, vec6IngestResult)
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := DecodeIngestResult(p)
		if err != nil {
			return
		}
		sameBytes(t, p, AppendIngestResult(nil, r))
	})
}

func FuzzDecodeMetricPut(f *testing.F) {
	addSeeds(f, vec8MetricPut, vec13MetricPut, vec8MetricPut[:SchemaBaseSize], vec13MetricPut[:SchemaBaseSize+FilterSize], vec13MetricPut[:480])
	f.Fuzz(func(t *testing.T, p []byte) {
		s, err := DecodeMetricPut(p)
		if err != nil {
			return
		}
		n, err := SchemaSize(&s)
		if err != nil {
			t.Fatalf("SchemaSize: %v", err)
		}
		b, err := AppendMetricPut(nil, &s)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if len(b) != n {
			t.Fatalf("SchemaSize %d, encoded %d", n, len(b))
		}
		if len(p) == n { // the full form
			sameBytes(t, p, b)
		}
		s2, err := DecodeMetricPut(b)
		if err != nil {
			t.Fatalf("decode re-encoding: %v", err)
		}
		sameValue(t, s, s2)
	})
}

func FuzzDecodeMetricDelete(f *testing.F) {
	addSeeds(f, vec9MetricDelete)
	f.Fuzz(func(t *testing.T, p []byte) {
		code, err := DecodeMetricDelete(p)
		if err != nil {
			return
		}
		b, err := AppendMetricDelete(nil, code)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		sameBytes(t, p, b)
	})
}

func FuzzDecodeMetricList(f *testing.F) {
	one, _ := AppendMetricList(nil, []Schema{vec13Schema})
	two, _ := AppendMetricList(nil, []Schema{{Code: "api_calls"}, vec13Schema})
	addSeeds(f, zeros(MetricListHeaderSize), one, two)
	f.Fuzz(func(t *testing.T, p []byte) {
		list, err := DecodeMetricList(p)
		if err != nil {
			return
		}
		for _, s := range list {
			if s.Agg > AggCountUnique || s.Period > PeriodWeek || s.CycleDay > MaxCycleDay {
				return // kept as the server sent it; the encoder refuses to send it
			}
		}
		b, err := AppendMetricList(nil, list)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if len(b) != len(p) {
			t.Fatalf("re-encoding is %d bytes, input %d", len(b), len(p))
		}
		list2, err := DecodeMetricList(b)
		if err != nil {
			t.Fatalf("decode re-encoding: %v", err)
		}
		sameValue(t, list, list2)
	})
}

func FuzzDecodeUsageQuery(f *testing.F) {
	addSeeds(f, vec10UsageQuery, vec14UsageQuery, vec10UsageQuery[:88], vec14UsageQuery[:89])
	f.Fuzz(func(t *testing.T, p []byte) {
		q, err := DecodeUsageQuery(p)
		if err != nil {
			return
		}
		b, err := AppendUsageQuery(nil, &q)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if len(p) >= UsageQueryBaseSize && len(p) == UsageQueryBaseSize+int(p[88])*FilterSize { // the full form
			sameBytes(t, p, b)
		}
		q2, err := DecodeUsageQuery(b)
		if err != nil {
			t.Fatalf("decode re-encoding: %v", err)
		}
		sameValue(t, q, q2)
	})
}

func FuzzDecodeUsageRealtime(f *testing.F) {
	addSeeds(f, vec11UsageRealtime)
	f.Fuzz(func(t *testing.T, p []byte) {
		q, err := DecodeUsageRealtime(p)
		if err != nil {
			return
		}
		b, err := AppendUsageRealtime(nil, q)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		sameBytes(t, p, b)
	})
}

func FuzzDecodeAggValue(f *testing.F) {
	addSeeds(f, vec7AggValue)
	f.Fuzz(func(t *testing.T, p []byte) {
		v, err := DecodeAggValue(p)
		if err != nil {
			return
		}
		sameBytes(t, p, AppendAggValue(nil, v))
	})
}

func FuzzDecodeBreakdownQuery(f *testing.F) {
	addSeeds(f, vec12Breakdown)
	f.Fuzz(func(t *testing.T, p []byte) {
		q, err := DecodeBreakdownQuery(p)
		if err != nil {
			return
		}
		b, err := AppendBreakdownQuery(nil, &q)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		sameBytes(t, p, b)
	})
}

func FuzzDecodeBreakdown(f *testing.F) {
	one, _ := AppendBreakdown(nil, []BreakdownEntry{{Dims: []Dim{{"model", "gpt"}, {"token_type", "input"}}, Value: AggValue{SumLo: 12345, SumHi: 64}}})
	addSeeds(f, nil, one, cat(one, one))
	f.Fuzz(func(t *testing.T, p []byte) {
		e, err := DecodeBreakdown(p)
		if err != nil {
			return
		}
		b, err := AppendBreakdown(nil, e)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if len(b) != len(p) {
			t.Fatalf("re-encoding is %d bytes, input %d", len(b), len(p))
		}
		e2, err := DecodeBreakdown(b)
		if err != nil {
			t.Fatalf("decode re-encoding: %v", err)
		}
		sameValue(t, e, e2)
	})
}

func FuzzDecodePartitionMap(f *testing.F) {
	var m PartitionMap
	m[0] = PartitionEntry{Leader: "10.0.0.1:7001", Replica0: "10.0.0.2:7001", Replica1: "abcdefghijklmnopqrst:700"}
	b, _ := AppendPartitionMap(nil, &m)
	addSeeds(f, b, zeros(PartitionMapSize))
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := DecodePartitionMap(p)
		if err != nil {
			return
		}
		b, err := AppendPartitionMap(nil, m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := DecodePartitionMap(b)
		if err != nil {
			t.Fatalf("decode re-encoding: %v", err)
		}
		sameValue(t, m, m2)
	})
}

func FuzzDecodeClusterStatus(f *testing.F) {
	s := &ClusterStatus{NodeID: 1, Nodes: 3, Segments: 4, MemtableEntries: 5, Uptime: 6}
	s.Partitions[1] = PartitionStatus{View: 7, Commit: 8, Role: RoleReplica, Leader: 2}
	addSeeds(f, AppendClusterStatus(nil, s))
	f.Fuzz(func(t *testing.T, p []byte) {
		s, err := DecodeClusterStatus(p)
		if err != nil {
			return
		}
		s2, err := DecodeClusterStatus(AppendClusterStatus(nil, s))
		if err != nil {
			t.Fatalf("decode re-encoding: %v", err)
		}
		sameValue(t, s, s2)
	})
}

func FuzzDecodeRedirect(f *testing.F) {
	addSeeds(f, field("10.0.0.2:7001", RedirectSize), zeros(RedirectSize), []byte("abcdefghijklmnopqrst:700"))
	f.Fuzz(func(t *testing.T, p []byte) {
		a, err := DecodeRedirect(p)
		if err != nil {
			return
		}
		b, err := AppendRedirect(nil, a)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		a2, err := DecodeRedirect(b)
		if err != nil {
			t.Fatalf("decode re-encoding: %v", err)
		}
		if a != a2 {
			t.Fatalf("got %q, then %q", a, a2)
		}
	})
}
