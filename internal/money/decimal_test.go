package money

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/shopspring/decimal"
)

// dec parses a decimal literal for test tables; it does not use the code
// under test.
func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// decimalEqual makes cmp compare decimals by value.
var decimalEqual = cmp.Comparer(func(a, b decimal.Decimal) bool { return a.Equal(b) })

func TestParseDecimal(t *testing.T) {
	hundredOnes := strings.Repeat("1", 100)
	tests := []struct {
		name     string
		in       string
		maxScale int32
		want     string // canonical value; ignored when wantErr is set
		wantErr  error
	}{
		{name: "integer", in: "1", maxScale: 6, want: "1"},
		{name: "zero", in: "0", maxScale: 6, want: "0"},
		{name: "half", in: "0.5", maxScale: 6, want: "0.5"},
		{name: "one micro unit", in: "0.000001", maxScale: 6, want: "0.000001"},
		{name: "leading zeros", in: "007.50", maxScale: 6, want: "7.5"},
		{name: "trailing zeros within scale", in: "1.000000", maxScale: 6, want: "1"},
		{name: "integer with scale 0", in: "42", maxScale: 0, want: "42"},
		{name: "negative scale is 0", in: "42", maxScale: -3, want: "42"},
		{name: "100 bytes", in: hundredOnes, maxScale: 6, want: hundredOnes},
		{name: "2^128 micro units", in: "340282366920938463463374607431768.211456", maxScale: 6,
			want: "340282366920938463463374607431768.211456"},

		{name: "empty", in: "", maxScale: 6, wantErr: ErrSyntax},
		{name: "leading dot", in: ".5", maxScale: 6, wantErr: ErrSyntax},
		{name: "trailing dot", in: "5.", maxScale: 6, wantErr: ErrSyntax},
		{name: "lone dot", in: ".", maxScale: 6, wantErr: ErrSyntax},
		{name: "exponent", in: "1e3", maxScale: 6, wantErr: ErrSyntax},
		{name: "upper exponent", in: "1E3", maxScale: 6, wantErr: ErrSyntax},
		{name: "negative", in: "-1", maxScale: 6, wantErr: ErrRange},
		{name: "negative fraction", in: "-0.5", maxScale: 6, wantErr: ErrRange},
		{name: "lone minus", in: "-", maxScale: 6, wantErr: ErrSyntax},
		{name: "minus garbage", in: "-x", maxScale: 6, wantErr: ErrSyntax},
		{name: "plus", in: "+1", maxScale: 6, wantErr: ErrSyntax},
		{name: "leading space", in: " 1", maxScale: 6, wantErr: ErrSyntax},
		{name: "trailing space", in: "1 ", maxScale: 6, wantErr: ErrSyntax},
		{name: "two dots", in: "1.2.3", maxScale: 6, wantErr: ErrSyntax},
		{name: "hex", in: "0x10", maxScale: 6, wantErr: ErrSyntax},
		{name: "underscore", in: "1_000", maxScale: 6, wantErr: ErrSyntax},
		{name: "comma", in: "1,5", maxScale: 6, wantErr: ErrSyntax},
		{name: "arabic-indic digits", in: "١٢٣", maxScale: 6, wantErr: ErrSyntax},
		{name: "fullwidth digit", in: "１", maxScale: 6, wantErr: ErrSyntax},
		{name: "nul byte", in: "1\x00", maxScale: 6, wantErr: ErrSyntax},
		{name: "too many decimals", in: "0.0000001", maxScale: 6, wantErr: ErrRange},
		{name: "zeros past the scale are exact", in: "1.5000000", maxScale: 6, want: "1.5"},
		{name: "a significant digit past the scale", in: "1.5000001", maxScale: 6, wantErr: ErrRange},
		{name: "fraction with scale 0", in: "1.5", maxScale: 0, wantErr: ErrRange},
		{name: "101 bytes", in: strings.Repeat("1", 101), maxScale: 6, wantErr: ErrRange},
		{name: "101 bytes of garbage", in: strings.Repeat("x", 101), maxScale: 6, wantErr: ErrRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDecimal(tc.in, tc.maxScale)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ParseDecimal(%q, %d) error = %v, want %v", tc.in, tc.maxScale, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDecimal(%q, %d) unexpected error: %v", tc.in, tc.maxScale, err)
			}
			if diff := cmp.Diff(tc.want, got.String()); diff != "" {
				t.Errorf("ParseDecimal(%q, %d) mismatch (-want +got):\n%s", tc.in, tc.maxScale, diff)
			}
		})
	}
}

func TestParseDecimalMessages(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		maxScale int32
		want     string
	}{
		{name: "syntax", in: "1e3", maxScale: 6, want: `money: malformed decimal: "1e3"`},
		{name: "negative", in: "-1", maxScale: 6, want: `money: value out of range: "-1" is negative`},
		{name: "scale", in: "0.1234567", maxScale: 6,
			want: `money: value out of range: "0.1234567" has 7 decimal places, at most 6 allowed`},
		{name: "long input is truncated", in: strings.Repeat("9", 101), maxScale: 6,
			want: `money: value out of range: "` + strings.Repeat("9", 40) + `"... (101 bytes) is longer than 100 bytes`},
		{name: "41 bytes is truncated", in: strings.Repeat("a", 41), maxScale: 6,
			want: `money: malformed decimal: "` + strings.Repeat("a", 40) + `"... (41 bytes)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDecimal(tc.in, tc.maxScale)
			if err == nil {
				t.Fatalf("ParseDecimal(%q) succeeded, want an error", tc.in)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error message mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoundHalfUp(t *testing.T) {
	tests := []struct {
		name    string
		in      decimal.Decimal
		want    int64
		wantErr error
	}{
		{name: "zero", in: dec("0"), want: 0},
		{name: "zero value", in: decimal.Decimal{}, want: 0},
		{name: "exact half rounds up", in: dec("0.5"), want: 1},
		{name: "two and a half rounds up", in: dec("2.5"), want: 3},
		{name: "just below half rounds down", in: dec("0.4999999"), want: 0},
		{name: "one and just below half", in: dec("1.4999999"), want: 1},
		{name: "just above half", in: dec("0.5000001"), want: 1},
		{name: "tiny", in: dec("0.0000000001"), want: 0},
		{name: "tiny exponent", in: decimal.New(5, -1_000_000_000), want: 0},
		{name: "0.05 rounds down", in: dec("0.05"), want: 0},
		{name: "integer", in: dec("123456"), want: 123456},
		{name: "positive exponent", in: decimal.New(12, 3), want: 12000},
		{name: "max int64", in: dec("9223372036854775807"), want: math.MaxInt64},
		{name: "max int64 plus 0.4", in: dec("9223372036854775807.4"), want: math.MaxInt64},
		{name: "max int64 plus 0.5", in: dec("9223372036854775807.5"), wantErr: ErrOverflow},
		{name: "max int64 plus 1", in: dec("9223372036854775808"), wantErr: ErrOverflow},
		{name: "uint64 wrap value", in: dec("18446744073709551616"), wantErr: ErrOverflow},
		{name: "1e19", in: dec("10000000000000000000"), wantErr: ErrOverflow},
		{name: "1e30", in: decimal.New(1, 30), wantErr: ErrOverflow},
		{name: "huge exponent", in: decimal.New(1, 2_000_000_000), wantErr: ErrOverflow},
		{name: "negative", in: dec("-1"), wantErr: ErrRange},
		{name: "negative small", in: dec("-0.4"), wantErr: ErrRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RoundHalfUp(tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("RoundHalfUp(%s) = %d, %v, want error %v", describe(tc.in), got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("RoundHalfUp(%s) unexpected error: %v", describe(tc.in), err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("RoundHalfUp(%s) mismatch (-want +got):\n%s", describe(tc.in), diff)
			}
		})
	}
}

func TestTotal(t *testing.T) {
	tests := []struct {
		name    string
		amounts []int64
		want    int64
		wantErr error
	}{
		{name: "nil", amounts: nil, want: 0},
		{name: "one", amounts: []int64{42}, want: 42},
		{name: "several", amounts: []int64{0, 900, 49999999500}, want: 50000000400},
		{name: "exactly max", amounts: []int64{math.MaxInt64 - 1, 1}, want: math.MaxInt64},
		{name: "max plus one", amounts: []int64{math.MaxInt64, 1}, wantErr: ErrOverflow},
		{name: "two halves of max", amounts: []int64{1 << 62, 1 << 62}, wantErr: ErrOverflow},
		{name: "negative overflow", amounts: []int64{math.MinInt64, -1}, wantErr: ErrOverflow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var lines []Line
			for _, a := range tc.amounts {
				lines = append(lines, Line{Amount: a})
			}
			got, err := Total(lines)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Total(%v) = %d, %v, want error %v", tc.amounts, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Total(%v) unexpected error: %v", tc.amounts, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Total(%v) mismatch (-want +got):\n%s", tc.amounts, diff)
			}
		})
	}
}

func TestModelString(t *testing.T) {
	tests := []struct {
		name  string
		model Model
		want  string
	}{
		{name: "per unit", model: PerUnit, want: "per_unit"},
		{name: "package", model: Package, want: "package"},
		{name: "graduated", model: Graduated, want: "graduated"},
		{name: "volume", model: Volume, want: "volume"},
		{name: "unknown", model: Model(9), want: "Model(9)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.model.String()); diff != "" {
				t.Errorf("String() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
