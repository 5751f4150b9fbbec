package stripefake

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecimal(t *testing.T) {
	type result struct {
		OK        bool
		Canonical string
		Amount    int64
		Fits      bool
	}
	tests := []struct {
		in   string
		qty  int64
		want result
	}{
		{in: "12", qty: 3, want: result{OK: true, Canonical: "12", Amount: 36, Fits: true}},
		{in: "0.5", qty: 1, want: result{OK: true, Canonical: "0.5", Amount: 1, Fits: true}},
		{in: "0.49", qty: 1, want: result{OK: true, Canonical: "0.49", Amount: 0, Fits: true}},
		{in: "2.5", qty: 3, want: result{OK: true, Canonical: "2.5", Amount: 8, Fits: true}}, // 7.5
		{in: "0.1", qty: 3, want: result{OK: true, Canonical: "0.1", Amount: 0, Fits: true}}, // exactly 0.3, no float drift
		{in: "1.005", qty: 1000, want: result{OK: true, Canonical: "1.005", Amount: 1005, Fits: true}},
		{in: "0.000000000001", qty: 500_000_000_000, want: result{OK: true, Canonical: "0.000000000001", Amount: 1, Fits: true}},
		{in: "0.000000000001", qty: 499_999_999_999, want: result{OK: true, Canonical: "0.000000000001", Amount: 0, Fits: true}},
		{in: "007.2500", qty: 4, want: result{OK: true, Canonical: "7.25", Amount: 29, Fits: true}},
		{in: "3.000", qty: 0, want: result{OK: true, Canonical: "3", Amount: 0, Fits: true}},
		{in: "9223372036854775807", qty: 1, want: result{OK: true, Canonical: "9223372036854775807", Amount: math.MaxInt64, Fits: true}},
		{in: "9223372036854775807", qty: 2, want: result{OK: true, Canonical: "9223372036854775807"}},
		{in: "0.0000000000001", qty: 1, want: result{}},
		{in: "", qty: 1, want: result{}},
		{in: ".5", qty: 1, want: result{}},
		{in: "5.", qty: 1, want: result{}},
		{in: "-1", qty: 1, want: result{}},
		{in: "+1", qty: 1, want: result{}},
		{in: "1e3", qty: 1, want: result{}},
		{in: "1.2.3", qty: 1, want: result{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got result
			d, ok := parseDecimal(tt.in)
			if ok {
				got.OK, got.Canonical = true, d.String()
				got.Amount, got.Fits = d.mulRoundHalfUp(tt.qty)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s × %d mismatch (-want +got):\n%s", tt.in, tt.qty, diff)
			}
		})
	}
}
