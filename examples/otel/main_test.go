package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/meterbilltest"
)

// TestTelemetry runs the app against the Stripe fake and reads what reached OpenTelemetry:
// the recorder's and the webhook's measurements as metrics, and a span for every meter and
// Stripe call.
func TestTelemetry(t *testing.T) {
	ctx := context.Background()
	const secret = "whsec_otel_0123456789abcdef"
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))

	stripe := meterbilltest.NewStripe()
	defer stripe.Close()
	now := time.Now().UTC()
	month := apiCalls.Bucket(now)
	stripe.AddCustomer("cus_acme", nil)
	stripe.AddSubscription(meterbilltest.Subscription{ID: "sub_acme", Customer: "cus_acme", StartDate: month.Start.AddDate(0, -1, 0).Unix(),
		Metadata: map[string]string{"meter_account": "1001"}})
	inv := meterbilltest.Invoice{ID: "in_acme", Customer: "cus_acme", Currency: "usd", BillingReason: "subscription_cycle",
		PeriodStart: month.Start.Unix(), PeriodEnd: month.End.Unix(), Subscription: "sub_acme", SubscriptionMetadata: map[string]string{"meter_account": "1001"}}
	stripe.AddInvoice(inv)
	sc, err := meterbill.NewStripeClient("sk_test_otel", meterbill.WithStripeURL(stripe.URL))
	if err != nil {
		t.Fatal(err)
	}

	a, err := newApp(ctx, webhookConfig{stripe: sc, secrets: []string{secret}}, mp, tp, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.handler)
	defer srv.Close()
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/hello", nil)
		req.Header.Set("Authorization", "Bearer key_acme")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	if err := a.rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(meterbilltest.NewWebhookRequest(srv.URL+"/webhook", meterbilltest.InvoiceCreated(inv), secret))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook answered %d", resp.StatusCode)
	}
	if err := a.rec.Close(ctx); err != nil {
		t.Fatal(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{} // "name{attr=value}" -> sum
	var histograms []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					sums[m.Name+label(p.Attributes)] += p.Value
				}
			case metricdata.Gauge[int64]:
				sums[m.Name] = 0 // present; its value depends on when the last flush ran
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if p.Count > 0 {
						histograms = append(histograms, m.Name+label(p.Attributes))
					}
				}
			}
		}
	}
	want := map[string]int64{
		"meterbill.events{kind=recorded}":            3,
		"meterbill.events{kind=delivered}":           3,
		"meterbill.invoices.handled{outcome=billed}": 1,
		"meterbill.invoice.lines{result=created}":    1,
		"meterbill.recorder.queue_depth":             0,
	}
	for name, n := range want {
		if got, ok := sums[name]; !ok || got != n {
			t.Errorf("%s = %d (present %v), want %d; all: %v", name, got, ok, n, sums)
		}
	}
	for _, name := range []string{"meterbill.meter.duration{op=ingest,status=ok}", "meterbill.meter.duration{op=query,status=ok}", "meterbill.stripe.duration{op=create_invoice_item,status=2xx}"} {
		if !slices.Contains(histograms, name) {
			t.Errorf("no %s; histograms: %v", name, histograms)
		}
	}

	var names []string
	for _, s := range spans.Ended() {
		if !slices.Contains(names, s.Name()) {
			names = append(names, s.Name())
		}
	}
	slices.Sort(names)
	wantSpans := []string{"meter.define", "meter.ingest", "meter.query", "stripe.invoiceitem.create", "stripe.invoiceitems.list"}
	for _, w := range wantSpans {
		if !slices.Contains(names, w) {
			t.Errorf("no span %q; spans: %v", w, names)
		}
	}
	if diff := cmp.Diff([]string(nil), unknownSpans(names)); diff != "" {
		t.Errorf("spans not from the decorators (-want +got):\n%s", diff)
	}
}

// label formats a data point's attributes as {k=v,…}, sorted by key.
func label(set attribute.Set) string {
	if set.Len() == 0 {
		return ""
	}
	s := "{"
	for i, kv := range set.ToSlice() {
		if i > 0 {
			s += ","
		}
		s += string(kv.Key) + "=" + kv.Value.String()
	}
	return s + "}"
}

func unknownSpans(names []string) []string {
	var out []string
	for _, n := range names {
		if len(n) < 6 || (n[:6] != "meter." && n[:7] != "stripe.") {
			out = append(out, n)
		}
	}
	return out
}
