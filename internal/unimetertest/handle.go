package unimetertest

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"

	"github.com/meterbill/meterbill/internal/memmeter"
	"github.com/meterbill/meterbill/internal/period"
	"github.com/meterbill/meterbill/internal/unimeter"
)

// Minimum payload sizes of the list requests the fake answers with empty lists.
const (
	eventsListMinSize = 24
	alertsListMinSize = 16
	emptyListSize     = 8 // count u32 + pad u32
)

// apply applies one fully read request and returns the reply. Requests are applied one at a
// time per node, as the server's single event loop does.
func (n *node) apply(t unimeter.PacketType, body []byte) (unimeter.Status, []byte) {
	n.applyMu.Lock()
	defer n.applyMu.Unlock()
	switch t {
	case unimeter.PacketIngestAsync, unimeter.PacketIngestSync:
		return n.ingest(body)
	case unimeter.PacketGetPartitionMap:
		b, err := unimeter.AppendPartitionMap(nil, n.c.partitionMap())
		if err != nil {
			return unimeter.StatusErr, nil
		}
		return unimeter.StatusOK, b
	case unimeter.PacketMetricPut:
		return n.metricPut(body)
	case unimeter.PacketMetricDelete:
		code, err := unimeter.DecodeMetricDelete(body)
		if err != nil {
			return unimeter.StatusErr, nil
		}
		delete(n.registry, code)
		n.engine.Delete(code)
		return unimeter.StatusOK, nil
	case unimeter.PacketMetricList:
		return n.metricList()
	case unimeter.PacketUsageQuery:
		q, err := unimeter.DecodeUsageQuery(body)
		if err != nil {
			return unimeter.StatusErr, nil
		}
		var v unimeter.AggValue
		if len(q.Filters) == 0 { // no dimension aggregates: a filtered query answers zeros
			v = n.c.Query(n.id, q.Account, q.Metric, q.Start, q.End)
		}
		return unimeter.StatusOK, unimeter.AppendAggValue(nil, v)
	case unimeter.PacketUsageRealtime:
		q, err := unimeter.DecodeUsageRealtime(body)
		if err != nil {
			return unimeter.StatusErr, nil
		}
		now := n.c.now()
		v := n.c.Query(n.id, q.Account, q.Metric, now, now+1)
		return unimeter.StatusOK, unimeter.AppendAggValue(nil, v)
	case unimeter.PacketUsageQueryBreakdown:
		return n.breakdown(body)
	case unimeter.PacketClusterStatus:
		n.mu.Lock()
		uptime := n.c.now() - n.started
		n.mu.Unlock()
		return unimeter.StatusOK, unimeter.AppendClusterStatus(nil, n.c.clusterStatus(n.id, uptime))
	case unimeter.PacketAlertPushEnable:
		return unimeter.StatusOK, nil // accepted; the fake never pushes
	case unimeter.PacketEventsList:
		if len(body) < eventsListMinSize {
			return unimeter.StatusErr, nil
		}
		return unimeter.StatusOK, make([]byte, emptyListSize)
	case unimeter.PacketAlertsList:
		if len(body) < alertsListMinSize {
			return unimeter.StatusErr, nil
		}
		return unimeter.StatusOK, make([]byte, emptyListSize)
	}
	return unimeter.StatusErr, nil // unknown, push-only, rebalance and transfer packets
}

// ingest applies an INGEST_ASYNC / INGEST_SYNC payload. The caller holds n.applyMu.
func (n *node) ingest(body []byte) (unimeter.Status, []byte) {
	events, err := unimeter.DecodeIngest(firstEvents(body))
	if err != nil {
		return unimeter.StatusErr, nil
	}
	var res memmeter.Result
	if n.c.opts.Discard {
		res.Stored = len(events)
	} else {
		batch := make([]memmeter.Event, len(events))
		for i, e := range events {
			batch[i] = memmeter.Event{Metric: e.Metric, Account: e.Account, Timestamp: e.Timestamp, Value: e.Value, Op: e.Op}
		}
		res = n.engine.Ingest(batch)
	}
	n.offset += uint64(res.Stored)
	n.count(func(s *NodeStats) { s.Stored += res.Stored; s.Duplicates += res.Duplicates })
	status := unimeter.StatusOK
	switch {
	case res.Stored == 0 && res.Duplicates > 0:
		status = unimeter.StatusDuplicate
	case res.Unknown > 0:
		status = unimeter.StatusUnknownMetric
	}
	return status, unimeter.AppendIngestResult(nil, unimeter.IngestResult{
		Stored:     uint32(res.Stored),
		Duplicates: uint32(res.Duplicates),
		LastOffset: n.offset,
	})
}

// firstEvents returns an ingest payload that holds more than MaxEvents events and no props cut
// down to its first MaxEvents events, which is all the server processes (it ignores the rest
// silently). Any other payload is returned as is. Props are dropped in the cut-down payload: the
// fake keeps no dimension aggregates, so they would have no effect.
func firstEvents(p []byte) []byte {
	const hdr, ev = unimeter.IngestHeaderSize, unimeter.WireEventSize
	if len(p) < hdr {
		return p
	}
	ec := int(binary.LittleEndian.Uint32(p[0:]))
	pc := int(binary.LittleEndian.Uint32(p[4:]))
	if ec <= unimeter.MaxEvents || len(p) != hdr+(ec+pc)*ev {
		return p
	}
	q := make([]byte, hdr+unimeter.MaxEvents*ev)
	binary.LittleEndian.PutUint32(q[0:], unimeter.MaxEvents)
	copy(q[hdr:], p[hdr:])
	for i := range unimeter.MaxEvents {
		q[hdr+i*ev+89] = 0 // the event's props_count
	}
	return q
}

// metricPut upserts a schema. The caller holds n.applyMu.
func (n *node) metricPut(body []byte) (unimeter.Status, []byte) {
	s, err := unimeter.DecodeMetricPut(body)
	if err != nil {
		return unimeter.StatusErr, nil
	}
	if n.c.opts.NoWeek && s.Period == unimeter.PeriodWeek {
		s.Period = unimeter.PeriodFixed
	}
	n.registry[s.Code] = s
	n.engine.Put(memmeter.Schema{
		Code:   s.Code,
		Agg:    memmeter.Agg(s.Agg),
		Period: period.Spec{Type: period.Type(s.Period), CycleDay: s.CycleDay}, // CycleDay 0 reads as 1
	})
	return unimeter.StatusOK, nil
}

// metricList answers METRIC_LIST, in code order. Like the server it silently leaves out the
// schemas that would take the reply past MaxPayload. The caller holds n.applyMu.
func (n *node) metricList() (unimeter.Status, []byte) {
	schemas := make([]unimeter.Schema, 0, len(n.registry))
	for _, s := range n.registry {
		schemas = append(schemas, s)
	}
	slices.SortFunc(schemas, func(a, b unimeter.Schema) int { return strings.Compare(a.Code, b.Code) })
	for {
		b, err := unimeter.AppendMetricList(nil, schemas)
		if err == nil {
			return unimeter.StatusOK, b
		}
		if !errors.Is(err, unimeter.ErrPayloadTooLarge) || len(schemas) == 0 {
			return unimeter.StatusErr, nil
		}
		schemas = schemas[:len(schemas)-1]
	}
}

// breakdown answers USAGE_QUERY_BREAKDOWN: ERR for a malformed request, an unknown metric or a
// group-by key that is not a declared filter key, as the server does; otherwise an empty reply,
// because the fake keeps no dimension aggregates. The caller holds n.applyMu.
func (n *node) breakdown(body []byte) (unimeter.Status, []byte) {
	q, err := unimeter.DecodeBreakdownQuery(body)
	if err != nil {
		return unimeter.StatusErr, nil
	}
	s, ok := n.registry[q.Metric]
	if !ok {
		return unimeter.StatusErr, nil
	}
	for _, k := range q.GroupBy {
		if !slices.ContainsFunc(s.Filters, func(f unimeter.Filter) bool { return f.Key == k }) {
			return unimeter.StatusErr, nil
		}
	}
	return unimeter.StatusOK, nil
}
