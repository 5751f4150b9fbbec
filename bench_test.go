package meterbill_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/meterbill/meterbill"
)

// BenchmarkMemoryMeterIngest measures batches of 500 events into the embedded meter: one account
// (one shard lock) and 256 accounts (every partition).
func BenchmarkMemoryMeterIngest(b *testing.B) {
	for _, tc := range []struct {
		name     string
		accounts uint64
	}{{name: "one_account", accounts: 1}, {name: "256_accounts", accounts: 256}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			m := meterbill.NewMemoryMeter()
			if err := m.Define(ctx, storage); err != nil {
				b.Fatal(err)
			}
			batch := make([]meterbill.Event, 500)
			base := date(2026, 4, 20)
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				for i := range batch {
					n++
					batch[i] = meterbill.Event{Account: uint64(n)%tc.accounts + 1, Metric: storage.Code, Value: meterbill.Micros(1_500_000), Time: base.Add(time.Duration(n))}
				}
				if _, err := m.Ingest(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkMemoryMeterQuery measures a query over a monthly window of a Calendar metric and of a Day
// metric (30 buckets merged).
func BenchmarkMemoryMeterQuery(b *testing.B) {
	daily := meterbill.Metric{Code: "daily_calls", Aggregation: meterbill.Count, Period: meterbill.Day}
	for _, m := range []meterbill.Metric{storage, daily} {
		b.Run(m.Period.String(), func(b *testing.B) {
			ctx := context.Background()
			meter := meterbill.NewMemoryMeter()
			if err := meter.Define(ctx, m); err != nil {
				b.Fatal(err)
			}
			var events []meterbill.Event
			for d := 0; d < 30; d++ {
				events = append(events, meterbill.Event{Account: 7, Metric: m.Code, Value: meterbill.Units(1), Time: date(2026, 4, 15).AddDate(0, 0, d)})
			}
			if _, err := meter.Ingest(ctx, events); err != nil {
				b.Fatal(err)
			}
			p := meterbill.Period{Start: date(2026, 4, 15), End: date(2026, 5, 15)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := meter.Query(ctx, 7, m, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPlanPrice measures pricing one usage through the public Plan.
func BenchmarkPlanPrice(b *testing.B) {
	for _, tc := range []struct {
		name  string
		model meterbill.PriceModel
		tiers []meterbill.Tier
	}{
		{name: "per_unit", model: meterbill.PerUnit, tiers: []meterbill.Tier{{Unit: "0.1"}}},
		{name: "graduated_3_tiers", model: meterbill.Graduated, tiers: []meterbill.Tier{{UpTo: "1000", Unit: "0"}, {UpTo: "100000", Unit: "0.1"}, {Unit: "0.05"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			plan, err := meterbill.NewPlan(meterbill.Price{Metric: calls, Model: tc.model, Currencies: map[string][]meterbill.Tier{"usd": tc.tiers}})
			if err != nil {
				b.Fatal(err)
			}
			u := meterbill.Usage{Account: 1, Metric: calls, Value: meterbill.Units(1_234_567)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := plan.Price(context.Background(), "usd", u); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandler measures one invoice.created through the webhook handler, signature to
// Stripe writes, with in-memory fakes (no network): first delivery of an invoice with 1 and 5
// billed metrics, and a redelivery that finds everything billed. It reports the Stripe requests
// an invoice costs, the figure that matters against Stripe's 25 requests/s.
func BenchmarkHandler(b *testing.B) {
	for _, tc := range []struct {
		name      string
		metrics   int
		redeliver bool
	}{
		{name: "metrics=1", metrics: 1},
		{name: "metrics=5", metrics: 5},
		{name: "metrics=5/redelivery", metrics: 5, redeliver: true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			meter := meterbill.NewMemoryMeter()
			var prices []meterbill.Price
			var events []meterbill.Event
			for i := range tc.metrics {
				m := meterbill.Metric{Code: fmt.Sprintf("metric_%d", i), Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 1}
				prices = append(prices, meterbill.Price{Metric: m, Description: m.Code, Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.25"}}}})
				for d := range 28 {
					events = append(events, meterbill.Event{Account: 42, Metric: m.Code, Value: meterbill.Units(uint64(d + 1)), Time: date(2026, 3, d+1)})
				}
			}
			plan, err := meterbill.NewPlan(prices...)
			if err != nil {
				b.Fatal(err)
			}
			if err := meter.Define(ctx, plan.Metrics()...); err != nil {
				b.Fatal(err)
			}
			ingestAll(b, meter, events)
			st := &stubStripe{}
			var requests int
			h, err := meterbill.NewHandler(meter, st, meterbill.SubscriptionMetadataAccount("meter_account"), plan, []string{secret},
				meterbill.WithReportHook(func(r *meterbill.Report) { requests = r.StripeRequests }))
			if err != nil {
				b.Fatal(err)
			}
			payload := invoiceEvent(b, "2025-08-27.basil", "in_bench", "cus_bench", "draft", date(2026, 3, 1), date(2026, 4, 1), map[string]string{"meter_account": "42"})
			header := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret}).Header
			serve := func() {
				r := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(payload))
				r.Header.Set("Stripe-Signature", header)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
			if tc.redeliver {
				serve() // bill once; every timed delivery then finds the lines on Stripe
			}
			b.ReportAllocs()
			for b.Loop() {
				if !tc.redeliver {
					st.reset() // a fresh invoice each time
				}
				serve()
			}
			b.ReportMetric(float64(requests), "stripe_req/invoice")
		})
	}
}
