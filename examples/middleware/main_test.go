package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestShutdownDeliversEverything serves metered requests, shuts down, and checks the meter
// holds every billable request: 5 calls, 12 rendered pages, and no bad request or stranger.
func TestShutdownDeliversEverything(t *testing.T) {
	a, err := newApp(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(a.handler)
	call := func(path, key string) int {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		req.Header.Set("Authorization", key)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for range 5 {
		call("/v1/hello", "Bearer key_acme")
	}
	call("/v1/render?pages=12", "Bearer key_acme")
	if got := call("/v1/render?pages=x", "Bearer key_acme"); got != http.StatusBadRequest {
		t.Errorf("bad request answered %d", got)
	}
	call("/v1/hello", "Bearer stolen")
	ts.Close()
	if err := shutdown(&http.Server{}, a.rec); err != nil {
		t.Fatal(err)
	}
	u, err := a.meter.Query(context.Background(), 1001, apiCalls, apiCalls.Bucket(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Value.String(); got != "17" {
		t.Errorf("account 1001 used %s, want 17 (5 calls and 12 pages)", got)
	}
	if st := a.rec.Stats(); st.Delivered != 6 || st.Failed != 0 {
		t.Errorf("recorder stats %+v", st)
	}
}
