// Package fixed is the exact arithmetic behind meterbill.Value: unsigned 128-bit integers of
// millionths (Unimeter's scale, 10^-6), parsed from and formatted as plain decimals.
package fixed

import (
	"errors"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
)

// Scale is Unimeter's fixed-point scale: values travel as integers of 10^-Decimals units.
const (
	Scale    = 1_000_000
	Decimals = 6
	maxInput = 80
)

// The reasons Parse refuses an input.
var (
	ErrEmpty     = errors.New("empty")
	ErrTooLong   = errors.New("longer than 80 bytes")
	ErrNegative  = errors.New("negative")
	ErrSyntax    = errors.New("not a plain decimal (digits, optionally one '.' followed by digits)")
	ErrPrecision = errors.New("more than 6 decimal places (the meter stores millionths)")
	ErrRange     = errors.New("more than 2^128-1 millionths")
)

// Micros is a non-negative 128-bit count of millionths. The zero value is 0.
type Micros struct{ Hi, Lo uint64 }

// Units returns n whole units; it cannot overflow.
func Units(n uint64) Micros {
	hi, lo := bits.Mul64(n, Scale)
	return Micros{Hi: hi, Lo: lo}
}

// Parse parses a plain non-negative decimal with at most six decimals.
func Parse(s string) (Micros, error) {
	switch {
	case s == "":
		return Micros{}, ErrEmpty
	case len(s) > maxInput:
		return Micros{}, ErrTooLong
	case s[0] == '-':
		return Micros{}, ErrNegative
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || !digits(whole) || !digits(frac) {
		return Micros{}, ErrSyntax
	}
	if len(frac) > Decimals {
		// Zeros past the sixth decimal are exact ("1.50000000"); anything else is not.
		if strings.TrimRight(frac[Decimals:], "0") != "" {
			return Micros{}, ErrPrecision
		}
		frac = frac[:Decimals]
	}
	var v Micros
	var ok bool
	for _, part := range [...]string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if v, ok = v.mulAdd(10, uint64(part[i]-'0')); !ok {
				return Micros{}, ErrRange
			}
		}
	}
	for range Decimals - len(frac) {
		if v, ok = v.mulAdd(10, 0); !ok {
			return Micros{}, ErrRange
		}
	}
	return v, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// mulAdd returns v*m + a and whether it fit in 128 bits.
func (v Micros) mulAdd(m, a uint64) (Micros, bool) {
	hiHi, hiLo := bits.Mul64(v.Hi, m)
	loHi, loLo := bits.Mul64(v.Lo, m)
	hi, c1 := bits.Add64(hiLo, loHi, 0)
	lo, c2 := bits.Add64(loLo, a, 0)
	hi, c3 := bits.Add64(hi, 0, c2)
	return Micros{Hi: hi, Lo: lo}, hiHi == 0 && c1 == 0 && c3 == 0
}

// Add returns v+w, or 0 and false if the sum does not fit in 128 bits.
func (v Micros) Add(w Micros) (Micros, bool) {
	lo, c := bits.Add64(v.Lo, w.Lo, 0)
	hi, c := bits.Add64(v.Hi, w.Hi, c)
	if c != 0 {
		return Micros{}, false
	}
	return Micros{Hi: hi, Lo: lo}, true
}

// Sub returns v-w, or 0 and false if w is greater than v.
func (v Micros) Sub(w Micros) (Micros, bool) {
	lo, b := bits.Sub64(v.Lo, w.Lo, 0)
	hi, b := bits.Sub64(v.Hi, w.Hi, b)
	if b != 0 {
		return Micros{}, false
	}
	return Micros{Hi: hi, Lo: lo}, true
}

// IsZero reports whether v is 0.
func (v Micros) IsZero() bool { return v == Micros{} }

// Cmp returns -1, 0 or +1 as v is less than, equal to or greater than w.
func (v Micros) Cmp(w Micros) int {
	if v.Hi != w.Hi {
		return cmpU64(v.Hi, w.Hi)
	}
	return cmpU64(v.Lo, w.Lo)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Big returns v as a new big.Int of millionths.
func (v Micros) Big() *big.Int {
	b := new(big.Int).SetUint64(v.Hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(v.Lo))
}

// String formats v as a plain decimal without trailing zeros: "1", "0.5", "0.000001".
func (v Micros) String() string {
	var d string
	if v.Hi == 0 {
		d = strconv.FormatUint(v.Lo, 10)
	} else {
		d = v.Big().String()
	}
	if len(d) <= Decimals {
		d = strings.Repeat("0", Decimals-len(d)+1) + d
	}
	whole, frac := d[:len(d)-Decimals], strings.TrimRight(d[len(d)-Decimals:], "0")
	if frac == "" {
		return whole
	}
	return whole + "." + frac
}
