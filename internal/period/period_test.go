package period

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ns(y int, m time.Month, d, h int) int64 {
	return time.Date(y, m, d, h, 0, 0, 0, time.UTC).UnixNano()
}

func TestIDMatchesServer(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		ts   int64
		want uint32
	}{
		// The server's own test values (aggregators.zig), given there as raw seconds.
		{name: "calendar 2026-04-17 cycle 1", spec: Spec{Calendar, 1}, ts: 1_776_384_000 * 1e9, want: 315},
		{name: "calendar 2026-04-17 cycle 15", spec: Spec{Calendar, 15}, ts: 1_776_384_000 * 1e9, want: 315},
		{name: "calendar 2026-04-10 cycle 15", spec: Spec{Calendar, 15}, ts: 1_775_779_200 * 1e9, want: 314},
		// The server's test names this 2026-01-05 but its timestamp is 2026-01-01; pin both.
		{name: "calendar 2026-01-01 cycle 15 wraps to december", spec: Spec{Calendar, 15}, ts: 1_767_225_600 * 1e9, want: 311},
		{name: "calendar 2026-01-05 cycle 15 wraps to december", spec: Spec{Calendar, 15}, ts: ns(2026, 1, 5, 0), want: 311},
		{name: "calendar 2024-02-29 leap day", spec: Spec{Calendar, 1}, ts: 1_709_164_800 * 1e9, want: 289},
		{name: "day 2026-04-17", spec: Spec{Day, 0}, ts: 1_776_384_000 * 1e9, want: 20560},
		{name: "day just before midnight", spec: Spec{Day, 0}, ts: DayNanos - 1, want: 0},
		{name: "day at midnight", spec: Spec{Day, 0}, ts: DayNanos, want: 1},
		{name: "cycle day 0 reads as 1", spec: Spec{Calendar, 0}, ts: ns(2026, 4, 1, 0), want: 315},
		{name: "non-positive timestamp", spec: Spec{Calendar, 1}, ts: -5, want: 0},
		{name: "calendar before 2000 clamps to 0", spec: Spec{Calendar, 1}, ts: ns(1999, 12, 31, 23), want: 0},
		{name: "calendar 2000-01-01", spec: Spec{Calendar, 1}, ts: ns(2000, 1, 1, 0), want: 0},
		{name: "calendar 2000-02-01", spec: Spec{Calendar, 1}, ts: ns(2000, 2, 1, 0), want: 1},
		// Month ends and year boundaries.
		{name: "last ns of 2025", spec: Spec{Calendar, 1}, ts: ns(2026, 1, 1, 0) - 1, want: 311},
		{name: "first ns of 2026", spec: Spec{Calendar, 1}, ts: ns(2026, 1, 1, 0), want: 312},
		{name: "jan 31 cycle 28", spec: Spec{Calendar, 28}, ts: ns(2026, 1, 31, 12), want: 312},
		{name: "feb 27 cycle 28 is january's period", spec: Spec{Calendar, 28}, ts: ns(2026, 2, 27, 23), want: 312},
		{name: "feb 28 cycle 28", spec: Spec{Calendar, 28}, ts: ns(2026, 2, 28, 0), want: 313},
		{name: "leap feb 29 cycle 28", spec: Spec{Calendar, 28}, ts: ns(2028, 2, 29, 0), want: 337},
		{name: "mar 1 cycle 1 after leap day", spec: Spec{Calendar, 1}, ts: ns(2024, 3, 1, 0), want: 290},
		// ISO weeks: 2026-01-01 is a Thursday; its week began Monday 2025-12-29.
		{name: "week of epoch", spec: Spec{Week, 0}, ts: 1, want: 0},
		{name: "first monday after epoch", spec: Spec{Week, 0}, ts: ns(1970, 1, 5, 0), want: 1},
		{name: "sunday before", spec: Spec{Week, 0}, ts: ns(1970, 1, 5, 0) - 1, want: 0},
		{name: "thursday 2026-01-01 with monday 2025-12-29", spec: Spec{Week, 0}, ts: ns(2026, 1, 1, 0), want: Spec{Week, 0}.ID(ns(2025, 12, 29, 0))},
		{name: "fixed 30 days", spec: Spec{Fixed, 0}, ts: 30*DayNanos + 1, want: 1},
		{name: "unknown type buckets as fixed", spec: Spec{Type(9), 0}, ts: 30*DayNanos + 1, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.spec.ID(tt.ts); got != tt.want {
				t.Errorf("ID(%d) = %d, want %d", tt.ts, got, tt.want)
			}
		})
	}
}

func TestBoundaries(t *testing.T) {
	tests := []struct {
		name      string
		spec      Spec
		ts        int64
		wantStart int64
		wantEnd   int64
	}{
		{name: "calendar cycle 1", spec: Spec{Calendar, 1}, ts: ns(2026, 4, 17, 5), wantStart: ns(2026, 4, 1, 0), wantEnd: ns(2026, 5, 1, 0)},
		{name: "calendar cycle 15 before cycle day", spec: Spec{Calendar, 15}, ts: ns(2026, 4, 10, 0), wantStart: ns(2026, 3, 15, 0), wantEnd: ns(2026, 4, 15, 0)},
		{name: "calendar december to january", spec: Spec{Calendar, 15}, ts: ns(2026, 1, 5, 0), wantStart: ns(2025, 12, 15, 0), wantEnd: ns(2026, 1, 15, 0)},
		{name: "calendar leap february", spec: Spec{Calendar, 1}, ts: ns(2024, 2, 29, 23), wantStart: ns(2024, 2, 1, 0), wantEnd: ns(2024, 3, 1, 0)},
		{name: "calendar cycle 28 in february", spec: Spec{Calendar, 28}, ts: ns(2026, 3, 1, 0), wantStart: ns(2026, 2, 28, 0), wantEnd: ns(2026, 3, 28, 0)},
		{name: "day", spec: Spec{Day, 0}, ts: ns(2026, 4, 17, 13), wantStart: ns(2026, 4, 17, 0), wantEnd: ns(2026, 4, 18, 0)},
		{name: "week thursday", spec: Spec{Week, 0}, ts: ns(2026, 1, 1, 10), wantStart: ns(2025, 12, 29, 0), wantEnd: ns(2026, 1, 5, 0)},
		{name: "week monday midnight", spec: Spec{Week, 0}, ts: ns(2026, 11, 23, 0), wantStart: ns(2026, 11, 23, 0), wantEnd: ns(2026, 11, 30, 0)},
		{name: "week sunday last ns", spec: Spec{Week, 0}, ts: ns(2026, 11, 30, 0) - 1, wantStart: ns(2026, 11, 23, 0), wantEnd: ns(2026, 11, 30, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.spec.ID(tt.ts)
			got := [2]time.Time{time.Unix(0, tt.spec.Start(id)).UTC(), time.Unix(0, tt.spec.End(id)).UTC()}
			want := [2]time.Time{time.Unix(0, tt.wantStart).UTC(), time.Unix(0, tt.wantEnd).UTC()}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("bucket bounds mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWindowWidensOutward pins the server's query rule (research §3.2): bucket(start) through
// bucket(end-1), every whole bucket in between.
func TestWindowWidensOutward(t *testing.T) {
	tests := []struct {
		name       string
		spec       Spec
		start, end int64
		wantFrom   int64
		wantTo     int64
	}{
		{name: "calendar cycle 15 queried with a calendar month", spec: Spec{Calendar, 15}, start: ns(2026, 4, 1, 0), end: ns(2026, 5, 1, 0), wantFrom: ns(2026, 3, 15, 0), wantTo: ns(2026, 5, 15, 0)},
		{name: "calendar cycle 15 queried on its own boundaries", spec: Spec{Calendar, 15}, start: ns(2026, 4, 15, 0), end: ns(2026, 5, 15, 0), wantFrom: ns(2026, 4, 15, 0), wantTo: ns(2026, 5, 15, 0)},
		{name: "fixed april 2026", spec: Spec{Fixed, 0}, start: ns(2026, 4, 1, 0), end: ns(2026, 5, 1, 0), wantFrom: ns(2026, 3, 8, 0), wantTo: ns(2026, 5, 7, 0)},
		{name: "day sub-day window", spec: Spec{Day, 0}, start: ns(2026, 4, 17, 5), end: ns(2026, 4, 17, 6), wantFrom: ns(2026, 4, 17, 0), wantTo: ns(2026, 4, 18, 0)},
		{name: "end equal start is bucket of start", spec: Spec{Day, 0}, start: ns(2026, 4, 17, 5), end: ns(2026, 4, 17, 5), wantFrom: ns(2026, 4, 17, 0), wantTo: ns(2026, 4, 18, 0)},
		{name: "week spanning two weeks", spec: Spec{Week, 0}, start: ns(2026, 11, 25, 0), end: ns(2026, 12, 1, 0), wantFrom: ns(2026, 11, 23, 0), wantTo: ns(2026, 12, 7, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to := tt.spec.Window(tt.start, tt.end)
			got := [2]time.Time{time.Unix(0, from).UTC(), time.Unix(0, to).UTC()}
			want := [2]time.Time{time.Unix(0, tt.wantFrom).UTC(), time.Unix(0, tt.wantTo).UTC()}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("window mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRoundTrip checks, for every bucket from 2000 to 2100, that Start is aligned, belongs to its
// own id, and the nanosecond before it belongs to the previous id.
func TestRoundTrip(t *testing.T) {
	specs := []Spec{{Calendar, 1}, {Calendar, 15}, {Calendar, 28}, {Day, 0}, {Week, 0}, {Fixed, 0}}
	stop := ns(2100, 1, 1, 0)
	for _, s := range specs {
		t.Run(s.Type.String(), func(t *testing.T) {
			for id := s.ID(ns(2000, 3, 1, 0)); s.Start(id) < stop; id++ {
				start := s.Start(id)
				if got := s.ID(start); got != id {
					t.Fatalf("ID(Start(%d)) = %d", id, got)
				}
				if got := s.ID(start - 1); got != id-1 {
					t.Fatalf("ID(Start(%d)-1) = %d, want %d", id, got, id-1)
				}
				if !s.Aligned(start) || s.Aligned(start+1) {
					t.Fatalf("Aligned wrong around bucket %d", id)
				}
			}
		})
	}
}

func FuzzID(f *testing.F) {
	f.Add(int64(1_776_384_000e9), uint8(1), uint8(15))
	f.Add(int64(1), uint8(3), uint8(0))
	f.Add(int64(-1), uint8(2), uint8(0))
	stop := ns(2200, 1, 1, 0)
	f.Fuzz(func(t *testing.T, ts int64, typ, cycle uint8) {
		s := Spec{Type(typ % 4), cycle%28 + 1}
		id := s.ID(ts)
		if ts < ns(2000, 2, 1, 0) || ts >= stop {
			return
		}
		if start, end := s.Start(id), s.End(id); ts < start || ts >= end {
			t.Fatalf("%v: ts %d outside its bucket %d [%d, %d)", s, ts, id, start, end)
		}
	})
}

func BenchmarkID(b *testing.B) {
	for _, s := range []Spec{{Calendar, 15}, {Day, 0}, {Week, 0}} {
		b.Run(s.Type.String(), func(b *testing.B) {
			ts := ns(2026, 4, 17, 5)
			var sink uint32
			for i := 0; b.Loop(); i++ {
				sink += s.ID(ts + int64(i))
			}
			_ = sink
		})
	}
}
