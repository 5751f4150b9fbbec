// Package period is Unimeter's bucket arithmetic, written once: which bucket (period id) a timestamp
// falls in for each period type, where a bucket starts and ends, and how a query window [start, end)
// widens to whole buckets. The embedded meter, the invoice window and the fake cluster all use it, so
// they agree with each other and with the server (src/aggstore/aggregators.zig).
//
// All times are Unix nanoseconds, UTC. Ids follow the server exactly:
//   - Fixed: floor(ts / 30 days), epoch aligned.
//   - Calendar: (year-2000)*12 + (month-1) of the UTC date, where a day before the cycle day belongs
//     to the previous month.
//   - Day: floor(ts / 1 day).
//   - Week: ISO weeks, Monday 00:00 UTC; id = floor((days since epoch + 3) / 7), so id 0 is the week
//     of Monday 1969-12-29. The examined server has no WEEK bucketing (it falls back to Fixed for
//     unknown types); ids never travel on the wire, only boundaries do, and those are ISO weeks.
//
// As on the server, a timestamp <= 0 is in bucket 0, and a Calendar date before 2000 is in bucket 0.
package period

import "time"

// Type is a metric's period type, numbered as on the wire (METRIC_PUT's period_type byte).
type Type uint8

// The period types. Fixed is here because the server falls back to it for unknown types; meterbill
// never bills on it.
const (
	Fixed    Type = 0
	Calendar Type = 1
	Day      Type = 2
	Week     Type = 3
)

// String returns the lower-case name of t, or "unknown" for a value the server treats as Fixed.
func (t Type) String() string {
	switch t {
	case Fixed:
		return "fixed"
	case Calendar:
		return "calendar"
	case Day:
		return "day"
	case Week:
		return "week"
	}
	return "unknown"
}

// Durations in nanoseconds.
const (
	DayNanos   int64 = 24 * 60 * 60 * 1e9
	WeekNanos        = 7 * DayNanos
	FixedNanos       = 30 * DayNanos
)

// weekOffsetDays is how many days the Monday starting week 0 lies before the epoch (a Thursday).
const weekOffsetDays = 3

// Spec is a metric's bucketing: its period type and, for Calendar, the billing-cycle day.
type Spec struct {
	Type     Type
	CycleDay uint8 // Calendar only; 0 is read as 1, as on the server
}

func (s Spec) cycleDay() int {
	if s.CycleDay == 0 {
		return 1
	}
	return int(s.CycleDay)
}

// ID returns the bucket id of timestamp ts, exactly as the server computes it. Unknown types bucket
// as Fixed.
func (s Spec) ID(ts int64) uint32 {
	if ts <= 0 {
		return 0
	}
	switch s.Type {
	case Calendar:
		y, m, d := time.Unix(0, ts).UTC().Date()
		month := int(m)
		if d < s.cycleDay() {
			month--
			if month < 1 {
				month = 12
				y--
			}
		}
		id := (y-2000)*12 + (month - 1)
		if id < 0 {
			return 0
		}
		return uint32(id)
	case Day:
		return uint32(ts / DayNanos)
	case Week:
		return uint32((ts/DayNanos + weekOffsetDays) / 7)
	default:
		return uint32(ts / FixedNanos)
	}
}

// Start returns the first nanosecond of bucket id. For ids whose start lies past year 2262 the
// result overflows; callers keep timestamps well inside that range.
func (s Spec) Start(id uint32) int64 {
	switch s.Type {
	case Calendar:
		y := 2000 + int(id/12)
		m := time.Month(id%12 + 1)
		return time.Date(y, m, s.cycleDay(), 0, 0, 0, 0, time.UTC).UnixNano()
	case Day:
		return int64(id) * DayNanos
	case Week:
		return (int64(id)*7 - weekOffsetDays) * DayNanos
	default:
		return int64(id) * FixedNanos
	}
}

// End returns the first nanosecond after bucket id (the next bucket's start).
func (s Spec) End(id uint32) int64 { return s.Start(id + 1) }

// Range returns the ids of the first and last buckets a query for [start, end) adds up, as the
// server resolves it: bucket(start) through bucket(end-1), or bucket(start) alone when end <= start.
func (s Spec) Range(start, end int64) (first, last uint32) {
	first = s.ID(start)
	if end <= start {
		return first, first
	}
	return first, s.ID(end - 1)
}

// Window returns the bucket-aligned window [from, to) a query for [start, end) actually covers:
// the window rounded outward to whole buckets.
func (s Spec) Window(start, end int64) (from, to int64) {
	first, last := s.Range(start, end)
	return s.Start(first), s.End(last)
}

// Aligned reports whether ts is the first nanosecond of its bucket.
func (s Spec) Aligned(ts int64) bool { return ts > 0 && s.Start(s.ID(ts)) == ts }
