// Command middleware is an API whose usage is metered by meterbill's middleware: every
// successful request counts one call for the caller's account, recorded in the background, and a
// graceful shutdown delivers what is still queued before the process exits.
//
//	go run ./examples/middleware
//	curl -H 'Authorization: Bearer key_acme' localhost:8080/v1/hello
//	curl -H 'Authorization: Bearer key_acme' 'localhost:8080/v1/render?pages=12'   # counts 12
//
// Usage lives in the in-process meter here; GET /usage shows the caller's total this month.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/meterbill/meterbill"
)

var apiCalls = meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 1}

// apiKeys stands in for your authentication: it decides which account a request bills.
var apiKeys = map[string]uint64{"Bearer key_acme": 1001, "Bearer key_globex": 1002}

func account(r *http.Request) (uint64, bool) {
	acct, ok := apiKeys[r.Header.Get("Authorization")]
	return acct, ok
}

// app wires the API, the middleware and the recorder.
type app struct {
	meter   meterbill.Meter
	rec     *meterbill.Recorder
	handler http.Handler
}

func newApp(ctx context.Context, logger *slog.Logger) (*app, error) {
	meter := meterbill.NewMemoryMeter()
	rec, err := meterbill.NewRecorder(ctx, meter, []meterbill.Metric{apiCalls}, meterbill.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	usage := meterbill.NewMiddleware(rec, apiCalls.Code, account, meterbill.WithLogger(logger))
	api := http.NewServeMux()
	api.HandleFunc("GET /v1/hello", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, `{"hello":"world"}`)
	})
	api.HandleFunc("GET /v1/render", func(w http.ResponseWriter, r *http.Request) {
		pages, err := strconv.ParseUint(r.URL.Query().Get("pages"), 10, 32)
		if err != nil || pages == 0 {
			http.Error(w, "pages must be a positive number", http.StatusBadRequest) // 400: not billed
			return
		}
		meterbill.SetUsageValue(r.Context(), meterbill.Units(pages)) // bill per page, not per call
		_, _ = fmt.Fprintf(w, `{"rendered":%d}`+"\n", pages)
	})
	mux := http.NewServeMux()
	mux.Handle("/v1/", usage(api))
	mux.HandleFunc("GET /usage", func(w http.ResponseWriter, r *http.Request) {
		acct, ok := account(r)
		if !ok {
			http.Error(w, "unknown API key", http.StatusUnauthorized)
			return
		}
		now := time.Now()
		u, err := meter.Query(r.Context(), acct, apiCalls, apiCalls.Bucket(now))
		if err != nil {
			http.Error(w, "meter unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintf(w, `{"account":%d,"calls_this_month":"%s"}`+"\n", acct, u.Value)
	})
	return &app{meter: meter, rec: rec, handler: mux}, nil
}

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(logger); err != nil {
		logger.Error("middleware example stopped", "err", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := newApp(ctx, logger)
	if err != nil {
		return err
	}
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	srv := &http.Server{Addr: addr, Handler: a.handler, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("listening", "addr", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	return shutdown(srv, a.rec)
}

// shutdown stops taking requests, lets the ones in flight finish (their usage is recorded as
// they return), then delivers everything the recorder still holds.
func shutdown(srv *http.Server, rec *meterbill.Recorder) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return errors.Join(srv.Shutdown(ctx), rec.Close(ctx))
}
