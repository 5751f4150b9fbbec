package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/meterbill/meterbill"
)

const secret = "whsec_example_0123456789"

// fakeStripe is an in-memory Stripe: it keeps the items created, once per idempotency key.
type fakeStripe struct {
	mu    sync.Mutex
	items []meterbill.InvoiceItem
	keys  map[string]bool
}

var _ meterbill.StripeClient = (*fakeStripe)(nil)

func (s *fakeStripe) Invoice(context.Context, string) (meterbill.StripeInvoice, error) {
	return meterbill.StripeInvoice{}, errors.New("fake: no invoices")
}

func (s *fakeStripe) Invoices(context.Context, meterbill.InvoiceQuery) ([]meterbill.StripeInvoice, error) {
	return nil, nil
}

func (s *fakeStripe) CreateInvoice(context.Context, meterbill.NewInvoice, string) (meterbill.StripeInvoice, error) {
	return meterbill.StripeInvoice{}, errors.New("stub: no invoices are created")
}

func (s *fakeStripe) FinalizeInvoice(context.Context, string) (meterbill.StripeInvoice, error) {
	return meterbill.StripeInvoice{}, errors.New("stub: no invoices are finalized")
}

func (s *fakeStripe) Subscription(_ context.Context, id string) (meterbill.StripeSubscription, error) {
	return meterbill.StripeSubscription{ID: id, Status: "active"}, nil
}

func (s *fakeStripe) CustomerMetadata(context.Context, string) (map[string]string, error) {
	return nil, nil
}

func (s *fakeStripe) InvoiceItems(_ context.Context, customer string, _ time.Time) ([]meterbill.InvoiceItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []meterbill.InvoiceItem
	for _, it := range s.items {
		if it.Customer == customer {
			out = append(out, it)
		}
	}
	return out, nil
}

func (s *fakeStripe) CreateInvoiceItem(_ context.Context, it meterbill.InvoiceItem, key string) (meterbill.InvoiceItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	if !s.keys[key] {
		s.keys[key] = true
		it.ID = fmt.Sprintf("ii_%d", len(s.items)+1)
		s.items = append(s.items, it)
	}
	return it, nil
}

// TestMetrics drives the metered API and the webhook, then scrapes /metrics.
func TestMetrics(t *testing.T) {
	a, err := newApp(context.Background(), webhookConfig{stripe: &fakeStripe{}, secrets: []string{secret}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(a.handler)
	defer ts.Close()
	do := func(req *http.Request) (int, string) {
		t.Helper()
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	get := func(path, key string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		req.Header.Set("Authorization", key)
		status, _ := do(req)
		return status
	}

	// Three metered calls, one from a stranger (served, not metered), one not found (not counted).
	for range 3 {
		if got := get("/v1/hello", "Bearer key_acme"); got != http.StatusOK {
			t.Fatalf("status %d", got)
		}
	}
	get("/v1/hello", "Bearer stolen")
	get("/v1/missing", "Bearer key_acme")
	if err := a.rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	// March's usage of account 7, billed by invoice.created, then the same event redelivered.
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if _, err := a.meter.Ingest(context.Background(), []meterbill.Event{{Account: 7, Metric: apiCalls.Code, Value: meterbill.Units(1), Time: march.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(map[string]any{"id": "evt_1", "type": "invoice.created", "api_version": "2025-08-27.basil",
		"data": map[string]any{"object": map[string]any{"id": "in_1", "object": "invoice", "customer": "cus_1", "currency": "usd",
			"status": "draft", "period_start": march.Unix(), "period_end": march.AddDate(0, 1, 0).Unix(),
			"parent": map[string]any{"subscription_details": map[string]any{"metadata": map[string]string{"meter_account": "7"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret})
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/webhook", bytes.NewReader(payload))
		req.Header.Set("Stripe-Signature", sp.Header)
		if got, body := do(req); got != http.StatusOK {
			t.Fatalf("webhook answered %d %s", got, body)
		}
	}

	// A delivery signed with another secret is refused.
	forged := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: "whsec_forged"})
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/webhook", bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", forged.Header)
	if got, _ := do(req); got != http.StatusBadRequest {
		t.Fatalf("forged webhook answered %d, want 400", got)
	}

	req, _ = http.NewRequest(http.MethodGet, ts.URL+"/metrics", nil)
	status, metrics := do(req)
	if status != http.StatusOK {
		t.Fatalf("/metrics answered %d", status)
	}
	tests := []struct {
		name   string
		series string // a line of the exposition, as a regular expression
	}{
		{name: "events recorded", series: `meterbill_events_recorded_total 3`},
		{name: "events delivered", series: `meterbill_events_delivered_total 3`},
		{name: "no event failed", series: `meterbill_events_failed_total 0`},
		{name: "no event rejected", series: `meterbill_events_rejected_total 0`},
		{name: "queue depth gauge", series: `meterbill_recorder_queue_depth \d+`},
		{name: "invoice billed", series: `meterbill_invoices_handled_total\{outcome="billed"\} 1`},
		{name: "redelivery already billed", series: `meterbill_invoices_handled_total\{outcome="already_billed"\} 1`},
		{name: "forged webhook refused", series: `meterbill_webhooks_refused_total\{status="400"\} 1`},
		{name: "line created", series: `meterbill_invoice_lines_total\{result="created"\} 1`},
		{name: "line skipped on redelivery", series: `meterbill_invoice_lines_total\{result="existing"\} 1`},
		{name: "meter ingests timed", series: `meterbill_meter_request_duration_seconds_count\{op="ingest",status="ok"\} [1-3]`},
		{name: "meter queries timed", series: `meterbill_meter_request_duration_seconds_count\{op="query",status="ok"\} 1`},
		{name: "Stripe creates timed", series: `meterbill_stripe_request_duration_seconds_count\{op="create_invoice_item",status="2xx"\} 1`},
		{name: "Stripe lists timed", series: `meterbill_stripe_request_duration_seconds_count\{op="invoice_items",status="2xx"\} 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !regexp.MustCompile(`(?m)^` + tt.series + `$`).MatchString(metrics) {
				t.Errorf("no line %q in /metrics:\n%s", tt.series, grep(metrics, "meterbill_"))
			}
		})
	}

	ts.Close()
	if err := shutdown(&http.Server{}, a.rec); err != nil {
		t.Fatal(err)
	}
}

// grep returns the lines of s that start with prefix.
func grep(s, prefix string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, prefix) {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
	}
	return strings.Join(out, "\n")
}
