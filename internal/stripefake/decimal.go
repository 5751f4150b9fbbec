package stripefake

import (
	"math/big"
	"strings"
)

// maxDecimalPlaces is Stripe's limit on the fraction digits of
// unit_amount_decimal.
const maxDecimalPlaces = 12

// decimal is an exact non-negative decimal number: mant × 10^-scale.
type decimal struct {
	mant  *big.Int
	scale int
}

// parseDecimal parses a non-negative decimal string such as "12", "0.5" or
// "0.000000000001": digits, optionally a point followed by at most
// maxDecimalPlaces digits. No sign, exponent or bare point.
func parseDecimal(s string) (decimal, bool) {
	whole, frac, hasPoint := strings.Cut(s, ".")
	if whole == "" || !allDigits(whole) || !allDigits(frac) || (hasPoint && frac == "") || len(frac) > maxDecimalPlaces {
		return decimal{}, false
	}
	mant, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		return decimal{}, false
	}
	return decimal{mant: mant, scale: len(frac)}, true
}

// allDigits reports whether s holds only ASCII digits ("" does).
func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// mulRoundHalfUp returns q × d rounded half up to an integer, and false if
// that does not fit an int64. q must not be negative.
func (d decimal) mulRoundHalfUp(q int64) (int64, bool) {
	num := new(big.Int).Mul(d.mant, big.NewInt(q))
	div := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.scale)), nil)
	half := new(big.Int).Rsh(div, 1) // div is 1 or even
	num.Add(num, half)
	num.Quo(num, div)
	if !num.IsInt64() {
		return 0, false
	}
	return num.Int64(), true
}

// String is the canonical form: no leading zeros before the point, no
// trailing zeros after it, no point for an integer.
func (d decimal) String() string {
	digits := d.mant.String()
	if d.scale == 0 {
		return digits
	}
	if len(digits) <= d.scale {
		digits = strings.Repeat("0", d.scale-len(digits)+1) + digits
	}
	whole, frac := digits[:len(digits)-d.scale], digits[len(digits)-d.scale:]
	frac = strings.TrimRight(frac, "0")
	if frac == "" {
		return whole
	}
	return whole + "." + frac
}
