package money

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// ErrSyntax is wrapped by errors for strings that are not plain decimals.
var ErrSyntax = errors.New("money: malformed decimal")

// ErrRange is wrapped by errors for values that are well formed but not
// acceptable: negative, too many fractional digits or too long.
var ErrRange = errors.New("money: value out of range")

// ErrInvalid is wrapped by errors for schedules that cannot price anything.
var ErrInvalid = errors.New("money: invalid schedule")

// ErrOverflow is wrapped by errors for amounts that do not fit in an int64
// number of minor units.
var ErrOverflow = errors.New("money: amount overflows int64")

const (
	// maxInputLen caps the length of strings given to ParseDecimal.
	maxInputLen = 100
	// maxQuotedLen is how much of a bad input an error message repeats.
	maxQuotedLen = 40
	// maxExponent bounds the decimal exponent of every value Price works
	// with, so that hostile values (say 1e2000000000) cannot make the
	// arithmetic panic or allocate huge numbers.
	maxExponent = 1000
)

var maxInt64 = decimal.NewFromInt(math.MaxInt64)

// ParseDecimal parses a non-negative plain decimal such as "12", "0.5" or
// "007.50": ASCII digits, optionally followed by one '.' and at least one
// more digit. Signs, exponents, spaces, underscores and a leading '.' are
// rejected with an error wrapping ErrSyntax, except that a leading '-' in
// front of an otherwise valid decimal is reported as ErrRange (negative).
// More than maxScale significant fractional digits (trailing zeros are
// exact and do not count; a negative maxScale counts as 0) or an input longer than 100 bytes also wrap ErrRange.
func ParseDecimal(s string, maxScale int32) (decimal.Decimal, error) {
	if len(s) > maxInputLen {
		return decimal.Decimal{}, fmt.Errorf("%w: %s is longer than %d bytes", ErrRange, quote(s), maxInputLen)
	}
	maxScale = max(maxScale, 0)
	body := s
	negative := len(s) > 0 && s[0] == '-'
	if negative {
		body = s[1:]
	}
	fracDigits, ok := scanDecimal(body)
	if !ok {
		return decimal.Decimal{}, fmt.Errorf("%w: %s", ErrSyntax, quote(s))
	}
	if negative {
		return decimal.Decimal{}, fmt.Errorf("%w: %s is negative", ErrRange, quote(s))
	}
	if fracDigits > int(maxScale) {
		return decimal.Decimal{}, fmt.Errorf("%w: %s has %d decimal places, at most %d allowed",
			ErrRange, quote(s), fracDigits, maxScale)
	}
	d, err := decimal.NewFromString(body)
	if err != nil { // unreachable: body was checked above
		return decimal.Decimal{}, fmt.Errorf("%w: %s", ErrSyntax, quote(s))
	}
	// Drop the exact trailing zeros, so the value carries only its significant decimals.
	return d.Truncate(int32(fracDigits)), nil
}

// scanDecimal reports whether s is digits, optionally followed by '.' and
// digits, and how many fractional digits it has.
func scanDecimal(s string) (fracDigits int, ok bool) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == 0 {
		return 0, false
	}
	if i == len(s) {
		return 0, true
	}
	if s[i] != '.' {
		return 0, false
	}
	frac := s[i+1:]
	if frac == "" {
		return 0, false
	}
	for j := 0; j < len(frac); j++ {
		if !isDigit(frac[j]) {
			return 0, false
		}
	}
	// Zeros past the last significant digit are exact at any scale.
	return len(strings.TrimRight(frac, "0")), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// quote returns s quoted for an error message, truncated when long.
func quote(s string) string {
	if len(s) <= maxQuotedLen {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:maxQuotedLen]), len(s))
}

// describe formats d for an error message without expanding huge exponents.
func describe(d decimal.Decimal) string {
	if e := d.Exponent(); e < -maxExponent || e > maxExponent {
		return d.Coefficient().String() + "e" + strconv.Itoa(int(e))
	}
	return d.String()
}

// RoundHalfUp rounds a non-negative decimal to an integer number of minor
// units, half-up. It returns an error wrapping ErrRange for a negative d and
// one wrapping ErrOverflow if the result exceeds math.MaxInt64.
func RoundHalfUp(d decimal.Decimal) (int64, error) {
	if d.Sign() < 0 {
		return 0, fmt.Errorf("%w: cannot round negative amount %s", ErrRange, describe(d))
	}
	n, ok := roundHalfUp(d)
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrOverflow, describe(d))
	}
	return n, nil
}

// roundHalfUp rounds a non-negative d half-up; ok is false if the result
// does not fit in an int64.
func roundHalfUp(d decimal.Decimal) (n int64, ok bool) {
	if d.Sign() == 0 {
		return 0, true
	}
	// d < 10^intDigits. Decide the extremes without rescaling, which would
	// be expensive for values with very large or very small exponents.
	intDigits := int64(d.NumDigits()) + int64(d.Exponent())
	if intDigits < 0 { // d < 0.1
		return 0, true
	}
	if intDigits >= 20 { // d >= 10^19 > MaxInt64
		return 0, false
	}
	r := d.Round(0) // half away from zero, which is half-up for d >= 0
	if r.Cmp(maxInt64) > 0 {
		return 0, false
	}
	return r.IntPart(), true
}
