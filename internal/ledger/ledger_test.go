package ledger

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill/internal/period"
)

func ns(y int, m time.Month, d int) int64 { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).UnixNano() }

func TestBillable(t *testing.T) {
	cal1 := period.Spec{Type: period.Calendar, CycleDay: 1}
	cal15 := period.Spec{Type: period.Calendar, CycleDay: 15}
	day := period.Spec{Type: period.Day}
	week := period.Spec{Type: period.Week}
	tests := []struct {
		name       string
		spec       period.Spec
		start, end int64
		wantFrom   int64
		wantTo     int64
		wantOK     bool
	}{
		// The example: a subscription renewing on the 15th, a metric on cycle day 1.
		{name: "anchor 15 cycle 1 bills february", spec: cal1, start: ns(2026, 2, 15), end: ns(2026, 3, 15), wantFrom: ns(2026, 2, 1), wantTo: ns(2026, 3, 1), wantOK: true},
		{name: "the next invoice bills march", spec: cal1, start: ns(2026, 3, 15), end: ns(2026, 4, 15), wantFrom: ns(2026, 3, 1), wantTo: ns(2026, 4, 1), wantOK: true},
		{name: "aligned invoice bills its own month", spec: cal1, start: ns(2026, 3, 1), end: ns(2026, 4, 1), wantFrom: ns(2026, 3, 1), wantTo: ns(2026, 4, 1), wantOK: true},
		{name: "cycle 15 metric on a calendar-month invoice", spec: cal15, start: ns(2026, 3, 1), end: ns(2026, 4, 1), wantFrom: ns(2026, 2, 15), wantTo: ns(2026, 3, 15), wantOK: true},
		{name: "day metric on a monthly invoice: thirty buckets", spec: day, start: ns(2026, 4, 1), end: ns(2026, 5, 1), wantFrom: ns(2026, 4, 1), wantTo: ns(2026, 5, 1), wantOK: true},
		{name: "week metric bills weeks ending inside", spec: week, start: ns(2026, 4, 1), end: ns(2026, 5, 1), wantFrom: ns(2026, 3, 30), wantTo: ns(2026, 4, 27), wantOK: true},
		{name: "zero-length invoice bills nothing", spec: cal1, start: ns(2026, 3, 15), end: ns(2026, 3, 15)},
		{name: "mid-month manual invoice inside one bucket bills nothing", spec: cal1, start: ns(2026, 3, 10), end: ns(2026, 3, 20)},
		{name: "leap february", spec: cal1, start: ns(2024, 2, 10), end: ns(2024, 3, 10), wantFrom: ns(2024, 2, 1), wantTo: ns(2024, 3, 1), wantOK: true},
		{name: "year end", spec: cal1, start: ns(2025, 12, 20), end: ns(2026, 1, 20), wantFrom: ns(2025, 12, 1), wantTo: ns(2026, 1, 1), wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := Billable(tt.spec, tt.start, tt.end)
			var from, to int64
			if ok {
				from, to = r.Window(tt.spec)
			}
			got := []any{ok, time.Unix(0, from).UTC(), time.Unix(0, to).UTC()}
			want := []any{tt.wantOK, time.Unix(0, tt.wantFrom).UTC(), time.Unix(0, tt.wantTo).UTC()}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Billable mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUncovered(t *testing.T) {
	day := period.Spec{Type: period.Day}
	april := Run{First: day.ID(ns(2026, 4, 1)), Last: day.ID(ns(2026, 4, 30))}
	tests := []struct {
		name    string
		covered [][2]int64
		want    []Run
	}{
		{name: "nothing covered", want: []Run{april}},
		{name: "all covered", covered: [][2]int64{{ns(2026, 3, 1), ns(2026, 5, 1)}}},
		{name: "a hole in the middle", covered: [][2]int64{{ns(2026, 4, 10), ns(2026, 4, 12)}}, want: []Run{
			{First: april.First, Last: day.ID(ns(2026, 4, 9))},
			{First: day.ID(ns(2026, 4, 12)), Last: april.Last},
		}},
		{name: "a range that only partly covers a bucket covers nothing", covered: [][2]int64{{ns(2026, 4, 1) + 1, ns(2026, 5, 1)}}, want: []Run{{First: april.First, Last: april.First}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Uncovered(day, april, tt.covered)); diff != "" {
				t.Errorf("Uncovered mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeDecode(t *testing.T) {
	// 32 tiers, the most a Plan allows, with long quantities and prices: the lines record spans
	// several values.
	var lines []Line
	for tier := 1; tier <= 32; tier++ {
		lines = append(lines, Line{Tier: tier, Quantity: "123456789012.123456", UnitPrice: "0.000000000001", Amount: 9_999_999_999})
	}
	e := Entry{Account: 42, Metric: "api_calls", Period: "calendar/1", From: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Quantity: "1234.5", Tier: 2, LineQty: "234.5", UnitPrice: "0.1", Invoice: "in_1",
		Plan: "pl_0123abcd", Lines: lines}
	md, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if md[KeyLines+"_2"] == "" {
		t.Errorf("the lines record fits one value; the test wants it to span several")
	}
	if len(md) > 50 {
		t.Errorf("%d metadata keys, Stripe allows 50", len(md))
	}
	for k, v := range md {
		if len(k) > 40 || len(v) > 500 {
			t.Errorf("metadata %q=%q breaks Stripe's limits (40, 500)", k, v)
		}
	}
	got, ok, err := Decode(md)
	if err != nil || !ok {
		t.Fatalf("Decode = %v, %v", ok, err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	one := e
	one.Lines = []Line{{Tier: 0, Quantity: "1234.5", UnitPrice: "0.1", Amount: 123}}
	md, err = Encode(one)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := Decode(md); err != nil || !cmp.Equal(one, got) {
		t.Errorf("one-line round trip: %v\n%s", err, cmp.Diff(one, got))
	}
	if _, ok, err := Decode(map[string]string{"order": "7"}); ok || err != nil {
		t.Errorf("foreign item: ok=%v err=%v, want not ours", ok, err)
	}
	broken := []struct {
		name string
		key  string
		val  string
	}{
		{name: "version", key: KeyVersion, val: "9"},
		{name: "account", key: KeyAccount, val: "x"},
		{name: "zero account", key: KeyAccount, val: "0"},
		{name: "from", key: KeyFrom, val: "yesterday"},
		{name: "to before from", key: KeyTo, val: "2026-01-01T00:00:00Z"},
		{name: "tier", key: KeyTier, val: "-1"},
		{name: "metric", key: KeyMetric, val: ""},
		{name: "lines: too few fields", key: KeyLines, val: "1:100:0"},
		{name: "lines: tiers out of order", key: KeyLines, val: "2:100:0:0;1:5:1:5"},
		{name: "lines: amount", key: KeyLines, val: "1:100:0:x"},
	}
	for _, tt := range broken {
		t.Run(tt.name, func(t *testing.T) {
			bad, _ := Encode(e)
			delete(bad, KeyLines+"_2")
			delete(bad, KeyLines+"_3")
			bad[tt.key] = tt.val
			if _, ok, err := Decode(bad); !ok || !errors.Is(err, ErrMalformed) {
				t.Errorf("Decode = %v, %v; want ours and ErrMalformed", ok, err)
			}
		})
	}
}

func TestKey(t *testing.T) {
	from, to := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	k := Key("in_1MtHbELkdIwHu7ixl4OzzPMv", 42, strings.Repeat("é", 31), from, to, 3, 1<<40)
	if len(k) > 255 {
		t.Errorf("key is %d bytes, Stripe allows 255", len(k))
	}
	for _, c := range k {
		if c < 0x21 || c > 0x7e {
			t.Fatalf("key %q has a character %q unfit for an HTTP header", k, c)
		}
	}
	keys := map[string]bool{}
	for _, k := range []string{
		Key("in_1", 42, "a", from, to, 1, 1),
		Key("in_2", 42, "a", from, to, 1, 1),
		Key("in_1", 43, "a", from, to, 1, 1),
		Key("in_1", 42, "b", from, to, 1, 1),
		Key("in_1", 42, "a", to, to.AddDate(0, 1, 0), 1, 1),
		Key("in_1", 42, "a", from, to, 2, 1),
		Key("in_1", 42, "a", from, to, 1, 2),
		Key("in_1", 42, "a", from, to, 1, 1<<40),
	} {
		if keys[k] {
			t.Errorf("key %q repeats for different lines", k)
		}
		keys[k] = true
	}
	first, second := Key("in_1", 42, "a", from, to, 1, 1), Key("in_1", 42, "a", from, to, 1, 1)
	if first != second {
		t.Error("key is not deterministic")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("1", "42", "api_calls", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "0", "12", "1:100:0:0;2:900:2:1800", "")
	f.Add("1", "0", "", "x", "", "-1", "", "", "7:")
	f.Fuzz(func(t *testing.T, v, acct, metric, from, to, tier, qty, lines, lines2 string) {
		md := map[string]string{KeyVersion: v, KeyAccount: acct, KeyMetric: metric, KeyFrom: from, KeyTo: to, KeyTier: tier, KeyQuantity: qty}
		if lines != "" {
			md[KeyLines] = lines
		}
		if lines2 != "" {
			md[KeyLines+"_2"] = lines2
		}
		e, ok, err := Decode(md)
		if !ok {
			t.Fatal("an item with the version key must be ours")
		}
		if err == nil && (e.Account == 0 || !e.From.Before(e.To) || e.Tier < 0 || e.Metric == "") {
			t.Fatalf("Decode accepted an unusable entry %+v", e)
		}
		for i, l := range e.Lines {
			if l.Tier < 0 || l.Quantity == "" || l.UnitPrice == "" || (i > 0 && l.Tier <= e.Lines[i-1].Tier) {
				t.Fatalf("Decode accepted unusable lines %+v", e.Lines)
			}
		}
		if err == nil && e.Lines != nil { // what decodes encodes back to the same lines
			again, err := Encode(e)
			if err != nil {
				return // a record longer than meterbill writes
			}
			f, _, err := Decode(again)
			if err != nil || len(f.Lines) != len(e.Lines) {
				t.Fatalf("lines do not round-trip: %v %+v", err, f.Lines)
			}
		}
	})
}

func TestRunsRoundTrip(t *testing.T) {
	d := func(m time.Month, day int) time.Time { return time.Date(2026, m, day, 0, 0, 0, 0, time.UTC) }
	e := Entry{Account: 1, Metric: "gb", Period: "day", From: d(3, 1), To: d(4, 1), Quantity: "840", Tier: 1,
		Runs: [][2]time.Time{{d(3, 1), d(3, 10)}, {d(3, 20), d(4, 1)}}}
	md, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := Decode(md)
	if err != nil || !ok {
		t.Fatalf("Decode = %v, %v", ok, err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	want := [][2]int64{{d(3, 1).UnixNano(), d(3, 10).UnixNano()}, {d(3, 20).UnixNano(), d(4, 1).UnixNano()}}
	if diff := cmp.Diff(want, got.Covered()); diff != "" {
		t.Errorf("Covered mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"x", "5-3", "1772323200-1773100800,1772323200-1773100800", "1-2"} {
		md, _ := Encode(e)
		md[KeyRuns] = bad
		if _, _, err := Decode(md); !errors.Is(err, ErrMalformed) {
			t.Errorf("runs %q: Decode = %v, want ErrMalformed", bad, err)
		}
	}
	if md, _ := Encode(Entry{Account: 1, Metric: "m", From: d(3, 1), To: d(4, 1), Quantity: "1"}); md[KeyRuns] != "" {
		t.Errorf("a single run wrote %s=%q", KeyRuns, md[KeyRuns])
	}
}
