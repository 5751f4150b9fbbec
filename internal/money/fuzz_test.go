package money

import (
	"errors"
	"math/big"
	"testing"

	"github.com/shopspring/decimal"
)

func FuzzParseDecimal(f *testing.F) {
	for _, seed := range []struct {
		s        string
		maxScale int8
	}{
		{"1", 6}, {"0.5", 6}, {"007.50", 2}, {"0.0000001", 6}, {"-1", 6},
		{"1e3", 6}, {".5", 6}, {"5.", 6}, {"١٢٣", 6}, {"1.5", -1}, {"", 0},
	} {
		f.Add(seed.s, seed.maxScale)
	}
	f.Fuzz(func(t *testing.T, s string, maxScale int8) {
		d, err := ParseDecimal(s, int32(maxScale))
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrRange) {
				t.Fatalf("ParseDecimal(%q, %d) error %v wraps neither ErrSyntax nor ErrRange", s, maxScale, err)
			}
			return
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c != '.' && (c < '0' || c > '9') {
				t.Fatalf("ParseDecimal(%q, %d) accepted byte %q", s, maxScale, c)
			}
		}
		if d.Sign() < 0 {
			t.Fatalf("ParseDecimal(%q, %d) = %s, want >= 0", s, maxScale, d)
		}
		if limit := max(int32(maxScale), 0); -d.Exponent() > limit {
			t.Fatalf("ParseDecimal(%q, %d) = %s with %d decimals, want at most %d", s, maxScale, d, -d.Exponent(), limit)
		}
		again, err := ParseDecimal(d.String(), int32(maxScale))
		if err != nil {
			t.Fatalf("re-parsing %q (from %q): %v", d.String(), s, err)
		}
		if !again.Equal(d) {
			t.Fatalf("re-parsing %q (from %q) = %s, want %s", d.String(), s, again, d)
		}
	})
}

// fuzzSchedule builds a schedule from small fuzzed integers; it may be
// invalid, which the caller detects with Validate.
func fuzzSchedule(model uint8, bound1, bound2 uint16, price1, price2, price3 uint32, flat, included, pkg uint16) Schedule {
	// price returns p / 4 with 0 to 3 decimals, chosen by p's low bits.
	price := func(p uint32) decimal.Decimal { return decimal.New(int64(p>>2), -int32(p&3)) }
	s := Schedule{
		Model:    Model(model % 5), // 4 is an unknown model, which Validate rejects
		Included: decimal.New(int64(included), -1),
	}
	if s.Model == Package {
		s.PackageSize = decimal.New(int64(pkg), -1)
	}
	flatFee := decimal.New(int64(flat), -2)
	switch s.Model {
	case Graduated, Volume:
		// 1 to 3 tiers; the second bound is relative so most schedules are valid.
		n := 1 + int(model/5)%3
		up1 := decimal.NewFromInt(int64(bound1))
		up2 := up1.Add(decimal.NewFromInt(int64(bound2)))
		all := []Tier{
			{UpTo: up1, Unit: price(price1), Flat: flatFee},
			{UpTo: up2, Unit: price(price2)},
			{Unit: price(price3), Flat: flatFee},
		}
		s.Tiers = append([]Tier(nil), all[:n-1]...)
		s.Tiers = append(s.Tiers, Tier{Unbounded: true, Unit: all[2].Unit, Flat: all[2].Flat})
	default:
		s.Tiers = []Tier{{Unbounded: true, Unit: price(price1), Flat: flatFee}}
	}
	return s
}

func FuzzPrice(f *testing.F) {
	f.Add(uint8(0), uint16(0), uint16(0), uint32(4), uint32(0), uint32(0), uint16(0), uint16(0), uint16(0), uint64(1234567), uint8(0), uint32(1))
	f.Add(uint8(1), uint16(0), uint16(0), uint32(2000), uint32(0), uint32(0), uint16(0), uint16(0), uint16(10000), uint64(1000), uint8(0), uint32(1))
	f.Add(uint8(12), uint16(1000), uint16(9000), uint32(0), uint32(5), uint32(9), uint16(100), uint16(50), uint16(0), uint64(10001), uint8(1), uint32(500))
	f.Add(uint8(13), uint16(1000), uint16(9000), uint32(8), uint32(6), uint32(4), uint16(100), uint16(0), uint16(0), uint64(1000), uint8(0), uint32(1))
	f.Add(uint8(2), uint16(10), uint16(10), uint32(4), uint32(8), uint32(12), uint16(0), uint16(0), uint16(0), uint64(1<<63), uint8(6), uint32(7))
	f.Add(uint8(0), uint16(0), uint16(0), uint32(1<<31), uint32(0), uint32(0), uint16(0), uint16(0), uint16(0), uint64(1<<63), uint8(0), uint32(1))
	f.Fuzz(func(t *testing.T, model uint8, bound1, bound2 uint16, price1, price2, price3 uint32,
		flat, included, pkg uint16, qRaw uint64, qScale uint8, deltaRaw uint32) {
		s := fuzzSchedule(model, bound1, bound2, price1, price2, price3, flat, included, pkg)
		if s.Validate() != nil {
			return
		}
		q := decimal.NewFromBigInt(new(big.Int).SetUint64(qRaw), -int32(qScale%7))
		delta := decimal.New(int64(deltaRaw), -int32(qScale/7%7))
		billable := decimal.Max(q.Sub(s.Included), decimal.Zero)

		lines, total, err := priceAndCheck(t, s, q, billable)
		lines2, total2, err2 := priceAndCheck(t, s, q.Add(delta), decimal.Max(q.Add(delta).Sub(s.Included), decimal.Zero))

		if s.Model == Volume {
			// Volume is only monotonic within one tier: a higher tier may be
			// cheaper, and may not overflow where a lower one does.
			if err != nil || err2 != nil {
				return
			}
			if len(lines) > 0 && lines[0].Tier != lines2[0].Tier {
				return
			}
		}
		switch {
		case err != nil && err2 == nil:
			t.Fatalf("%s: Price(%s) overflows but Price(%s) = %d", s.Model, q, q.Add(delta), total2)
		case err == nil && err2 == nil && total > total2:
			t.Fatalf("%s: total(%s) = %d > total(%s) = %d\nlines: %v\nlines2: %v",
				s.Model, q, total, q.Add(delta), total2, lines, lines2)
		}
	})
}

// priceAndCheck prices q under s, checks the invariants that hold for a
// single quantity and returns the lines, their total and an overflow error.
func priceAndCheck(t *testing.T, s Schedule, q, billable decimal.Decimal) ([]Line, int64, error) {
	t.Helper()
	lines, err := s.Price(q)
	if err != nil {
		if !errors.Is(err, ErrOverflow) {
			t.Fatalf("%s: Price(%s) error %v, want nil or ErrOverflow", s.Model, q, err)
		}
		return nil, 0, err
	}
	total, err := Total(lines)
	if err != nil {
		t.Fatalf("%s: Total of Price(%s) lines: %v", s.Model, q, err)
	}
	sum := new(big.Int)
	quantity := decimal.Zero
	for i, l := range lines {
		if l.Amount < 0 {
			t.Fatalf("%s: Price(%s) line %d amount %d < 0", s.Model, q, i, l.Amount)
		}
		if l.Quantity.Sign() <= 0 {
			t.Fatalf("%s: Price(%s) line %d quantity %s <= 0", s.Model, q, i, l.Quantity)
		}
		if i > 0 && l.Tier <= lines[i-1].Tier {
			t.Fatalf("%s: Price(%s) tiers not ascending: %v", s.Model, q, lines)
		}
		sum.Add(sum, big.NewInt(l.Amount))
		quantity = quantity.Add(l.Quantity)
	}
	if !sum.IsInt64() || sum.Int64() != total {
		t.Fatalf("%s: Total = %d, sum of line amounts = %s", s.Model, total, sum)
	}
	if billable.IsZero() {
		if lines != nil {
			t.Fatalf("%s: Price(%s) with nothing billable = %v, want nil", s.Model, q, lines)
		}
		return lines, total, nil
	}
	switch s.Model {
	case Graduated:
		if !quantity.Equal(billable) {
			t.Fatalf("%s: Price(%s) line quantities sum to %s, want %s", s.Model, q, quantity, billable)
		}
	case PerUnit, Package, Volume:
		if len(lines) != 1 || !lines[0].Quantity.Equal(billable) {
			t.Fatalf("%s: Price(%s) = %v, want one line for %s units", s.Model, q, lines, billable)
		}
	}
	if s.Model == Package {
		p := lines[0].Packages
		if p.Mul(s.PackageSize).Cmp(billable) < 0 || p.Sub(decimal.NewFromInt(1)).Mul(s.PackageSize).Cmp(billable) >= 0 {
			t.Fatalf("%s: Price(%s) packages %s of %s, not the ceiling for %s", s.Model, q, p, s.PackageSize, billable)
		}
	}
	return lines, total, nil
}
