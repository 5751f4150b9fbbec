package unimetertest_test

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill/internal/unimeter"
	"github.com/meterbill/meterbill/internal/unimetertest"
)

// clock is a settable clock for Options.Now.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(now)
	return c
}

func (c *clock) Now() int64          { return c.ns.Load() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func countSchema(code string) unimeter.Schema {
	return unimeter.Schema{Code: code, Agg: unimeter.AggCount, Period: unimeter.PeriodCalendar, CycleDay: 1}
}

func TestStartOptions(t *testing.T) {
	tests := []struct {
		name    string
		nodes   int
		wantErr bool
	}{
		{name: "default is one node", nodes: 0},
		{name: "three nodes", nodes: 3},
		{name: "eight nodes", nodes: 8},
		{name: "nine nodes", nodes: 9, wantErr: true},
		{name: "negative", nodes: -1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := unimetertest.Start(unimetertest.Options{Nodes: tt.nodes})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Start: err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer func() { _ = c.Close() }()
			want := max(tt.nodes, 1)
			if got := len(c.Addrs()); got != want {
				t.Errorf("%d addresses, want %d", got, want)
			}
		})
	}
}

func TestPartitionMap(t *testing.T) {
	tests := []struct {
		name        string
		opts        unimetertest.Options
		partitions  []int
		want        func(addrs []string) []unimeter.PartitionEntry // entries of partitions
		askNodeLast bool
	}{
		{
			name:       "single node",
			opts:       unimetertest.Options{Nodes: 1},
			partitions: []int{0, 1, 255},
			want: func(a []string) []unimeter.PartitionEntry {
				e := unimeter.PartitionEntry{Leader: a[0]}
				return []unimeter.PartitionEntry{e, e, e}
			},
		},
		{
			name:       "three nodes",
			opts:       unimetertest.Options{Nodes: 3},
			partitions: []int{0, 1, 2, 255},
			want: func(a []string) []unimeter.PartitionEntry {
				return []unimeter.PartitionEntry{
					{Leader: a[0], Replica0: a[1], Replica1: a[2]},
					{Leader: a[1], Replica0: a[2], Replica1: a[0]},
					{Leader: a[2], Replica0: a[0], Replica1: a[1]},
					{Leader: a[0], Replica0: a[1], Replica1: a[2]}, // 255 % 3 == 0
				}
			},
		},
		{
			name:       "two nodes",
			opts:       unimetertest.Options{Nodes: 2},
			partitions: []int{0, 1},
			want: func(a []string) []unimeter.PartitionEntry {
				return []unimeter.PartitionEntry{{Leader: a[0], Replica0: a[1]}, {Leader: a[1], Replica0: a[0]}}
			},
		},
		{
			name:       "no addresses",
			opts:       unimetertest.Options{Nodes: 3, NoAddresses: true},
			partitions: []int{0, 1},
			want: func([]string) []unimeter.PartitionEntry {
				return []unimeter.PartitionEntry{{}, {}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := start(t, tt.opts)
			for node, addr := range c.Addrs() { // every node answers the same map
				m := dial(t, addr).partitionMap()
				var got []unimeter.PartitionEntry
				for _, p := range tt.partitions {
					got = append(got, m[p])
				}
				if diff := cmp.Diff(tt.want(c.Addrs()), got); diff != "" {
					t.Errorf("node %d (-want +got):\n%s", node, diff)
				}
			}
		})
	}
}

func TestRedirect(t *testing.T) {
	tests := []struct {
		name       string
		opts       unimetertest.Options
		node       int
		partition  uint16
		wantStatus unimeter.Status
		wantLeader int // for REDIRECT; -1 means an empty address
	}{
		{name: "partition led by another node", opts: unimetertest.Options{Nodes: 3}, node: 0, partition: 1, wantStatus: unimeter.StatusRedirect, wantLeader: 1},
		{name: "0xFFFF is checked as partition 0", opts: unimetertest.Options{Nodes: 3}, node: 2, partition: unimeter.PartitionAll, wantStatus: unimeter.StatusRedirect, wantLeader: 0},
		{name: "partition 255", opts: unimetertest.Options{Nodes: 3}, node: 1, partition: 255, wantStatus: unimeter.StatusRedirect, wantLeader: 0},
		{name: "leader accepts", opts: unimetertest.Options{Nodes: 3}, node: 2, partition: 2, wantStatus: unimeter.StatusUnknownMetric},
		{name: "single node accepts 0xFFFF", opts: unimetertest.Options{Nodes: 1}, node: 0, partition: unimeter.PartitionAll, wantStatus: unimeter.StatusUnknownMetric},
		{name: "no addresses: empty redirect", opts: unimetertest.Options{Nodes: 3, NoAddresses: true}, node: 0, partition: 1, wantStatus: unimeter.StatusRedirect, wantLeader: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := start(t, tt.opts)
			cl := dial(t, c.Addrs()[tt.node])
			body := ingestPayload(t, ev("api_calls", uint64(tt.partition%256), april10, 1))
			r := cl.call(unimeter.PacketIngestSync, tt.partition, body)
			if r.Status != tt.wantStatus {
				t.Fatalf("status = %v, want %v", r.Status, tt.wantStatus)
			}
			if r.Status != unimeter.StatusRedirect {
				return
			}
			addr, err := unimeter.DecodeRedirect(r.Payload)
			if err != nil {
				t.Fatal(err)
			}
			want := ""
			if tt.wantLeader >= 0 {
				want = c.Addrs()[tt.wantLeader]
			}
			if addr != want {
				t.Errorf("redirect to %q, want %q", addr, want)
			}
			if c.Query(tt.node, uint64(tt.partition%256), "api_calls", april, may) != (unimeter.AggValue{}) {
				t.Errorf("redirected ingest was applied")
			}

			// The body was not read: the server now parses it as headers, 16 bytes at a time,
			// each refused with ERR (the first carries bytes 12..15 of the body as request id).
			for i := 0; i+unimeter.RequestHeaderSize <= len(body); i += unimeter.RequestHeaderSize {
				r := cl.recv()
				wantID := binary.LittleEndian.Uint32(body[i+12:])
				if r.Status != unimeter.StatusErr || r.ID != wantID {
					t.Fatalf("body bytes %d..%d: reply %v id %d, want ERR id %d", i, i+15, r.Status, r.ID, wantID)
				}
			}
			// It never realigns: a valid request now completes the 8 left-over bytes.
			cl.send(unimeter.PacketMetricList, unimeter.PartitionAll, nil)
			if r := cl.recv(); r.Status != unimeter.StatusErr {
				t.Errorf("request after the desync: %v, want ERR", r.Status)
			}
			if got, want := c.Stats(tt.node).Redirects, 1; got != want {
				t.Errorf("Stats.Redirects = %d, want %d", got, want)
			}
		})
	}
}

func TestBadHeader(t *testing.T) {
	// Each bad header declares a 16-byte body, and the "body" sent is a valid METRIC_LIST
	// header with id 99: the server must answer it, proving it did not read the body.
	tests := []struct {
		name    string
		corrupt func(h []byte)
	}{
		{name: "bad magic", corrupt: func(h []byte) { h[0] = 0xAA }},
		{name: "bad version", corrupt: func(h []byte) { h[4] = 2 }},
		{name: "payload too large", corrupt: func(h []byte) { binary.LittleEndian.PutUint32(h[8:], unimeter.MaxPayload+1) }},
		{name: "payload too large behind a bad partition", corrupt: func(h []byte) {
			binary.LittleEndian.PutUint16(h[6:], 0xFFEA)
			binary.LittleEndian.PutUint32(h[8:], 0xFFFFFFFF)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := start(t, unimetertest.Options{})
			cl := dial(t, c.Addrs()[0])
			h := frame(t, unimeter.PacketMetricList, unimeter.PartitionAll, 77, nil)
			binary.LittleEndian.PutUint32(h[8:], 16)
			tt.corrupt(h)
			cl.write(append(h, frame(t, unimeter.PacketMetricList, unimeter.PartitionAll, 99, nil)...))
			type got struct {
				Status unimeter.Status
				ID     uint32
			}
			want := []got{{unimeter.StatusErr, 77}, {unimeter.StatusOK, 99}}
			var gots []got
			for range want {
				r := cl.recv()
				gots = append(gots, got{r.Status, r.ID})
			}
			if diff := cmp.Diff(want, gots); diff != "" {
				t.Errorf("replies (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnknownPacket(t *testing.T) {
	tests := []struct {
		name string
		typ  unimeter.PacketType
	}{
		{name: "transfer start", typ: unimeter.PacketTransferStart},
		{name: "cluster rebalance", typ: unimeter.PacketClusterRebalance},
		{name: "alert push is server to client only", typ: unimeter.PacketAlertPush},
		{name: "undefined", typ: 0x7F},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := start(t, unimetertest.Options{})
			cl := dial(t, c.Addrs()[0])
			if r := cl.call(tt.typ, unimeter.PartitionAll, make([]byte, 10)); r.Status != unimeter.StatusErr {
				t.Errorf("status = %v, want ERR", r.Status)
			}
			// The body was read: the connection is still in step.
			if r := cl.call(unimeter.PacketMetricList, unimeter.PartitionAll, nil); r.Status != unimeter.StatusOK {
				t.Errorf("next request: status = %v, want OK", r.Status)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	const acct = 11
	ingest, list := unimeter.PacketIngestSync, unimeter.PacketMetricList
	type step struct {
		typ        unimeter.PacketType
		wantStatus unimeter.Status
		wantClosed bool // the server closes the connection instead of answering
	}
	tests := []struct {
		name        string
		faults      []unimetertest.Fault
		steps       []step
		wantApplied uint64 // ingested events aggregated
		minDuration time.Duration
	}{
		{
			name:        "backpressure applies nothing and keeps the connection",
			faults:      []unimetertest.Fault{{Kind: unimetertest.FaultBackpressure}},
			steps:       []step{{typ: ingest, wantStatus: unimeter.StatusBackpressure}, {typ: ingest, wantStatus: unimeter.StatusOK}},
			wantApplied: 1,
		},
		{
			name:        "not leader",
			faults:      []unimetertest.Fault{{Kind: unimetertest.FaultNotLeader}},
			steps:       []step{{typ: ingest, wantStatus: unimeter.StatusNotLeader}, {typ: ingest, wantStatus: unimeter.StatusOK}},
			wantApplied: 1,
		},
		{
			name:        "drop before apply",
			faults:      []unimetertest.Fault{{Kind: unimetertest.FaultDropBeforeApply}},
			steps:       []step{{typ: ingest, wantClosed: true}, {typ: ingest, wantStatus: unimeter.StatusOK}},
			wantApplied: 1,
		},
		{
			name:        "drop after apply",
			faults:      []unimetertest.Fault{{Kind: unimetertest.FaultDropAfterApply}},
			steps:       []step{{typ: ingest, wantClosed: true}, {typ: ingest, wantStatus: unimeter.StatusOK}},
			wantApplied: 2,
		},
		{
			name:        "delay",
			faults:      []unimetertest.Fault{{Kind: unimetertest.FaultDelay, Delay: 150 * time.Millisecond}},
			steps:       []step{{typ: ingest, wantStatus: unimeter.StatusOK}},
			wantApplied: 1,
			minDuration: 150 * time.Millisecond,
		},
		{
			name:        "count",
			faults:      []unimetertest.Fault{{Kind: unimetertest.FaultBackpressure, Count: 2}},
			steps:       []step{{typ: ingest, wantStatus: unimeter.StatusBackpressure}, {typ: ingest, wantStatus: unimeter.StatusBackpressure}, {typ: ingest, wantStatus: unimeter.StatusOK}},
			wantApplied: 1,
		},
		{
			name:        "backpressure passes over other packets",
			faults:      []unimetertest.Fault{{Kind: unimetertest.FaultBackpressure}},
			steps:       []step{{typ: list, wantStatus: unimeter.StatusOK}, {typ: ingest, wantStatus: unimeter.StatusBackpressure}},
			wantApplied: 0,
		},
		{
			name:        "packet filter",
			faults:      []unimetertest.Fault{{Kind: unimetertest.FaultDropBeforeApply, Packet: ptype(list)}},
			steps:       []step{{typ: ingest, wantStatus: unimeter.StatusOK}, {typ: list, wantClosed: true}, {typ: ingest, wantStatus: unimeter.StatusOK}},
			wantApplied: 2,
		},
		{
			name:        "faults fire in order",
			faults:      []unimetertest.Fault{{Kind: unimetertest.FaultNotLeader}, {Kind: unimetertest.FaultBackpressure}},
			steps:       []step{{typ: ingest, wantStatus: unimeter.StatusNotLeader}, {typ: ingest, wantStatus: unimeter.StatusBackpressure}, {typ: ingest, wantStatus: unimeter.StatusOK}},
			wantApplied: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := start(t, unimetertest.Options{})
			cl := dial(t, c.Addrs()[0])
			cl.putMetric(countSchema("api_calls"))
			for _, f := range tt.faults {
				c.Inject(0, f)
			}
			began := time.Now()
			for i, s := range tt.steps {
				var payload []byte
				if s.typ == ingest {
					payload = ingestPayload(t, ev("api_calls", acct, april10+int64(i), 1))
				}
				id := cl.send(s.typ, unimeter.PartitionAll, payload)
				if s.wantClosed {
					cl.expectClosed()
					cl = dial(t, c.Addrs()[0])
					continue
				}
				r := cl.recv()
				if r.ID != id || r.Status != s.wantStatus {
					t.Errorf("step %d: reply %v id %d, want %v id %d", i, r.Status, r.ID, s.wantStatus, id)
				}
			}
			if d := time.Since(began); d < tt.minDuration {
				t.Errorf("took %v, want at least %v", d, tt.minDuration)
			}
			if diff := cmp.Diff(unimeter.AggValue{Count: tt.wantApplied}, c.Query(0, acct, "api_calls", april, may)); diff != "" {
				t.Errorf("applied (-want +got):\n%s", diff)
			}
			if got, want := c.Stats(0).Faults, countFaults(tt.faults); got != want {
				t.Errorf("Stats.Faults = %d, want %d", got, want)
			}
		})
	}
}

// countFaults returns how many requests faults hit when all of them fire.
func countFaults(faults []unimetertest.Fault) int {
	n := 0
	for _, f := range faults {
		n += max(f.Count, 1)
	}
	return n
}

func TestKillRestart(t *testing.T) {
	clk := newClock()
	c := start(t, unimetertest.Options{Now: clk.Now})
	addr := c.Addrs()[0]
	e := ev("api_calls", 3, april10, 1)

	cl := dial(t, addr)
	cl.putMetric(countSchema("api_calls"))
	if status, res := cl.ingest(unimeter.PartitionAll, e); status != unimeter.StatusOK || res.LastOffset != 1 {
		t.Fatalf("first ingest: %v %+v", status, res)
	}

	c.Kill(0)
	c.Kill(0) // killing a dead node does nothing
	cl.expectClosed()
	if nc, err := net.Dial("tcp", addr); err == nil {
		_ = nc.Close()
		t.Fatalf("dial of a killed node succeeded")
	}
	if got := c.Query(0, 3, "api_calls", april, may); got.Count != 1 {
		t.Errorf("Query on the killed node: count %d, want 1", got.Count)
	}

	clk.Add(5 * time.Second)
	if err := c.Restart(0); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := c.Restart(0); err == nil {
		t.Errorf("Restart of a running node succeeded")
	}
	if got := c.Addrs()[0]; got != addr {
		t.Errorf("address after restart = %s, want %s", got, addr)
	}

	cl = dial(t, addr)
	clk.Add(2 * time.Second)
	if got, want := cl.clusterStatus().Uptime, int64(2*time.Second); got != want {
		t.Errorf("uptime = %d, want %d (reset by the restart)", got, want)
	}
	if diff := cmp.Diff([]unimeter.Schema{countSchema("api_calls")}, cl.metricList()); diff != "" {
		t.Errorf("registry after restart (-want +got):\n%s", diff)
	}
	// The dedup memory is gone: the re-sent event is stored and counted a second time, exactly
	// as the real server does after a restart.
	status, res := cl.ingest(unimeter.PartitionAll, e)
	if diff := cmp.Diff(unimeter.IngestResult{Stored: 1, LastOffset: 2}, res); status != unimeter.StatusOK || diff != "" {
		t.Errorf("re-sent ingest: status %v, result (-want +got):\n%s", status, diff)
	}
	if diff := cmp.Diff(unimeter.AggValue{Count: 2}, cl.query(3, "api_calls", april, may)); diff != "" {
		t.Errorf("aggregate after restart (-want +got):\n%s", diff)
	}
	if status, _ := cl.ingest(unimeter.PartitionAll, e); status != unimeter.StatusDuplicate {
		t.Errorf("third send: status %v, want DUPLICATE", status)
	}

	want := unimetertest.NodeStats{
		Requests: map[unimeter.PacketType]int{
			unimeter.PacketMetricPut:     1,
			unimeter.PacketIngestSync:    3,
			unimeter.PacketClusterStatus: 1,
			unimeter.PacketMetricList:    1,
			unimeter.PacketUsageQuery:    1,
		},
		Stored:      2,
		Duplicates:  1,
		Connections: 2,
	}
	if diff := cmp.Diff(want, c.Stats(0)); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestKillFinishesTheReplyInProgress(t *testing.T) {
	c := start(t, unimetertest.Options{})
	cl := dial(t, c.Addrs()[0])
	cl.putMetric(countSchema("api_calls"))
	c.Inject(0, unimetertest.Fault{Kind: unimetertest.FaultDelay, Delay: 200 * time.Millisecond})
	id := cl.send(unimeter.PacketIngestSync, unimeter.PartitionAll, ingestPayload(t, ev("api_calls", 1, april10, 1)))
	for c.Query(0, 1, "api_calls", april, may).Count == 0 { // wait until applied, reply pending
		time.Sleep(time.Millisecond)
	}
	c.Kill(0)
	r := cl.recv()
	if r.ID != id || r.Status != unimeter.StatusOK {
		t.Errorf("reply %v id %d, want OK id %d", r.Status, r.ID, id)
	}
	cl.expectClosed()
}

func TestCloseCutsDelays(t *testing.T) {
	c, err := unimetertest.Start(unimetertest.Options{Now: fixedClock})
	if err != nil {
		t.Fatal(err)
	}
	cl := dial(t, c.Addrs()[0])
	c.Inject(0, unimetertest.Fault{Kind: unimetertest.FaultDelay, Delay: time.Hour})
	cl.send(unimeter.PacketMetricList, unimeter.PartitionAll, nil)
	for c.Stats(0).Faults == 0 {
		time.Sleep(time.Millisecond)
	}
	began := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	cl.expectClosed()
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Restart(0); err == nil {
		t.Errorf("Restart after Close succeeded")
	}
}

func TestDropConnections(t *testing.T) {
	c := start(t, unimetertest.Options{})
	a, b := dial(t, c.Addrs()[0]), dial(t, c.Addrs()[0])
	a.call(unimeter.PacketMetricList, unimeter.PartitionAll, nil)
	b.call(unimeter.PacketMetricList, unimeter.PartitionAll, nil)
	c.DropConnections(0)
	a.expectClosed()
	b.expectClosed()
	if r := dial(t, c.Addrs()[0]).call(unimeter.PacketMetricList, unimeter.PartitionAll, nil); r.Status != unimeter.StatusOK {
		t.Errorf("after DropConnections: status %v", r.Status)
	}
	if got := c.Stats(0).Connections; got != 3 {
		t.Errorf("Stats.Connections = %d, want 3", got)
	}
}

func TestMoveLeader(t *testing.T) {
	c := start(t, unimetertest.Options{Nodes: 3})
	addrs := c.Addrs()
	const p = 4 // led by node 1 at start
	if got := c.Leader(p); got != 1 {
		t.Fatalf("initial leader of %d = %d, want 1", p, got)
	}
	c.MoveLeader(p, 0)

	old := dial(t, addrs[1])
	r := old.call(unimeter.PacketIngestSync, p, ingestPayload(t, ev("api_calls", p, april10, 1)))
	if r.Status != unimeter.StatusRedirect {
		t.Fatalf("old leader: status %v, want REDIRECT", r.Status)
	}
	if got, err := unimeter.DecodeRedirect(r.Payload); err != nil || got != addrs[0] {
		t.Errorf("redirect to %q (%v), want %q", got, err, addrs[0])
	}
	if status, _ := dial(t, addrs[0]).ingest(p, ev("api_calls", p, april10, 1)); status != unimeter.StatusUnknownMetric {
		t.Errorf("new leader: status %v, want UNKNOWN_METRIC (accepted)", status)
	}

	for node, addr := range addrs {
		cl := dial(t, addr)
		want := unimeter.PartitionEntry{Leader: addrs[0], Replica0: addrs[1], Replica1: addrs[2]}
		if diff := cmp.Diff(want, cl.partitionMap()[p]); diff != "" {
			t.Errorf("node %d map entry (-want +got):\n%s", node, diff)
		}
		role := unimeter.RoleReplica
		if node == 0 {
			role = unimeter.RoleLeader
		}
		wantSt := unimeter.PartitionStatus{View: 1, Role: role, Leader: 0}
		if diff := cmp.Diff(wantSt, cl.clusterStatus().Partitions[p]); diff != "" {
			t.Errorf("node %d status of partition %d (-want +got):\n%s", node, p, diff)
		}
	}
}

func TestClusterStatus(t *testing.T) {
	clk := newClock()
	c := start(t, unimetertest.Options{Nodes: 3, Now: clk.Now})
	clk.Add(3 * time.Second)
	st := dial(t, c.Addrs()[1]).clusterStatus()
	type head struct {
		NodeID, Nodes uint8
		Uptime        int64
	}
	if diff := cmp.Diff(head{1, 3, int64(3 * time.Second)}, head{st.NodeID, st.Nodes, st.Uptime}); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	want := []unimeter.PartitionStatus{
		{Role: unimeter.RoleReplica, Leader: 0},
		{Role: unimeter.RoleLeader, Leader: 1},
		{Role: unimeter.RoleReplica, Leader: 2},
		{Role: unimeter.RoleReplica, Leader: 0},
	}
	if diff := cmp.Diff(want, st.Partitions[:4]); diff != "" {
		t.Errorf("partitions 0..3 (-want +got):\n%s", diff)
	}
}

func TestRegistryIsPerNode(t *testing.T) {
	c := start(t, unimetertest.Options{Nodes: 3})
	dial(t, c.Addrs()[0]).putMetric(countSchema("api_calls"))
	tests := []struct {
		name       string
		node       int
		wantStatus unimeter.Status
	}{
		{name: "node the metric was put on", node: 0, wantStatus: unimeter.StatusOK},
		{name: "another node", node: 1, wantStatus: unimeter.StatusUnknownMetric},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := uint16(tt.node) // partition led by the node
			status, _ := dial(t, c.Addrs()[tt.node]).ingest(p, ev("api_calls", uint64(p), april10, 1))
			if status != tt.wantStatus {
				t.Errorf("status %v, want %v", status, tt.wantStatus)
			}
		})
	}
}

func TestPartitionOutOfRange(t *testing.T) {
	tests := []struct {
		name       string
		typ        unimeter.PacketType
		payload    []byte
		wantStatus unimeter.Status
	}{
		{name: "ingest", typ: unimeter.PacketIngestSync, payload: ingestPayload(t, ev("api_calls", 1, april10, 1)), wantStatus: unimeter.StatusErr},
		{name: "other packets ignore the partition", typ: unimeter.PacketMetricList, wantStatus: unimeter.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := start(t, unimetertest.Options{})
			cl := dial(t, c.Addrs()[0])
			b := frame(t, tt.typ, 0, 5, tt.payload)
			binary.LittleEndian.PutUint16(b[6:], 300) // the codec refuses to encode it
			cl.write(b)
			if r := cl.recv(); r.Status != tt.wantStatus || r.ID != 5 {
				t.Errorf("reply %v id %d, want %v id 5", r.Status, r.ID, tt.wantStatus)
			}
			// The body was read either way: the connection is still in step.
			if r := cl.call(unimeter.PacketMetricList, unimeter.PartitionAll, nil); r.Status != unimeter.StatusOK {
				t.Errorf("next request: status %v, want OK", r.Status)
			}
		})
	}
}

func TestConnectionLimit(t *testing.T) {
	c := start(t, unimetertest.Options{})
	for range 256 {
		dial(t, c.Addrs()[0]).call(unimeter.PacketMetricList, unimeter.PartitionAll, nil)
	}
	over := dial(t, c.Addrs()[0]) // accepted by the kernel, then closed by the server
	over.expectClosed()
}
