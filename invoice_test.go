package meterbill_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill"
)

// line is the comparable projection of a meterbill.Line used in tables.
type line struct {
	Desc     string
	Tier     int
	Qty      string
	Packages string
	Unit     string
	Flat     string
	Amount   int64
}

func project(ls []meterbill.Line) []line {
	var out []line
	for _, l := range ls {
		out = append(out, line{Desc: l.Description, Tier: l.Tier, Qty: l.Quantity.String(), Packages: l.Packages.String(), Unit: l.UnitPrice, Flat: l.FlatFee, Amount: l.Amount})
	}
	return out
}

func usageOf(t testing.TB, m meterbill.Metric, qty string) meterbill.Usage {
	return meterbill.Usage{Account: 1, Metric: m, Value: mustValue(t, qty)}
}

func TestPlanPrices(t *testing.T) {
	bytes := meterbill.Metric{Code: "egress_gb", Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 1}
	tiered := func(model meterbill.PriceModel, included string) meterbill.Price {
		return meterbill.Price{Metric: calls, Description: "API calls", Model: model, Included: included, Currencies: map[string][]meterbill.Tier{
			"usd": {{UpTo: "1000", Unit: "0"}, {UpTo: "10000", Unit: "0.1", Flat: "500"}, {Unit: "0.05"}},
		}}
	}
	tests := []struct {
		name     string
		price    meterbill.Price
		currency string
		qty      string
		want     []line
	}{
		{
			name:     "sub-cent per unit rounds half-up once per line",
			price:    meterbill.Price{Metric: calls, Description: "API calls", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.1"}}}},
			currency: "usd", qty: "1234565",
			// 1,234,565 calls at $0.001 = 123,456.5 cents -> 123,457.
			want: []line{{Desc: "API calls", Qty: "1234565", Packages: "0", Unit: "0.1", Flat: "0", Amount: 123457}},
		},
		{
			name:     "half a cent rounds up",
			price:    meterbill.Price{Metric: calls, Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.1"}}}},
			currency: "usd", qty: "5",
			want: []line{{Desc: "api_calls", Qty: "5", Packages: "0", Unit: "0.1", Flat: "0", Amount: 1}},
		},
		{
			name:     "below half a cent rounds down",
			price:    meterbill.Price{Metric: calls, Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.1"}}}},
			currency: "usd", qty: "4",
			want: []line{{Desc: "api_calls", Qty: "4", Packages: "0", Unit: "0.1", Flat: "0", Amount: 0}},
		},
		{
			name:     "currency code is case-insensitive and zero-decimal yen needs no table",
			price:    meterbill.Price{Metric: calls, Description: "API calls", Currencies: map[string][]meterbill.Tier{"JPY": {{Unit: "3"}}}},
			currency: "jpy", qty: "7",
			want: []line{{Desc: "API calls", Qty: "7", Packages: "0", Unit: "3", Flat: "0", Amount: 21}},
		},
		{
			name:     "three-decimal dinar in fils with a fractional quantity",
			price:    meterbill.Price{Metric: bytes, Description: "Egress", Currencies: map[string][]meterbill.Tier{"kwd": {{Unit: "1250"}}}},
			currency: "KWD", qty: "2.5",
			want: []line{{Desc: "Egress", Qty: "2.5", Packages: "0", Unit: "1250", Flat: "0", Amount: 3125}},
		},
		{
			name:     "graduated below the first boundary bills the free tier only",
			price:    tiered(meterbill.Graduated, ""),
			currency: "usd", qty: "1000",
			want: []line{{Desc: "API calls (tier 1)", Tier: 1, Qty: "1000", Packages: "0", Unit: "0", Flat: "0", Amount: 0}},
		},
		{
			name:     "graduated one unit past a boundary reaches the next tier and its flat fee",
			price:    tiered(meterbill.Graduated, ""),
			currency: "usd", qty: "1001",
			want: []line{
				{Desc: "API calls (tier 1)", Tier: 1, Qty: "1000", Packages: "0", Unit: "0", Flat: "0", Amount: 0},
				{Desc: "API calls (tier 2)", Tier: 2, Qty: "1", Packages: "0", Unit: "0.1", Flat: "500", Amount: 500},
			},
		},
		{
			name:     "graduated across all tiers, one line each",
			price:    tiered(meterbill.Graduated, ""),
			currency: "usd", qty: "25000.5",
			want: []line{
				{Desc: "API calls (tier 1)", Tier: 1, Qty: "1000", Packages: "0", Unit: "0", Flat: "0", Amount: 0},
				{Desc: "API calls (tier 2)", Tier: 2, Qty: "9000", Packages: "0", Unit: "0.1", Flat: "500", Amount: 1400},
				{Desc: "API calls (tier 3)", Tier: 3, Qty: "15000.5", Packages: "0", Unit: "0.05", Flat: "0", Amount: 750}, // 750.025
			},
		},
		{
			name:     "volume exactly at a bound stays in that tier",
			price:    tiered(meterbill.Volume, ""),
			currency: "usd", qty: "10000",
			want: []line{{Desc: "API calls (tier 2)", Tier: 2, Qty: "10000", Packages: "0", Unit: "0.1", Flat: "500", Amount: 1500}},
		},
		{
			name:     "volume just past a bound prices every unit in the next tier",
			price:    tiered(meterbill.Volume, ""),
			currency: "usd", qty: "10000.000001",
			want: []line{{Desc: "API calls (tier 3)", Tier: 3, Qty: "10000.000001", Packages: "0", Unit: "0.05", Flat: "0", Amount: 500}},
		},
		{
			name:     "included units come off before the tiers",
			price:    tiered(meterbill.Graduated, "500"),
			currency: "usd", qty: "1600",
			want: []line{
				{Desc: "API calls (tier 1)", Tier: 1, Qty: "1000", Packages: "0", Unit: "0", Flat: "0", Amount: 0},
				{Desc: "API calls (tier 2)", Tier: 2, Qty: "100", Packages: "0", Unit: "0.1", Flat: "500", Amount: 510},
			},
		},
		{
			name:     "usage within the included units bills nothing",
			price:    tiered(meterbill.Graduated, "500"),
			currency: "usd", qty: "500",
		},
		{
			name:     "no usage, no line",
			price:    meterbill.Price{Metric: calls, Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.1", Flat: "100"}}}},
			currency: "usd", qty: "0",
		},
		{
			name:     "package rounds the count of packages up",
			price:    meterbill.Price{Metric: calls, Description: "API calls", Model: meterbill.Package, PackageSize: "1000", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "200"}}}},
			currency: "usd", qty: "2001",
			want: []line{{Desc: "API calls", Qty: "2001", Packages: "3", Unit: "200", Flat: "0", Amount: 600}},
		},
		{
			name:     "package exactly full",
			price:    meterbill.Price{Metric: calls, Model: meterbill.Package, PackageSize: "1000", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "200"}}}},
			currency: "usd", qty: "2000",
			want: []line{{Desc: "api_calls", Qty: "2000", Packages: "2", Unit: "200", Flat: "0", Amount: 400}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := meterbill.NewPlan(tt.price)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := plan.Price(context.Background(), tt.currency, usageOf(t, tt.price.Metric, tt.qty))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, project(lines)); diff != "" {
				t.Errorf("lines mismatch (-want +got):\n%s", diff)
			}
			for _, l := range lines {
				if l.Currency != strings.ToLower(tt.currency) || l.Metric != tt.price.Metric.Code {
					t.Errorf("line %+v: currency or metric not carried", l)
				}
			}
		})
	}
}

func TestPlanPriceErrors(t *testing.T) {
	plan, err := meterbill.NewPlan(meterbill.Price{Metric: calls, Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "1000000000"}}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		currency string
		usage    meterbill.Usage
		wantErr  error
	}{
		{name: "currency without a price", currency: "eur", usage: usageOf(t, calls, "1"), wantErr: meterbill.ErrNoPrice},
		{name: "metric not in the plan", currency: "usd", usage: usageOf(t, seats, "1"), wantErr: meterbill.ErrNoPrice},
		// 10^10 calls at 10^9 cents is 10^19 cents: past int64, an error and never a wrap.
		{name: "amount overflow", currency: "usd", usage: usageOf(t, calls, "10000000000"), wantErr: meterbill.ErrAmountOverflow},
		{name: "largest quantity overflows cleanly", currency: "usd", usage: usageOf(t, calls, "340282366920938463463374607431768.211455"), wantErr: meterbill.ErrAmountOverflow},
		{name: "usage of another definition of the metric", currency: "usd", usage: usageOf(t, meterbill.Metric{Code: calls.Code, Aggregation: meterbill.Max, Period: meterbill.Day}, "1"), wantErr: meterbill.ErrMetricConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, err := plan.Price(context.Background(), tt.currency, tt.usage)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Price = %v, want %v", err, tt.wantErr)
			}
			if lines != nil {
				t.Errorf("lines %+v alongside an error", lines)
			}
		})
	}
}

// TestAbsurdPackageCountIsAnErrorNotAPanic: a package of one millionth at price 0 over a
// 2^124-unit quantity has a package count past 128 bits.
func TestAbsurdPackageCountIsAnErrorNotAPanic(t *testing.T) {
	plan, err := meterbill.NewPlan(meterbill.Price{Metric: calls, Model: meterbill.Package, PackageSize: "0.000001", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0"}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = plan.Price(context.Background(), "usd", meterbill.Usage{Account: 1, Metric: calls, Value: meterbill.Micros128(1<<60, 0)})
	if !errors.Is(err, meterbill.ErrAmountOverflow) {
		t.Errorf("Price = %v, want ErrAmountOverflow", err)
	}
}

func TestNewPlanRejects(t *testing.T) {
	usd := func(tiers ...meterbill.Tier) map[string][]meterbill.Tier {
		return map[string][]meterbill.Tier{"usd": tiers}
	}
	tests := []struct {
		name   string
		prices []meterbill.Price
	}{
		{name: "invalid metric", prices: []meterbill.Price{{Metric: meterbill.Metric{Code: "x"}, Currencies: usd(meterbill.Tier{Unit: "1"})}}},
		{name: "no currencies", prices: []meterbill.Price{{Metric: calls}}},
		{name: "metric priced twice", prices: []meterbill.Price{{Metric: calls, Currencies: usd(meterbill.Tier{Unit: "1"})}, {Metric: calls, Currencies: usd(meterbill.Tier{Unit: "2"})}}},
		{name: "currency priced twice in two cases", prices: []meterbill.Price{{Metric: calls, Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "1"}}, "USD": {{Unit: "2"}}}}}},
		{name: "not a currency code", prices: []meterbill.Price{{Metric: calls, Currencies: map[string][]meterbill.Tier{"dollars": {{Unit: "1"}}}}}},
		{name: "float-looking price", prices: []meterbill.Price{{Metric: calls, Currencies: usd(meterbill.Tier{Unit: "1e-3"})}}},
		{name: "negative price", prices: []meterbill.Price{{Metric: calls, Currencies: usd(meterbill.Tier{Unit: "-1"})}}},
		{name: "13 decimals", prices: []meterbill.Price{{Metric: calls, Currencies: usd(meterbill.Tier{Unit: "0.0000000000001"})}}},
		{name: "empty unit price", prices: []meterbill.Price{{Metric: calls, Currencies: usd(meterbill.Tier{})}}},
		{name: "per unit with two tiers", prices: []meterbill.Price{{Metric: calls, Currencies: usd(meterbill.Tier{UpTo: "10", Unit: "1"}, meterbill.Tier{Unit: "1"})}}},
		{name: "package without size", prices: []meterbill.Price{{Metric: calls, Model: meterbill.Package, Currencies: usd(meterbill.Tier{Unit: "1"})}}},
		{name: "tiers out of order", prices: []meterbill.Price{{Metric: calls, Model: meterbill.Graduated, Currencies: usd(meterbill.Tier{UpTo: "10", Unit: "1"}, meterbill.Tier{UpTo: "5", Unit: "1"}, meterbill.Tier{Unit: "1"})}}},
		{name: "last tier bounded", prices: []meterbill.Price{{Metric: calls, Model: meterbill.Volume, Currencies: usd(meterbill.Tier{UpTo: "10", Unit: "1"})}}},
		{name: "tier bound with 7 decimals", prices: []meterbill.Price{{Metric: calls, Model: meterbill.Graduated, Currencies: usd(meterbill.Tier{UpTo: "0.0000001", Unit: "1"}, meterbill.Tier{Unit: "1"})}}},
		{name: "included units malformed", prices: []meterbill.Price{{Metric: calls, Included: "ten", Currencies: usd(meterbill.Tier{Unit: "1"})}}},
		{name: "unknown model", prices: []meterbill.Price{{Metric: calls, Model: 9, Currencies: usd(meterbill.Tier{Unit: "1"})}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := meterbill.NewPlan(tt.prices...); !errors.Is(err, meterbill.ErrInvalidPlan) {
				t.Errorf("NewPlan = %v, want ErrInvalidPlan", err)
			}
		})
	}
}

func TestPlanMetricsKeepsOrderAndIsACopy(t *testing.T) {
	usd := map[string][]meterbill.Tier{"usd": {{Unit: "1"}}}
	plan, err := meterbill.NewPlan(meterbill.Price{Metric: seats, Currencies: usd}, meterbill.Price{Metric: calls, Currencies: usd})
	if err != nil {
		t.Fatal(err)
	}
	got := plan.Metrics()
	if diff := cmp.Diff([]meterbill.Metric{seats, calls}, got); diff != "" {
		t.Errorf("Metrics mismatch (-want +got):\n%s", diff)
	}
	got[0].Code = "changed"
	if plan.Metrics()[0].Code != seats.Code {
		t.Error("Metrics returned the plan's own slice")
	}
}
