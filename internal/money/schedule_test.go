package money

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/shopspring/decimal"
)

// bounded returns a tier up to upTo (inclusive) at unit, with an optional
// flat fee.
func bounded(upTo, unit string, flat ...string) Tier {
	t := Tier{UpTo: dec(upTo), Unit: dec(unit)}
	if len(flat) > 0 {
		t.Flat = dec(flat[0])
	}
	return t
}

// unbounded returns a last tier at unit, with an optional flat fee.
func unbounded(unit string, flat ...string) Tier {
	t := Tier{Unbounded: true, Unit: dec(unit)}
	if len(flat) > 0 {
		t.Flat = dec(flat[0])
	}
	return t
}

func perUnit(unit string) Schedule {
	return Schedule{Model: PerUnit, Tiers: []Tier{unbounded(unit)}}
}

var (
	// graduated3: first 1000 free, up to 10000 at 0.1, then 0.05.
	graduated3 = Schedule{Model: Graduated, Tiers: []Tier{
		bounded("1000", "0"), bounded("10000", "0.1"), unbounded("0.05"),
	}}
	// volume3: all units at 2 up to 1000, at 1.5 up to 10000, else at 1.
	volume3 = Schedule{Model: Volume, Tiers: []Tier{
		bounded("1000", "2"), bounded("10000", "1.5"), unbounded("1"),
	}}
	// package1000: 500 per started package of 1000 units.
	package1000 = Schedule{Model: Package, PackageSize: dec("1000"), Tiers: []Tier{unbounded("500")}}
	// flatTiers: tiers with a flat fee each.
	flatTiers = []Tier{bounded("10", "1", "100"), bounded("20", "2", "50"), unbounded("3", "25")}
)

func TestPrice(t *testing.T) {
	tests := []struct {
		name      string
		schedule  Schedule
		q         string
		want      []Line
		wantTotal int64
	}{
		// Graduated around the tier boundaries.
		{name: "graduated 0", schedule: graduated3, q: "0", want: nil, wantTotal: 0},
		{name: "graduated 999", schedule: graduated3, q: "999",
			want: []Line{{Tier: 1, Quantity: dec("999"), Unit: dec("0"), Amount: 0}}, wantTotal: 0},
		{name: "graduated 1000", schedule: graduated3, q: "1000",
			want: []Line{{Tier: 1, Quantity: dec("1000"), Unit: dec("0"), Amount: 0}}, wantTotal: 0},
		{name: "graduated 1000.5", schedule: graduated3, q: "1000.5",
			want: []Line{
				{Tier: 1, Quantity: dec("1000"), Unit: dec("0"), Amount: 0},
				{Tier: 2, Quantity: dec("0.5"), Unit: dec("0.1"), Amount: 0}, // 0.05
			}, wantTotal: 0},
		{name: "graduated 1001", schedule: graduated3, q: "1001",
			want: []Line{
				{Tier: 1, Quantity: dec("1000"), Unit: dec("0"), Amount: 0},
				{Tier: 2, Quantity: dec("1"), Unit: dec("0.1"), Amount: 0}, // 0.1
			}, wantTotal: 0},
		{name: "graduated 1005", schedule: graduated3, q: "1005",
			want: []Line{
				{Tier: 1, Quantity: dec("1000"), Unit: dec("0"), Amount: 0},
				{Tier: 2, Quantity: dec("5"), Unit: dec("0.1"), Amount: 1}, // 0.5
			}, wantTotal: 1},
		{name: "graduated 10000", schedule: graduated3, q: "10000",
			want: []Line{
				{Tier: 1, Quantity: dec("1000"), Unit: dec("0"), Amount: 0},
				{Tier: 2, Quantity: dec("9000"), Unit: dec("0.1"), Amount: 900},
			}, wantTotal: 900},
		{name: "graduated 10001", schedule: graduated3, q: "10001",
			want: []Line{
				{Tier: 1, Quantity: dec("1000"), Unit: dec("0"), Amount: 0},
				{Tier: 2, Quantity: dec("9000"), Unit: dec("0.1"), Amount: 900},
				{Tier: 3, Quantity: dec("1"), Unit: dec("0.05"), Amount: 0}, // 0.05
			}, wantTotal: 900},
		{name: "graduated 1e12", schedule: graduated3, q: "1000000000000",
			want: []Line{
				{Tier: 1, Quantity: dec("1000"), Unit: dec("0"), Amount: 0},
				{Tier: 2, Quantity: dec("9000"), Unit: dec("0.1"), Amount: 900},
				{Tier: 3, Quantity: dec("999999990000"), Unit: dec("0.05"), Amount: 49999999500},
			}, wantTotal: 50000000400},

		// Volume: a quantity equal to UpTo stays in the tier.
		{name: "volume 999", schedule: volume3, q: "999",
			want: []Line{{Tier: 1, Quantity: dec("999"), Unit: dec("2"), Amount: 1998}}, wantTotal: 1998},
		{name: "volume at first bound", schedule: volume3, q: "1000",
			want: []Line{{Tier: 1, Quantity: dec("1000"), Unit: dec("2"), Amount: 2000}}, wantTotal: 2000},
		{name: "volume just above first bound", schedule: volume3, q: "1000.5",
			want: []Line{{Tier: 2, Quantity: dec("1000.5"), Unit: dec("1.5"), Amount: 1501}}, wantTotal: 1501}, // 1500.75
		{name: "volume 1001", schedule: volume3, q: "1001",
			want: []Line{{Tier: 2, Quantity: dec("1001"), Unit: dec("1.5"), Amount: 1502}}, wantTotal: 1502}, // 1501.5
		{name: "volume at second bound", schedule: volume3, q: "10000",
			want: []Line{{Tier: 2, Quantity: dec("10000"), Unit: dec("1.5"), Amount: 15000}}, wantTotal: 15000},
		{name: "volume just above second bound", schedule: volume3, q: "10000.000001",
			want: []Line{{Tier: 3, Quantity: dec("10000.000001"), Unit: dec("1"), Amount: 10000}}, wantTotal: 10000},
		{name: "volume 10001", schedule: volume3, q: "10001",
			want: []Line{{Tier: 3, Quantity: dec("10001"), Unit: dec("1"), Amount: 10001}}, wantTotal: 10001},
		{name: "volume 0", schedule: volume3, q: "0", want: nil, wantTotal: 0},

		// Package: ceil(quantity / size).
		{name: "package 0", schedule: package1000, q: "0", want: nil, wantTotal: 0},
		{name: "package 1", schedule: package1000, q: "1",
			want: []Line{{Quantity: dec("1"), Packages: dec("1"), Unit: dec("500"), Amount: 500}}, wantTotal: 500},
		{name: "package 999", schedule: package1000, q: "999",
			want: []Line{{Quantity: dec("999"), Packages: dec("1"), Unit: dec("500"), Amount: 500}}, wantTotal: 500},
		{name: "package 1000", schedule: package1000, q: "1000",
			want: []Line{{Quantity: dec("1000"), Packages: dec("1"), Unit: dec("500"), Amount: 500}}, wantTotal: 500},
		{name: "package 1000.000001", schedule: package1000, q: "1000.000001",
			want: []Line{{Quantity: dec("1000.000001"), Packages: dec("2"), Unit: dec("500"), Amount: 1000}}, wantTotal: 1000},
		{name: "package 1001", schedule: package1000, q: "1001",
			want: []Line{{Quantity: dec("1001"), Packages: dec("2"), Unit: dec("500"), Amount: 1000}}, wantTotal: 1000},
		{name: "package 2000", schedule: package1000, q: "2000",
			want: []Line{{Quantity: dec("2000"), Packages: dec("2"), Unit: dec("500"), Amount: 1000}}, wantTotal: 1000},
		{name: "package 2001", schedule: package1000, q: "2001",
			want: []Line{{Quantity: dec("2001"), Packages: dec("3"), Unit: dec("500"), Amount: 1500}}, wantTotal: 1500},
		{name: "package of half a unit", q: "1.2",
			schedule: Schedule{Model: Package, PackageSize: dec("0.5"), Tiers: []Tier{unbounded("200")}},
			want:     []Line{{Quantity: dec("1.2"), Packages: dec("3"), Unit: dec("200"), Amount: 600}}, wantTotal: 600},
		{name: "package with sub-cent price", q: "3",
			schedule: Schedule{Model: Package, PackageSize: dec("1"), Tiers: []Tier{unbounded("0.5")}},
			want:     []Line{{Quantity: dec("3"), Packages: dec("3"), Unit: dec("0.5"), Amount: 2}}, wantTotal: 2}, // 1.5

		// Included free units.
		{name: "included above quantity", q: "50",
			schedule: Schedule{Model: PerUnit, Included: dec("100"), Tiers: []Tier{unbounded("2", "30")}},
			want:     nil, wantTotal: 0},
		{name: "included equal to quantity", q: "100",
			schedule: Schedule{Model: PerUnit, Included: dec("100"), Tiers: []Tier{unbounded("2", "30")}},
			want:     nil, wantTotal: 0},
		{name: "included just below quantity", q: "100.5",
			schedule: Schedule{Model: PerUnit, Included: dec("100"), Tiers: []Tier{unbounded("2", "30")}},
			want:     []Line{{Quantity: dec("0.5"), Unit: dec("2"), Flat: dec("30"), Amount: 31}}, wantTotal: 31},
		{name: "included below quantity", q: "150",
			schedule: Schedule{Model: PerUnit, Included: dec("100"), Tiers: []Tier{unbounded("2", "30")}},
			want:     []Line{{Quantity: dec("50"), Unit: dec("2"), Flat: dec("30"), Amount: 130}}, wantTotal: 130},
		{name: "included before graduated tiers", q: "1600",
			schedule: Schedule{Model: Graduated, Included: dec("500"), Tiers: graduated3.Tiers},
			want: []Line{
				{Tier: 1, Quantity: dec("1000"), Unit: dec("0"), Amount: 0},
				{Tier: 2, Quantity: dec("100"), Unit: dec("0.1"), Amount: 10},
			}, wantTotal: 10},
		{name: "included before package", q: "1500",
			schedule: Schedule{Model: Package, Included: dec("1000"), PackageSize: dec("1000"), Tiers: []Tier{unbounded("500")}},
			want:     []Line{{Quantity: dec("500"), Packages: dec("1"), Unit: dec("500"), Amount: 500}}, wantTotal: 500},
		{name: "included covers volume", q: "20",
			schedule: Schedule{Model: Volume, Included: dec("20"), Tiers: flatTiers},
			want:     nil, wantTotal: 0},

		// Flat fees: every touched tier for Graduated, only the reached one for Volume.
		{name: "graduated flat first tier", q: "5",
			schedule: Schedule{Model: Graduated, Tiers: flatTiers},
			want:     []Line{{Tier: 1, Quantity: dec("5"), Unit: dec("1"), Flat: dec("100"), Amount: 105}}, wantTotal: 105},
		{name: "graduated flat at first bound", q: "10",
			schedule: Schedule{Model: Graduated, Tiers: flatTiers},
			want:     []Line{{Tier: 1, Quantity: dec("10"), Unit: dec("1"), Flat: dec("100"), Amount: 110}}, wantTotal: 110},
		{name: "graduated flat two tiers", q: "15",
			schedule: Schedule{Model: Graduated, Tiers: flatTiers},
			want: []Line{
				{Tier: 1, Quantity: dec("10"), Unit: dec("1"), Flat: dec("100"), Amount: 110},
				{Tier: 2, Quantity: dec("5"), Unit: dec("2"), Flat: dec("50"), Amount: 60},
			}, wantTotal: 170},
		{name: "graduated flat three tiers", q: "25",
			schedule: Schedule{Model: Graduated, Tiers: flatTiers},
			want: []Line{
				{Tier: 1, Quantity: dec("10"), Unit: dec("1"), Flat: dec("100"), Amount: 110},
				{Tier: 2, Quantity: dec("10"), Unit: dec("2"), Flat: dec("50"), Amount: 70},
				{Tier: 3, Quantity: dec("5"), Unit: dec("3"), Flat: dec("25"), Amount: 40},
			}, wantTotal: 220},
		{name: "volume flat first tier", q: "5",
			schedule: Schedule{Model: Volume, Tiers: flatTiers},
			want:     []Line{{Tier: 1, Quantity: dec("5"), Unit: dec("1"), Flat: dec("100"), Amount: 105}}, wantTotal: 105},
		{name: "volume flat at first bound", q: "10",
			schedule: Schedule{Model: Volume, Tiers: flatTiers},
			want:     []Line{{Tier: 1, Quantity: dec("10"), Unit: dec("1"), Flat: dec("100"), Amount: 110}}, wantTotal: 110},
		{name: "volume flat second tier", q: "15",
			schedule: Schedule{Model: Volume, Tiers: flatTiers},
			want:     []Line{{Tier: 2, Quantity: dec("15"), Unit: dec("2"), Flat: dec("50"), Amount: 80}}, wantTotal: 80},
		{name: "volume flat at second bound", q: "20",
			schedule: Schedule{Model: Volume, Tiers: flatTiers},
			want:     []Line{{Tier: 2, Quantity: dec("20"), Unit: dec("2"), Flat: dec("50"), Amount: 90}}, wantTotal: 90},
		{name: "volume flat last tier", q: "25",
			schedule: Schedule{Model: Volume, Tiers: flatTiers},
			want:     []Line{{Tier: 3, Quantity: dec("25"), Unit: dec("3"), Flat: dec("25"), Amount: 100}}, wantTotal: 100},
		{name: "fractional flat rounds with the line", q: "1",
			schedule: Schedule{Model: PerUnit, Tiers: []Tier{unbounded("0", "0.5")}},
			want:     []Line{{Quantity: dec("1"), Unit: dec("0"), Flat: dec("0.5"), Amount: 1}}, wantTotal: 1},

		// Sub-cent and other minor units.
		{name: "usd 1234567 calls at a tenth of a cent", schedule: perUnit("0.1"), q: "1234567",
			want: []Line{{Quantity: dec("1234567"), Unit: dec("0.1"), Amount: 123457}}, wantTotal: 123457}, // 123456.7
		{name: "usd 5 calls at a tenth of a cent", schedule: perUnit("0.1"), q: "5",
			want: []Line{{Quantity: dec("5"), Unit: dec("0.1"), Amount: 1}}, wantTotal: 1}, // 0.5
		{name: "usd 4 calls at a tenth of a cent", schedule: perUnit("0.1"), q: "4",
			want: []Line{{Quantity: dec("4"), Unit: dec("0.1"), Amount: 0}}, wantTotal: 0}, // 0.4
		{name: "jpy 7 units at 3 yen", schedule: perUnit("3"), q: "7",
			want: []Line{{Quantity: dec("7"), Unit: dec("3"), Amount: 21}}, wantTotal: 21},
		{name: "kwd 2.5 units at 1250 fils", schedule: perUnit("1250"), q: "2.5",
			want: []Line{{Quantity: dec("2.5"), Unit: dec("1250"), Amount: 3125}}, wantTotal: 3125},

		// Rounding.
		{name: "half a gigabyte at 10", schedule: perUnit("10"), q: "0.5",
			want: []Line{{Quantity: dec("0.5"), Unit: dec("10"), Amount: 5}}, wantTotal: 5},
		{name: "exactly half rounds up", schedule: perUnit("0.25"), q: "2",
			want: []Line{{Quantity: dec("2"), Unit: dec("0.25"), Amount: 1}}, wantTotal: 1}, // 0.5
		{name: "2.5 rounds up to 3", schedule: perUnit("0.5"), q: "5",
			want: []Line{{Quantity: dec("5"), Unit: dec("0.5"), Amount: 3}}, wantTotal: 3}, // 2.5
		{name: "0.4999999 rounds down", schedule: perUnit("0.0000001"), q: "4999999",
			want: []Line{{Quantity: dec("4999999"), Unit: dec("0.0000001"), Amount: 0}}, wantTotal: 0},
		{name: "micro units", schedule: perUnit("1000000"), q: "0.000001",
			want: []Line{{Quantity: dec("0.000001"), Unit: dec("1000000"), Amount: 1}}, wantTotal: 1},
		{name: "max int64 fits", schedule: perUnit("1"), q: "9223372036854775807",
			want:      []Line{{Quantity: dec("9223372036854775807"), Unit: dec("1"), Amount: 9223372036854775807}},
			wantTotal: 9223372036854775807},
		{name: "2^128 micro units at a tiny price", schedule: perUnit("0.00000000000000000001"),
			q: "340282366920938463463374607431768.211456",
			want: []Line{{
				Quantity: dec("340282366920938463463374607431768.211456"),
				Unit:     dec("0.00000000000000000001"),
				Amount:   3402823669209, // 3402823669209.38...
			}}, wantTotal: 3402823669209},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.schedule.Price(dec(tc.q))
			if err != nil {
				t.Fatalf("Price(%s) unexpected error: %v", tc.q, err)
			}
			if diff := cmp.Diff(tc.want, got, decimalEqual); diff != "" {
				t.Errorf("Price(%s) mismatch (-want +got):\n%s", tc.q, diff)
			}
			total, err := Total(got)
			if err != nil {
				t.Fatalf("Total unexpected error: %v", err)
			}
			if diff := cmp.Diff(tc.wantTotal, total); diff != "" {
				t.Errorf("Total mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPriceErrors(t *testing.T) {
	tests := []struct {
		name     string
		schedule Schedule
		q        decimal.Decimal
		wantErr  error
	}{
		{name: "negative quantity", schedule: perUnit("1"), q: dec("-1"), wantErr: ErrRange},
		{name: "negative quantity below included", q: dec("-1"),
			schedule: Schedule{Model: PerUnit, Included: dec("10"), Tiers: []Tier{unbounded("1")}}, wantErr: ErrRange},
		{name: "absurd exponent", schedule: perUnit("1"), q: decimal.New(1, 2_000_000_000), wantErr: ErrRange},
		{name: "invalid schedule", schedule: Schedule{Model: Graduated}, q: dec("1"), wantErr: ErrInvalid},
		{name: "per unit one past max int64", schedule: perUnit("1"), q: dec("9223372036854775808"), wantErr: ErrOverflow},
		{name: "per unit max int64 plus half", schedule: perUnit("0.5"), q: dec("18446744073709551615"), wantErr: ErrOverflow},
		{name: "flat fee pushes past max int64", q: dec("9223372036854775807"),
			schedule: Schedule{Model: PerUnit, Tiers: []Tier{unbounded("1", "1")}}, wantErr: ErrOverflow},
		{name: "2^128 micro units", schedule: perUnit("1"), q: dec("340282366920938463463374607431768.211456"), wantErr: ErrOverflow},
		{name: "package amount", q: dec("10"),
			schedule: Schedule{Model: Package, PackageSize: dec("1"), Tiers: []Tier{unbounded("1000000000000000000")}},
			wantErr:  ErrOverflow},
		{name: "volume amount", schedule: Schedule{Model: Volume, Tiers: []Tier{bounded("10", "1"), unbounded("1000000")}},
			q: dec("10000000000000"), wantErr: ErrOverflow},
		{name: "graduated line amount", schedule: Schedule{Model: Graduated, Tiers: []Tier{bounded("10", "1"), unbounded("1000000")}},
			q: dec("10000000000000"), wantErr: ErrOverflow},
		{name: "graduated total", q: dec("10000000000000000000"), // lines 9e18 and 1e18 fit, the sum does not
			schedule: Schedule{Model: Graduated, Tiers: []Tier{bounded("9000000000000000000", "1"), unbounded("1")}},
			wantErr:  ErrOverflow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.schedule.Price(tc.q)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Price(%s) = %v, %v, want error %v", describe(tc.q), got, err, tc.wantErr)
			}
			if got != nil {
				t.Errorf("Price(%s) returned lines %v with an error", describe(tc.q), got)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tiers := func(n int) []Tier {
		ts := make([]Tier, n)
		for i := range n - 1 {
			ts[i] = Tier{UpTo: decimal.NewFromInt(int64(i + 1)), Unit: dec("1")}
		}
		ts[n-1] = unbounded("1")
		return ts
	}
	tests := []struct {
		name     string
		schedule Schedule
		wantErr  error // nil for valid schedules
	}{
		{name: "per unit", schedule: perUnit("0.1")},
		{name: "per unit with flat and included",
			schedule: Schedule{Model: PerUnit, Included: dec("100"), Tiers: []Tier{unbounded("1", "5")}}},
		{name: "package", schedule: package1000},
		{name: "graduated", schedule: graduated3},
		{name: "volume", schedule: volume3},
		{name: "single unbounded graduated tier", schedule: Schedule{Model: Graduated, Tiers: []Tier{unbounded("1")}}},
		{name: "32 tiers", schedule: Schedule{Model: Graduated, Tiers: tiers(32)}},
		{name: "unbounded tier's UpTo is ignored",
			schedule: Schedule{Model: Volume, Tiers: []Tier{bounded("10", "1"), {Unbounded: true, UpTo: dec("-5"), Unit: dec("1")}}}},

		{name: "no tiers", schedule: Schedule{Model: Graduated}, wantErr: ErrInvalid},
		{name: "per unit without tiers", schedule: Schedule{Model: PerUnit}, wantErr: ErrInvalid},
		{name: "33 tiers", schedule: Schedule{Model: Graduated, Tiers: tiers(33)}, wantErr: ErrInvalid},
		{name: "two unbounded tiers",
			schedule: Schedule{Model: Graduated, Tiers: []Tier{unbounded("1"), unbounded("2")}}, wantErr: ErrInvalid},
		{name: "unbounded not last",
			schedule: Schedule{Model: Volume, Tiers: []Tier{unbounded("1"), bounded("10", "2")}}, wantErr: ErrInvalid},
		{name: "last tier bounded",
			schedule: Schedule{Model: Volume, Tiers: []Tier{bounded("10", "1"), bounded("20", "2")}}, wantErr: ErrInvalid},
		{name: "equal UpTo",
			schedule: Schedule{Model: Graduated, Tiers: []Tier{bounded("10", "1"), bounded("10", "2"), unbounded("3")}},
			wantErr:  ErrInvalid},
		{name: "decreasing UpTo",
			schedule: Schedule{Model: Graduated, Tiers: []Tier{bounded("20", "1"), bounded("10", "2"), unbounded("3")}},
			wantErr:  ErrInvalid},
		{name: "UpTo zero",
			schedule: Schedule{Model: Graduated, Tiers: []Tier{bounded("0", "1"), unbounded("2")}}, wantErr: ErrInvalid},
		{name: "UpTo negative",
			schedule: Schedule{Model: Volume, Tiers: []Tier{bounded("-1", "1"), unbounded("2")}}, wantErr: ErrInvalid},
		{name: "negative unit", schedule: perUnit("-0.1"), wantErr: ErrInvalid},
		{name: "negative unit in later tier",
			schedule: Schedule{Model: Graduated, Tiers: []Tier{bounded("10", "1"), unbounded("-2")}}, wantErr: ErrInvalid},
		{name: "negative flat",
			schedule: Schedule{Model: PerUnit, Tiers: []Tier{unbounded("1", "-1")}}, wantErr: ErrInvalid},
		{name: "negative included",
			schedule: Schedule{Model: PerUnit, Included: dec("-1"), Tiers: []Tier{unbounded("1")}}, wantErr: ErrInvalid},
		{name: "package size on per unit",
			schedule: Schedule{Model: PerUnit, PackageSize: dec("10"), Tiers: []Tier{unbounded("1")}}, wantErr: ErrInvalid},
		{name: "package size on graduated",
			schedule: Schedule{Model: Graduated, PackageSize: dec("10"), Tiers: graduated3.Tiers}, wantErr: ErrInvalid},
		{name: "zero package size",
			schedule: Schedule{Model: Package, Tiers: []Tier{unbounded("1")}}, wantErr: ErrInvalid},
		{name: "negative package size",
			schedule: Schedule{Model: Package, PackageSize: dec("-10"), Tiers: []Tier{unbounded("1")}}, wantErr: ErrInvalid},
		{name: "per unit with 2 tiers",
			schedule: Schedule{Model: PerUnit, Tiers: []Tier{bounded("10", "1"), unbounded("2")}}, wantErr: ErrInvalid},
		{name: "package with 2 tiers",
			schedule: Schedule{Model: Package, PackageSize: dec("10"), Tiers: []Tier{bounded("10", "1"), unbounded("2")}},
			wantErr:  ErrInvalid},
		{name: "per unit with a bounded tier",
			schedule: Schedule{Model: PerUnit, Tiers: []Tier{bounded("10", "1")}}, wantErr: ErrInvalid},
		{name: "unknown model", schedule: Schedule{Model: Model(4), Tiers: []Tier{unbounded("1")}}, wantErr: ErrInvalid},
		{name: "absurd exponent",
			schedule: Schedule{Model: PerUnit, Tiers: []Tier{{Unbounded: true, Unit: decimal.New(1, -2_000_000_000)}}},
			wantErr:  ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.schedule.Validate()
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Validate() error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}
