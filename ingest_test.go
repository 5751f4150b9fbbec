package meterbill_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/meterbill/meterbill"
)

// flakyMeter wraps a MemoryMeter: it fails the first failures Ingest calls with a transient
// error, refuses events of account badAccount for good, and records every attempt.
type flakyMeter struct {
	*meterbill.MemoryMeter
	failures   atomic.Int64
	badAccount uint64
	mu         sync.Mutex
	attempts   [][]meterbill.Event
}

var errMeterDown = errors.New("meter down")

func (f *flakyMeter) Ingest(ctx context.Context, events []meterbill.Event) (meterbill.IngestResult, error) {
	f.mu.Lock()
	f.attempts = append(f.attempts, append([]meterbill.Event(nil), events...))
	f.mu.Unlock()
	if f.failures.Add(-1) >= 0 {
		return meterbill.IngestResult{}, errMeterDown
	}
	for _, e := range events {
		if f.badAccount != 0 && e.Account == f.badAccount {
			return meterbill.IngestResult{}, fmt.Errorf("%w: account %d is barred", meterbill.ErrInvalidEvent, e.Account)
		}
	}
	return f.MemoryMeter.Ingest(ctx, events)
}

// valueComparer lets cmp compare Values, which are comparable with ==.
var valueComparer = cmp.Comparer(func(a, b meterbill.Value) bool { return a == b })

func newRecorder(t *testing.T, m meterbill.Meter, opts ...meterbill.RecorderOption) *meterbill.Recorder {
	t.Helper()
	opts = append([]meterbill.RecorderOption{meterbill.WithRetryBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)
	rec, err := meterbill.NewRecorder(context.Background(), m, []meterbill.Metric{calls, storage}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func total(t *testing.T, m meterbill.Meter, account uint64, metric meterbill.Metric) string {
	t.Helper()
	u, err := m.Query(context.Background(), account, metric, meterbill.Period{Start: date(2026, 1, 1), End: date(2027, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return u.Value.String()
}

func TestRecorderDeliversEverythingOnce(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tests := []struct {
		name     string
		failures int64 // transient failures before the meter recovers
		batch    int   // the batch size set (0: the default, 500)
		events   int
	}{
		{name: "healthy meter", events: 5000},
		{name: "meter down for a while, then back", failures: 25, events: 5000},
		{name: "small batches", batch: 7, events: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &flakyMeter{MemoryMeter: meterbill.NewMemoryMeter()}
			m.failures.Store(tt.failures)
			limit := 500
			var opts []meterbill.RecorderOption
			if tt.batch > 0 {
				limit = tt.batch
				opts = append(opts, meterbill.WithBatchSize(tt.batch))
			}
			rec := newRecorder(t, m, opts...)
			var wg sync.WaitGroup
			for g := range 10 {
				wg.Go(func() {
					for i := range tt.events / 10 {
						e := meterbill.Event{Account: uint64(g%3 + 1), Metric: calls.Code, Value: meterbill.Units(1)}
						if i%2 == 1 {
							e = meterbill.Event{Account: uint64(g%3 + 1), Metric: storage.Code, Value: meterbill.Micros(500_000), Time: date(2026, 4, 20).Add(time.Duration(g*100000 + i))}
						}
						if err := rec.Record(context.Background(), e); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			if err := rec.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Every accepted event is in the meter exactly once.
			var count, gb int
			for acct := uint64(1); acct <= 3; acct++ {
				var c, s int
				_, _ = fmt.Sscan(total(t, m, acct, calls), &c)
				_, _ = fmt.Sscan(strings.Replace(total(t, m, acct, storage), ".5", "", 1), &s)
				count += c
				gb += s
			}
			st := rec.Stats()
			if count != tt.events/2 || st.Delivered != uint64(tt.events) || st.Failed != 0 || st.QueueDepth != 0 {
				t.Errorf("meter has %d calls (want %d); stats %+v", count, tt.events/2, st)
			}
			if tt.failures > 0 && st.Retried < uint64(tt.failures) {
				t.Errorf("Retried = %d, want at least %d", st.Retried, tt.failures)
			}
			// Batches hold one partition and at most the batch size.
			for _, b := range m.attempts {
				if len(b) > limit {
					t.Fatalf("a batch of %d events, limit %d", len(b), limit)
				}
				for _, e := range b {
					if e.Account%256 != b[0].Account%256 {
						t.Fatalf("a batch mixes partitions %d and %d", e.Account%256, b[0].Account%256)
					}
				}
			}
		})
	}
}

// TestRetriesKeepTimestamps: a batch retried after failures carries the very same events, so a
// retry that reached the meter twice is deduplicated.
func TestRetriesKeepTimestamps(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m := &flakyMeter{MemoryMeter: meterbill.NewMemoryMeter()}
	m.failures.Store(3)
	rec := newRecorder(t, m, meterbill.WithBatchSize(10))
	for range 10 {
		if err := rec.Record(context.Background(), meterbill.Event{Account: 5, Metric: calls.Code, Value: meterbill.Units(1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(m.attempts) != 4 {
		t.Fatalf("%d attempts, want 4 (3 failures and a success)", len(m.attempts))
	}
	for i := 1; i < len(m.attempts); i++ {
		if diff := cmp.Diff(m.attempts[0], m.attempts[i], valueComparer); diff != "" {
			t.Errorf("attempt %d differs from the first (-first +retry):\n%s", i+1, diff)
		}
	}
	seen := map[time.Time]bool{}
	for _, e := range m.attempts[0] {
		if seen[e.Time] {
			t.Errorf("two events stamped %v", e.Time)
		}
		seen[e.Time] = true
	}
	// The same batch delivered again is all duplicates: nothing counts twice.
	res, err := m.MemoryMeter.Ingest(context.Background(), m.attempts[0])
	if err != nil || res.Duplicates != 10 {
		t.Errorf("re-sending the batch = %+v, %v; want 10 duplicates", res, err)
	}
	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestPermanentFailureIsolatesTheBadEvent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m := &flakyMeter{MemoryMeter: meterbill.NewMemoryMeter(), badAccount: 13}
	var mu sync.Mutex
	var lost []meterbill.Event
	var lostErr error
	rec := newRecorder(t, m, meterbill.WithDeliveryErrorHandler(func(err error, events []meterbill.Event) {
		mu.Lock()
		defer mu.Unlock()
		lost, lostErr = append(lost, events...), err
	}))
	for i := range 20 {
		acct := uint64(269) // partition 13, like account 13
		if i == 7 {
			acct = 13
		}
		if err := rec.Record(context.Background(), meterbill.Event{Account: acct, Metric: calls.Code, Value: meterbill.Units(1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(context.Background()); !errors.Is(err, meterbill.ErrUndelivered) || !strings.Contains(err.Error(), "1 of 20 events") {
		t.Errorf("Close = %v, want ErrUndelivered for 1 of 20 events", err)
	}
	if got := total(t, m, 269, calls); got != "19" {
		t.Errorf("account 269 has %s calls, want 19: the good events must survive a bad neighbour", got)
	}
	if len(lost) != 1 || lost[0].Account != 13 || !errors.Is(lostErr, meterbill.ErrUndelivered) || !errors.Is(lostErr, meterbill.ErrInvalidEvent) {
		t.Errorf("handler got %d events (%v), err %v", len(lost), lost, lostErr)
	}
	if st := rec.Stats(); st.Failed != 1 || st.Delivered != 19 {
		t.Errorf("stats %+v", st)
	}
}

func TestFullQueuePolicies(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tests := []struct {
		name    string
		opts    []meterbill.RecorderOption
		wantErr error
	}{
		{name: "reject", opts: []meterbill.RecorderOption{meterbill.WithRejectWhenFull()}, wantErr: meterbill.ErrQueueFull},
		{name: "block until the context ends", wantErr: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &flakyMeter{MemoryMeter: meterbill.NewMemoryMeter()}
			m.failures.Store(1 << 40) // down for good
			var lost atomic.Int64
			opts := append([]meterbill.RecorderOption{meterbill.WithQueueSize(20), meterbill.WithBatchSize(10),
				meterbill.WithDeliveryErrorHandler(func(_ error, es []meterbill.Event) { lost.Add(int64(len(es))) })}, tt.opts...)
			rec := newRecorder(t, m, opts...)
			for range 20 {
				if err := rec.Record(context.Background(), meterbill.Event{Account: 1, Metric: calls.Code, Value: meterbill.Units(1)}); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			if err := rec.Record(ctx, meterbill.Event{Account: 1, Metric: calls.Code, Value: meterbill.Units(1)}); !errors.Is(err, tt.wantErr) {
				t.Errorf("Record on a full queue = %v, want %v", err, tt.wantErr)
			}
			if st := rec.Stats(); st.Rejected != 1 || st.QueueDepth != 20 {
				t.Errorf("stats %+v, want 1 rejected and a depth of 20", st)
			}
			// Close gives up at its deadline and says how many were not delivered: the batch
			// being retried was sent (the meter may hold it), the other one never was.
			cctx, ccancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer ccancel()
			err := rec.Close(cctx)
			if !errors.Is(err, meterbill.ErrUndelivered) || !errors.Is(err, meterbill.ErrUnconfirmed) || !errors.Is(err, context.DeadlineExceeded) ||
				!strings.Contains(err.Error(), "undelivered: 10 of 20 events") || !strings.Contains(err.Error(), "unconfirmed: 10 of 20 events") {
				t.Errorf("Close = %v, want ErrUndelivered for 10 events and ErrUnconfirmed for 10", err)
			}
			if lost.Load() != 20 {
				t.Errorf("the handler got %d undelivered events, want 20", lost.Load())
			}
			if again := rec.Close(context.Background()); !errors.Is(again, meterbill.ErrUndelivered) {
				t.Errorf("second Close = %v, want the first's result", again)
			}
			if err := rec.Record(context.Background(), meterbill.Event{Account: 1, Metric: calls.Code, Value: meterbill.Units(1)}); !errors.Is(err, meterbill.ErrClosed) {
				t.Errorf("Record after Close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestRecordRejects(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rec := newRecorder(t, meterbill.NewMemoryMeter())
	defer func() { _ = rec.Close(context.Background()) }()
	ok := meterbill.Event{Account: 1, Metric: calls.Code, Value: meterbill.Units(1)}
	with := func(f func(*meterbill.Event)) meterbill.Event { e := ok; f(&e); return e }
	many := make([]meterbill.Property, 256)
	for i := range many {
		many[i] = meterbill.Property{Key: fmt.Sprint("k", i)}
	}
	tests := []struct {
		name    string
		event   meterbill.Event
		wantErr error
	}{
		{name: "empty metric", event: with(func(e *meterbill.Event) { e.Metric = "" }), wantErr: meterbill.ErrInvalidEvent},
		{name: "64-byte metric", event: with(func(e *meterbill.Event) { e.Metric = strings.Repeat("m", 64) }), wantErr: meterbill.ErrInvalidEvent},
		{name: "32-byte property key", event: with(func(e *meterbill.Event) { e.Properties = []meterbill.Property{{Key: strings.Repeat("k", 32)}} }), wantErr: meterbill.ErrInvalidEvent},
		{name: "64-byte property value", event: with(func(e *meterbill.Event) {
			e.Properties = []meterbill.Property{{Key: "k", Value: strings.Repeat("v", 64)}}
		}), wantErr: meterbill.ErrInvalidEvent},
		{name: "256 properties", event: with(func(e *meterbill.Event) { e.Properties = many }), wantErr: meterbill.ErrInvalidEvent},
		{name: "zero account", event: with(func(e *meterbill.Event) { e.Account = 0 }), wantErr: meterbill.ErrInvalidEvent},
		{name: "metric the recorder was not started with", event: with(func(e *meterbill.Event) { e.Metric = seats.Code }), wantErr: meterbill.ErrUnknownMetric},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := rec.Record(context.Background(), tt.event); !errors.Is(err, tt.wantErr) {
				t.Errorf("Record = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if st := rec.Stats(); st.Rejected != uint64(len(tests)) || st.Enqueued != 0 {
		t.Errorf("stats %+v, want %d rejected", st, len(tests))
	}
}

func TestStampsAreUniqueAndNearTheClock(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m := &flakyMeter{MemoryMeter: meterbill.NewMemoryMeter()}
	rec := newRecorder(t, m, meterbill.WithLane(417))
	before := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				if err := rec.Record(context.Background(), meterbill.Event{Account: 9, Metric: calls.Code, Value: meterbill.Units(1)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := total(t, m, 9, calls); got != "16000" {
		t.Errorf("the meter counted %s of 16000 events: stamps collided", got)
	}
	for _, b := range m.attempts {
		for _, e := range b {
			if e.Time.Nanosecond()%1000 != 417 {
				t.Fatalf("stamp %v does not carry lane 417 in its nanoseconds", e.Time)
			}
			if e.Time.Before(before.Truncate(time.Microsecond)) || e.Time.After(time.Now().Add(time.Second)) {
				t.Fatalf("stamp %v strays from the clock", e.Time)
			}
		}
	}
}

func TestTimeFromID(t *testing.T) {
	at := time.Date(2026, 4, 17, 9, 30, 0, 123_456_789, time.UTC)
	a, b := meterbill.TimeFromID(at, "req_1"), meterbill.TimeFromID(at.Add(400*time.Microsecond), "req_1")
	if !a.Equal(b) {
		t.Errorf("the same record within its millisecond stamped %v and %v", a, b)
	}
	if c := meterbill.TimeFromID(at, "req_2"); c.Equal(a) {
		t.Errorf("two records share the stamp %v", a)
	}
	if a.Truncate(time.Millisecond) != at.Truncate(time.Millisecond) {
		t.Errorf("TimeFromID moved the time out of its millisecond: %v", a)
	}
}

func TestNewRecorderRejects(t *testing.T) {
	m := meterbill.NewMemoryMeter()
	tests := []struct {
		name    string
		metrics []meterbill.Metric
		opts    []meterbill.RecorderOption
	}{
		{name: "no metrics"},
		{name: "invalid metric", metrics: []meterbill.Metric{{Code: "x"}}},
		{name: "batch over the meter's limit", metrics: []meterbill.Metric{calls}, opts: []meterbill.RecorderOption{meterbill.WithBatchSize(1025)}},
		{name: "queue smaller than a batch", metrics: []meterbill.Metric{calls}, opts: []meterbill.RecorderOption{meterbill.WithQueueSize(10), meterbill.WithBatchSize(20)}},
		{name: "lane out of range", metrics: []meterbill.Metric{calls}, opts: []meterbill.RecorderOption{meterbill.WithLane(1000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rec, err := meterbill.NewRecorder(context.Background(), m, tt.metrics, tt.opts...); err == nil {
				_ = rec.Close(context.Background())
				t.Error("NewRecorder accepted it")
			}
		})
	}
}

// ---- middleware

func TestMiddleware(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		header    string // X-Account
		opts      []meterbill.MiddlewareOption
		wantCalls string
		wantGB    string
	}{
		{name: "a successful request counts 1", handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }, header: "7", wantCalls: "1", wantGB: "0"},
		{name: "an implicit 200 counts", handler: func(http.ResponseWriter, *http.Request) {}, header: "7", wantCalls: "1", wantGB: "0"},
		{name: "a 404 does not count", handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }, header: "7", wantCalls: "0", wantGB: "0"},
		{name: "early hints then 200 counts", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusOK)
		}, header: "7", wantCalls: "1", wantGB: "0"},
		{name: "no account, not recorded", handler: func(http.ResponseWriter, *http.Request) {}, wantCalls: "0", wantGB: "0"},
		{name: "count-if counts 404s too", handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }, header: "7", opts: []meterbill.MiddlewareOption{meterbill.WithCountIf(func(int) bool { return true })}, wantCalls: "1", wantGB: "0"},
		{name: "default value", handler: func(http.ResponseWriter, *http.Request) {}, header: "7", opts: []meterbill.MiddlewareOption{meterbill.WithDefaultValue(meterbill.Units(3))}, wantCalls: "1", wantGB: "0"},
		{name: "the handler skips its request", handler: func(_ http.ResponseWriter, r *http.Request) { meterbill.SkipUsage(r.Context()) }, header: "7", wantCalls: "0", wantGB: "0"},
		{name: "the handler moves its request to another metric and value", handler: func(_ http.ResponseWriter, r *http.Request) {
			meterbill.SetUsageMetric(r.Context(), storage.Code)
			meterbill.SetUsageValue(r.Context(), meterbill.Micros(2_500_000))
			meterbill.AddUsageProperty(r.Context(), "region", "eu")
		}, header: "7", wantCalls: "0", wantGB: "2.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := meterbill.NewMemoryMeter()
			rec := newRecorder(t, m)
			mw := meterbill.NewMiddleware(rec, calls.Code, meterbill.AccountFromHeader("X-Account"), tt.opts...)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.header != "" {
				r.Header.Set("X-Account", tt.header)
			}
			mw(tt.handler).ServeHTTP(httptest.NewRecorder(), r)
			if err := rec.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := [2]string{total(t, m, 7, calls), total(t, m, 7, storage)}
			if diff := cmp.Diff([2]string{tt.wantCalls, tt.wantGB}, got); diff != "" {
				t.Errorf("recorded (-want +got):\n%s", diff)
			}
		})
	}
	if meterbill.SetUsageValue(context.Background(), meterbill.Units(1)) {
		t.Error("SetUsageValue outside the middleware reported success")
	}
}

// TestMiddlewareKeepsOptionalInterfaces: a flush and a hijack through the middleware work, over
// a real connection, and the request is still recorded, even though the server's Close does
// not wait for the hijacked connection: Recorder.Close waits for it.
func TestMiddlewareKeepsOptionalInterfaces(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m := meterbill.NewMemoryMeter()
	rec := newRecorder(t, m)
	mw := meterbill.NewMiddleware(rec, calls.Code, meterbill.AccountFromHeader("X-Account"))
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "part 1\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through the middleware: %v", err)
		}
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, _ *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack through the middleware: %v", err)
			return
		}
		defer func() { _ = conn.Close() }()
		_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello")
		_ = buf.Flush()
	})
	// http.Server.Shutdown and httptest.Server.Close do not wait for hijacked connections, so the
	// middleware may still be in the upgrade's handler when they return: Recorder.Close waits
	// for the requests in the middleware, and records the upgrade.
	srv := httptest.NewServer(mw(mux))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/stream", nil)
	req.Header.Set("X-Account", "7")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "part 1\n" {
		t.Errorf("streamed body %q", body)
	}

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_, _ = io.WriteString(conn, "GET /upgrade HTTP/1.1\r\nHost: x\r\nX-Account: 7\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	status, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Errorf("hijacked connection answered %q", status)
	}
	srv.Client().CloseIdleConnections()
	srv.Close()
	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := total(t, m, 7, calls); got != "2" {
		t.Errorf("recorded %s requests, want 2 (the stream and the upgrade)", got)
	}
}

// TestNewMiddlewareRejects: misuse found at start-up panics with a clear error, as
// http.ServeMux.Handle does on a bad pattern, so that NewMiddleware can be used inline.
func TestNewMiddlewareRejects(t *testing.T) {
	rec := newRecorder(t, meterbill.NewMemoryMeter())
	defer func() { _ = rec.Close(context.Background()) }()
	tests := []struct {
		name    string
		build   func()
		wantErr error // the panic value must wrap it; nil: any error
	}{
		{name: "unknown metric", build: func() { meterbill.NewMiddleware(rec, "unknown", meterbill.AccountFromHeader("X")) }, wantErr: meterbill.ErrUnknownMetric},
		{name: "no account function", build: func() { meterbill.NewMiddleware(rec, calls.Code, nil) }},
		{name: "no recorder", build: func() { meterbill.NewMiddleware(nil, calls.Code, meterbill.AccountFromHeader("X")) }},
		{name: "a nil option", build: func() { meterbill.NewMiddleware(rec, calls.Code, meterbill.AccountFromHeader("X"), nil) }},
		{name: "a negative queue wait", build: func() {
			meterbill.NewMiddleware(rec, calls.Code, meterbill.AccountFromHeader("X"), meterbill.WithQueueWait(-time.Second))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				err, ok := recover().(error)
				if !ok || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.HasPrefix(err.Error(), "meterbill: ") {
					t.Errorf("panic value %v, want a meterbill error wrapping %v", err, tt.wantErr)
				}
			}()
			tt.build()
		})
	}
}

// blockedMeter holds every Ingest until release is closed: a meter outage.
type blockedMeter struct {
	meterbill.Meter
	release chan struct{}
}

func (m blockedMeter) Ingest(ctx context.Context, es []meterbill.Event) (meterbill.IngestResult, error) {
	select {
	case <-m.release:
	case <-ctx.Done():
		return meterbill.IngestResult{}, ctx.Err()
	}
	return m.Meter.Ingest(ctx, es)
}

// TestMiddlewareNeverHoldsAResponseForTheQueue: during a meter outage the recorder's queue
// fills up; a request through the middleware then waits at most WithQueueWait for room, and its
// usage is rejected, counted and handed to the delivery-error handler, never dropped silently.
// The queue's depth is reported to the Observer so that the outage can be alerted on.
func TestMiddlewareNeverHoldsAResponseForTheQueue(t *testing.T) {
	m := meterbill.NewMemoryMeter()
	stuck := blockedMeter{Meter: m, release: make(chan struct{})}
	var mu sync.Mutex
	var handed []meterbill.Event
	var handedErr error
	obs := newRecordingObserver()
	rec, err := meterbill.NewRecorder(context.Background(), stuck, []meterbill.Metric{calls},
		meterbill.WithBatchSize(2), meterbill.WithQueueSize(4), meterbill.WithFlushInterval(time.Millisecond), meterbill.WithObserver(obs),
		meterbill.WithDeliveryErrorHandler(func(err error, es []meterbill.Event) {
			mu.Lock()
			handed, handedErr = append(handed, es...), err
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	mw := meterbill.NewMiddleware(rec, calls.Code, meterbill.AccountFromHeader("X-Account"), meterbill.WithQueueWait(20*time.Millisecond))
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	serve := func() {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("X-Account", "7")
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	// The flusher takes a batch and is stuck delivering it; two more fill the queue of four.
	for range 2 {
		serve()
	}
	waitRecorder(t, rec, "the flusher to take the first batch", func(s meterbill.RecorderStats) bool { return s.QueueDepth == 2 && s.Enqueued == 2 })
	for range 2 {
		serve()
	}
	done := make(chan struct{})
	go func() { serve(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a request through the middleware hung on the full queue")
	}
	mu.Lock()
	if len(handed) != 1 || !errors.Is(handedErr, meterbill.ErrQueueFull) {
		t.Errorf("handed %d events with %v, want the one that found no room, with ErrQueueFull", len(handed), handedErr)
	}
	mu.Unlock()
	if st := rec.Stats(); st.Rejected != 1 {
		t.Errorf("%d rejected, want 1", st.Rejected)
	}
	obs.mu.Lock()
	if obs.depths == 0 {
		t.Error("no queue depth reported to the observer")
	}
	obs.mu.Unlock()
	close(stuck.release)
	if err := rec.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := total(t, m, 7, calls); got != "4" {
		t.Errorf("the meter holds %s requests, want the 4 that found room", got)
	}
}

// healingMeter fails every Ingest until healed, then counts the requests and their sizes.
type healingMeter struct {
	*meterbill.MemoryMeter
	healed   atomic.Bool
	requests atomic.Int64
}

func (m *healingMeter) Ingest(ctx context.Context, events []meterbill.Event) (meterbill.IngestResult, error) {
	if !m.healed.Load() {
		return meterbill.IngestResult{}, errors.New("meter down")
	}
	m.requests.Add(1)
	return m.MemoryMeter.Ingest(ctx, events)
}

// TestBacklogDrainsInFullBatches: after an outage of many flush intervals, the backlog goes out
// in batches of a partition's accumulated events, not one flush's worth at a time (2 events a
// request here, before the streams kept events by partition).
func TestBacklogDrainsInFullBatches(t *testing.T) {
	m := &healingMeter{MemoryMeter: meterbill.NewMemoryMeter()}
	rec := newRecorder(t, m, meterbill.WithFlushInterval(2*time.Millisecond), meterbill.WithBatchSize(500))
	const rounds, accounts = 100, 512 // two accounts a partition
	for round := range rounds {
		for a := uint64(1); a <= accounts; a++ {
			e := meterbill.Event{Account: a, Metric: calls.Code, Value: meterbill.Units(1), Time: at(2026, 4, 3, 0, 0).Add(time.Duration(round) * time.Microsecond)}
			if err := rec.Record(context.Background(), e); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Millisecond) // a flush interval: each round is flushed on its own
	}
	m.healed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := rec.Stats()
	perRequest := float64(st.Delivered) / float64(m.requests.Load())
	t.Logf("%d events in %d requests after healing: %.1f a request", st.Delivered, m.requests.Load(), perRequest)
	if st.Delivered != rounds*accounts {
		t.Fatalf("delivered %d of %d", st.Delivered, rounds*accounts)
	}
	// 256 partitions of 200 events: at best 256 requests. The first rounds may have been cut
	// before the backlog built up, so allow twice that, far from the 25,600 of one flush a
	// request.
	if m.requests.Load() > 2*256 {
		t.Errorf("%d requests for %d events (%.1f a request): the backlog went out a flush at a time", m.requests.Load(), st.Delivered, perRequest)
	}
}
