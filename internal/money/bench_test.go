package money

import (
	"testing"

	"github.com/shopspring/decimal"
)

func BenchmarkPrice(b *testing.B) {
	q := decimal.RequireFromString("1234567.5")
	benchmarks := []struct {
		name     string
		schedule Schedule
	}{
		{name: "per_unit", schedule: Schedule{Model: PerUnit, Included: decimal.NewFromInt(1000), Tiers: []Tier{unbounded("0.1")}}},
		{name: "graduated_3_tiers", schedule: graduated3},
		{name: "volume", schedule: volume3},
		{name: "package", schedule: package1000},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				lines, err := bm.schedule.Price(q)
				if err != nil || len(lines) == 0 {
					b.Fatalf("Price = %v, %v", lines, err)
				}
			}
		})
	}
}
