package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/meterbill/meterbill"
)

// TestSmokeAgainstStripeMock runs the server's wiring against stripe-mock, which validates every
// request meterbill sends against Stripe's API spec: a signed invoice.created must be answered
// 200 after the line is created.
func TestSmokeAgainstStripeMock(t *testing.T) {
	mock := os.Getenv("STRIPE_MOCK_URL")
	if mock == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("STRIPE_MOCK_URL is not set in CI")
		}
		t.Skip("stripe-mock not running; set STRIPE_MOCK_URL to run this smoke test")
	}
	const secret = "whsec_smoke_0123456789"
	var logs bytes.Buffer
	app, err := newServer(context.Background(), config{apiKey: "sk_test_123", apiURL: mock, secrets: []string{secret}}, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.rec.Close(context.Background()) }()
	srv := httptest.NewServer(app.handler)
	defer srv.Close()

	// Usage through the example's own metered endpoint, this month; the invoice is this month's.
	for range 3 {
		call(t, srv.URL+"/api/calls", http.MethodPost, "Bearer demo_7")
	}
	if err := app.rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	march := meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}.Bucket(time.Now()).Start
	payload, _ := json.Marshal(map[string]any{"id": "evt_smoke", "type": "invoice.created", "api_version": "2025-08-27.basil",
		"data": map[string]any{"object": map[string]any{"id": "in_smoke", "object": "invoice", "customer": "cus_smoke", "currency": "usd",
			"status": "draft", "period_start": march.Unix(), "period_end": march.AddDate(0, 1, 0).Unix(),
			"parent": map[string]any{"subscription_details": map[string]any{"metadata": map[string]string{"meter_account": "7"}}}}}})
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhook", bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", sp.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(logs.Bytes(), []byte(`"outcome":"billed"`)) {
		t.Errorf("status %d; logs:\n%s", resp.StatusCode, logs.String())
	}
	if !bytes.Contains(body, []byte(`"outcome":"billed","invoice":"in_smoke","lines_added":1`)) {
		t.Errorf("answer %q, want the outcome for Stripe's dashboard", body)
	}
}

// TestMeteredAPI: calls to the example's API are recorded for the caller's account, and
// /api/usage shows them; a call without the demo token is served nothing and records nothing.
func TestMeteredAPI(t *testing.T) {
	app, err := newServer(context.Background(), config{apiKey: "sk_test_123", apiURL: "http://127.0.0.1:1", secrets: []string{"whsec_test_0123456789"}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.rec.Close(context.Background()) }()
	srv := httptest.NewServer(app.handler)
	defer srv.Close()
	tests := []struct {
		name       string
		auth       string
		calls      int
		wantStatus int
	}{
		{name: "account 7", auth: "Bearer demo_7", calls: 3, wantStatus: http.StatusOK},
		{name: "account 8", auth: "Bearer demo_8", calls: 1, wantStatus: http.StatusOK},
		{name: "no account", auth: "", calls: 2, wantStatus: http.StatusOK}, // served, not metered
	}
	for _, tt := range tests {
		for range tt.calls {
			if got, _ := call(t, srv.URL+"/api/calls", http.MethodPost, tt.auth); got != tt.wantStatus {
				t.Fatalf("%s: status %d, want %d", tt.name, got, tt.wantStatus)
			}
		}
	}
	if err := app.rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests[:2] {
		_, body := call(t, srv.URL+"/api/usage", http.MethodGet, tt.auth)
		var u meterbill.Usage
		if err := json.Unmarshal(body, &u); err != nil {
			t.Fatal(err)
		}
		if got := u.Value.String(); got != strconv.Itoa(tt.calls) {
			t.Errorf("%s: usage %s, want %d", tt.name, got, tt.calls)
		}
	}
	if st := app.rec.Stats(); st.Enqueued != 4 {
		t.Errorf("recorded %d events, want 4 (the calls without an account are not metered)", st.Enqueued)
	}
	if got, _ := call(t, srv.URL+"/api/usage", http.MethodGet, ""); got != http.StatusUnauthorized {
		t.Errorf("usage without the demo token: %d, want 401", got)
	}
}

// call sends a request and returns the status and the body.
func call(t *testing.T, url, method, auth string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("STRIPE_SECRET_KEY", "")
	t.Setenv("STRIPE_WEBHOOK_SECRET", "")
	if _, err := configFromEnv(); err == nil {
		t.Error("configFromEnv accepted an empty environment")
	}
	t.Setenv("STRIPE_SECRET_KEY", "sk_test_1")
	t.Setenv("STRIPE_WEBHOOK_SECRET", "whsec_old_0000000, whsec_new_1111111")
	c, err := configFromEnv()
	if err != nil || len(c.secrets) != 2 || c.addr != ":4242" {
		t.Errorf("configFromEnv = %+v, %v; want two secrets on :4242", c, err)
	}
}
