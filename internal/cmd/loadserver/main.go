// Command loadserver serves a trivial handler on loopback, bare or wrapped, for
// scripts/wrk-middleware.sh to measure what the usage middleware costs as a client feels it
// (requests per second over real connections), against a middleware doing only
// httpsnoop.CaptureMetrics.
//
//	go run ./internal/cmd/loadserver -addr 127.0.0.1:8089 -mode meterbill-discard
//
// Modes: bare, capturemetrics, meterbill-discard (the recorder over a meter that keeps nothing,
// so the meter's own cost is out of the figure) and meterbill-memory (over the embedded meter).
// On SIGINT or SIGTERM it shuts down, closes the recorder and prints its stats, so the run also
// checks that every recorded request was delivered.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/felixge/httpsnoop"

	"github.com/meterbill/meterbill"
)

var calls = meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}

type floorKey struct{}

// discard is a meter that keeps nothing.
type discard struct{}

func (discard) Define(context.Context, ...meterbill.Metric) error { return nil }
func (discard) Ingest(_ context.Context, es []meterbill.Event) (meterbill.IngestResult, error) {
	return meterbill.IngestResult{Stored: len(es)}, nil
}
func (discard) Query(context.Context, uint64, meterbill.Metric, meterbill.Period) (meterbill.Usage, error) {
	return meterbill.Usage{}, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8089", "loopback address to listen on")
	mode := flag.String("mode", "bare", "bare, capturemetrics, meterbill-discard or meterbill-memory")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	if err := run(*addr, *mode); err != nil {
		log.Print(err)
		return
	}
}

func run(addr, mode string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("loadserver listens on loopback only, not %q", addr)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	var (
		handler http.Handler
		rec     *meterbill.Recorder
	)
	switch mode {
	case "bare":
		handler = ok
	case "capturemetrics":
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = httpsnoop.CaptureMetrics(ok, w, r) })
	case "floor":
		// What any middleware offering per-request helpers must do: wrap the writer with one
		// hook, and give the handler a request whose context carries the recording.
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			status := 0
			ww := httpsnoop.Wrap(w, httpsnoop.Hooks{WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
				return func(code int) { status = code; next(code) }
			}})
			ok.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), floorKey{}, &status)))
		})
	case "meterbill-discard", "meterbill-memory":
		var m meterbill.Meter = discard{}
		if mode == "meterbill-memory" {
			m = meterbill.NewMemoryMeter()
		}
		if rec, err = meterbill.NewRecorder(context.Background(), m, []meterbill.Metric{calls}); err != nil {
			return err
		}
		// One account, as BenchmarkMiddleware does: the figure is the middleware's and the
		// recorder's cost, not that of the app's authentication, which decides the account.
		mw := meterbill.NewMiddleware(rec, calls.Code, func(*http.Request) (uint64, bool) { return 42, true })
		handler = mw(ok)
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	srv := &http.Server{Addr: addr, Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if rec != nil {
		if err := rec.Close(shutdown); err != nil {
			return err
		}
		st := rec.Stats()
		fmt.Printf("recorder: %d recorded, %d delivered, %d rejected, %d failed\n", st.Enqueued, st.Delivered, st.Rejected, st.Failed)
	}
	return nil
}
