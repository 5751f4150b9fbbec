package fixed

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Micros
		wantStr string
		wantErr error
	}{
		{name: "one", in: "1", want: Micros{Lo: 1_000_000}, wantStr: "1"},
		{name: "half", in: "0.5", want: Micros{Lo: 500_000}, wantStr: "0.5"},
		{name: "one millionth", in: "0.000001", want: Micros{Lo: 1}, wantStr: "0.000001"},
		{name: "zero", in: "0", want: Micros{}, wantStr: "0"},
		{name: "trailing zeros dropped", in: "12.500000", want: Micros{Lo: 12_500_000}, wantStr: "12.5"},
		{name: "leading zeros", in: "007", want: Micros{Lo: 7_000_000}, wantStr: "7"},
		{name: "64-bit boundary", in: "18446744073709.551615", want: Micros{Lo: ^uint64(0)}, wantStr: "18446744073709.551615"},
		{name: "past 64 bits", in: "18446744073709.551616", want: Micros{Hi: 1}, wantStr: "18446744073709.551616"},
		{name: "largest", in: "340282366920938463463374607431768.211455", want: Micros{Hi: ^uint64(0), Lo: ^uint64(0)}, wantStr: "340282366920938463463374607431768.211455"},
		{name: "overflow", in: "340282366920938463463374607431768.211456", wantErr: ErrRange},
		{name: "seven decimals", in: "0.0000001", wantErr: ErrPrecision},
		{name: "zeros past six decimals are exact", in: "1.50000000", want: Micros{Lo: 1_500_000}, wantStr: "1.5"},
		{name: "negative", in: "-1", wantErr: ErrNegative},
		{name: "plus sign", in: "+1", wantErr: ErrSyntax},
		{name: "empty", in: "", wantErr: ErrEmpty},
		{name: "bare dot", in: ".", wantErr: ErrSyntax},
		{name: "leading dot", in: ".5", wantErr: ErrSyntax},
		{name: "trailing dot", in: "5.", wantErr: ErrSyntax},
		{name: "exponent", in: "1e3", wantErr: ErrSyntax},
		{name: "space", in: " 1", wantErr: ErrSyntax},
		{name: "two dots", in: "1.2.3", wantErr: ErrSyntax},
		{name: "unicode digit", in: "١", wantErr: ErrSyntax},
		{name: "too long", in: strings.Repeat("1", 81), wantErr: ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if s := got.String(); s != tt.wantStr {
				t.Errorf("String() = %q, want %q", s, tt.wantStr)
			}
		})
	}
}

func TestAddAndCmp(t *testing.T) {
	maxV := Micros{Hi: ^uint64(0), Lo: ^uint64(0)}
	tests := []struct {
		name    string
		a, b    Micros
		want    Micros
		wantOK  bool
		wantCmp int
	}{
		{name: "carry into high word", a: Micros{Lo: ^uint64(0)}, b: Micros{Lo: 1}, want: Micros{Hi: 1}, wantOK: true, wantCmp: 1},
		{name: "overflow", a: maxV, b: Micros{Lo: 2}, want: Micros{}, wantOK: false, wantCmp: 1},
		{name: "equal", a: Units(3), b: Units(3), want: Units(6), wantOK: true, wantCmp: 0},
		{name: "high word decides", a: Micros{Hi: 1}, b: Micros{Lo: ^uint64(0)}, want: Micros{Hi: 1, Lo: ^uint64(0)}, wantOK: true, wantCmp: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.a.Add(tt.b)
			if diff := cmp.Diff([]any{tt.want, tt.wantOK, tt.wantCmp}, []any{got, ok, tt.a.Cmp(tt.b)}); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSub(t *testing.T) {
	tests := []struct {
		name   string
		a, b   Micros
		want   Micros
		wantOK bool
	}{
		{name: "borrow from high word", a: Micros{Hi: 1}, b: Micros{Lo: 1}, want: Micros{Lo: ^uint64(0)}, wantOK: true},
		{name: "to zero", a: Units(3), b: Units(3), want: Micros{}, wantOK: true},
		{name: "below zero", a: Units(1), b: Units(2), want: Micros{}, wantOK: false},
		{name: "high word below zero", a: Micros{Lo: 5}, b: Micros{Hi: 1}, want: Micros{}, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.a.Sub(tt.b)
			if diff := cmp.Diff([]any{tt.want, tt.wantOK}, []any{got, ok}); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
			if back, _ := got.Add(tt.b); ok && back != tt.a {
				t.Errorf("(a-b)+b = %v, want %v", back, tt.a)
			}
		})
	}
}

// FuzzParse checks Parse against math/big: whatever parses is exact and round-trips.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"1", "0.5", "0.000001", "18446744073709.551616", "340282366920938463463374607431768.211455", "-1", "1e3", ".5", "0.0000001"} {
		f.Add(s)
	}
	scale := big.NewInt(Scale)
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		// Reference: big.Rat accepts a superset; restrict to the plain-decimal grammar.
		r, ok := new(big.Rat).SetString(s)
		plain := ok && s != "" && s[0] >= '0' && s[0] <= '9' && !strings.ContainsAny(s, "eE/+-_xXpPoObB") && !strings.HasSuffix(s, ".")
		if err != nil {
			if plain && len(s) <= maxInput {
				scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(scale))
				if scaled.IsInt() && scaled.Num().Cmp(limit) < 0 {
					t.Fatalf("Parse(%q) refused a representable decimal: %v", s, err)
				}
			}
			return
		}
		if !plain {
			t.Fatalf("Parse(%q) accepted a non-plain decimal", s)
		}
		want := new(big.Rat).Mul(r, new(big.Rat).SetInt(scale))
		if !want.IsInt() || want.Num().Cmp(m.Big()) != 0 {
			t.Fatalf("Parse(%q) = %s millionths, want %s", s, m.Big(), want.RatString())
		}
		back, err := Parse(m.String())
		if err != nil || back != m {
			t.Fatalf("round trip of %q via %q = %v, %v", s, m.String(), back, err)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		if _, err := Parse("1234.5678"); err != nil {
			b.Fatal(err)
		}
	}
}
