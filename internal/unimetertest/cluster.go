// Package unimetertest is a fake Unimeter cluster for tests: one to eight nodes, each a real TCP
// listener on 127.0.0.1 speaking the binary protocol (research/unimeter.md §1) with the server's
// observable behaviour, including its sharp edges:
//
//   - A connection is served strictly in order, one request at a time: read the 16-byte header,
//     decide, read exactly payload_len bytes, apply, reply. Pipelined requests are answered in
//     order.
//   - Two paths reply without reading the body, exactly as the server does: REDIRECT (an ingest
//     for a partition the node does not lead; partition 0xFFFF is checked as partition 0) and
//     ERR for a bad magic, a bad version or a payload_len above 196,616. The unread body is then
//     parsed as the next header(s), each of which is answered with ERR: the connection is
//     desynchronised for good, as on the real server.
//   - Ingest deduplicates on (metric, account, timestamp, value) in node-local memory, replaces a
//     zero timestamp by the clock plus the event's index, stores but never aggregates events of
//     unregistered metrics (status UNKNOWN_METRIC), ignores events past the 1024th, and answers
//     DUPLICATE when nothing was stored and something was a duplicate.
//   - Every node has its own metric registry, aggregates and dedup memory; nothing is replicated
//     (the examined server ships no event data or registry to its replicas, §6). A metric must be
//     put on every node that ingests or answers queries for it.
//   - Queries widen [start, end) outward to the metric's whole buckets (FIXED, CALENDAR, DAY and
//     WEEK); a query for an unknown metric answers zeros.
//
// The aggregation itself is internal/memmeter's; this package adds the wire, the cluster (a
// shared partition map, leadership, REDIRECT) and the failures a client must survive: crashes
// ([Cluster.Kill], [Cluster.Restart]), dropped connections and one-shot injected faults
// ([Cluster.Inject]).
//
// Limitations, by design (the fake keeps no per-dimension aggregates and evaluates no alert
// thresholds):
//   - USAGE_QUERY with one or more dimension filters answers zeros.
//   - USAGE_QUERY_BREAKDOWN answers ERR for an unknown metric, an undeclared group-by key or a
//     malformed request, and otherwise an empty reply (no entries).
//   - alert_flags are always 0; ALERT_PUSH_ENABLE is answered OK but nothing is ever pushed;
//     EVENTS_LIST and ALERTS_LIST answer an empty list; CLUSTER_REBALANCE and the TRANSFER_*
//     packets answer ERR.
//   - Request payloads are decoded with internal/unimeter's strict request decoders, so a payload
//     the real server would accept leniently (non-zero padding, garbage after a string's NUL, a
//     billing cycle day above 28, a period type above 3, inconsistent per-event props counts) is
//     answered with ERR instead.
//   - An ingest whose header names a partition of 256 or more (other than 0xFFFF) is answered
//     with ERR after its body is read (the real server's behaviour is undefined there).
//   - Leadership changes only through [Cluster.MoveLeader]: a killed leader stays leader until the
//     test moves it (the real cluster would hold a view change after about 2 s).
//
// A Cluster is safe for concurrent use. Its methods panic when given a node index out of range,
// a programming error in the test.
package unimetertest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/meterbill/meterbill/internal/memmeter"
	"github.com/meterbill/meterbill/internal/unimeter"
)

// MaxNodes is the largest cluster Start builds (the server takes at most 8 peers besides itself;
// the fake stops at 8 nodes).
const MaxNodes = 8

// writeTimeout bounds one reply write, so that a client that stops reading cannot hold up Kill
// for ever.
const writeTimeout = 10 * time.Second

// maxConns is the server's limit on concurrent binary connections per node; more are accepted and
// immediately closed.
const maxConns = 256

// Options configures Start. The zero value is a single node on the wall clock.
type Options struct {
	// Nodes is the number of nodes, 1 to MaxNodes. Defaults to 1.
	Nodes int
	// Now is the clock, in Unix nanoseconds, for zero event timestamps, USAGE_REALTIME and
	// uptime. Defaults to time.Now().UnixNano.
	Now func() int64
	// NoAddresses models a node started without --bind: every address in the partition map (and
	// in REDIRECT replies) is the empty string, so clients must fall back to the address they
	// dialled. Defaults to false (the map names 127.0.0.1:port addresses).
	NoAddresses bool
	// NoWeek models a server that predates PeriodType WEEK: a METRIC_PUT with period type 3 is
	// stored, bucketed and listed as FIXED (0). Defaults to false (WEEK is supported).
	NoWeek bool
	// Discard acknowledges every well-formed ingest as stored without deduplicating or keeping
	// anything, like a server whose work is done on other machines. Benchmarks use it to measure
	// a client alone; everything else keeps it off. Defaults to false.
	Discard bool
}

// Cluster is a running fake cluster. Create it with Start and stop it with Close. It is safe for
// concurrent use.
type Cluster struct {
	opts  Options
	now   func() int64
	nodes []*node
	done  chan struct{} // closed by Close: interrupts injected delays

	life   sync.Mutex // serialises Kill, Restart and Close
	closed bool       // guarded by life

	mu      sync.Mutex // guards leaders and views
	leaders [unimeter.Partitions]int
	views   [unimeter.Partitions]uint32
}

// Start starts a cluster of opts.Nodes nodes, each listening on 127.0.0.1 with a port chosen by
// the system. Partition p is led by node p % n, with replicas (p+1) % n and (p+2) % n when the
// cluster has 2 or 3 or more nodes, as on a freshly started server.
func Start(opts Options) (*Cluster, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 1
	}
	if opts.Nodes < 1 || opts.Nodes > MaxNodes {
		return nil, fmt.Errorf("unimetertest: %d nodes: want 1 to %d", opts.Nodes, MaxNodes)
	}
	now := opts.Now
	if now == nil {
		now = func() int64 { return time.Now().UnixNano() }
	}
	c := &Cluster{opts: opts, now: now, done: make(chan struct{})}
	for p := range c.leaders {
		c.leaders[p] = p % opts.Nodes
	}
	lns := make([]net.Listener, opts.Nodes)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range lns[:i] {
				_ = l.Close()
			}
			return nil, fmt.Errorf("unimetertest: node %d: %w", i, err)
		}
		lns[i] = ln
	}
	for i, ln := range lns {
		n := &node{
			c:        c,
			id:       i,
			addr:     ln.Addr().String(),
			engine:   memmeter.New(now),
			registry: map[string]unimeter.Schema{},
			stats:    NodeStats{Requests: map[unimeter.PacketType]int{}},
		}
		c.nodes = append(c.nodes, n)
	}
	for i, n := range c.nodes {
		n.start(lns[i])
	}
	return c, nil
}

// Addrs returns the nodes' "host:port" addresses, indexed by node id. They stay the same across
// Kill and Restart.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr
	}
	return out
}

// Close stops every node: it closes the listeners and every connection at once (requests in
// progress are abandoned, injected delays cut short) and waits for every goroutine of the
// cluster to return. Calling it again does nothing and returns nil.
func (c *Cluster) Close() error {
	c.life.Lock()
	defer c.life.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	close(c.done)
	for _, n := range c.nodes {
		n.stop(false)
	}
	return nil
}

// Kill crashes a node: it stops listening and closes every connection. A request whose apply has
// already begun finishes and its reply is written first (apply and reply are atomic with respect
// to Kill); a request not yet applied, even if fully received, is dropped without effect. Kill
// returns once the node's goroutines have stopped. Killing a dead node does nothing. The node
// keeps its partition leadership until MoveLeader changes it.
func (c *Cluster) Kill(node int) {
	n := c.node(node)
	c.life.Lock()
	defer c.life.Unlock()
	n.stop(true)
}

// Restart brings a killed node back on the same address. Its aggregates, metric registry and
// offset counter are kept, but its dedup memory is lost (an event re-sent after the restart is
// stored and counted again, as on the real server) and its uptime restarts from zero. Restart
// fails if the node is running, the cluster is closed or the address cannot be bound again.
func (c *Cluster) Restart(node int) error {
	n := c.node(node)
	c.life.Lock()
	defer c.life.Unlock()
	if c.closed {
		return errors.New("unimetertest: restart: cluster closed")
	}
	n.mu.Lock()
	alive := n.alive
	n.mu.Unlock()
	if alive {
		return fmt.Errorf("unimetertest: restart: node %d is running", node)
	}
	var ln net.Listener
	var err error
	for try := 0; try < 50; try++ { // the port was ours a moment ago; retry briefly if it lingers
		if ln, err = net.Listen("tcp", n.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("unimetertest: restart node %d: %w", node, err)
	}
	n.engine.ForgetDuplicates()
	n.start(ln)
	return nil
}

// DropConnections closes every open connection of a node, as a network failure would; the node
// keeps listening. A request being applied may still be applied, but its reply is lost.
func (c *Cluster) DropConnections(node int) {
	n := c.node(node)
	n.mu.Lock()
	conns := make([]net.Conn, 0, len(n.conns))
	for nc := range n.conns {
		conns = append(conns, nc)
	}
	n.mu.Unlock()
	for _, nc := range conns {
		_ = nc.Close()
	}
}

// MoveLeader makes node the leader of partition on every node's partition map, as a view change
// would; the replicas become the next nodes after it. The old leader answers REDIRECT to ingests
// for that partition from now on. The partition's view number in CLUSTER_STATUS goes up by one.
// MoveLeader panics if partition is 256 or more.
func (c *Cluster) MoveLeader(partition uint16, node int) {
	c.node(node)
	if partition >= unimeter.Partitions {
		panic(fmt.Sprintf("unimetertest: partition %d out of range", partition))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leaders[partition] = node
	c.views[partition]++
}

// Leader returns the node that leads partition (partition 0xFFFF is read as 0, as the server
// does).
func (c *Cluster) Leader(partition uint16) int {
	if partition == unimeter.PartitionAll {
		partition = 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaders[partition]
}

// Query reads a node's local aggregate for an account and metric over [start, end), widened to
// whole buckets exactly as USAGE_QUERY would, without going through the network. It works on a
// killed node too.
func (c *Cluster) Query(node int, account uint64, metric string, start, end int64) unimeter.AggValue {
	v := c.node(node).engine.Query(account, metric, start, end)
	return unimeter.AggValue{
		SumLo:         v.SumLo,
		SumHi:         v.SumHi,
		Count:         v.Count,
		Max:           v.Max,
		LastValue:     v.LastValue,
		LastTimestamp: v.LastTimestamp,
	}
}

// NodeStats counts what a node has seen since Start; the counts survive Kill and Restart.
type NodeStats struct {
	// Requests counts well-formed request headers by packet type, including requests answered
	// with REDIRECT, dropped by a fault or never applied because of Kill.
	Requests map[unimeter.PacketType]int
	// BadHeaders counts headers refused with ERR before their body (bad magic, bad version,
	// payload_len too large), including the garbage "headers" of a desynchronised connection.
	BadHeaders int
	// Errors counts ERR replies, including those for bad headers.
	Errors int
	// Stored counts ingested events stored (including those of unknown metrics).
	Stored int
	// Duplicates counts ingested events dropped as duplicates.
	Duplicates int
	// Redirects counts REDIRECT replies.
	Redirects int
	// Connections counts accepted connections.
	Connections int
	// Faults counts injected faults that fired.
	Faults int
}

// Stats returns a snapshot of a node's counters.
func (c *Cluster) Stats(node int) NodeStats {
	n := c.node(node)
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.stats
	s.Requests = make(map[unimeter.PacketType]int, len(n.stats.Requests))
	for k, v := range n.stats.Requests {
		s.Requests[k] = v
	}
	return s
}

// node returns node i or panics.
func (c *Cluster) node(i int) *node {
	if i < 0 || i >= len(c.nodes) {
		panic(fmt.Sprintf("unimetertest: node %d out of range (cluster of %d)", i, len(c.nodes)))
	}
	return c.nodes[i]
}

// address is what the partition map says for node i: its address, or "" with NoAddresses.
func (c *Cluster) address(i int) string {
	if i < 0 || c.opts.NoAddresses {
		return ""
	}
	return c.nodes[i].addr
}

// partitionMap builds the GET_PARTITION_MAP reply contents.
func (c *Cluster) partitionMap() *unimeter.PartitionMap {
	var m unimeter.PartitionMap
	n := len(c.nodes)
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range m {
		l := c.leaders[p]
		m[p].Leader = c.address(l)
		if n >= 2 {
			m[p].Replica0 = c.address((l + 1) % n)
		}
		if n >= 3 {
			m[p].Replica1 = c.address((l + 2) % n)
		}
	}
	return &m
}

// clusterStatus builds node id's CLUSTER_STATUS reply contents.
func (c *Cluster) clusterStatus(id int, uptime int64) *unimeter.ClusterStatus {
	st := &unimeter.ClusterStatus{
		NodeID: uint8(id),
		Nodes:  uint8(len(c.nodes)),
		Uptime: uptime,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range st.Partitions {
		role := unimeter.RoleReplica
		if c.leaders[p] == id {
			role = unimeter.RoleLeader
		}
		st.Partitions[p] = unimeter.PartitionStatus{
			View:   c.views[p],
			Role:   role,
			Leader: uint8(c.leaders[p]),
		}
	}
	return st
}
