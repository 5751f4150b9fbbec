package meterbill_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/internal/stripefake"
)

// recordingObserver sums what it observes: counts by kind (and outcome, for invoices), and
// latencies by kind, operation and status.
type recordingObserver struct {
	mu        sync.Mutex
	counts    map[string]int
	latencies map[string]int
	bad       []meterbill.Measurement // counts that are not positive, latencies that took no time
	depth     int                     // the last queue depth reported
	depths    int                     // how many were
}

var _ meterbill.Observer = (*recordingObserver)(nil)

func newRecordingObserver() *recordingObserver {
	return &recordingObserver{counts: map[string]int{}, latencies: map[string]int{}}
}

func (o *recordingObserver) Observe(m meterbill.Measurement) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch m.Kind {
	case meterbill.MeterLatency, meterbill.StripeLatency:
		o.latencies[fmt.Sprintf("%s %s %s", m.Kind, m.Op, m.Status)]++
		if m.Duration <= 0 {
			o.bad = append(o.bad, m)
		}
		return
	case meterbill.InvoicesHandled:
		o.counts[fmt.Sprintf("%s %s", m.Kind, m.Outcome)] += m.N
	case meterbill.WebhooksRefused:
		o.counts[fmt.Sprintf("%s %s", m.Kind, m.Status)] += m.N
	case meterbill.QueueDepth: // a gauge: the last value, and zero is a value
		o.depth, o.depths = m.N, o.depths+1
		return
	case meterbill.WebhooksIgnored:
		o.counts[fmt.Sprintf("%s %s", m.Kind, m.Op)] += m.N
	default:
		o.counts[string(m.Kind)] += m.N
	}
	if m.N <= 0 {
		o.bad = append(o.bad, m)
	}
}

// check compares the counts and the latencies with what is wanted (the latencies' number of
// calls with latencyCalls, else only which kinds, operations and statuses were seen), and
// fails on any measurement without a positive count or duration.
func (o *recordingObserver) check(t *testing.T, wantCounts, wantLatencies map[string]int, latencyCalls bool) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if diff := cmp.Diff(wantCounts, o.counts); diff != "" {
		t.Errorf("counts mismatch (-want +got):\n%s", diff)
	}
	got := o.latencies
	if !latencyCalls {
		got = map[string]int{}
		for k := range o.latencies {
			got[k] = 1
		}
	}
	if diff := cmp.Diff(wantLatencies, got); diff != "" {
		t.Errorf("latencies mismatch (-want +got):\n%s", diff)
	}
	if len(o.bad) > 0 {
		t.Errorf("measurements without a positive count or duration: %+v", o.bad)
	}
}

func TestObserverSeesTheRecorder(t *testing.T) {
	at := date(2026, 3, 1)
	tests := []struct {
		name       string
		failures   int64  // transient Ingest failures
		badAccount uint64 // an account the meter refuses for good
		events     []meterbill.Event
		wantErr    error // from Close
		// counts by kind; latencies as "kind op status" with the number of calls
		wantCounts, wantLatencies map[string]int
	}{
		{
			name: "two partitions delivered",
			events: []meterbill.Event{
				{Account: 1, Metric: calls.Code, Value: meterbill.Units(1)},
				{Account: 1, Metric: calls.Code, Value: meterbill.Units(1)},
				{Account: 1, Metric: calls.Code, Value: meterbill.Units(1)},
				{Account: 2, Metric: calls.Code, Value: meterbill.Units(1)},
				{Account: 2, Metric: storage.Code, Value: meterbill.Units(5)},
			},
			wantCounts:    map[string]int{"events_recorded": 5, "events_delivered": 5},
			wantLatencies: map[string]int{"meter_latency define ok": 1, "meter_latency ingest ok": 2},
		},
		{
			name:     "transient failures retried",
			failures: 2,
			events: []meterbill.Event{
				{Account: 1, Metric: calls.Code, Value: meterbill.Units(1)},
				{Account: 1, Metric: calls.Code, Value: meterbill.Units(1)},
				{Account: 1, Metric: calls.Code, Value: meterbill.Units(1)},
			},
			wantCounts:    map[string]int{"events_recorded": 3, "events_delivered": 3},
			wantLatencies: map[string]int{"meter_latency define ok": 1, "meter_latency ingest error": 2, "meter_latency ingest ok": 1},
		},
		{
			name:       "refused for good: split and given up on",
			badAccount: 7,
			events: []meterbill.Event{
				{Account: 1, Metric: calls.Code, Value: meterbill.Units(1)},
				{Account: 1, Metric: calls.Code, Value: meterbill.Units(1)},
				{Account: 7, Metric: calls.Code, Value: meterbill.Units(1)},
				{Account: 7, Metric: calls.Code, Value: meterbill.Units(1)},
			},
			wantErr:    meterbill.ErrUndelivered,
			wantCounts: map[string]int{"events_recorded": 4, "events_delivered": 2, "events_failed": 2},
			// account 7's batch of 2, then each half
			wantLatencies: map[string]int{"meter_latency define ok": 1, "meter_latency ingest ok": 1, "meter_latency ingest error": 3},
		},
		{
			name: "duplicates and rejections",
			events: []meterbill.Event{
				{Account: 1, Metric: calls.Code, Value: meterbill.Units(1), Time: at},
				{Account: 1, Metric: calls.Code, Value: meterbill.Units(1), Time: at}, // same dedup key
				{Account: 1, Metric: "unknown", Value: meterbill.Units(1)},
				{Account: 0, Metric: calls.Code, Value: meterbill.Units(1)},
			},
			wantCounts:    map[string]int{"events_recorded": 2, "events_delivered": 2, "events_duplicate": 1, "events_rejected": 2},
			wantLatencies: map[string]int{"meter_latency define ok": 1, "meter_latency ingest ok": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &flakyMeter{MemoryMeter: meterbill.NewMemoryMeter(), badAccount: tt.badAccount}
			m.failures.Store(tt.failures)
			obs := newRecordingObserver()
			// Nothing is delivered before Close, so the batches are exactly one per partition.
			rec := newRecorder(t, m, meterbill.WithObserver(obs), meterbill.WithFlushInterval(time.Hour))
			for _, e := range tt.events {
				_ = rec.Record(context.Background(), e) // refusals are counted
			}
			if err := rec.Close(context.Background()); !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Close = %v, want %v", err, tt.wantErr)
			}
			obs.check(t, tt.wantCounts, tt.wantLatencies, true)
			st := rec.Stats()
			if got, want := obs.counts["events_recorded"], int(st.Enqueued); got != want {
				t.Errorf("events_recorded = %d, Stats().Enqueued = %d", got, want)
			}
		})
	}
}

func TestObserverSeesTheHandler(t *testing.T) {
	tests := []struct {
		name string
		// run bills account 42's March invoice in some way.
		run           func(t *testing.T, b *bridge)
		wantCounts    map[string]int
		wantLatencies map[string]int // the keys only
	}{
		{
			name: "billed, then already billed on redelivery",
			run: func(t *testing.T, b *bridge) {
				inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
				for range 2 {
					if got := b.deliver(t, inv, "draft"); got != 200 {
						t.Fatalf("status %d", got)
					}
				}
			},
			wantCounts: map[string]int{
				"invoices_handled billed": 1, "invoices_handled already_billed": 1,
				"lines_created": 4, "lines_existing": 4,
			},
			wantLatencies: map[string]int{
				"meter_latency query ok": 1, "stripe_latency invoice_items 2xx": 1, "stripe_latency create_invoice_item 2xx": 1,
				"stripe_latency subscription 2xx": 1, // the subscription's first bill: when did it start?
			},
		},
		{
			name: "finalized: pending items, then already billed through BillInvoice",
			run: func(t *testing.T, b *bridge) {
				inv := b.invoice("in_mar", "cus_a", 42, "open", date(2026, 3, 1), date(2026, 4, 1))
				if got := b.deliver(t, inv, "open"); got != 200 {
					t.Fatalf("status %d", got)
				}
				for range 2 {
					if _, err := b.handler.BillInvoice(context.Background(), "in_mar"); err != nil {
						t.Fatal(err)
					}
				}
			},
			wantCounts: map[string]int{
				"invoices_handled pending": 1, "invoices_handled already_billed": 2,
				"lines_pending": 4, "lines_existing": 8,
			},
			wantLatencies: map[string]int{
				"meter_latency query ok": 1, "stripe_latency invoice 2xx": 1, "stripe_latency invoice_items 2xx": 1,
				"stripe_latency create_invoice_item 2xx": 1, "stripe_latency subscription 2xx": 1,
			},
		},
		{
			name: "skips: an unknown customer and an event type meterbill does not act on",
			run: func(t *testing.T, b *bridge) {
				b.stripe.AddCustomer("cus_stranger", nil)
				b.stripe.AddInvoice(stripefake.Invoice{ID: "in_stranger", Customer: "cus_stranger", Currency: "usd", Status: "draft",
					PeriodStart: date(2026, 3, 1).Unix(), PeriodEnd: date(2026, 4, 1).Unix()})
				if _, err := b.handler.BillInvoice(context.Background(), "in_stranger"); err != nil {
					t.Fatal(err)
				}
				b.handler.ServeHTTP(httptest.NewRecorder(), signed(t, []byte(`{"id":"evt_2","type":"customer.updated","data":{"object":{}}}`), time.Now(), secret))
			},
			wantCounts:    map[string]int{"invoices_handled unknown_customer": 1, "webhooks_ignored customer.updated": 1},
			wantLatencies: map[string]int{"stripe_latency invoice 2xx": 1},
		},
		{
			name: "refused webhooks by status",
			run: func(t *testing.T, b *bridge) {
				payload := invoiceEvent(t, "2025-08-27.basil", "in_mar", "cus_a", "draft", date(2026, 3, 1), date(2026, 4, 1), nil)
				for _, req := range []*http.Request{
					signed(t, payload, time.Now(), "whsec_wrong"),                                              // 400
					signed(t, bytes.Repeat([]byte(" "), 2<<20), time.Now(), secret),                            // 413
					httptest.NewRequest(http.MethodGet, "/webhook", nil),                                       // 405
					signed(t, []byte(`{"id":"evt_1","type":"invoice.created","data":[]}`), time.Now(), secret), // 400
				} {
					b.handler.ServeHTTP(httptest.NewRecorder(), req)
				}
			},
			wantCounts:    map[string]int{"webhooks_refused 400": 2, "webhooks_refused 413": 1, "webhooks_refused 405": 1},
			wantLatencies: map[string]int{}, // nothing reached the meter or Stripe
		},
		{
			name: "Stripe failures by status class",
			run: func(t *testing.T, b *bridge) {
				inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
				b.stripe.Inject(stripefake.Fault{Method: http.MethodGet, Path: "/v1/invoiceitems", Status: 429, Times: 1})
				if got := b.deliver(t, inv, "draft"); got != 200 {
					t.Fatalf("status %d", got)
				}
				if _, err := b.handler.BillInvoice(context.Background(), "in_missing"); err == nil {
					t.Fatal("BillInvoice of a missing invoice succeeded")
				}
			},
			wantCounts: map[string]int{
				"invoices_handled billed": 1, "invoices_handled failed": 1, "lines_created": 4,
			},
			wantLatencies: map[string]int{
				"meter_latency query ok": 1, "stripe_latency invoice 4xx": 1, "stripe_latency invoice_items 2xx": 1,
				"stripe_latency invoice_items 4xx": 1, "stripe_latency create_invoice_item 2xx": 1, "stripe_latency subscription 2xx": 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := newRecordingObserver()
			b := newBridge(t, billPlan, meterbill.WithObserver(obs))
			b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 100, "40")
			tt.run(t, b)
			obs.check(t, tt.wantCounts, tt.wantLatencies, false)
		})
	}
}

func TestWithObserverRejects(t *testing.T) {
	tests := []struct {
		name    string
		build   func() error
		wantErr string
	}{
		{
			name: "nil observer",
			build: func() error {
				_, err := meterbill.NewRecorder(context.Background(), meterbill.NewMemoryMeter(), []meterbill.Metric{calls}, meterbill.WithObserver(nil))
				return err
			},
			wantErr: "WithObserver(nil)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.build(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
