package unimeter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meterbill/meterbill/internal/backoff"
)

// Config configures a [Client]. The zero value of each field means its default.
type Config struct {
	// Seeds are "host:port" addresses of cluster nodes; the first that answers supplies the
	// partition map, and serves every partition whose map entry is empty. Required.
	Seeds []string
	// Timeout bounds one request on the wire; the server has no timeouts of its own, so a
	// request that outlives it is abandoned and its connection closed. Defaults to 5 s.
	Timeout time.Duration
	// ConnsPerNode bounds the open connections to one node. Defaults to 4.
	ConnsPerNode int
	// Attempts bounds how often one call is sent (a lost connection, a timeout, BACKPRESSURE,
	// NOT_LEADER, ERR on ingest); REDIRECTs are followed on top, up to 4 in a row. Defaults
	// to 3.
	Attempts int
	// Backoff spaces the attempts. Defaults to 20 ms doubling up to 1 s, with full jitter.
	Backoff backoff.Policy
	// Sync sends INGEST_SYNC (the reply comes after the node's WAL fsync) instead of
	// INGEST_ASYNC. Defaults to false.
	Sync bool
	// Dial opens connections. Defaults to a net.Dialer with a 5 s timeout.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Logger receives warnings (map refreshes, discarded connections). Defaults to discarding.
	Logger *slog.Logger
}

// Client talks to a Unimeter cluster: it routes each request to the node that leads the
// account's partition, keeps a few connections per node, puts a deadline on every request, and
// follows REDIRECTs. It is safe for concurrent use.
type Client struct {
	cfg  Config
	seed string // the seed that answered first: the fallback for empty map entries

	mu      sync.RWMutex
	leaders [Partitions]string
	nodes   []string // every address the partition maps named, leaders and replicas, in order seen
	pools   map[string]*pool
	closed  bool

	nextID atomic.Uint32
	stats  counters
}

type counters struct {
	requests, dials, redirects, refreshes, retries atomic.Uint64
}

// Stats counts what a client did.
type Stats struct {
	Requests, Dials, Redirects, Refreshes, Retries uint64
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Requests: c.stats.requests.Load(), Dials: c.stats.dials.Load(), Redirects: c.stats.redirects.Load(),
		Refreshes: c.stats.refreshes.Load(), Retries: c.stats.retries.Load(),
	}
}

// Error is a request the cluster did not carry out: no reply (Status 0 and Err set) or a
// status other than OK and DUPLICATE.
type Error struct {
	Op     string     // "ingest", "usage query", "metric put", ...
	Packet PacketType // the request's packet type
	Addr   string     // the node last asked
	Status Status     // the reply's status; 0 when no reply arrived
	Err    error      // the cause when no reply arrived

	// callerDone records that the caller's context had ended: only then is a timeout the
	// caller's. A dial or request timeout of the client's own also matches
	// context.DeadlineExceeded, and is an outage worth retrying.
	callerDone bool
}

// Error describes the failure.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("unimeter: %s at %s: %v", e.Op, e.Addr, e.Err)
	}
	return fmt.Sprintf("unimeter: %s at %s: server answered %s", e.Op, e.Addr, e.Status)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same request may succeed later: everything but UNKNOWN_METRIC,
// an ERR to a request other than ingest (the server refused it as malformed), a closed client,
// and the caller's own context ending. A timeout of the client's own (dialling, or a request
// past Config.Timeout) is retryable.
func (e *Error) Retryable() bool {
	switch {
	case e.Err != nil:
		return !e.callerDone && !errors.Is(e.Err, errClosed)
	case e.Status == StatusUnknownMetric:
		return false
	case e.Status == StatusErr:
		return e.Packet == PacketIngestAsync || e.Packet == PacketIngestSync
	}
	return true
}

// Dial connects to the cluster: it asks the seeds in turn for the partition map and returns
// once one answers.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if len(cfg.Seeds) == 0 {
		return nil, errors.New("unimeter: no seed addresses")
	}
	for _, s := range cfg.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("unimeter: seed %q: %w", s, err)
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.ConnsPerNode <= 0 {
		cfg.ConnsPerNode = 4
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.Policy{Base: 20 * time.Millisecond, Max: time.Second}
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, pools: map[string]*pool{}}
	var errs []error
	for _, s := range cfg.Seeds {
		if err := c.refreshFrom(ctx, s); err != nil {
			errs = append(errs, err)
			continue
		}
		c.seed = s
		return c, nil
	}
	c.Close()
	return nil, fmt.Errorf("unimeter: no seed answered with a partition map: %w", errors.Join(errs...))
}

// Close closes every connection. Requests in flight fail. It is idempotent.
func (c *Client) Close() {
	c.mu.Lock()
	pools := c.pools
	c.pools, c.closed = map[string]*pool{}, true
	c.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
}

// Nodes returns every node address the client knows: the seeds, every leader and replica the
// partition maps named, and leaders learnt from redirects; without duplicates, seeds first.
func (c *Client) Nodes() []string {
	seen := map[string]bool{}
	var out []string
	add := func(a string) {
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, s := range c.cfg.Seeds {
		add(s)
	}
	c.mu.RLock()
	for _, a := range c.nodes {
		add(a)
	}
	for _, l := range c.leaders { // a leader learnt from a REDIRECT
		add(l)
	}
	c.mu.RUnlock()
	return out
}

// Leader returns the address the client sends a partition's requests to.
func (c *Client) Leader(partition uint16) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if a := c.leaders[partition%Partitions]; a != "" {
		return a
	}
	return c.seed
}

func (c *Client) setLeader(partition uint16, addr string) {
	c.mu.Lock()
	c.leaders[partition%Partitions] = addr
	c.mu.Unlock()
}

// RefreshMap fetches the partition map again, from the first node that answers.
func (c *Client) RefreshMap(ctx context.Context) error {
	var errs []error
	for _, a := range c.Nodes() {
		err := c.refreshFrom(ctx, a)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Client) refreshFrom(ctx context.Context, addr string) error {
	var m *PartitionMap
	err := c.call(ctx, addr, "partition map", PacketGetPartitionMap, nil, func(p []byte) (err error) {
		m, err = DecodePartitionMap(p)
		return err
	})
	if err != nil {
		return err
	}
	c.stats.refreshes.Add(1)
	c.mu.Lock()
	for i := range m {
		c.leaders[i] = m[i].Leader
		for _, a := range []string{m[i].Leader, m[i].Replica0, m[i].Replica1} {
			if a != "" && !slices.Contains(c.nodes, a) {
				c.nodes = append(c.nodes, a)
			}
		}
	}
	c.mu.Unlock()
	return nil
}

// Ingest sends events, which must all belong to one partition, to that partition's leader:
// at most MaxEvents events and MaxProps props. It follows REDIRECT (closing the connection the
// server stopped reading) and retries what may succeed later with the same bytes, so a retried
// event keeps its timestamp and the server's dedup recognises it. DUPLICATE is success.
func (c *Client) Ingest(ctx context.Context, events []Event) (IngestResult, error) {
	if len(events) == 0 {
		return IngestResult{}, nil
	}
	part := Partition(events[0].Account)
	for i := range events {
		if Partition(events[i].Account) != part {
			return IngestResult{}, fmt.Errorf("unimeter: ingest: event %d is in partition %d, event 0 in %d: %w", i, Partition(events[i].Account), part, ErrInvalid)
		}
	}
	if _, err := IngestSize(events); err != nil {
		return IngestResult{}, err
	}
	typ := PacketIngestAsync
	if c.cfg.Sync {
		typ = PacketIngestSync
	}
	var res IngestResult
	err := c.routed(ctx, "ingest", typ, part, func(dst []byte) ([]byte, error) { return AppendIngest(dst, events) },
		func(p []byte) (err error) { res, err = DecodeIngestResult(p); return err })
	return res, err
}

// Query asks the leader of the account's partition for its aggregate over [Start, End).
func (c *Client) Query(ctx context.Context, q *UsageQuery) (AggValue, error) {
	var v AggValue
	err := c.routed(ctx, "usage query", PacketUsageQuery, Partition(q.Account),
		func(dst []byte) ([]byte, error) { return AppendUsageQuery(dst, q) },
		func(p []byte) (err error) { v, err = DecodeAggValue(p); return err })
	return v, err
}

// Breakdown asks the leader of the account's partition for per-dimension aggregates.
func (c *Client) Breakdown(ctx context.Context, q *BreakdownQuery) ([]BreakdownEntry, error) {
	var out []BreakdownEntry
	err := c.routed(ctx, "usage breakdown", PacketUsageQueryBreakdown, Partition(q.Account),
		func(dst []byte) ([]byte, error) { return AppendBreakdownQuery(dst, q) },
		func(p []byte) (err error) { out, err = DecodeBreakdown(p); return err })
	return out, err
}

// MetricPut registers (upserts) a schema on the node at addr.
func (c *Client) MetricPut(ctx context.Context, addr string, s *Schema) error {
	body, err := AppendMetricPut(nil, s)
	if err != nil {
		return err
	}
	return c.call(ctx, addr, "metric put", PacketMetricPut, body, func([]byte) error { return nil })
}

// MetricDelete removes a schema from the node at addr. Events for it are then stored and never
// aggregated; meterbill itself never deletes, tests use it to pull a metric from under a client.
func (c *Client) MetricDelete(ctx context.Context, addr, code string) error {
	body, err := AppendMetricDelete(nil, code)
	if err != nil {
		return err
	}
	return c.call(ctx, addr, "metric delete", PacketMetricDelete, body, func([]byte) error { return nil })
}

// MetricList lists the schemas the node at addr holds.
func (c *Client) MetricList(ctx context.Context, addr string) ([]Schema, error) {
	var out []Schema
	err := c.call(ctx, addr, "metric list", PacketMetricList, nil, func(p []byte) (err error) {
		out, err = DecodeMetricList(p)
		return err
	})
	return out, err
}

// ClusterStatus asks the node at addr for its status.
func (c *Client) ClusterStatus(ctx context.Context, addr string) (*ClusterStatus, error) {
	var s *ClusterStatus
	err := c.call(ctx, addr, "cluster status", PacketClusterStatus, nil, func(p []byte) (err error) {
		s, err = DecodeClusterStatus(p)
		return err
	})
	return s, err
}

// maxRedirects bounds the REDIRECTs followed in a row; a longer chain means the nodes disagree.
const maxRedirects = 4

// routed sends a partition's request to its leader, following REDIRECT and NOT_LEADER and
// retrying what may succeed later. encode appends the payload; decode reads an OK or DUPLICATE
// reply's payload.
func (c *Client) routed(ctx context.Context, op string, typ PacketType, part uint16, encode func([]byte) ([]byte, error), decode func([]byte) error) error {
	header := PartitionAll
	if typ == PacketIngestAsync || typ == PacketIngestSync {
		header = part
	}
	redirects := 0
	for attempt := 1; ; {
		addr := c.Leader(part)
		h, err := c.exchange(ctx, addr, op, typ, header, encode, decode)
		if err == nil {
			return nil
		}
		var e *Error
		if !errors.As(err, &e) {
			return err // a local error: encoding, or a reply that does not decode
		}
		switch {
		case e.Status == StatusRedirect && redirects < maxRedirects:
			redirects++
			c.stats.redirects.Add(1)
			if to := h.redirect; to != "" && to != addr {
				c.setLeader(part, to)
				continue
			}
			c.cfg.Logger.Warn("unimeter: redirect without a usable address; refreshing the partition map", "op", op, "node", addr, "partition", part)
			_ = c.RefreshMap(ctx)
		case e.Status == StatusNotLeader:
			_ = c.RefreshMap(ctx)
		case e.Err != nil && e.Retryable():
			// The node may be down or may have lost leadership: learn the map again from
			// whichever node answers, but keep trying the same leader if none does.
			if attempt >= 2 {
				_ = c.RefreshMap(ctx)
			}
		}
		if !e.Retryable() || attempt >= c.cfg.Attempts {
			return err
		}
		attempt++
		c.stats.retries.Add(1)
		if werr := backoff.Sleep(ctx, c.cfg.Backoff.Wait(attempt-1)); werr != nil {
			return err
		}
	}
}

// call sends a request to one node, retrying on a fresh connection when no reply arrived.
func (c *Client) call(ctx context.Context, addr, op string, typ PacketType, payload []byte, decode func([]byte) error) error {
	encode := func(dst []byte) ([]byte, error) { return append(dst, payload...), nil }
	for attempt := 1; ; attempt++ {
		_, err := c.exchange(ctx, addr, op, typ, PartitionAll, encode, decode)
		var e *Error
		if err == nil || !errors.As(err, &e) || e.Err == nil || !e.Retryable() || attempt >= c.cfg.Attempts {
			return err
		}
		c.stats.retries.Add(1)
		if werr := backoff.Sleep(ctx, c.cfg.Backoff.Wait(attempt)); werr != nil {
			return err
		}
	}
}

type replyInfo struct{ redirect string }

// exchange performs one request on one connection. OK and DUPLICATE replies are decoded;
// other statuses become an *Error. The connection is discarded after any failure, after a
// REDIRECT and after an ERR (the server may not have read the body, and the stream is then out
// of step), and after NOT_LEADER (to be safe).
func (c *Client) exchange(ctx context.Context, addr, op string, typ PacketType, partition uint16, encode func([]byte) ([]byte, error), decode func([]byte) error) (replyInfo, error) {
	var info replyInfo
	fail := func(status Status, err error) *Error {
		return &Error{Op: op, Packet: typ, Addr: addr, Status: status, Err: err, callerDone: ctxDone(ctx) != nil}
	}
	// An ended context takes no connection and sends nothing: a request written before its
	// cancellation lands would be applied by the node, and reported to the caller as failed.
	if err := ctxDone(ctx); err != nil {
		return info, fail(0, err)
	}
	p, err := c.pool(addr)
	if err != nil {
		return info, fail(0, err)
	}
	cn, err := p.get(ctx)
	if err != nil {
		return info, fail(0, err)
	}
	cn.buf = append(cn.buf[:0], make([]byte, RequestHeaderSize)...)
	if cn.buf, err = encode(cn.buf); err != nil {
		p.put(cn)
		return info, err
	}
	id := c.nextID.Add(1)
	if id == 0 {
		id = c.nextID.Add(1)
	}
	hdr := RequestHeader{Type: typ, Partition: partition, PayloadLen: uint32(len(cn.buf) - RequestHeaderSize), RequestID: id}
	if err := PutRequestHeader(cn.buf, hdr); err != nil {
		p.put(cn)
		return info, err
	}
	c.stats.requests.Add(1)
	h, payload, err := cn.roundTrip(ctx, id, c.cfg.Timeout)
	if err != nil {
		p.discard(cn)
		return info, fail(0, err)
	}
	// release returns the connection for reuse when the stream is still in step, and when no
	// cancellation raced the reply (its deadline could still land on the next request).
	release := func(reuse bool) {
		if reuse && !cn.poisoned {
			p.put(cn)
			return
		}
		p.discard(cn)
	}
	switch h.Status {
	case StatusOK, StatusDuplicate:
		err = decode(payload)
		release(err == nil)
		if err != nil {
			return info, fmt.Errorf("unimeter: %s at %s: %w", op, addr, err)
		}
		return info, nil
	case StatusRedirect:
		if a, derr := DecodeRedirect(payload); derr == nil {
			info.redirect = a
		}
		release(false)
	case StatusBackpressure, StatusUnknownMetric:
		release(true)
	default: // ERR, NOT_LEADER and statuses this client does not know
		release(false)
	}
	return info, fail(h.Status, nil)
}

func (c *Client) pool(addr string) (*pool, error) {
	c.mu.RLock()
	p, ok := c.pools[addr]
	closed := c.closed
	c.mu.RUnlock()
	if ok {
		return p, nil
	}
	if closed {
		return nil, errClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	if p, ok = c.pools[addr]; !ok {
		p = newPool(addr, c.cfg.ConnsPerNode, c.cfg.Dial, &c.stats)
		c.pools[addr] = p
	}
	return p, nil
}
