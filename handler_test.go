package meterbill_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/meterbill/meterbill"
)

const (
	secret    = "whsec_test_current_0123456789"
	oldSecret = "whsec_test_previous_987654321"
)

// invoiceEvent builds an invoice.created payload in the shape of an API version. The versions
// differ in fields meterbill does not read; each must still be billed.
func invoiceEvent(t testing.TB, version, invoiceID, customer, status string, start, end time.Time, subMeta map[string]string) []byte {
	t.Helper()
	inv := map[string]any{
		"id": invoiceID, "object": "invoice", "customer": customer, "currency": "usd", "status": status,
		"billing_reason": "subscription_cycle", "period_start": start.Unix(), "period_end": end.Unix(),
		"livemode": false, "metadata": map[string]string{},
		"lines": map[string]any{"object": "list", "data": []any{}, "has_more": false},
		"parent": map[string]any{"type": "subscription_details", "quote_details": nil,
			"subscription_details": map[string]any{"subscription": "sub_" + customer, "metadata": subMeta}},
	}
	switch {
	case strings.HasSuffix(version, ".clover"):
		inv["customer_account"] = nil
		inv["amount_overpaid"] = 0
	case strings.HasSuffix(version, ".dahlia"):
		inv["customer_account"] = nil
		inv["amount_overpaid"] = 0
		inv["customer"] = map[string]any{"id": customer, "object": "customer"} // expanded
	}
	ev := map[string]any{"id": "evt_" + invoiceID, "object": "event", "api_version": version, "type": "invoice.created",
		"created": start.Unix(), "data": map[string]any{"object": inv}, "livemode": false, "pending_webhooks": 1}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signed(t testing.TB, payload []byte, at time.Time, secrets ...string) *http.Request {
	t.Helper()
	var header string
	for i, s := range secrets {
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: s, Timestamp: at})
		if i == 0 {
			header = sp.Header
		} else {
			header += ",v1=" + fmt.Sprintf("%x", sp.Signature)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(payload))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	if header != "" {
		r.Header.Set("Stripe-Signature", header)
	}
	return r
}

// stubStripe is an in-memory StripeClient that records writes: enough for the handler's HTTP
// rules. Billing behaviour is tested against the stateful fake Stripe through the real adapter.
type stubStripe struct {
	mu     sync.Mutex
	items  []meterbill.InvoiceItem
	keys   map[string]meterbill.InvoiceItem
	calls  int
	writes int
}

// reset forgets every item, as if the next invoice were new.
func (s *stubStripe) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items, s.keys = nil, nil
}

// Invoice answers every invoice as finalized ("open").
func (s *stubStripe) Invoice(_ context.Context, id string) (meterbill.StripeInvoice, error) {
	return meterbill.StripeInvoice{ID: id, Status: "open"}, nil
}

func (s *stubStripe) Invoices(context.Context, meterbill.InvoiceQuery) ([]meterbill.StripeInvoice, error) {
	return nil, nil
}

func (s *stubStripe) CreateInvoice(context.Context, meterbill.NewInvoice, string) (meterbill.StripeInvoice, error) {
	return meterbill.StripeInvoice{}, errors.New("stub: no invoices are created")
}

func (s *stubStripe) FinalizeInvoice(context.Context, string) (meterbill.StripeInvoice, error) {
	return meterbill.StripeInvoice{}, errors.New("stub: no invoices are finalized")
}

func (s *stubStripe) Subscription(_ context.Context, id string) (meterbill.StripeSubscription, error) {
	return meterbill.StripeSubscription{ID: id, Status: "active", Start: time.Unix(1, 0)}, nil
}

func (s *stubStripe) CustomerMetadata(context.Context, string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return nil, nil
}

func (s *stubStripe) InvoiceItems(_ context.Context, customer string, _ time.Time) ([]meterbill.InvoiceItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	var out []meterbill.InvoiceItem
	for _, it := range s.items {
		if it.Customer == customer {
			out = append(out, it)
		}
	}
	return out, nil
}

func (s *stubStripe) CreateInvoiceItem(_ context.Context, it meterbill.InvoiceItem, key string) (meterbill.InvoiceItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.writes++
	if prev, ok := s.keys[key]; ok {
		return prev, nil
	}
	it.ID = fmt.Sprintf("ii_%d", len(s.items)+1)
	s.items = append(s.items, it)
	if s.keys == nil {
		s.keys = map[string]meterbill.InvoiceItem{}
	}
	s.keys[key] = it
	return it, nil
}

// ingestAll ingests events in batches the meter accepts.
func ingestAll(t testing.TB, m meterbill.Meter, events []meterbill.Event) {
	t.Helper()
	for len(events) > 0 {
		n := min(len(events), meterbill.MaxBatchEvents)
		if _, err := m.Ingest(context.Background(), events[:n]); err != nil {
			t.Fatal(err)
		}
		events = events[n:]
	}
}

type webhookFixture struct {
	meter   *meterbill.MemoryMeter
	stripe  *stubStripe
	handler *meterbill.Handler
	reports []*meterbill.Report
}

func newWebhookFixture(t testing.TB, opts ...meterbill.HandlerOption) *webhookFixture {
	t.Helper()
	ctx := context.Background()
	f := &webhookFixture{meter: meterbill.NewMemoryMeter(), stripe: &stubStripe{}}
	plan, err := meterbill.NewPlan(meterbill.Price{Metric: calls, Description: "API calls", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.meter.Define(ctx, plan.Metrics()...); err != nil {
		t.Fatal(err)
	}
	var events []meterbill.Event
	for i := range 1234 {
		events = append(events, meterbill.Event{Account: 42, Metric: calls.Code, Value: meterbill.Units(1), Time: date(2026, 3, 1).Add(time.Duration(i) * time.Minute)})
	}
	ingestAll(t, f.meter, events)
	resolver, err := meterbill.StaticAccounts(map[string]uint64{"cus_known": 42})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	opts = append([]meterbill.HandlerOption{meterbill.WithReportHook(func(r *meterbill.Report) { mu.Lock(); f.reports = append(f.reports, r); mu.Unlock() })}, opts...)
	f.handler, err = meterbill.NewHandler(f.meter, f.stripe, resolver, plan, []string{secret, oldSecret}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestWebhookRequests(t *testing.T) {
	now := time.Now()
	march := func(version, status, customer string) []byte {
		return invoiceEvent(t, version, "in_march", customer, status, date(2026, 3, 1), date(2026, 4, 1), nil)
	}
	basil := march("2025-08-27.basil", "draft", "cus_known")
	tests := []struct {
		name        string
		request     func() *http.Request
		wantStatus  int
		wantWrites  int
		wantOutcome meterbill.Outcome
	}{
		{name: "basil event bills the invoice", request: func() *http.Request { return signed(t, basil, now, secret) }, wantStatus: 200, wantWrites: 1, wantOutcome: meterbill.OutcomeBilled},
		{name: "clover event is accepted, not rejected for its version", request: func() *http.Request { return signed(t, march("2025-11-17.clover", "draft", "cus_known"), now, secret) }, wantStatus: 200, wantWrites: 1, wantOutcome: meterbill.OutcomeBilled},
		{name: "dahlia event with an expanded customer", request: func() *http.Request { return signed(t, march("2026-03-25.dahlia", "draft", "cus_known"), now, secret) }, wantStatus: 200, wantWrites: 1, wantOutcome: meterbill.OutcomeBilled},
		{name: "old secret still valid while rolling", request: func() *http.Request { return signed(t, basil, now, oldSecret) }, wantStatus: 200, wantWrites: 1, wantOutcome: meterbill.OutcomeBilled},
		{name: "header with signatures of both secrets", request: func() *http.Request { return signed(t, basil, now, "whsec_unknown_secret_1234", secret) }, wantStatus: 200, wantWrites: 1, wantOutcome: meterbill.OutcomeBilled},
		{name: "unknown customer is skipped with 200 and no Stripe write", request: func() *http.Request {
			return signed(t, march("2025-08-27.basil", "draft", "cus_stranger"), now, secret)
		}, wantStatus: 200, wantOutcome: meterbill.OutcomeUnknownCustomer},
		{name: "finalized invoice: 200, pending items", request: func() *http.Request { return signed(t, march("2025-08-27.basil", "open", "cus_known"), now, secret) }, wantStatus: 200, wantWrites: 1, wantOutcome: meterbill.OutcomePending},
		{name: "void invoice: 200, waived, nothing written", request: func() *http.Request { return signed(t, march("2025-08-27.basil", "void", "cus_known"), now, secret) }, wantStatus: 200, wantOutcome: meterbill.OutcomeVoid},
		{name: "no signature", request: func() *http.Request { return signed(t, basil, now) }, wantStatus: 400},
		{name: "wrong secret", request: func() *http.Request { return signed(t, basil, now, "whsec_attacker_0000000") }, wantStatus: 400},
		{name: "stale timestamp", request: func() *http.Request { return signed(t, basil, now.Add(-6*time.Minute), secret) }, wantStatus: 400},
		{name: "far-future timestamp", request: func() *http.Request { return signed(t, basil, now.Add(time.Hour), secret) }, wantStatus: 400},
		{name: "signature replayed over an altered body", request: func() *http.Request {
			r := signed(t, basil, now, secret)
			altered := bytes.Replace(basil, []byte(`"usd"`), []byte(`"eur"`), 1)
			r2 := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(altered))
			r2.Header = r.Header
			return r2
		}, wantStatus: 400},
		{name: "malformed json, correctly signed", request: func() *http.Request {
			return signed(t, []byte(`{"id":"evt_1","type":"invoice.created","data":{`), now, secret)
		}, wantStatus: 400},
		{name: "invoice.created without an invoice", request: func() *http.Request {
			return signed(t, []byte(`{"id":"evt_1","type":"invoice.created","data":{"object":{"object":"charge","id":"ch_1"}}}`), now, secret)
		}, wantStatus: 400},
		{name: "invoice without customer", request: func() *http.Request {
			return signed(t, []byte(`{"id":"evt_1","type":"invoice.created","data":{"object":{"object":"invoice","id":"in_1","status":"draft"}}}`), now, secret)
		}, wantStatus: 400},
		{name: "another event type with an invoice-looking object is ignored", request: func() *http.Request {
			return signed(t, bytes.Replace(basil, []byte(`"invoice.created"`), []byte(`"invoice.finalized"`), 1), now, secret)
		}, wantStatus: 200},
		{name: "oversized body", request: func() *http.Request {
			return signed(t, append(basil[:len(basil)-1], []byte(`,"pad":"`+strings.Repeat("x", 2<<20)+`"}`)...), now, secret)
		}, wantStatus: 413},
		{name: "GET", request: func() *http.Request { return httptest.NewRequest(http.MethodGet, "/webhook", nil) }, wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newWebhookFixture(t)
			w := httptest.NewRecorder()
			f.handler.ServeHTTP(w, tt.request())
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", w.Code, tt.wantStatus, w.Body.String())
			}
			if f.stripe.writes != tt.wantWrites {
				t.Errorf("Stripe writes = %d, want %d", f.stripe.writes, tt.wantWrites)
			}
			if tt.wantOutcome == meterbill.OutcomeUnknownCustomer && f.stripe.calls != 0 {
				t.Errorf("unknown customer made %d Stripe calls, want none", f.stripe.calls)
			}
			var got meterbill.Outcome
			if len(f.reports) == 1 {
				got = f.reports[0].Outcome
			}
			if got != tt.wantOutcome {
				t.Errorf("outcome = %q, want %q", got, tt.wantOutcome)
			}
			if tt.wantStatus == 200 {
				var body struct {
					Outcome meterbill.Outcome `json:"outcome"`
					Invoice string            `json:"invoice"`
					Added   int               `json:"lines_added"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Header().Get("Content-Type") != "application/json" {
					t.Fatalf("200 answered %q (%s, %v), want a JSON outcome", w.Body.String(), w.Header().Get("Content-Type"), err)
				}
				want := tt.wantOutcome
				if want == "" {
					want = meterbill.OutcomeIgnored
				}
				if body.Outcome != want || body.Added != tt.wantWrites || (want != meterbill.OutcomeIgnored && body.Invoice != "in_march") {
					t.Errorf("body %q: want outcome %q, invoice in_march, %d lines added", w.Body.String(), want, tt.wantWrites)
				}
			}
			if tt.wantStatus >= 400 && strings.Contains(w.Body.String(), "meterbill") {
				t.Errorf("the error body leaks internal text: %q", w.Body.String())
			}
		})
	}
}

func TestWebhookBillsTheExactAmount(t *testing.T) {
	f := newWebhookFixture(t)
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, signed(t, invoiceEvent(t, "2025-08-27.basil", "in_march", "cus_known", "draft", date(2026, 3, 1), date(2026, 4, 1), nil), time.Now(), secret))
	if w.Code != 200 || len(f.stripe.items) != 1 {
		t.Fatalf("status %d, %d items", w.Code, len(f.stripe.items))
	}
	it := f.stripe.items[0]
	// 1234 calls at $0.001 = 123.4 cents -> 123, in the invoice's currency, on the invoice, for March.
	got := []any{it.Amount, it.Currency, it.Invoice, it.Customer, it.PeriodStart, it.PeriodEnd, it.Metadata["meterbill_quantity"], it.Metadata["meterbill_account"]}
	want := []any{int64(123), "usd", "in_march", "cus_known", date(2026, 3, 1), date(2026, 4, 1), "1234", "42"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("item = %v, want %v", got, want)
	}
}

func TestNewHandlerRejects(t *testing.T) {
	plan, err := meterbill.NewPlan(meterbill.Price{Metric: calls, Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	resolver := meterbill.SubscriptionMetadataAccount("account")
	m := meterbill.NewMemoryMeter()
	st := &stubStripe{}
	tests := []struct {
		name    string
		secrets []string
		opts    []meterbill.HandlerOption
	}{
		{name: "no secret", secrets: nil},
		{name: "an API key passed as the secret", secrets: []string{"sk_test_123456789"}},
		{name: "nil logger", secrets: []string{secret}, opts: []meterbill.HandlerOption{meterbill.WithLogger(nil)}},
		{name: "zero deadline", secrets: []string{secret}, opts: []meterbill.HandlerOption{meterbill.WithDeadline(0)}},
		{name: "tiny body cap", secrets: []string{secret}, opts: []meterbill.HandlerOption{meterbill.WithMaxBodyBytes(10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := meterbill.NewHandler(m, st, resolver, plan, tt.secrets, tt.opts...); err == nil {
				t.Error("NewHandler accepted it")
			}
		})
	}
}
