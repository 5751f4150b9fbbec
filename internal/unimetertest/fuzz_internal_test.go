package unimetertest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/meterbill/meterbill/internal/unimeter"
)

// memConn is a net.Conn that reads a fixed input, then EOF, and records what is written. It lets
// the fuzzer drive a node's connection handler without using up the machine's ports.
type memConn struct {
	in  *bytes.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *memConn) Read(b []byte) (int, error) { return c.in.Read(b) }
func (c *memConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(b)
}
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// serveBytes runs node n's connection handler over input until the input ends, and returns what
// the node wrote.
func serveBytes(n *node, input []byte) []byte {
	mc := &memConn{in: bytes.NewReader(input)}
	n.wg.Add(1)
	n.serve(mc)
	return mc.out.Bytes()
}

// checkFrames reports whether out is a sequence of well-formed response frames.
func checkFrames(out []byte) ([]unimeter.ResponseHeader, error) {
	var hs []unimeter.ResponseHeader
	for len(out) > 0 {
		if len(out) < unimeter.ResponseHeaderSize {
			return hs, errors.New("truncated response header")
		}
		h, err := unimeter.DecodeResponseHeader(out[:unimeter.ResponseHeaderSize])
		if err != nil {
			return hs, err
		}
		if h.Status > unimeter.StatusBackpressure {
			return hs, errors.New("unknown status " + h.Status.String())
		}
		out = out[unimeter.ResponseHeaderSize:]
		if len(out) < int(h.PayloadLen) {
			return hs, io.ErrUnexpectedEOF
		}
		out = out[h.PayloadLen:]
		hs = append(hs, h)
	}
	return hs, nil
}

// fuzzFrame returns a request frame; the header fields are not checked.
func fuzzFrame(typ unimeter.PacketType, partition uint16, id uint32, payload []byte) []byte {
	b := make([]byte, unimeter.RequestHeaderSize)
	_ = unimeter.PutRequestHeader(b, unimeter.RequestHeader{Type: typ, Partition: partition, PayloadLen: uint32(len(payload)), RequestID: id})
	return append(b, payload...)
}

// FuzzServe feeds arbitrary bytes to a node's connection handler (node 0 of three). Whatever the
// bytes, the handler must return when the input ends, every reply must be a well-formed frame,
// and the node must still answer a fresh connection.
func FuzzServe(f *testing.F) {
	c, err := Start(Options{Nodes: 3, Now: func() int64 { return 1_776_427_200_000_000_000 }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.Close() })
	n := c.nodes[0]

	put, _ := unimeter.AppendMetricPut(nil, &unimeter.Schema{Code: "api_calls", Agg: unimeter.AggSum, Period: unimeter.PeriodWeek})
	ing, _ := unimeter.AppendIngest(nil, []unimeter.Event{{Metric: "api_calls", Timestamp: 1_775_811_600_000_000_000, Value: 5}, {Metric: "api_calls", Value: 1}})
	q, _ := unimeter.AppendUsageQuery(nil, &unimeter.UsageQuery{Metric: "api_calls", Start: 1, End: 1 << 62})
	seeds := [][]byte{
		bytes.Join([][]byte{fuzzFrame(unimeter.PacketMetricPut, 0, 1, put), fuzzFrame(unimeter.PacketIngestSync, 0, 2, ing), fuzzFrame(unimeter.PacketUsageQuery, 0, 3, q)}, nil),
		fuzzFrame(unimeter.PacketIngestAsync, 1, 4, ing), // REDIRECT, then the body read as headers
		bytes.Join([][]byte{fuzzFrame(unimeter.PacketGetPartitionMap, 0, 5, nil), fuzzFrame(unimeter.PacketClusterStatus, 0, 6, nil)}, nil),
		fuzzFrame(unimeter.PacketIngestSync, 0, 8, ing[:50]),
		// A bad partition in front of an oversized payload_len (found by this fuzzer).
		[]byte("\x01\xee\xff\xc0\x01\x10\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x01\xee\xff\xc0\x01@\xea\xff\xff\xff\xff\xff\x05\x00\x00\x00"),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	probe := fuzzFrame(unimeter.PacketMetricList, unimeter.PartitionAll, 99, nil)

	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := checkFrames(serveBytes(n, data)); err != nil {
			t.Fatalf("replies: %v", err)
		}
		hs, err := checkFrames(serveBytes(n, probe))
		if err != nil || len(hs) != 1 || hs[0].Status != unimeter.StatusOK || hs[0].RequestID != 99 {
			t.Fatalf("fresh connection: replies %+v, %v; want one OK for id 99", hs, err)
		}
	})
}
