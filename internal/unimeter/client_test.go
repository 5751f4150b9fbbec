package unimeter_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/meterbill/meterbill/internal/unimeter"
	"github.com/meterbill/meterbill/internal/unimetertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var apiCalls = unimeter.Schema{Code: "api_calls", Agg: unimeter.AggCount, Period: unimeter.PeriodCalendar, CycleDay: 1}

// april2026 in Unix nanoseconds: [2026-04-01, 2026-05-01).
var aprilStart, aprilEnd = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano(), time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func setup(t *testing.T, opts unimetertest.Options, cfg unimeter.Config) (*unimetertest.Cluster, *unimeter.Client) {
	t.Helper()
	c, err := unimetertest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if cfg.Seeds == nil {
		cfg.Seeds = c.Addrs()[:1]
	}
	cl, err := unimeter.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	for _, addr := range c.Addrs() {
		if err := cl.MetricPut(context.Background(), addr, &apiCalls); err != nil {
			t.Fatal(err)
		}
	}
	return c, cl
}

func event(account uint64, minute int) unimeter.Event {
	return unimeter.Event{Metric: apiCalls.Code, Account: account, Timestamp: aprilStart + int64(minute)*60e9, Value: 1_000_000}
}

func TestDialFallsBackToTheSeed(t *testing.T) {
	tests := []struct {
		name  string
		seeds func(c *unimetertest.Cluster) []string
		opts  unimetertest.Options
	}{
		{name: "map with addresses", seeds: func(c *unimetertest.Cluster) []string { return c.Addrs() }},
		{name: "node started without an address: empty map entries go to the seed", opts: unimetertest.Options{NoAddresses: true}, seeds: func(c *unimetertest.Cluster) []string { return c.Addrs() }},
		{name: "first seed down, second answers", opts: unimetertest.Options{Nodes: 3}, seeds: func(c *unimetertest.Cluster) []string {
			c.Kill(0)
			return []string{c.Addrs()[0], c.Addrs()[1]}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := unimetertest.Start(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			seeds := tt.seeds(c)
			cl, err := unimeter.Dial(context.Background(), unimeter.Config{Seeds: seeds, Attempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			// Partition 1: led by node 1 of three, by the only node otherwise.
			want := c.Addrs()[1%len(c.Addrs())]
			if got := cl.Leader(1); got != want {
				t.Errorf("Leader(1) = %q, want %q", got, want)
			}
		})
	}
}

func TestDialFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	tests := []struct {
		name  string
		seeds []string
	}{
		{name: "no seeds"},
		{name: "not host:port", seeds: []string{"localhost"}},
		{name: "nobody listening", seeds: []string{dead}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := unimeter.Dial(context.Background(), unimeter.Config{Seeds: tt.seeds, Attempts: 1})
			if err == nil {
				cl.Close()
				t.Fatal("Dial succeeded")
			}
		})
	}
}

func TestIngestStatuses(t *testing.T) {
	c, cl := setup(t, unimetertest.Options{}, unimeter.Config{})
	ctx := context.Background()
	events := []unimeter.Event{event(1, 0), event(1, 1)}
	tests := []struct {
		name       string
		events     []unimeter.Event
		want       unimeter.IngestResult
		wantStatus unimeter.Status // of the *Error, 0 for success
	}{
		{name: "stored", events: events, want: unimeter.IngestResult{Stored: 2, LastOffset: 2}},
		{name: "all duplicates is success", events: events, want: unimeter.IngestResult{Duplicates: 2, LastOffset: 2}},
		{name: "unknown metric is a permanent error", events: []unimeter.Event{{Metric: "nope", Account: 1, Timestamp: aprilStart, Value: 1}}, wantStatus: unimeter.StatusUnknownMetric},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cl.Ingest(ctx, tt.events)
			var e *unimeter.Error
			if tt.wantStatus != 0 {
				if !errors.As(err, &e) || e.Status != tt.wantStatus || e.Retryable() {
					t.Fatalf("Ingest: %v, want a non-retryable %s", err, tt.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Ingest mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := cl.Ingest(ctx, []unimeter.Event{event(1, 0), event(2, 0)}); !errors.Is(err, unimeter.ErrInvalid) {
		t.Errorf("mixed partitions: %v, want ErrInvalid", err)
	}
	if got := c.Query(0, 1, apiCalls.Code, aprilStart, aprilEnd).Count; got != 2 {
		t.Errorf("node holds %d events, want 2", got)
	}
}

// TestDeadlineClosesTheConnection: a reply later than the timeout is abandoned with its
// connection (the server would otherwise deliver it as the answer to the next request), and the
// retry on a fresh connection succeeds.
func TestDeadlineClosesTheConnection(t *testing.T) {
	c, cl := setup(t, unimetertest.Options{}, unimeter.Config{Timeout: 100 * time.Millisecond})
	q := unimeter.PacketUsageQuery
	c.Inject(0, unimetertest.Fault{Kind: unimetertest.FaultDelay, Delay: 300 * time.Millisecond, Packet: &q})
	if _, err := cl.Ingest(context.Background(), []unimeter.Event{event(4, 0)}); err != nil {
		t.Fatal(err)
	}
	dials := cl.Stats().Dials
	v, err := cl.Query(context.Background(), &unimeter.UsageQuery{Account: 4, Start: aprilStart, End: aprilEnd, Metric: apiCalls.Code})
	if err != nil {
		t.Fatal(err)
	}
	if v.Count != 1 {
		t.Errorf("count = %d, want 1", v.Count)
	}
	if st := cl.Stats(); st.Dials != dials+1 || st.Retries != 1 {
		t.Errorf("stats %+v: want one retry on one new connection", st)
	}
}

// TestContextCancelsARequestInFlight: the server has no timeouts, so only the client can give up.
func TestContextCancelsARequestInFlight(t *testing.T) {
	c, cl := setup(t, unimetertest.Options{}, unimeter.Config{Timeout: time.Minute})
	q := unimeter.PacketUsageQuery
	c.Inject(0, unimetertest.Fault{Kind: unimetertest.FaultDelay, Delay: 5 * time.Second, Packet: &q})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := cl.Query(ctx, &unimeter.UsageQuery{Account: 4, Start: aprilStart, End: aprilEnd, Metric: apiCalls.Code})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Query: %v, want context.DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("Query returned after %s; the context ended after 100ms", waited)
	}
}

// TestPoolBoundsConnections: many concurrent requests share at most ConnsPerNode connections.
func TestPoolBoundsConnections(t *testing.T) {
	c, cl := setup(t, unimetertest.Options{}, unimeter.Config{ConnsPerNode: 2})
	before := c.Stats(0).Connections
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				if _, err := cl.Ingest(context.Background(), []unimeter.Event{event(uint64(g+1), i)}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d ingests failed", failed.Load())
	}
	if opened := c.Stats(0).Connections - before; opened > 2 {
		t.Errorf("opened %d connections, want at most 2", opened)
	}
}

// TestRedirectChain: a leader moved twice is followed hop by hop, and the connection that got the
// REDIRECT is not reused (the server did not read the body it still has to skip).
func TestRedirectChain(t *testing.T) {
	c, cl := setup(t, unimetertest.Options{Nodes: 3}, unimeter.Config{})
	c.MoveLeader(0, 1) // the client still believes node 0
	if _, err := cl.Ingest(context.Background(), []unimeter.Event{event(256, 0)}); err != nil {
		t.Fatal(err)
	}
	if got, want := cl.Leader(0), c.Addrs()[1]; got != want {
		t.Errorf("Leader(0) = %s after the redirect, want %s", got, want)
	}
	// The server goes on reading the body it skipped as headers and answers each with ERR, so a
	// reused connection would hand the next request a stale reply.
	conns := c.Stats(0).Connections
	if _, err := cl.MetricList(context.Background(), c.Addrs()[0]); err != nil {
		t.Fatalf("next request to the old leader: %v", err)
	}
	if got := c.Stats(0).Connections; got != conns+1 {
		t.Errorf("old leader saw %d new connections, want 1: the redirected one was reused", got-conns)
	}
	if got := c.Query(1, 256, apiCalls.Code, aprilStart, aprilEnd).Count; got != 1 {
		t.Errorf("new leader holds %d events, want 1", got)
	}
}

func TestClusterStatusAndMetricList(t *testing.T) {
	c, cl := setup(t, unimetertest.Options{Nodes: 3}, unimeter.Config{})
	st, err := cl.ClusterStatus(context.Background(), c.Addrs()[2])
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeID != 2 || st.Nodes != 3 || st.Partitions[2].Role != unimeter.RoleLeader || st.Partitions[0].Leader != 0 {
		t.Errorf("status %+v", st)
	}
	list, err := cl.MetricList(context.Background(), c.Addrs()[1])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]unimeter.Schema{apiCalls}, list); diff != "" {
		t.Errorf("MetricList mismatch (-want +got):\n%s", diff)
	}
}

func TestClosedClient(t *testing.T) {
	_, cl := setup(t, unimetertest.Options{}, unimeter.Config{})
	cl.Close()
	_, err := cl.Ingest(context.Background(), []unimeter.Event{event(1, 0)})
	var e *unimeter.Error
	if !errors.As(err, &e) || e.Retryable() {
		t.Errorf("Ingest on a closed client: %v, want a non-retryable error", err)
	}
	cl.Close() // idempotent
}

// TestDialTimeoutIsAnOutage: a leader whose host went dark makes dials time out, and net.Dialer's
// timeout matches context.DeadlineExceeded. While the caller's context is alive that is an
// outage, retryable, and the client must re-learn the map to find the partition's new leader.
func TestDialTimeoutIsAnOutage(t *testing.T) {
	c, err := unimetertest.Start(unimetertest.Options{Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	var dark atomic.Bool
	dead := c.Addrs()[1]
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 100 * time.Millisecond}
		if dark.Load() && addr == dead {
			// A host that drops SYNs: the dialer's own timeout ends the dial, with the error
			// net.Dialer returns then.
			tctx, cancel := context.WithTimeout(ctx, d.Timeout)
			defer cancel()
			<-tctx.Done()
			return d.DialContext(tctx, "tcp", addr)
		}
		return d.DialContext(ctx, "tcp", addr)
	}
	cl, err := unimeter.Dial(context.Background(), unimeter.Config{Seeds: c.Addrs(), Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, a := range c.Addrs() {
		if err := cl.MetricPut(context.Background(), a, &apiCalls); err != nil {
			t.Fatal(err)
		}
	}
	// Partition 1 is led by node 1; its host goes dark and the cluster fails it over to node 0.
	dark.Store(true)
	c.Kill(1)
	c.MoveLeader(1, 0)
	if _, err := cl.Ingest(context.Background(), []unimeter.Event{event(1, 0)}); err != nil {
		t.Fatalf("Ingest did not find the new leader: %v", err)
	}
	if got := c.Query(0, 1, apiCalls.Code, aprilStart, aprilEnd).Count; got != 1 {
		t.Errorf("new leader holds %d events, want 1", got)
	}
}
