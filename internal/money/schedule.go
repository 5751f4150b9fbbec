package money

import (
	"fmt"
	"math"

	"github.com/shopspring/decimal"
)

// Model is a pricing model: how a Schedule turns a quantity into lines.
type Model uint8

const (
	// PerUnit charges quantity × unit price.
	PerUnit Model = iota
	// Package charges ceil(quantity / PackageSize) packages × unit price,
	// where the unit price is the price of one package.
	Package
	// Graduated prices the units falling in each tier at that tier's price,
	// with one Line per tier touched.
	Graduated
	// Volume prices every unit at the price of the tier the whole quantity
	// reaches; a quantity exactly equal to a tier's UpTo stays in that tier.
	Volume
)

// String returns the model's snake_case name, e.g. "per_unit".
func (m Model) String() string {
	switch m {
	case PerUnit:
		return "per_unit"
	case Package:
		return "package"
	case Graduated:
		return "graduated"
	case Volume:
		return "volume"
	}
	return fmt.Sprintf("Model(%d)", uint8(m))
}

// maxTiers is the largest number of tiers a Schedule may have.
const maxTiers = 32

// Tier is one price band of a Schedule.
type Tier struct {
	// UpTo is the inclusive upper bound in units; it must be greater than
	// the previous tier's UpTo. It is ignored when Unbounded is set.
	UpTo decimal.Decimal
	// Unbounded marks the last tier, which has no upper bound.
	Unbounded bool
	// Unit is the price in minor units per unit (per package for Package).
	Unit decimal.Decimal
	// Flat is a fee in minor units charged once when the tier is reached.
	Flat decimal.Decimal
}

// Schedule describes how to price a quantity of usage.
type Schedule struct {
	// Model selects the pricing model.
	Model Model
	// Included is the number of free units per billing window, subtracted
	// from the quantity (flooring at zero) before the model applies.
	Included decimal.Decimal
	// PackageSize is the number of units in a package; Package only.
	PackageSize decimal.Decimal
	// Tiers are the price bands. PerUnit and Package have exactly one
	// unbounded tier; Graduated and Volume have 1 to 32 tiers with strictly
	// increasing positive UpTo, the last one unbounded.
	Tiers []Tier
}

// Validate reports why s cannot price anything, as an error wrapping
// ErrInvalid, or nil if s is valid.
func (s Schedule) Validate() error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, s.Model, fmt.Sprintf(format, args...))
	}
	switch s.Model {
	case PerUnit, Graduated, Volume:
		if !s.PackageSize.IsZero() {
			return invalid("package size %s is only allowed for the package model", describe(s.PackageSize))
		}
	case Package:
		if s.PackageSize.Sign() <= 0 {
			return invalid("package size %s must be positive", describe(s.PackageSize))
		}
	default:
		return fmt.Errorf("%w: unknown model %d", ErrInvalid, uint8(s.Model))
	}
	if s.Included.Sign() < 0 {
		return invalid("included units %s are negative", describe(s.Included))
	}
	switch n := len(s.Tiers); {
	case n == 0:
		return invalid("no tiers")
	case n > maxTiers:
		return invalid("%d tiers, at most %d allowed", n, maxTiers)
	case n != 1 && (s.Model == PerUnit || s.Model == Package):
		return invalid("%d tiers, exactly 1 required", n)
	}
	for _, d := range []decimal.Decimal{s.Included, s.PackageSize} {
		if !saneExponent(d) {
			return invalid("value %s is out of range", describe(d))
		}
	}
	last := len(s.Tiers) - 1
	for i, t := range s.Tiers {
		if !saneExponent(t.Unit) || !saneExponent(t.Flat) || (!t.Unbounded && !saneExponent(t.UpTo)) {
			return invalid("tier %d: value out of range", i+1)
		}
		if t.Unit.Sign() < 0 {
			return invalid("tier %d: unit price %s is negative", i+1, describe(t.Unit))
		}
		if t.Flat.Sign() < 0 {
			return invalid("tier %d: flat fee %s is negative", i+1, describe(t.Flat))
		}
		if i == last {
			if !t.Unbounded {
				return invalid("last tier %d must be unbounded", i+1)
			}
			continue
		}
		if t.Unbounded {
			return invalid("tier %d is unbounded but not last", i+1)
		}
		if t.UpTo.Sign() <= 0 {
			return invalid("tier %d: up_to %s must be positive", i+1, describe(t.UpTo))
		}
		if i > 0 && t.UpTo.Cmp(s.Tiers[i-1].UpTo) <= 0 {
			return invalid("tier %d: up_to %s must be greater than tier %d's %s",
				i+1, describe(t.UpTo), i, describe(s.Tiers[i-1].UpTo))
		}
	}
	return nil
}

// saneExponent reports whether d's exponent is small enough for cheap and
// panic-free arithmetic.
func saneExponent(d decimal.Decimal) bool {
	e := d.Exponent()
	return -maxExponent <= e && e <= maxExponent
}

// Line is one priced invoice line.
type Line struct {
	// Tier is the 1-based tier index for Graduated and Volume, 0 otherwise.
	Tier int
	// Quantity is the number of billable units (after Included) this line
	// prices; for Package it counts units, not packages.
	Quantity decimal.Decimal
	// Packages is ceil(Quantity / PackageSize) for Package, zero otherwise.
	Packages decimal.Decimal
	// Unit is the unit (or package) price used, in minor units.
	Unit decimal.Decimal
	// Flat is the flat fee included in Amount, zero if none.
	Flat decimal.Decimal
	// Amount is Quantity × Unit + Flat (Packages × Unit + Flat for
	// Package) in minor units, rounded half-up.
	Amount int64
}

// Price prices the quantity q (exact, >= 0) under s and returns one Line per
// charge. A zero billable quantity (q <= Included) yields no lines, and so no
// flat fee. s is validated first (errors wrap ErrInvalid); a negative q
// wraps ErrRange; a line amount or a total above math.MaxInt64 wraps
// ErrOverflow. Each line is rounded on its own, and the invoice total is the
// sum of the line amounts (see Total).
func (s Schedule) Price(q decimal.Decimal) ([]Line, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if q.Sign() < 0 {
		return nil, fmt.Errorf("%w: quantity %s is negative", ErrRange, describe(q))
	}
	if !saneExponent(q) {
		return nil, fmt.Errorf("%w: quantity %s has an unreasonable exponent", ErrRange, describe(q))
	}
	billable := q.Sub(s.Included)
	if billable.Sign() <= 0 {
		return nil, nil
	}

	var lines []Line
	switch s.Model {
	case PerUnit:
		t := s.Tiers[0]
		lines = []Line{{Quantity: billable, Unit: t.Unit, Flat: t.Flat}}
	case Package:
		t := s.Tiers[0]
		packages, rem := billable.QuoRem(s.PackageSize, 0)
		if !rem.IsZero() {
			packages = packages.Add(decimal.NewFromInt(1))
		}
		lines = []Line{{Quantity: billable, Packages: packages, Unit: t.Unit, Flat: t.Flat}}
	case Graduated:
		lower := decimal.Zero
		for i, t := range s.Tiers {
			if billable.Cmp(lower) <= 0 {
				break
			}
			upper := billable
			if !t.Unbounded && t.UpTo.Cmp(billable) < 0 {
				upper = t.UpTo
			}
			lines = append(lines, Line{Tier: i + 1, Quantity: upper.Sub(lower), Unit: t.Unit, Flat: t.Flat})
			lower = t.UpTo
		}
	case Volume:
		for i, t := range s.Tiers {
			if t.Unbounded || billable.Cmp(t.UpTo) <= 0 {
				lines = []Line{{Tier: i + 1, Quantity: billable, Unit: t.Unit, Flat: t.Flat}}
				break
			}
		}
	}

	for i := range lines {
		l := &lines[i]
		count := l.Quantity
		if s.Model == Package {
			count = l.Packages
		}
		exact := count.Mul(l.Unit).Add(l.Flat)
		n, ok := roundHalfUp(exact)
		if !ok {
			return nil, fmt.Errorf("%w: %s line %d: amount %s", ErrOverflow, s.Model, i+1, describe(exact))
		}
		l.Amount = n
	}
	if _, err := Total(lines); err != nil {
		return nil, err
	}
	return lines, nil
}

// Total returns the sum of the lines' amounts, or an error wrapping
// ErrOverflow if the sum does not fit in an int64.
func Total(lines []Line) (int64, error) {
	var sum int64
	for _, l := range lines {
		if (l.Amount > 0 && sum > math.MaxInt64-l.Amount) || (l.Amount < 0 && sum < math.MinInt64-l.Amount) {
			return 0, fmt.Errorf("%w: total of %d lines", ErrOverflow, len(lines))
		}
		sum += l.Amount
	}
	return sum, nil
}
