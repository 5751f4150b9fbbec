package unimeter

import (
	"strconv"
	"testing"
)

// benchEvents returns n events with props props each.
func benchEvents(n, props int) []Event {
	ev := make([]Event, n)
	for i := range ev {
		ev[i] = Event{Metric: "api_calls", Account: uint64(i), Timestamp: int64(i + 1), Value: 1_000_000}
		for j := range props {
			ev[i].Props = append(ev[i].Props, Prop{Key: "key" + strconv.Itoa(j), Value: "value"})
		}
	}
	return ev
}

func BenchmarkAppendIngest(b *testing.B) {
	for _, bc := range []struct {
		name  string
		props int
	}{
		{name: "100 events no props", props: 0},
		{name: "100 events 2 props", props: 2},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ev := benchEvents(100, bc.props)
			n, err := IngestSize(ev)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = AppendIngest(buf[:0], ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestAppendIngestAllocs(t *testing.T) {
	for _, props := range []int{0, 2} {
		ev := benchEvents(100, props)
		buf := make([]byte, 0, MaxPayload)
		var err error
		allocs := testing.AllocsPerRun(100, func() {
			buf, err = AppendIngest(buf[:0], ev)
		})
		if err != nil {
			t.Fatal(err)
		}
		if allocs != 0 {
			t.Errorf("AppendIngest with %d props per event: %v allocs per run, want 0", props, allocs)
		}
	}
}
