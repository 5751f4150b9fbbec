package unimeter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// conn is one TCP connection to a node. The server answers a connection strictly in order and
// one request at a time, so a conn carries one request at a time too: pipelining would gain
// nothing and a REDIRECT or ERR would poison every request behind it (research §1.16–1.17).
type conn struct {
	nc       net.Conn
	buf      []byte // request frame, then reply payload; reused
	hdr      [ResponseHeaderSize]byte
	poisoned bool // a cancellation callback ran (or is running): never reuse
}

// pool holds a node's idle connections and bounds how many exist at once.
type pool struct {
	addr  string
	dial  func(ctx context.Context, addr string) (net.Conn, error)
	slots chan struct{}  // one token per connection that exists or is being dialled
	idle  chan *conn     // idle connections, at most cap(slots)
	done  chan struct{}  // closed by close
	once  sync.Once      // close
	liveM sync.Mutex     // guards live
	live  map[*conn]bool // every open connection, for close; nil once closed
	stats *counters      // shared with the client
}

func newPool(addr string, size int, dial func(ctx context.Context, addr string) (net.Conn, error), st *counters) *pool {
	return &pool{
		addr:  addr,
		dial:  dial,
		slots: make(chan struct{}, size),
		idle:  make(chan *conn, size),
		done:  make(chan struct{}),
		live:  map[*conn]bool{},
		stats: st,
	}
}

// get returns an idle connection or dials a new one, waiting for a free slot until ctx ends. It
// takes nothing once ctx has ended.
func (p *pool) get(ctx context.Context) (*conn, error) {
	if err := ctxDone(ctx); err != nil {
		return nil, err
	}
	select {
	case c := <-p.idle:
		return c, nil
	default:
	}
	select {
	case c := <-p.idle:
		return c, nil
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, errClosed
	}
	nc, err := p.dial(ctx, p.addr)
	if err != nil {
		<-p.slots
		return nil, err
	}
	p.stats.dials.Add(1)
	c := &conn{nc: nc}
	p.liveM.Lock()
	closed := p.live == nil
	if !closed {
		p.live[c] = true
	}
	p.liveM.Unlock()
	if closed {
		_ = nc.Close()
		<-p.slots
		return nil, errClosed
	}
	return c, nil
}

// put returns a healthy connection for reuse.
func (p *pool) put(c *conn) {
	select {
	case <-p.done:
		p.discard(c)
		return
	default:
	}
	select {
	case p.idle <- c:
	default: // cannot happen: idle has a place for every slot
		p.discard(c)
	}
}

// discard closes a connection that must not be reused (an error, a timeout, a REDIRECT).
func (p *pool) discard(c *conn) {
	_ = c.nc.Close()
	p.liveM.Lock()
	if p.live != nil {
		delete(p.live, c)
	}
	p.liveM.Unlock()
	<-p.slots
}

// close closes every connection, idle or in use; requests in flight fail.
func (p *pool) close() {
	p.once.Do(func() {
		close(p.done)
		p.liveM.Lock()
		for c := range p.live {
			_ = c.nc.Close()
		}
		p.live = nil
		p.liveM.Unlock()
	})
}

var errClosed = errors.New("unimeter: client closed")

// roundTrip sends one request frame (header and payload, already in c.buf) and reads the reply.
// The deadline is the earlier of ctx's and now+timeout; a context cancelled mid-request
// interrupts the I/O. Any failure leaves the connection unusable: the caller discards it.
// The returned payload aliases c.buf and is valid until the next use of c.
func (c *conn) roundTrip(ctx context.Context, id uint32, timeout time.Duration) (ResponseHeader, []byte, error) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		return ResponseHeader{}, nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() { // the callback has started: its deadline may land after we return
			c.poisoned = true
		}
	}()
	// An ended context sends nothing. Its callback above runs on another goroutine, and may not
	// have set the deadline before Write: a request must not reach the node because of that race.
	// The connection is untouched, but the callback may still land: the caller discards it.
	if err := ctxDone(ctx); err != nil {
		return ResponseHeader{}, nil, err
	}
	if _, err := c.nc.Write(c.buf); err != nil {
		return ResponseHeader{}, nil, ctxErr(ctx, err)
	}
	if _, err := io.ReadFull(c.nc, c.hdr[:]); err != nil {
		return ResponseHeader{}, nil, ctxErr(ctx, err)
	}
	h, err := DecodeResponseHeader(c.hdr[:])
	if err != nil {
		return h, nil, err
	}
	if h.RequestID != id {
		return h, nil, fmt.Errorf("unimeter: reply for request %d while waiting for %d: %w", h.RequestID, id, ErrInvalid)
	}
	if cap(c.buf) < int(h.PayloadLen) {
		c.buf = make([]byte, h.PayloadLen)
	}
	p := c.buf[:h.PayloadLen]
	if _, err := io.ReadFull(c.nc, p); err != nil {
		return h, nil, ctxErr(ctx, err)
	}
	return h, p, nil
}

// ctxDone returns ctx's error, or context.DeadlineExceeded once its deadline has passed even if
// ctx has not noticed yet: a request must not start after either.
func ctxDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// ctxErr prefers the context's error to the I/O error its cancellation caused.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	// The connection's deadline is the context's when that is sooner, and may fire a moment
	// before the context notices.
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	return err
}
