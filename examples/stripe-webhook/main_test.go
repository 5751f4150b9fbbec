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
	h, meter, err := newServer(context.Background(), config{apiKey: "sk_test_123", apiURL: mock, secrets: []string{secret}}, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if _, err := meter.Ingest(context.Background(), []meterbill.Event{{Account: 7, Metric: "api_calls", Value: meterbill.Units(1), Time: march.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
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
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(logs.Bytes(), []byte(`"outcome":"billed"`)) {
		t.Errorf("status %d; logs:\n%s", resp.StatusCode, logs.String())
	}
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
