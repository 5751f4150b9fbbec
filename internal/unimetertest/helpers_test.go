package unimetertest_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meterbill/meterbill/internal/unimeter"
	"github.com/meterbill/meterbill/internal/unimetertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Fixed times used across the tests (Unix nanoseconds, UTC).
var (
	now     = time.Date(2026, 4, 17, 12, 0, 0, 0, time.UTC).UnixNano()
	april   = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	may     = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	april10 = time.Date(2026, 4, 10, 9, 0, 0, 0, time.UTC).UnixNano()
)

// fixedClock returns a clock stuck at now.
func fixedClock() int64 { return now }

// start starts a cluster with the fixed clock unless opts has one, and closes it at cleanup.
func start(t *testing.T, opts unimetertest.Options) *unimetertest.Cluster {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedClock
	}
	c, err := unimetertest.Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// client is a raw protocol connection to one node.
type client struct {
	t    *testing.T
	nc   net.Conn
	next uint32
}

// reply is one response frame.
type reply struct {
	Status  unimeter.Status
	ID      uint32
	Payload []byte
}

// dial connects to addr; every read and write must finish within 10 s.
func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { _ = nc.Close() })
	return &client{t: t, nc: nc, next: 1}
}

// frame returns a request frame.
func frame(t testing.TB, typ unimeter.PacketType, partition uint16, id uint32, payload []byte) []byte {
	t.Helper()
	b, err := unimeter.AppendRequestHeader(nil, unimeter.RequestHeader{
		Type: typ, Partition: partition, PayloadLen: uint32(len(payload)), RequestID: id,
	})
	if err != nil {
		t.Fatalf("AppendRequestHeader: %v", err)
	}
	return append(b, payload...)
}

// write sends raw bytes.
func (cl *client) write(b []byte) {
	cl.t.Helper()
	if _, err := cl.nc.Write(b); err != nil {
		cl.t.Fatalf("write: %v", err)
	}
}

// send sends one request with the next request id and returns that id.
func (cl *client) send(typ unimeter.PacketType, partition uint16, payload []byte) uint32 {
	cl.t.Helper()
	id := cl.next
	cl.next++
	cl.write(frame(cl.t, typ, partition, id, payload))
	return id
}

// recv reads one response frame.
func (cl *client) recv() reply {
	cl.t.Helper()
	r, err := cl.tryRecv()
	if err != nil {
		cl.t.Fatalf("recv: %v", err)
	}
	return r
}

// tryRecv reads one response frame or returns the read error.
func (cl *client) tryRecv() (reply, error) {
	var hb [unimeter.ResponseHeaderSize]byte
	if _, err := io.ReadFull(cl.nc, hb[:]); err != nil {
		return reply{}, err
	}
	h, err := unimeter.DecodeResponseHeader(hb[:])
	if err != nil {
		return reply{}, err
	}
	p := make([]byte, h.PayloadLen)
	if _, err := io.ReadFull(cl.nc, p); err != nil {
		return reply{}, err
	}
	return reply{Status: h.Status, ID: h.RequestID, Payload: p}, nil
}

// call sends a request and reads its reply, checking the echoed request id.
func (cl *client) call(typ unimeter.PacketType, partition uint16, payload []byte) reply {
	cl.t.Helper()
	id := cl.send(typ, partition, payload)
	r := cl.recv()
	if r.ID != id {
		cl.t.Fatalf("%v: reply for request id %d, want %d", typ, r.ID, id)
	}
	return r
}

// expectClosed checks that the server closes the connection without sending anything more.
func (cl *client) expectClosed() {
	cl.t.Helper()
	var b [1]byte
	_ = cl.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := cl.nc.Read(b[:])
	closed := errors.Is(err, io.EOF) || isReset(err)
	if n != 0 || !closed {
		cl.t.Fatalf("read after expected close: n=%d err=%v, want EOF", n, err)
	}
}

// isReset reports whether err is a connection reset (a close with unread data does that).
func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// putMetric sends METRIC_PUT and requires OK.
func (cl *client) putMetric(s unimeter.Schema) {
	cl.t.Helper()
	p, err := unimeter.AppendMetricPut(nil, &s)
	if err != nil {
		cl.t.Fatalf("AppendMetricPut: %v", err)
	}
	if r := cl.call(unimeter.PacketMetricPut, unimeter.PartitionAll, p); r.Status != unimeter.StatusOK {
		cl.t.Fatalf("METRIC_PUT %s: status %v", s.Code, r.Status)
	}
}

// ingestPayload encodes events.
func ingestPayload(t *testing.T, events ...unimeter.Event) []byte {
	t.Helper()
	p, err := unimeter.AppendIngest(nil, events)
	if err != nil {
		t.Fatalf("AppendIngest: %v", err)
	}
	return p
}

// ingest sends INGEST_SYNC on partition and returns the status and, for OK, DUPLICATE and
// UNKNOWN_METRIC, the decoded result.
func (cl *client) ingest(partition uint16, events ...unimeter.Event) (unimeter.Status, unimeter.IngestResult) {
	cl.t.Helper()
	r := cl.call(unimeter.PacketIngestSync, partition, ingestPayload(cl.t, events...))
	return r.Status, ingestResult(cl.t, r)
}

// ingestResult decodes the payload of an ingest reply that carries one.
func ingestResult(t *testing.T, r reply) unimeter.IngestResult {
	t.Helper()
	switch r.Status {
	case unimeter.StatusOK, unimeter.StatusDuplicate, unimeter.StatusUnknownMetric:
	default:
		if len(r.Payload) != 0 {
			t.Fatalf("%v reply with %d payload bytes", r.Status, len(r.Payload))
		}
		return unimeter.IngestResult{}
	}
	res, err := unimeter.DecodeIngestResult(r.Payload)
	if err != nil {
		t.Fatalf("DecodeIngestResult: %v", err)
	}
	return res
}

// queryPayload encodes a USAGE_QUERY.
func queryPayload(t *testing.T, q unimeter.UsageQuery) []byte {
	t.Helper()
	p, err := unimeter.AppendUsageQuery(nil, &q)
	if err != nil {
		t.Fatalf("AppendUsageQuery: %v", err)
	}
	return p
}

// query sends USAGE_QUERY and requires OK.
func (cl *client) query(account uint64, metric string, start, end int64) unimeter.AggValue {
	cl.t.Helper()
	return cl.queryWith(unimeter.UsageQuery{Account: account, Metric: metric, Start: start, End: end})
}

// queryWith sends USAGE_QUERY q and requires OK.
func (cl *client) queryWith(q unimeter.UsageQuery) unimeter.AggValue {
	cl.t.Helper()
	r := cl.call(unimeter.PacketUsageQuery, unimeter.PartitionAll, queryPayload(cl.t, q))
	if r.Status != unimeter.StatusOK {
		cl.t.Fatalf("USAGE_QUERY: status %v", r.Status)
	}
	v, err := unimeter.DecodeAggValue(r.Payload)
	if err != nil {
		cl.t.Fatalf("DecodeAggValue: %v", err)
	}
	return v
}

// metricList sends METRIC_LIST and requires OK.
func (cl *client) metricList() []unimeter.Schema {
	cl.t.Helper()
	r := cl.call(unimeter.PacketMetricList, unimeter.PartitionAll, nil)
	if r.Status != unimeter.StatusOK {
		cl.t.Fatalf("METRIC_LIST: status %v", r.Status)
	}
	l, err := unimeter.DecodeMetricList(r.Payload)
	if err != nil {
		cl.t.Fatalf("DecodeMetricList: %v", err)
	}
	return l
}

// partitionMap sends GET_PARTITION_MAP and requires OK.
func (cl *client) partitionMap() *unimeter.PartitionMap {
	cl.t.Helper()
	r := cl.call(unimeter.PacketGetPartitionMap, unimeter.PartitionAll, nil)
	if r.Status != unimeter.StatusOK {
		cl.t.Fatalf("GET_PARTITION_MAP: status %v", r.Status)
	}
	m, err := unimeter.DecodePartitionMap(r.Payload)
	if err != nil {
		cl.t.Fatalf("DecodePartitionMap: %v", err)
	}
	return m
}

// clusterStatus sends CLUSTER_STATUS and requires OK.
func (cl *client) clusterStatus() *unimeter.ClusterStatus {
	cl.t.Helper()
	r := cl.call(unimeter.PacketClusterStatus, unimeter.PartitionAll, nil)
	if r.Status != unimeter.StatusOK {
		cl.t.Fatalf("CLUSTER_STATUS: status %v", r.Status)
	}
	s, err := unimeter.DecodeClusterStatus(r.Payload)
	if err != nil {
		cl.t.Fatalf("DecodeClusterStatus: %v", err)
	}
	return s
}

// ev returns an event of metric for account at ts with value.
func ev(metric string, account uint64, ts int64, value uint64) unimeter.Event {
	return unimeter.Event{Metric: metric, Account: account, Timestamp: ts, Value: value}
}

// ptype returns a pointer to t, for Fault.Packet.
func ptype(t unimeter.PacketType) *unimeter.PacketType { return &t }
