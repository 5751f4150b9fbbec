// Package unimeter is the binary wire codec of the Unimeter usage-metering server
// (research/unimeter.md §1): request and response headers, and the payloads of the packets a
// billing client and the test fake server exchange.
//
// Layout rules: every integer is little-endian with a fixed width, and every string is a
// fixed-width field padded with NUL bytes. The codec never truncates: a string that does not fit
// its field (metric codes and field names leave room for a terminating NUL, so at most 63 bytes
// in a 64-byte field; keys, dimension values and threshold codes at most 31 in a 32-byte field;
// addresses may fill all 24 bytes) or that contains a NUL byte is an error, and so is any count
// above the server's caps (filters, values per filter, thresholds, events, props, group-by keys).
//
// Encoders are Append functions that append to a caller-supplied buffer; on error they return
// dst unchanged. AppendIngest does not allocate once dst has enough capacity.
//
// Decoders come in two flavours:
//   - request decoders (DecodeRequestHeader, DecodeIngest, DecodeMetricPut, DecodeMetricDelete,
//     DecodeUsageQuery, DecodeUsageRealtime, DecodeBreakdownQuery) are strict: they serve the
//     fake server and accept exactly what this package's encoders produce (exact lengths, zero
//     padding, nothing after a string's terminating NUL, booleans 0 or 1). Re-encoding what they
//     return gives back the input bytes.
//   - reply decoders (DecodeResponseHeader, DecodeIngestResult, DecodeMetricList, DecodeAggValue,
//     DecodeBreakdown, DecodePartitionMap, DecodeClusterStatus, DecodeRedirect) parse what a real
//     server sends: they insist on exact lengths, counts that fit, and strings that fit the
//     codec's own limits, but ignore the contents of padding and bytes after a string's NUL, and
//     read any non-zero boolean byte as true.
//
// Every decoder checks lengths and counts before allocating, so it never allocates more than
// the input's length implies.
package unimeter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Magic is the first field of every request header (on the wire: 01 EE FF C0).
const Magic uint32 = 0xC0FFEE01

// Version is the only protocol version the server accepts.
const Version uint8 = 1

// Frame sizes and the payload limit.
const (
	// RequestHeaderSize is the size of a request header.
	RequestHeaderSize = 16
	// ResponseHeaderSize is the size of a response header.
	ResponseHeaderSize = 12
	// MaxPayload is the largest payload_len the server accepts (8 + 1024×96 + 1024×96). The
	// server answers a larger one with ERR without reading the body.
	MaxPayload = 196_616
)

// Partitioning.
const (
	// Partitions is the fixed number of partitions.
	Partitions = 256
	// PartitionAll is the request-header partition value meaning "unspecified"; the server
	// checks ingest leadership against partition 0 for it.
	PartitionAll uint16 = 0xFFFF
)

// Partition returns the partition of an account: account % 256, without hashing.
func Partition(account uint64) uint16 { return uint16(account % Partitions) }

// Server caps. Exceeding them makes the real server misread or ignore data, so the codec refuses.
const (
	// MaxEvents is the largest number of events in one ingest payload.
	MaxEvents = 1024
	// MaxProps is the largest number of props in one ingest payload.
	MaxProps = 1024
	// MaxPropsPerEvent is the largest number of props on one event (the count is one byte).
	MaxPropsPerEvent = 255
	// MaxFilters is the largest number of dimension filters in a schema or a usage query.
	MaxFilters = 4
	// MaxFilterValues is the largest number of declared values of one schema filter.
	MaxFilterValues = 8
	// MaxThresholds is the largest number of alert thresholds in a schema.
	MaxThresholds = 8
	// MaxGroupBy is the largest number of group-by keys in a breakdown query (the least is 1).
	MaxGroupBy = 4
	// MaxBreakdownEntries is the largest number of breakdown entries that fit in MaxPayload.
	MaxBreakdownEntries = MaxPayload / BreakdownEntrySize
	// MaxCycleDay is the largest billing cycle day the codec sends (the server documents 1–28
	// and treats 0 as 1, but does not check the upper bound).
	MaxCycleDay = 28
)

// Longest strings, in bytes. Fields of 64 and 32 bytes keep room for a terminating NUL;
// addresses may fill their whole field.
const (
	// MaxMetricCodeLen is the longest metric code (64-byte field).
	MaxMetricCodeLen = 63
	// MaxFieldNameLen is the longest schema field name (64-byte field).
	MaxFieldNameLen = 63
	// MaxPropKeyLen is the longest event property key (32-byte field).
	MaxPropKeyLen = 31
	// MaxPropValueLen is the longest event property value (64-byte field).
	MaxPropValueLen = 63
	// MaxDimKeyLen is the longest dimension key in filters, group-by keys and breakdown entries
	// (32-byte field).
	MaxDimKeyLen = 31
	// MaxDimValueLen is the longest dimension value in filters and breakdown entries (32-byte
	// field). A prop value longer than this can never match a declared filter value.
	MaxDimValueLen = 31
	// MaxThresholdCodeLen is the longest alert threshold code (32-byte field).
	MaxThresholdCodeLen = 31
	// MaxAddrLen is the longest "host:port" address (24-byte field, no NUL needed).
	MaxAddrLen = 24
)

// Payload and record sizes.
const (
	// IngestHeaderSize is the size of the ingest payload header (event_count, props_count).
	IngestHeaderSize = 8
	// WireEventSize is the size of one event in an ingest payload.
	WireEventSize = 96
	// PropPairSize is the size of one property in an ingest payload.
	PropPairSize = 96
	// IngestResultSize is the size of the ingest reply payload.
	IngestResultSize = 16
	// SchemaBaseSize is the size of the fixed part of a METRIC_PUT payload or METRIC_LIST record.
	SchemaBaseSize = 132
	// FilterSize is the size of one DimensionFilterWire.
	FilterSize = 292
	// ThresholdsHeaderSize is the size of the thresholds section header (count and padding).
	ThresholdsHeaderSize = 8
	// ThresholdSize is the size of one AlertThresholdWire.
	ThresholdSize = 48
	// PeriodSectionSize is the size of the period section of a schema.
	PeriodSectionSize = 8
	// MinSchemaSize is the size of a schema without filters and thresholds.
	MinSchemaSize = SchemaBaseSize + ThresholdsHeaderSize + PeriodSectionSize
	// MetricListHeaderSize is the size of the METRIC_LIST reply header (count, padding).
	MetricListHeaderSize = 8
	// MetricDeleteSize is the size of the METRIC_DELETE payload (the code).
	MetricDeleteSize = 64
	// UsageQueryBaseSize is the size of a USAGE_QUERY or USAGE_QUERY_BREAKDOWN request without
	// filters or group-by keys.
	UsageQueryBaseSize = 96
	// UsageRealtimeSize is the size of a USAGE_REALTIME request.
	UsageRealtimeSize = 72
	// GroupByKeySize is the size of one group-by key in a breakdown request.
	GroupByKeySize = 32
	// AggValueSize is the size of an AggValueWire (USAGE_QUERY and USAGE_REALTIME replies).
	AggValueSize = 56
	// BreakdownEntrySize is the size of one BreakdownEntryWire.
	BreakdownEntrySize = 320
	// PartitionEntrySize is the size of one partition's entry in the partition map.
	PartitionEntrySize = 96
	// PartitionMapSize is the size of the GET_PARTITION_MAP reply.
	PartitionMapSize = Partitions * PartitionEntrySize
	// ClusterStatusHeaderSize is the size of the node part of the CLUSTER_STATUS reply.
	ClusterStatusHeaderSize = 40
	// PartitionStatusSize is the size of one partition's entry in the CLUSTER_STATUS reply.
	PartitionStatusSize = 8
	// ClusterStatusSize is the size of the CLUSTER_STATUS reply.
	ClusterStatusSize = ClusterStatusHeaderSize + Partitions*PartitionStatusSize
	// RedirectSize is the size of a REDIRECT reply payload (the leader's address).
	RedirectSize = 24
)

// Field widths of strings.
const (
	codeWidth      = 64
	fieldNameWidth = 64
	propKeyWidth   = 32
	propValueWidth = 64
	dimKeyWidth    = 32
	dimValueWidth  = 32
	thrCodeWidth   = 32
	addrWidth      = 24
)

// PacketType is the packet_type byte of a request header. For server pushes it travels in the
// status byte of the response header.
type PacketType uint8

// Packet types. The codec implements payloads for ingest, partition map, metric put/delete/list,
// usage query/realtime/breakdown and cluster status; the others are listed for completeness.
const (
	// PacketIngestAsync ingests events without fsync.
	PacketIngestAsync PacketType = 0x00
	// PacketIngestSync ingests events and replies after the WAL fsync.
	PacketIngestSync PacketType = 0x01
	// PacketGetPartitionMap asks for the partition map.
	PacketGetPartitionMap PacketType = 0x10
	// PacketPartitionMapUpdate is defined by the server but never sent.
	PacketPartitionMapUpdate PacketType = 0x11
	// PacketMetricPut creates or replaces a metric schema.
	PacketMetricPut PacketType = 0x20
	// PacketMetricDelete removes a metric schema.
	PacketMetricDelete PacketType = 0x21
	// PacketMetricList lists the metric schemas.
	PacketMetricList PacketType = 0x22
	// PacketUsageQuery asks for an account's aggregate over a period range.
	PacketUsageQuery PacketType = 0x30
	// PacketUsageRealtime asks for the aggregate of the bucket containing the server's now.
	PacketUsageRealtime PacketType = 0x31
	// PacketEventsList lists stored events (payload not implemented here).
	PacketEventsList PacketType = 0x32
	// PacketAlertsList lists logged alerts (payload not implemented here).
	PacketAlertsList PacketType = 0x33
	// PacketAlertPushEnable subscribes the connection to alert pushes.
	PacketAlertPushEnable PacketType = 0x34
	// PacketAlertPush is a server push; it appears in the status byte with request id 0.
	PacketAlertPush PacketType = 0x35
	// PacketUsageQueryBreakdown asks for per-dimension aggregates.
	PacketUsageQueryBreakdown PacketType = 0x36
	// PacketClusterStatus asks for the node's cluster status.
	PacketClusterStatus PacketType = 0x40
	// PacketClusterRebalance is an admin request that moves partitions; clients must not send it.
	PacketClusterRebalance PacketType = 0x41
	// PacketTransferStart is defined by the server but answered with ERR.
	PacketTransferStart PacketType = 0x42
	// PacketTransferChunk is defined by the server but answered with ERR.
	PacketTransferChunk PacketType = 0x43
	// PacketTransferDone is defined by the server but answered with ERR.
	PacketTransferDone PacketType = 0x44
)

var packetNames = map[PacketType]string{
	PacketIngestAsync:         "INGEST_ASYNC",
	PacketIngestSync:          "INGEST_SYNC",
	PacketGetPartitionMap:     "GET_PARTITION_MAP",
	PacketPartitionMapUpdate:  "PARTITION_MAP_UPD",
	PacketMetricPut:           "METRIC_PUT",
	PacketMetricDelete:        "METRIC_DELETE",
	PacketMetricList:          "METRIC_LIST",
	PacketUsageQuery:          "USAGE_QUERY",
	PacketUsageRealtime:       "USAGE_REALTIME",
	PacketEventsList:          "EVENTS_LIST",
	PacketAlertsList:          "ALERTS_LIST",
	PacketAlertPushEnable:     "ALERT_PUSH_ENABLE",
	PacketAlertPush:           "ALERT_PUSH",
	PacketUsageQueryBreakdown: "USAGE_QUERY_BREAKDOWN",
	PacketClusterStatus:       "CLUSTER_STATUS",
	PacketClusterRebalance:    "CLUSTER_REBALANCE",
	PacketTransferStart:       "TRANSFER_START",
	PacketTransferChunk:       "TRANSFER_CHUNK",
	PacketTransferDone:        "TRANSFER_DONE",
}

// String returns the protocol name of the packet type, or PacketType(0xNN) for unknown values.
func (t PacketType) String() string {
	if s, ok := packetNames[t]; ok {
		return s
	}
	return "PacketType(" + hexByte(uint8(t)) + ")"
}

// Status is the status byte of a response header.
type Status uint8

// Reply statuses.
const (
	// StatusOK is success.
	StatusOK Status = 0
	// StatusDuplicate means an ingest stored nothing and at least one event was a duplicate.
	StatusDuplicate Status = 1
	// StatusErr is a generic error (bad header, short payload, unknown packet, ...).
	StatusErr Status = 2
	// StatusUnknownMetric means an ingest stored events whose metric is not registered; they
	// will never be aggregated.
	StatusUnknownMetric Status = 3
	// StatusRedirect means the node does not lead the header's partition; the payload is the
	// leader's address (see DecodeRedirect).
	StatusRedirect Status = 4
	// StatusNotLeader is defined by the server but not emitted by the examined versions.
	StatusNotLeader Status = 5
	// StatusBackpressure means the node is short of disk space; retry later.
	StatusBackpressure Status = 6
)

var statusNames = [...]string{"OK", "DUPLICATE", "ERR", "UNKNOWN_METRIC", "REDIRECT", "NOT_LEADER", "BACKPRESSURE"}

// String returns the protocol name of the status, or Status(0xNN) for unknown values.
func (s Status) String() string {
	return enumName(statusNames[:], uint8(s), "Status")
}

// AggType is a metric's aggregation type.
type AggType uint8

// Aggregation types.
const (
	// AggCount counts events (result in AggValue.Count).
	AggCount AggType = 0
	// AggSum adds values (result in AggValue.SumHi:SumLo; Count stays 0).
	AggSum AggType = 1
	// AggMax keeps the largest value (result in AggValue.Max).
	AggMax AggType = 2
	// AggLatest keeps the value with the greatest timestamp (AggValue.LastValue, LastTimestamp).
	AggLatest AggType = 3
	// AggCountUnique counts distinct values per bucket (result in AggValue.Count).
	AggCountUnique AggType = 4
)

var aggNames = [...]string{"COUNT", "SUM", "MAX", "LATEST", "COUNT_UNIQUE"}

// String returns the protocol name of the aggregation type, or AggType(0xNN).
func (a AggType) String() string {
	return enumName(aggNames[:], uint8(a), "AggType")
}

// PeriodType is a metric's bucketing scheme.
type PeriodType uint8

// Period types.
const (
	// PeriodFixed buckets by 30-day windows aligned to the Unix epoch.
	PeriodFixed PeriodType = 0
	// PeriodCalendar buckets by UTC calendar months starting on the billing cycle day.
	PeriodCalendar PeriodType = 1
	// PeriodDay buckets by UTC days.
	PeriodDay PeriodType = 2
	// PeriodWeek buckets by ISO weeks (Monday 00:00 UTC). Servers that predate it silently
	// treat it as PeriodFixed; check METRIC_LIST echoes it.
	PeriodWeek PeriodType = 3
)

var periodNames = [...]string{"FIXED", "CALENDAR", "DAY", "WEEK"}

// String returns the protocol name of the period type, or PeriodType(0xNN).
func (p PeriodType) String() string {
	return enumName(periodNames[:], uint8(p), "PeriodType")
}

// Event operation types (meaningful only for AggCountUnique).
const (
	// OpNone inserts the value (same as OpAdd).
	OpNone uint8 = 0
	// OpAdd inserts the value into the bucket's set.
	OpAdd uint8 = 1
	// OpRemove removes the value from the bucket's set.
	OpRemove uint8 = 2
)

// Partition roles in the CLUSTER_STATUS reply.
const (
	// RoleLeader means the node leads the partition.
	RoleLeader uint8 = 0
	// RoleReplica means the node is a replica of the partition.
	RoleReplica uint8 = 1
)

// The reasons an encoder or decoder fails. Errors returned by this package wrap one of these
// (test with errors.Is) and say which field was at fault.
var (
	// ErrBadMagic means a request header does not start with Magic.
	ErrBadMagic = errors.New("bad magic")
	// ErrBadVersion means a request header's version is not Version.
	ErrBadVersion = errors.New("unsupported protocol version")
	// ErrPayloadTooLarge means a payload is longer than MaxPayload.
	ErrPayloadTooLarge = errors.New("payload larger than 196616 bytes")
	// ErrTruncated means the input ends before the layout does.
	ErrTruncated = errors.New("truncated")
	// ErrLength means the input's length disagrees with the layout or with the counts it
	// declares (trailing bytes, a count that does not fit, not a whole number of records).
	ErrLength = errors.New("length does not match the layout")
	// ErrTooLong means a string does not fit its fixed-width field.
	ErrTooLong = errors.New("string too long for its field")
	// ErrNUL means a string contains a NUL byte, which the server would read as its end.
	ErrNUL = errors.New("string contains a NUL byte")
	// ErrEmpty means a string or list that must not be empty is empty.
	ErrEmpty = errors.New("empty")
	// ErrTooMany means a count exceeds the server's cap.
	ErrTooMany = errors.New("too many")
	// ErrInvalid means a field holds a value the protocol does not allow (a partition ≥ 256,
	// an unknown enum value, non-zero padding, inconsistent counts, ...).
	ErrInvalid = errors.New("invalid value")
)

var le = binary.LittleEndian

// grow extends dst by n bytes and returns the extended slice and the new n-byte tail. The tail
// holds whatever the spare capacity held; callers clear it.
func grow(dst []byte, n int) (all, tail []byte) {
	l := len(dst)
	dst = slices.Grow(dst, n)[:l+n]
	return dst, dst[l:]
}

// checkString reports whether s fits a field that holds at most maxLen bytes.
func checkString(what, s string, maxLen int) error {
	if len(s) > maxLen {
		return fmt.Errorf("%s %q: %w (%d bytes, max %d)", what, s, ErrTooLong, len(s), maxLen)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s %q: %w", what, s, ErrNUL)
	}
	return nil
}

// checkCount reports whether n is at most maxN.
func checkCount(what string, n, maxN int) error {
	if n > maxN {
		return fmt.Errorf("%w %s: %d, max %d", ErrTooMany, what, n, maxN)
	}
	return nil
}

// putString writes s into the zeroed field f. The caller has checked it with checkString.
func putString(f []byte, s string) { copy(f, s) }

// getString reads a NUL-padded string of at most maxLen bytes from the field f. In strict mode
// every byte after the terminating NUL must be zero.
func getString(what string, f []byte, maxLen int, strict bool) (string, error) {
	n := bytes.IndexByte(f, 0)
	if n < 0 {
		n = len(f)
	}
	if n > maxLen {
		return "", fmt.Errorf("%s: %w (%d bytes, max %d)", what, ErrTooLong, n, maxLen)
	}
	if strict && !allZero(f[n:]) {
		return "", fmt.Errorf("%s: %w: non-zero bytes after the terminating NUL", what, ErrInvalid)
	}
	if n == 0 {
		return "", nil
	}
	return string(f[:n]), nil
}

// allZero reports whether every byte of b is zero.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// checkPad reports non-zero padding (strict decoders only).
func checkPad(what string, b []byte) error {
	if !allZero(b) {
		return fmt.Errorf("%s: %w: non-zero padding", what, ErrInvalid)
	}
	return nil
}

// getBool reads a boolean byte: strictly 0 or 1, or leniently any non-zero value as true.
func getBool(what string, c byte, strict bool) (bool, error) {
	if strict && c > 1 {
		return false, fmt.Errorf("%s: %w: boolean byte %d", what, ErrInvalid, c)
	}
	return c != 0, nil
}

func putBool(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// exactLen reports whether b is exactly n bytes long.
func exactLen(what string, b []byte, n int) error {
	switch {
	case len(b) < n:
		return fmt.Errorf("unimeter: %s: %w: %d bytes, want %d", what, ErrTruncated, len(b), n)
	case len(b) > n:
		return fmt.Errorf("unimeter: %s: %w: %d bytes, want %d", what, ErrLength, len(b), n)
	}
	return nil
}

// enumName returns names[v], or typ(0xNN) for a value without a name.
func enumName(names []string, v uint8, typ string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return typ + "(" + hexByte(v) + ")"
}

func hexByte(b uint8) string {
	s := strconv.FormatUint(uint64(b), 16)
	if len(s) == 1 {
		s = "0" + s
	}
	return "0x" + s
}
