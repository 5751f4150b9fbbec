package unimetertest

import (
	"fmt"
	"time"

	"github.com/meterbill/meterbill/internal/unimeter"
)

// FaultKind is what an injected Fault does to the request it hits.
type FaultKind uint8

// The fault kinds. The zero FaultKind is not a fault; Inject panics on it.
const (
	// FaultBackpressure makes an ingest read its body, reply BACKPRESSURE (empty payload) and
	// apply nothing, as a node short of disk space does. The connection stays usable. It hits
	// ingest packets only.
	FaultBackpressure FaultKind = iota + 1
	// FaultNotLeader makes an ingest read its body, reply NOT_LEADER (empty payload) and apply
	// nothing. The examined server never sends NOT_LEADER; this lets a client's handling of it be
	// tested. It hits ingest packets only.
	FaultNotLeader
	// FaultDropBeforeApply reads the request header only, then closes the connection: nothing
	// is applied and nothing is answered.
	FaultDropBeforeApply
	// FaultDropAfterApply reads and applies the request, then closes the connection without
	// replying: the client cannot tell that its request took effect.
	FaultDropAfterApply
	// FaultDelay applies and answers the request normally, but sleeps Fault.Delay between the
	// apply and the reply. Kill waits for the reply; Close cuts the sleep short.
	FaultDelay
)

var faultNames = [...]string{"", "backpressure", "not-leader", "drop-before-apply", "drop-after-apply", "delay"}

// String returns the fault kind's name.
func (k FaultKind) String() string {
	if k > 0 && int(k) < len(faultNames) {
		return faultNames[k]
	}
	return fmt.Sprintf("FaultKind(%d)", uint8(k))
}

// Fault is a one-shot failure queued on a node with Cluster.Inject.
//
// A fault is matched against requests after the header has been read and found well-formed and,
// for an ingest, after the node has confirmed it leads the partition: requests answered with
// REDIRECT or with ERR for a bad header never consume a fault. Faults fire in the order they were
// injected; a request consumes at most one.
type Fault struct {
	// Kind is what the fault does. Required.
	Kind FaultKind
	// Delay is how long FaultDelay sleeps before writing the reply. Ignored by other kinds.
	// Defaults to 0.
	Delay time.Duration
	// Packet restricts the fault to requests of that packet type. Defaults to nil: any packet
	// type (any ingest packet for FaultBackpressure and FaultNotLeader).
	Packet *unimeter.PacketType
	// Count is how many matching requests the fault hits before it is used up. Defaults to 1
	// (0 or less means 1).
	Count int
}

// matches reports whether f applies to a request of type t.
func (f *Fault) matches(t unimeter.PacketType) bool {
	if f.Packet != nil && *f.Packet != t {
		return false
	}
	if f.Kind == FaultBackpressure || f.Kind == FaultNotLeader {
		return isIngest(t)
	}
	return true
}

// Inject queues a one-shot fault on a node: the next request that matches it (see Fault) suffers
// it, up to f.Count requests. Faults survive Kill and Restart until they fire. Inject panics on
// an unknown Kind.
func (c *Cluster) Inject(node int, f Fault) {
	n := c.node(node)
	if f.Kind == 0 || int(f.Kind) >= len(faultNames) {
		panic(fmt.Sprintf("unimetertest: inject: unknown fault kind %d", f.Kind))
	}
	if f.Count <= 0 {
		f.Count = 1
	}
	if f.Packet != nil { // copy, so the caller may reuse its variable
		t := *f.Packet
		f.Packet = &t
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = append(n.faults, f)
}

// takeFault consumes one use of the first queued fault that matches a request of type t. The
// caller holds n.mu.
func (n *node) takeFault(t unimeter.PacketType) (Fault, bool) {
	for i := range n.faults {
		f := &n.faults[i]
		if !f.matches(t) {
			continue
		}
		got := *f
		f.Count--
		if f.Count == 0 {
			n.faults = append(n.faults[:i], n.faults[i+1:]...)
		}
		n.stats.Faults++
		return got, true
	}
	return Fault{}, false
}

// isIngest reports whether t is an ingest packet type.
func isIngest(t unimeter.PacketType) bool {
	return t == unimeter.PacketIngestAsync || t == unimeter.PacketIngestSync
}
