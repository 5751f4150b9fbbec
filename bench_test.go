package meterbill_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/felixge/httpsnoop"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/internal/ledger"
	"github.com/meterbill/meterbill/internal/stripefake"
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

// nopMeter accepts everything and keeps nothing: Record's own cost, without a meter's.
type nopMeter struct{}

func (nopMeter) Define(context.Context, ...meterbill.Metric) error { return nil }
func (nopMeter) Ingest(_ context.Context, es []meterbill.Event) (meterbill.IngestResult, error) {
	return meterbill.IngestResult{Stored: len(es)}, nil
}
func (nopMeter) Query(context.Context, uint64, meterbill.Metric, meterbill.Period) (meterbill.Usage, error) {
	return meterbill.Usage{}, nil
}

// BenchmarkMiddleware reads meterbill's cost per request against a bare handler and against
// httpsnoop.CaptureMetrics in the same run (target: meterbill adds at most half of what
// CaptureMetrics adds).
func BenchmarkMiddleware(b *testing.B) {
	rec, err := meterbill.NewRecorder(context.Background(), nopMeter{}, []meterbill.Metric{calls}, meterbill.WithRejectWhenFull())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = rec.Close(context.Background()) }()
	mw := meterbill.NewMiddleware(rec, calls.Code, func(*http.Request) (uint64, bool) { return 42, true })
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	var next http.Handler = ok // called through the interface, as any middleware calls the next handler
	for _, tc := range []struct {
		name    string
		handler http.Handler
	}{
		{name: "bare", handler: ok},
		{name: "capturemetrics", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = httpsnoop.CaptureMetrics(ok, w, r) })},
		{name: "meterbill", handler: mw(ok)},
		// floor: only what any middleware with per-request helpers must do, and records nothing:
		// httpsnoop.Wrap with one hook, and a request copy carrying a context value for the
		// handler's helpers. meterbill can be no cheaper than this.
		{name: "floor", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			status := 0
			ww := httpsnoop.Wrap(w, httpsnoop.Hooks{WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
				return func(code int) { status = code; next(code) }
			}})
			next.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), floorKey{}, &status)))
		})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					tc.handler.ServeHTTP(w, r)
				}
			})
		})
	}
}

type floorKey struct{}

// discardWriter is a ResponseWriter that costs nothing, so the benchmark measures wrappers.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkRecord measures Record from parallel goroutines (target: 5 M events/s on 2 cores):
// into a meter that keeps nothing, and end to end into the embedded meter, counted there.
func BenchmarkRecord(b *testing.B) {
	for _, tc := range []struct {
		name  string
		meter func() meterbill.Meter
	}{
		{name: "nop_meter", meter: func() meterbill.Meter { return nopMeter{} }},
		{name: "memory_meter", meter: func() meterbill.Meter { return meterbill.NewMemoryMeter() }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := tc.meter()
			rec, err := meterbill.NewRecorder(context.Background(), m, []meterbill.Metric{calls})
			if err != nil {
				b.Fatal(err)
			}
			var account atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				e := meterbill.Event{Account: account.Add(1), Metric: calls.Code, Value: meterbill.Units(1)}
				for pb.Next() {
					if err := rec.Record(context.Background(), e); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := rec.Close(context.Background()); err != nil { // end to end: all delivered
				b.Fatal(err)
			}
			b.StopTimer()
			st := rec.Stats()
			if st.Delivered != st.Enqueued {
				b.Fatalf("delivered %d of %d", st.Delivered, st.Enqueued)
			}
			if mm, ok := m.(*meterbill.MemoryMeter); ok {
				var sum uint64
				for a := uint64(1); a <= account.Load(); a++ {
					u, err := mm.Query(context.Background(), a, calls, meterbill.Period{Start: date(2026, 1, 1), End: date(2100, 1, 1)})
					if err != nil {
						b.Fatal(err)
					}
					n, _ := u.Value.Micros64()
					sum += n / 1e6
				}
				if sum != st.Enqueued {
					b.Fatalf("the meter counted %d of %d events", sum, st.Enqueued)
				}
			}
			b.ReportMetric(float64(st.Enqueued)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkHandlerHistory measures what an invoice costs in Stripe requests as the customer's
// history grows: the webhook over HTTP, the real stripe-go adapter, and the stateful fake over
// loopback, with 0, 12, 36 and 120 months of meterbill items (5 metrics a month) already on
// Stripe. It reports real HTTP requests per invoice on the first delivery and on a redelivery;
// they must not grow with the history.
func BenchmarkHandlerHistory(b *testing.B) {
	for _, months := range []int{0, 12, 36, 120} {
		b.Run(fmt.Sprintf("months=%d", months), func(b *testing.B) {
			ctx := context.Background()
			plan := fiveMetrics(b)
			meter := meterbill.NewMemoryMeter()
			if err := meter.Define(ctx, plan.Metrics()...); err != nil {
				b.Fatal(err)
			}
			fake := stripefake.New()
			defer fake.Close()
			sc, err := meterbill.NewStripeClient("sk_test_bench", meterbill.WithStripeURL(fake.URL), meterbill.WithStripeRateLimit(-1))
			if err != nil {
				b.Fatal(err)
			}
			var last *meterbill.Report
			h, err := meterbill.NewHandler(meter, sc, meterbill.SubscriptionMetadataAccount("meter_account"), plan, []string{secret},
				meterbill.WithReportHook(func(r *meterbill.Report) { last = r }))
			if err != nil {
				b.Fatal(err)
			}
			period := [2]time.Time{date(2036, 3, 1), date(2036, 4, 1)}
			start := period[0].AddDate(0, -months, 0)
			var first, again int
			customer := 0
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				customer++
				acct := uint64(customer)
				cus := fmt.Sprintf("cus_%d", customer)
				fake.AddCustomer(cus, nil)
				fake.AddSubscription(stripefake.Subscription{ID: "sub_" + cus, Customer: cus, StartDate: start.Unix()})
				seedHistory(b, fake, plan, acct, start, months)
				var events []meterbill.Event
				for _, m := range plan.Metrics() {
					events = append(events, meterbill.Event{Account: acct, Metric: m.Code, Value: meterbill.Units(100), Time: period[0].Add(time.Hour)})
				}
				ingestAll(b, meter, events)
				inv := stripefake.Invoice{ID: "in_" + cus, Customer: cus, Currency: "usd", Status: "draft", BillingReason: "subscription_cycle",
					PeriodStart: period[0].Unix(), PeriodEnd: period[1].Unix(), Subscription: "sub_" + cus,
					SubscriptionMetadata: map[string]string{"meter_account": fmt.Sprint(acct)}}
				fake.AddInvoice(inv)
				fake.AdvanceTo(period[1])
				b.StartTimer()
				if got := postInvoiceCreated(b, h, inv); got != http.StatusOK {
					b.Fatalf("status %d: %v", got, last.Err)
				}
				first = last.StripeRequests
				if got := postInvoiceCreated(b, h, inv); got != http.StatusOK {
					b.Fatalf("redelivery: status %d", got)
				}
				again = last.StripeRequests
			}
			b.ReportMetric(float64(first), "stripe_req/invoice")
			b.ReportMetric(float64(again), "stripe_req/redelivery")
		})
	}
}

var (
	monthStartRenewals = flag.Int("monthstart.renewals", 200, "BenchmarkMonthStart: renewals delivered at once")
	monthStartRate     = flag.Int("monthstart.rate", 100, "BenchmarkMonthStart: Stripe's rate limit, requests a second (the client's budget too)")
)

// BenchmarkMonthStart is the 1st of the month: renewals of customers with 3 years of history and
// 5 metrics each, delivered as Stripe delivers them (all at once from many senders, every
// non-2xx answer redelivered after a pause), against the stateful fake enforcing a rate limit
// (429 past -monthstart.rate requests a second, as Stripe does), with the client's budget at the
// same rate and WithMaxConcurrentInvoices(16). It reports the Stripe requests, per invoice, the
// 429s, the wall time against the least the rate allows (requests / rate), and checks that no
// line is duplicated and no invoice left unbilled. The figure in docs/figures.md:
//
//	go test -run '^$' -bench MonthStart -benchtime 1x -monthstart.renewals 2000 .
func BenchmarkMonthStart(b *testing.B) {
	ctx := context.Background()
	renewals, perSecond := *monthStartRenewals, *monthStartRate
	plan := fiveMetrics(b)
	period := [2]time.Time{date(2029, 3, 1), date(2029, 4, 1)}
	start := period[0].AddDate(-3, 0, 0)
	b.StopTimer()
	for range b.N {
		meter := meterbill.NewMemoryMeter()
		if err := meter.Define(ctx, plan.Metrics()...); err != nil {
			b.Fatal(err)
		}
		fake := stripefake.New()
		var invoices []stripefake.Invoice
		var events []meterbill.Event
		for c := range renewals {
			acct := uint64(c + 1)
			cus := fmt.Sprintf("cus_%d", acct)
			fake.AddCustomer(cus, nil)
			fake.AddSubscription(stripefake.Subscription{ID: "sub_" + cus, Customer: cus, StartDate: start.Unix()})
			seedHistory(b, fake, plan, acct, start, 36)
			for _, m := range plan.Metrics() {
				events = append(events, meterbill.Event{Account: acct, Metric: m.Code, Value: meterbill.Units(400), Time: period[0].Add(time.Hour)})
			}
			inv := stripefake.Invoice{ID: "in_" + cus, Customer: cus, Currency: "usd", Status: "draft", BillingReason: "subscription_cycle",
				PeriodStart: period[0].Unix(), PeriodEnd: period[1].Unix(), Subscription: "sub_" + cus,
				SubscriptionMetadata: map[string]string{"meter_account": fmt.Sprint(acct)}}
			fake.AddInvoice(inv)
			invoices = append(invoices, inv)
		}
		for i := 0; i < len(events); i += 1000 {
			ingestAll(b, meter, events[i:min(i+1000, len(events))])
		}
		fake.AdvanceTo(period[1])
		fake.SetRateLimit(perSecond)
		sc, err := meterbill.NewStripeClient("sk_live_bench", meterbill.WithStripeURL(fake.URL), meterbill.WithStripeRateLimit(perSecond))
		if err != nil {
			b.Fatal(err)
		}
		h, err := meterbill.NewHandler(meter, sc, meterbill.SubscriptionMetadataAccount("meter_account"), plan, []string{secret},
			meterbill.WithMaxConcurrentInvoices(16))
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(h)
		queue := make(chan stripefake.Invoice, len(invoices))
		for _, inv := range invoices {
			queue <- inv
		}
		var deliveries, failed atomic.Int64
		var pending sync.WaitGroup
		pending.Add(len(invoices))
		b.StartTimer()
		began := time.Now()
		for range 64 { // Stripe's senders
			go func() {
				for inv := range queue {
					deliveries.Add(1)
					if postTo(b, srv.URL, inv, "draft") == http.StatusOK {
						pending.Done()
						continue
					}
					failed.Add(1)
					go func() { time.Sleep(200 * time.Millisecond); queue <- inv }() // redelivered later
				}
			}()
		}
		pending.Wait()
		wall := time.Since(began)
		b.StopTimer()
		close(queue)
		srv.Close()
		var requests, throttled int
		for _, r := range fake.Requests() {
			requests++
			if r.Status == http.StatusTooManyRequests {
				throttled++
			}
		}
		duplicates, unbilled := 0, 0
		for _, inv := range invoices {
			lines := map[string]int{}
			for _, it := range fake.InvoiceItems(inv.ID) {
				lines[it.Metadata["meterbill_metric"]]++
			}
			for _, m := range plan.Metrics() {
				switch n := lines[m.Code]; {
				case n == 0:
					unbilled++
				case n > 1:
					duplicates += n - 1
				}
			}
		}
		fake.Close()
		least := time.Duration(float64(requests) / float64(perSecond) * float64(time.Second))
		if b.N > 1 {
			continue // the figures are one month start's
		}
		b.ReportMetric(float64(requests), "stripe_req")
		b.ReportMetric(float64(requests)/float64(renewals), "stripe_req/invoice")
		b.ReportMetric(float64(throttled)/float64(requests)*100, "%429")
		b.ReportMetric(wall.Seconds(), "wall_s")
		b.ReportMetric(wall.Seconds()/least.Seconds(), "wall/least")
		b.ReportMetric(float64(deliveries.Load())/float64(renewals), "deliveries/invoice")
		b.ReportMetric(float64(duplicates), "duplicates")
		b.ReportMetric(float64(unbilled), "unbilled_lines")
		if duplicates > 0 || unbilled > 0 {
			b.Errorf("%d duplicated lines, %d unbilled lines", duplicates, unbilled)
		}
	}
}

// fiveMetrics is a plan of five per-unit Calendar metrics, metric_0 to metric_4.
func fiveMetrics(b *testing.B) *meterbill.Plan {
	var prices []meterbill.Price
	for i := range 5 {
		m := meterbill.Metric{Code: fmt.Sprintf("metric_%d", i), Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 1}
		prices = append(prices, meterbill.Price{Metric: m, Description: m.Code, Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.25"}}}})
	}
	plan, err := meterbill.NewPlan(prices...)
	if err != nil {
		b.Fatal(err)
	}
	return plan
}

// seedHistory puts months of meterbill items on Stripe for account's customer ("cus_<account>"):
// every month from start billed, one item a metric, each dated when its month ended.
func seedHistory(b *testing.B, fake *stripefake.Server, plan *meterbill.Plan, acct uint64, start time.Time, months int) {
	cus := fmt.Sprintf("cus_%d", acct)
	for mo := range months {
		from, to := start.AddDate(0, mo, 0), start.AddDate(0, mo+1, 0)
		for _, m := range plan.Metrics() {
			md, err := ledger.Encode(ledger.Entry{Account: acct, Metric: m.Code, Period: "calendar/1", From: from, To: to, Quantity: "0",
				LineQty: "0", UnitPrice: "0.25", Invoice: "in_old", Subscription: "sub_" + cus})
			if err != nil {
				b.Fatal(err)
			}
			fake.AddItem(stripefake.Item{Customer: cus, Invoice: "in_old", Currency: "usd", Created: to.Unix(),
				PeriodStart: from.Unix(), PeriodEnd: to.Unix() - 1, Metadata: md})
		}
	}
}

// postTo delivers a signed invoice.created for inv to url, the invoice's status in the event
// being status.
func postTo(t testing.TB, url string, inv stripefake.Invoice, status string) int {
	t.Helper()
	payload := invoiceEvent(t, "2025-08-27.basil", inv.ID, inv.Customer, status, time.Unix(inv.PeriodStart, 0), time.Unix(inv.PeriodEnd, 0), inv.SubscriptionMetadata)
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret})
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Stripe-Signature", sp.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
