package unimetertest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/meterbill/meterbill/internal/memmeter"
	"github.com/meterbill/meterbill/internal/unimeter"
)

// node is one fake server.
type node struct {
	c      *Cluster
	id     int
	addr   string
	engine *memmeter.Engine // aggregates and dedup memory; kept across restarts

	// applyMu serialises the application of requests, as the real server's single event loop
	// does; it guards registry and offset.
	applyMu  sync.Mutex
	registry map[string]unimeter.Schema // what METRIC_LIST echoes, by code
	offset   uint64                     // last assigned event offset; the first event gets 1

	mu      sync.Mutex // guards the fields below
	alive   bool
	ln      net.Listener
	conns   map[net.Conn]struct{}
	started int64 // clock reading at the last (re)start, for uptime
	faults  []Fault
	stats   NodeStats

	inFlight sync.WaitGroup // requests between the start of their apply and the end of their reply
	wg       sync.WaitGroup // the accept loop and the connection goroutines
}

// start makes the node serve ln. The caller holds c.life (or is Start) and the node is dead.
func (n *node) start(ln net.Listener) {
	n.mu.Lock()
	n.alive = true
	n.ln = ln
	n.conns = map[net.Conn]struct{}{}
	n.started = n.c.now()
	n.wg.Add(1)
	n.mu.Unlock()
	go n.accept(ln)
}

// stop kills the node and waits for its goroutines. With graceful, a request already being
// applied completes its reply before the connections close (Kill); without, everything closes at
// once (Close). The caller holds c.life.
func (n *node) stop(graceful bool) {
	n.mu.Lock()
	if !n.alive {
		n.mu.Unlock()
		return
	}
	n.alive = false
	ln := n.ln
	n.ln = nil
	conns := make([]net.Conn, 0, len(n.conns))
	for nc := range n.conns {
		conns = append(conns, nc)
	}
	n.mu.Unlock()

	_ = ln.Close()
	if graceful {
		// Wake every reader at once; a request already applying still writes its reply.
		for _, nc := range conns {
			_ = nc.SetReadDeadline(time.Unix(1, 0))
		}
		n.inFlight.Wait()
	}
	for _, nc := range conns {
		_ = nc.Close()
	}
	n.wg.Wait()
}

// accept runs the accept loop of one listener generation.
func (n *node) accept(ln net.Listener) {
	defer n.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // transient (e.g. EMFILE); try again
			continue
		}
		n.mu.Lock()
		if !n.alive || n.ln != ln || len(n.conns) >= maxConns {
			n.mu.Unlock()
			_ = nc.Close()
			continue
		}
		n.conns[nc] = struct{}{}
		n.stats.Connections++
		n.wg.Add(1)
		n.mu.Unlock()
		go n.serve(nc)
	}
}

// serve handles one connection strictly in order until it fails or is closed.
func (n *node) serve(nc net.Conn) {
	defer n.wg.Done()
	defer func() {
		n.mu.Lock()
		delete(n.conns, nc)
		n.mu.Unlock()
		_ = nc.Close()
	}()
	r := bufio.NewReaderSize(nc, 64<<10)
	var hb [unimeter.RequestHeaderSize]byte
	var body, out []byte
	for {
		if _, err := io.ReadFull(r, hb[:]); err != nil {
			return
		}
		h, err := unimeter.DecodeRequestHeader(hb[:])
		// The decoder reports only the first problem, so check the length separately: a bad
		// partition may hide an oversized payload_len.
		if errors.Is(err, unimeter.ErrBadMagic) || errors.Is(err, unimeter.ErrBadVersion) || h.PayloadLen > unimeter.MaxPayload {
			// Bad magic, bad version or payload too large: ERR, body left unread, exactly
			// as the server does. The unread bytes become the next "header".
			n.count(func(s *NodeStats) { s.BadHeaders++; s.Errors++ })
			if !n.respond(nc, &out, h.RequestID, unimeter.StatusErr, nil) {
				return
			}
			continue
		}
		// A partition >= 256 (other than 0xFFFF) matters only to ingest, the one packet that
		// looks at it.
		badPartition := err != nil && isIngest(h.Type)
		n.count(func(s *NodeStats) { s.Requests[h.Type]++ })

		if isIngest(h.Type) && !badPartition {
			p := h.Partition
			if p == unimeter.PartitionAll {
				p = 0
			}
			if leader := n.c.Leader(p); leader != n.id {
				// REDIRECT before the body is read: the body is left in the stream.
				payload, err := unimeter.AppendRedirect(nil, n.c.address(leader))
				if err != nil { // cannot happen: loopback addresses fit in 24 bytes
					payload = nil
				}
				n.count(func(s *NodeStats) { s.Redirects++ })
				if !n.respond(nc, &out, h.RequestID, unimeter.StatusRedirect, payload) {
					return
				}
				continue
			}
		}

		var f Fault
		var faulty bool
		if !badPartition {
			n.mu.Lock()
			f, faulty = n.takeFault(h.Type)
			n.mu.Unlock()
		}
		if faulty && f.Kind == FaultDropBeforeApply {
			return
		}

		if cap(body) < int(h.PayloadLen) {
			body = make([]byte, h.PayloadLen)
		}
		body = body[:h.PayloadLen]
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}

		if !n.begin() {
			return // killed before the apply began: dropped unapplied
		}
		var status unimeter.Status
		var payload []byte
		switch {
		case faulty && f.Kind == FaultBackpressure:
			status = unimeter.StatusBackpressure
		case faulty && f.Kind == FaultNotLeader:
			status = unimeter.StatusNotLeader
		case badPartition:
			status = unimeter.StatusErr
		default:
			status, payload = n.apply(h.Type, body)
		}
		if status == unimeter.StatusErr {
			n.count(func(s *NodeStats) { s.Errors++ })
		}
		if faulty && f.Kind == FaultDropAfterApply {
			n.inFlight.Done()
			return
		}
		if faulty && f.Kind == FaultDelay && !n.sleep(f.Delay) {
			n.inFlight.Done()
			return
		}
		ok := n.reply(nc, &out, h.RequestID, status, payload)
		n.inFlight.Done()
		if !ok {
			return
		}
	}
}

// begin marks the start of a request's apply, unless the node has been killed. When it returns
// true the caller must call n.inFlight.Done after the reply.
func (n *node) begin() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.alive {
		return false
	}
	n.inFlight.Add(1)
	return true
}

// respond writes a reply that applies nothing, unless the node has been killed. It reports
// whether the connection is still usable.
func (n *node) respond(nc net.Conn, buf *[]byte, id uint32, status unimeter.Status, payload []byte) bool {
	if !n.begin() {
		return false
	}
	defer n.inFlight.Done()
	return n.reply(nc, buf, id, status, payload)
}

// sleep waits d, or until the cluster closes (then it returns false).
func (n *node) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.c.done:
		return false
	}
}

// reply writes one response frame, reusing *buf. It reports whether the write succeeded.
func (n *node) reply(nc net.Conn, buf *[]byte, id uint32, status unimeter.Status, payload []byte) bool {
	b, err := unimeter.AppendResponseHeader((*buf)[:0], unimeter.ResponseHeader{
		Status:     status,
		RequestID:  id,
		PayloadLen: uint32(len(payload)),
	})
	if err != nil { // a payload above MaxPayload: the handlers never build one
		return false
	}
	b = append(b, payload...)
	*buf = b
	_ = nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = nc.Write(b)
	return err == nil
}

// count updates the node's statistics under its lock.
func (n *node) count(f func(*NodeStats)) {
	n.mu.Lock()
	f(&n.stats)
	n.mu.Unlock()
}
