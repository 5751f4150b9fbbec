package stripeevent

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82/webhook"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name      string
		payload   string
		wantEvent Event
		wantInv   Invoice
		wantErr   bool
	}{
		{
			name:      "invoice with a customer id and subscription metadata",
			payload:   `{"id":"evt_1","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1","currency":"USD","status":"draft","period_start":10,"period_end":20,"parent":{"type":"subscription_details","subscription_details":{"metadata":{"meter_account":"42"}}}}}}`,
			wantEvent: Event{ID: "evt_1", Type: "invoice.created"},
			wantInv:   Invoice{ID: "in_1", Customer: "cus_1", Currency: "usd", Status: "draft", PeriodStart: 10, PeriodEnd: 20, SubscriptionMetadata: map[string]string{"meter_account": "42"}},
		},
		{
			name:      "expanded customer, no parent",
			payload:   `{"id":"evt_2","type":"invoice.created","data":{"object":{"id":"in_2","object":"invoice","customer":{"id":"cus_2","object":"customer"},"currency":"jpy","status":"open","period_start":5,"period_end":5,"parent":null}}}`,
			wantEvent: Event{ID: "evt_2", Type: "invoice.created"},
			wantInv:   Invoice{ID: "in_2", Customer: "cus_2", Currency: "jpy", Status: "open", PeriodStart: 5, PeriodEnd: 5},
		},
		{name: "other types decode only the envelope", payload: `{"id":"evt_3","type":"charge.succeeded","data":{"object":{"object":"charge"}}}`, wantEvent: Event{ID: "evt_3", Type: "charge.succeeded"}},
		{name: "truncated", payload: `{"id":"evt_1","type":"invoice.created","data":{"obj`, wantErr: true},
		{name: "no id", payload: `{"type":"invoice.created"}`, wantErr: true},
		{name: "not an invoice", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"ch_1","object":"charge"}}}`, wantErr: true},
		{name: "no customer", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","status":"draft"}}}`, wantErr: true},
		{name: "no period", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"c","currency":"usd","status":"draft"}}}`, wantErr: true},
		{name: "reversed period", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"c","currency":"usd","status":"draft","period_start":20,"period_end":10}}}`, wantErr: true},
		{name: "no currency", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"c","status":"draft","period_start":10,"period_end":20}}}`, wantErr: true},
		{name: "unknown currency shape", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"c","currency":"us$","status":"draft","period_start":10,"period_end":20}}}`, wantErr: true},
		{name: "string period", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"c","status":"draft","period_start":"yesterday"}}}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, inv, err := Decode([]byte(tt.payload))
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrMalformed)) {
				t.Fatalf("Decode error = %v, want error %v wrapping ErrMalformed", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff([]any{tt.wantEvent, tt.wantInv}, []any{ev, inv}); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	body := []byte(`{"id":"evt_1"}`)
	header := func(at time.Time, secret string) string {
		return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
	}
	tests := []struct {
		name    string
		header  string
		secrets []string
		wantOK  bool
	}{
		{name: "current secret", header: header(now, "whsec_a"), secrets: []string{"whsec_a"}, wantOK: true},
		{name: "second of two secrets", header: header(now, "whsec_b"), secrets: []string{"whsec_a", "whsec_b"}, wantOK: true},
		{name: "no matching secret", header: header(now, "whsec_c"), secrets: []string{"whsec_a", "whsec_b"}},
		{name: "stale", header: header(now.Add(-301*time.Second), "whsec_a"), secrets: []string{"whsec_a"}},
		{name: "future", header: header(now.Add(301*time.Second), "whsec_a"), secrets: []string{"whsec_a"}},
		{name: "slightly ahead is tolerated", header: header(now.Add(30*time.Second), "whsec_a"), secrets: []string{"whsec_a"}, wantOK: true},
		{name: "empty header", header: "", secrets: []string{"whsec_a"}},
		{name: "garbage header", header: "t=abc,v1=zz", secrets: []string{"whsec_a"}},
		{name: "no secrets", header: header(now, "whsec_a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(body, tt.header, tt.secrets, 300*time.Second, now)
			if (err == nil) != tt.wantOK {
				t.Errorf("Verify = %v, want ok %v", err, tt.wantOK)
			}
		})
	}
}

// FuzzDecode: no panic on any body, and whatever decodes as invoice.created has the fields the
// handler relies on.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1","currency":"usd","status":"draft","period_start":10,"period_end":20}}}`))
	f.Add([]byte(`{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":{"id":"c"},"currency":"eur","status":"draft","period_start":1,"period_end":2,"parent":{"subscription_details":{"metadata":{"k":"v"}}}}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, inv, err := Decode(payload)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" {
			t.Fatalf("accepted an event without id or type: %+v", ev)
		}
		if ev.Type == "invoice.created" && (inv.ID == "" || inv.Customer == "" || inv.Status == "" || len(inv.Currency) != 3 || inv.PeriodStart <= 0 || inv.PeriodEnd < inv.PeriodStart) {
			t.Fatalf("accepted an unusable invoice: %+v", inv)
		}
		if _, err := json.Marshal(inv); err != nil {
			t.Fatal(fmt.Errorf("decoded invoice does not re-encode: %w", err))
		}
	})
}

// FuzzVerify: no panic on any header, and nothing unsigned passes.
func FuzzVerify(f *testing.F) {
	f.Add("t=1,v1=00", []byte("x"))
	f.Add("", []byte(""))
	f.Add("t=99999999999999999999,v1=,v0=a", []byte("{}"))
	f.Fuzz(func(t *testing.T, header string, payload []byte) {
		if Verify(payload, header, []string{"whsec_fuzz"}, 300*time.Second, time.Now()) == nil {
			t.Fatalf("an arbitrary header verified: %q", header)
		}
	})
}
