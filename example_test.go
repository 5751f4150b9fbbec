package meterbill_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/meterbill/meterbill"
)

func ExampleNewMemoryMeter() {
	ctx := context.Background()
	meter := meterbill.NewMemoryMeter()
	storage := meterbill.Metric{Code: "storage_gb", Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 15}
	if err := meter.Define(ctx, storage); err != nil {
		panic(err)
	}
	half, _ := meterbill.ParseValue("0.5")
	events := []meterbill.Event{
		{Account: 42, Metric: "storage_gb", Value: half, Time: time.Date(2026, 4, 20, 10, 0, 0, 0, time.UTC)},
		{Account: 42, Metric: "storage_gb", Value: meterbill.Units(2), Time: time.Date(2026, 5, 2, 10, 0, 0, 0, time.UTC)},
	}
	res, _ := meter.Ingest(ctx, events)
	again, _ := meter.Ingest(ctx, events) // a retry: deduplicated
	fmt.Println("stored", res.Stored, "then duplicates", again.Duplicates)

	// A calendar-month query on a cycle-15 metric widens to whole periods: Mar 15 to May 15.
	april := meterbill.Period{Start: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	usage, _ := meter.Query(ctx, 42, storage, april)
	fmt.Println(usage.Value, "GB over", usage.Window)
	// Output:
	// stored 2 then duplicates 2
	// 2.5 GB over [2026-03-15T00:00:00Z, 2026-05-15T00:00:00Z)
}

// A Unimeter cluster in production: the nodes come from the environment, and the meter is used
// wherever a [meterbill.Meter] is wanted. Not run: it needs a cluster.
func ExampleDialUnimeter() {
	ctx := context.Background()
	meter, err := meterbill.DialUnimeter(ctx, strings.Split(os.Getenv("BILLING_NODES"), ","),
		meterbill.WithRequestTimeout(2*time.Second))
	if err != nil {
		panic(err)
	}
	defer func() { _ = meter.Close() }()
	calls := meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
	// Define refuses a metric the cluster holds with another definition, instead of upserting it.
	if err := meter.Define(ctx, calls); err != nil {
		panic(err)
	}
	rec, err := meterbill.NewRecorder(ctx, meter, []meterbill.Metric{calls})
	if err != nil {
		panic(err)
	}
	defer func() { _ = rec.Close(ctx) }()
	_ = rec.Record(ctx, meterbill.Event{Account: 42, Metric: calls.Code, Value: meterbill.Units(1)})
}

func ExampleNewPlan() {
	calls := meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
	plan, err := meterbill.NewPlan(meterbill.Price{
		Metric:      calls,
		Description: "API calls",
		Model:       meterbill.Graduated,
		Currencies: map[string][]meterbill.Tier{
			"usd": {{UpTo: "1000", Unit: "0"}, {Unit: "0.1"}}, // 1,000 free, then $0.001 a call
			"jpy": {{UpTo: "1000", Unit: "0"}, {Unit: "0.15"}},
		},
	})
	if err != nil {
		panic(err)
	}
	usage := meterbill.Usage{Account: 42, Metric: calls, Value: meterbill.Units(123_456)}
	for _, currency := range []string{"usd", "jpy"} {
		lines, _ := plan.Price(context.Background(), currency, usage)
		for _, l := range lines {
			fmt.Printf("%s: %s × %s = %d %s minor units\n", l.Description, l.Quantity, l.UnitPrice, l.Amount, l.Currency)
		}
	}
	// Output:
	// API calls (tier 1): 1000 × 0 = 0 usd minor units
	// API calls (tier 2): 122456 × 0.1 = 12246 usd minor units
	// API calls (tier 1): 1000 × 0 = 0 jpy minor units
	// API calls (tier 2): 122456 × 0.15 = 18368 jpy minor units
}

func ExampleMetric_Window() {
	storage := meterbill.Metric{Code: "storage_gb", Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 15}
	april := meterbill.Period{Start: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	fmt.Println(storage.Window(april))
	fmt.Println(storage.Bucket(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)))
	// Output:
	// [2026-03-15T00:00:00Z, 2026-05-15T00:00:00Z)
	// [2025-12-15T00:00:00Z, 2026-01-15T00:00:00Z)
}

func ExampleParseValue() {
	for _, s := range []string{"1", "0.5", "0.000001", "0.0000001", "-1"} {
		v, err := meterbill.ParseValue(s)
		fmt.Println(v, err)
	}
	// Output:
	// 1 <nil>
	// 0.5 <nil>
	// 0.000001 <nil>
	// 0 meterbill: invalid value "0.0000001": more than 6 decimal places (the meter stores millionths)
	// 0 meterbill: invalid value "-1": negative
}

// The webhook handler mounted on net/http. Register the route with Stripe for invoice.created.
func ExampleNewHandler() {
	ctx := context.Background()
	meter := meterbill.NewMemoryMeter()
	calls := meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
	plan, err := meterbill.NewPlan(meterbill.Price{Metric: calls, Description: "API calls",
		Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.1"}}}})
	if err != nil {
		log.Fatal(err)
	}
	if err := meter.Define(ctx, plan.Metrics()...); err != nil {
		log.Fatal(err)
	}
	sc, err := meterbill.NewStripeClient(os.Getenv("STRIPE_SECRET_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	handler, err := meterbill.NewHandler(meter, sc, meterbill.SubscriptionMetadataAccount("meter_account"), plan,
		[]string{os.Getenv("STRIPE_WEBHOOK_SECRET")}, meterbill.WithLogger(slog.Default()))
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("POST /webhook", handler)
	log.Fatal(http.ListenAndServe(":4242", nil))
}

// A back-fill: bill one invoice by id, for example after a mapping was fixed.
func ExampleHandler_BillInvoice() {
	var handler *meterbill.Handler // built with NewHandler
	report, err := handler.BillInvoice(context.Background(), "in_1Q2w3E4r5T6y")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(report.Outcome, len(report.Created), "lines")
}

// Resolvers combine: the subscription's metadata first (no API call), then the customer's (one
// call, cached), which can be fixed after the fact.
func ExampleFirstAccount() {
	sc, err := meterbill.NewStripeClient(os.Getenv("STRIPE_SECRET_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	byCustomer, err := meterbill.CustomerMetadataAccount(sc, "meter_account", meterbill.WithCache(50_000, time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	resolver := meterbill.FirstAccount(meterbill.SubscriptionMetadataAccount("meter_account"), byCustomer)
	_ = resolver
}

func ExampleAccountResolverFunc() {
	accounts := map[string]uint64{"cus_Acme": 1001} // e.g. your users table
	resolver := meterbill.AccountResolverFunc(func(_ context.Context, c meterbill.Customer) (uint64, error) {
		if acct, ok := accounts[c.ID]; ok {
			return acct, nil
		}
		return 0, meterbill.ErrUnknownCustomer
	})
	acct, err := resolver.ResolveAccount(context.Background(), meterbill.Customer{ID: "cus_Acme"})
	fmt.Println(acct, err)
	_, err = resolver.ResolveAccount(context.Background(), meterbill.Customer{ID: "cus_Other"})
	fmt.Println(errors.Is(err, meterbill.ErrUnknownCustomer))
	// Output:
	// 1001 <nil>
	// true
}

// Usage middleware: every successful request of the wrapped API counts one call.
func ExampleNewMiddleware() {
	ctx := context.Background()
	meter := meterbill.NewMemoryMeter()
	calls := meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
	rec, err := meterbill.NewRecorder(ctx, meter, []meterbill.Metric{calls})
	if err != nil {
		log.Fatal(err)
	}
	// The account comes from your authentication; here, a header set by a trusted gateway.
	usage := meterbill.NewMiddleware(rec, calls.Code, meterbill.AccountFromHeader("X-Account-Id"))
	defer func() { _ = rec.Close(ctx) }() // at shutdown: delivers what is queued
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("bulk") {
			meterbill.SetUsageValue(r.Context(), meterbill.Units(10)) // this request counts 10
		}
		_, _ = io.WriteString(w, "ok")
	})
	http.Handle("/api/", usage(api))
}

func ExampleObserverFunc() {
	ctx := context.Background()
	meter := meterbill.NewMemoryMeter()
	calls := meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
	var mu sync.Mutex // Observe is called concurrently
	counts := map[meterbill.MeasurementKind]int{}
	obs := meterbill.ObserverFunc(func(m meterbill.Measurement) {
		if m.N > 0 { // a count; latencies set Op, Status and Duration instead
			mu.Lock()
			counts[m.Kind] += m.N
			mu.Unlock()
		}
	})
	rec, err := meterbill.NewRecorder(ctx, meter, []meterbill.Metric{calls}, meterbill.WithObserver(obs))
	if err != nil {
		panic(err)
	}
	for range 3 {
		_ = rec.Record(ctx, meterbill.Event{Account: 42, Metric: "api_calls", Value: meterbill.Units(1)})
	}
	_ = rec.Record(ctx, meterbill.Event{Account: 42, Metric: "unknown", Value: meterbill.Units(1)})
	if err := rec.Close(ctx); err != nil {
		panic(err)
	}
	fmt.Println(meterbill.EventsRecorded, counts[meterbill.EventsRecorded])
	fmt.Println(meterbill.EventsDelivered, counts[meterbill.EventsDelivered])
	fmt.Println(meterbill.EventsRejected, counts[meterbill.EventsRejected])
	// Output:
	// events_recorded 3
	// events_delivered 3
	// events_rejected 1
}
