package unimeter

import (
	"bytes"
	"fmt"
)

// Event is one usage event of an INGEST_ASYNC / INGEST_SYNC payload.
//
// WireEvent layout (96 bytes): metric_code 64 B @0, account_id u64 @64, timestamp i64 @72,
// value u64 @80, operation_type u8 @88, props_count u8 @89, 6 bytes padding.
type Event struct {
	// Metric is the metric code, at most MaxMetricCodeLen bytes.
	Metric string
	// Account is the account id; its partition is Partition(Account).
	Account uint64
	// Timestamp is in Unix nanoseconds; 0 lets the server assign one (and defeats dedup on
	// retry).
	Timestamp int64
	// Value is scaled by 10^6.
	Value uint64
	// Op is OpNone, OpAdd or OpRemove.
	Op uint8
	// Props are the event's properties, at most MaxPropsPerEvent.
	Props []Prop
}

// Prop is one event property. PropPair layout (96 bytes): key 32 B @0, value 64 B @32.
type Prop struct {
	// Key is at most MaxPropKeyLen bytes.
	Key string
	// Value is at most MaxPropValueLen bytes (but only values of at most MaxDimValueLen bytes can
	// match a declared filter value).
	Value string
}

const (
	evAccount   = 64
	evTimestamp = 72
	evValue     = 80
	evOp        = 88
	evProps     = 89
	evPad       = 90
)

func checkEvent(e *Event) error {
	if err := checkString("metric code", e.Metric, MaxMetricCodeLen); err != nil {
		return err
	}
	if e.Op > OpRemove {
		return fmt.Errorf("operation type %d: %w", e.Op, ErrInvalid)
	}
	if err := checkCount("props on one event", len(e.Props), MaxPropsPerEvent); err != nil {
		return err
	}
	for j := range e.Props {
		p := &e.Props[j]
		if err := checkString("prop key", p.Key, MaxPropKeyLen); err != nil {
			return fmt.Errorf("prop %d: %w", j, err)
		}
		if err := checkString("prop value", p.Value, MaxPropValueLen); err != nil {
			return fmt.Errorf("prop %d: %w", j, err)
		}
	}
	return nil
}

// IngestSize returns the payload size AppendIngest would produce for events, or an error if
// AppendIngest would refuse them.
func IngestSize(events []Event) (int, error) {
	n, _, err := ingestSize(events)
	return n, err
}

// ingestSize checks events and returns the payload size and the total number of props.
func ingestSize(events []Event) (size, props int, err error) {
	if err := checkCount("events", len(events), MaxEvents); err != nil {
		return 0, 0, fmt.Errorf("unimeter: ingest: %w", err)
	}
	for i := range events {
		if err := checkEvent(&events[i]); err != nil {
			return 0, 0, fmt.Errorf("unimeter: ingest: event %d: %w", i, err)
		}
		props += len(events[i].Props)
	}
	if err := checkCount("props", props, MaxProps); err != nil {
		return 0, 0, fmt.Errorf("unimeter: ingest: %w", err)
	}
	size = IngestHeaderSize + len(events)*WireEventSize + props*PropPairSize
	if size > MaxPayload { // unreachable with the caps above; kept as a guard
		return 0, 0, fmt.Errorf("unimeter: ingest: %d bytes: %w", size, ErrPayloadTooLarge)
	}
	return size, props, nil
}

// AppendIngest appends the ingest payload for events to dst: an 8-byte header (event_count u32,
// props_count u32), the events (96 B each), then every event's props in event order (96 B
// each); each event's props_count byte says how many of the following pairs are its own.
//
// It refuses more than MaxEvents events, more than MaxProps props in total or MaxPropsPerEvent
// on one event, an unknown Op, and strings that do not fit. On error dst is returned unchanged.
// It does not allocate when dst has enough spare capacity.
func AppendIngest(dst []byte, events []Event) ([]byte, error) {
	n, props, err := ingestSize(events)
	if err != nil {
		return dst, err
	}
	dst, b := grow(dst, n)
	clear(b)
	le.PutUint32(b[0:], uint32(len(events)))
	le.PutUint32(b[4:], uint32(props))
	w := b[IngestHeaderSize:]
	pp := w[len(events)*WireEventSize:]
	for i := range events {
		e := &events[i]
		putString(w[:codeWidth], e.Metric)
		le.PutUint64(w[evAccount:], e.Account)
		le.PutUint64(w[evTimestamp:], uint64(e.Timestamp))
		le.PutUint64(w[evValue:], e.Value)
		w[evOp] = e.Op
		w[evProps] = uint8(len(e.Props))
		w = w[WireEventSize:]
		for j := range e.Props {
			putString(pp[:propKeyWidth], e.Props[j].Key)
			putString(pp[propKeyWidth:PropPairSize], e.Props[j].Value)
			pp = pp[PropPairSize:]
		}
	}
	return dst, nil
}

// DecodeIngest decodes an ingest payload strictly: the length must be exactly
// 8 + (event_count + props_count) × 96, at most MaxEvents events and MaxProps props, the
// per-event props counts must add up to props_count, Op must be known, and padding and the
// bytes after each string's NUL must be zero. Events without props have nil Props.
func DecodeIngest(p []byte) ([]Event, error) {
	if len(p) < IngestHeaderSize {
		return nil, fmt.Errorf("unimeter: ingest: %w: %d bytes, want at least %d", ErrTruncated, len(p), IngestHeaderSize)
	}
	ec, pc := le.Uint32(p[0:]), le.Uint32(p[4:])
	if ec > MaxEvents {
		return nil, fmt.Errorf("unimeter: ingest: %w events: %d, max %d", ErrTooMany, ec, MaxEvents)
	}
	if pc > MaxProps {
		return nil, fmt.Errorf("unimeter: ingest: %w props: %d, max %d", ErrTooMany, pc, MaxProps)
	}
	if want := IngestHeaderSize + int(ec)*WireEventSize + int(pc)*PropPairSize; len(p) != want {
		return nil, fmt.Errorf("unimeter: ingest: %w: %d bytes for %d events and %d props, want %d", ErrLength, len(p), ec, pc, want)
	}
	if ec == 0 {
		if pc != 0 {
			return nil, fmt.Errorf("unimeter: ingest: %w: props_count %d without events", ErrInvalid, pc)
		}
		return nil, nil
	}
	events := make([]Event, ec)
	var props []Prop
	if pc > 0 {
		props = make([]Prop, pc)
	}
	w := p[IngestHeaderSize:]
	pp := w[int(ec)*WireEventSize:]
	next := 0
	var prevCode []byte
	for i := range events {
		e := &events[i]
		var err error
		if i > 0 && bytes.Equal(w[:codeWidth], prevCode) {
			e.Metric = events[i-1].Metric // a batch is mostly one metric: one string for all
		} else if e.Metric, err = getString("metric code", w[:codeWidth], MaxMetricCodeLen, true); err != nil {
			return nil, fmt.Errorf("unimeter: ingest: event %d: %w", i, err)
		}
		prevCode = w[:codeWidth]
		e.Account = le.Uint64(w[evAccount:])
		e.Timestamp = int64(le.Uint64(w[evTimestamp:]))
		e.Value = le.Uint64(w[evValue:])
		e.Op = w[evOp]
		if e.Op > OpRemove {
			return nil, fmt.Errorf("unimeter: ingest: event %d: operation type %d: %w", i, e.Op, ErrInvalid)
		}
		if err := checkPad("event", w[evPad:WireEventSize]); err != nil {
			return nil, fmt.Errorf("unimeter: ingest: event %d: %w", i, err)
		}
		n := int(w[evProps])
		w = w[WireEventSize:]
		if n == 0 {
			continue
		}
		if next+n > int(pc) {
			return nil, fmt.Errorf("unimeter: ingest: event %d: %w: per-event props counts exceed props_count %d", i, ErrInvalid, pc)
		}
		e.Props = props[next : next+n : next+n]
		for j := range e.Props {
			q := &e.Props[j]
			if q.Key, err = getString("prop key", pp[:propKeyWidth], MaxPropKeyLen, true); err != nil {
				return nil, fmt.Errorf("unimeter: ingest: event %d: prop %d: %w", i, j, err)
			}
			if q.Value, err = getString("prop value", pp[propKeyWidth:PropPairSize], MaxPropValueLen, true); err != nil {
				return nil, fmt.Errorf("unimeter: ingest: event %d: prop %d: %w", i, j, err)
			}
			pp = pp[PropPairSize:]
		}
		next += n
	}
	if next != int(pc) {
		return nil, fmt.Errorf("unimeter: ingest: %w: per-event props counts add up to %d, props_count is %d", ErrInvalid, next, pc)
	}
	return events, nil
}

// IngestResult is the 16-byte ingest reply: n_stored u32 @0, n_duplicates u32 @4,
// last_offset u64 @8.
type IngestResult struct {
	// Stored is the number of events stored.
	Stored uint32
	// Duplicates is the number of events recognised as duplicates (not stored again).
	Duplicates uint32
	// LastOffset is the node-local offset of the last stored event, or the node's last assigned
	// offset (or 0) if nothing was stored.
	LastOffset uint64
}

// AppendIngestResult appends the 16-byte encoding of r to dst.
func AppendIngestResult(dst []byte, r IngestResult) []byte {
	dst, b := grow(dst, IngestResultSize)
	le.PutUint32(b[0:], r.Stored)
	le.PutUint32(b[4:], r.Duplicates)
	le.PutUint64(b[8:], r.LastOffset)
	return dst
}

// DecodeIngestResult decodes an ingest reply payload of exactly IngestResultSize bytes.
func DecodeIngestResult(p []byte) (IngestResult, error) {
	if err := exactLen("ingest result", p, IngestResultSize); err != nil {
		return IngestResult{}, err
	}
	return IngestResult{
		Stored:     le.Uint32(p[0:]),
		Duplicates: le.Uint32(p[4:]),
		LastOffset: le.Uint64(p[8:]),
	}, nil
}
