package unimeter

import "fmt"

// Dim is one dimension: a property key and a value, each at most 31 bytes (MaxDimKeyLen,
// MaxDimValueLen).
type Dim struct {
	// Key is the property key.
	Key string
	// Value is the property value.
	Value string
}

// UsageQuery is the USAGE_QUERY request: an account's aggregate of one metric over the buckets
// in [Start, End), optionally restricted to a combination of declared filter values.
//
// Layout: account_id u64 @0, period_start i64 @8, period_end i64 @16, metric_code 64 B @24,
// filters_count u8 @88, 7 bytes padding, then filters_count × DimensionFilterWire (292 B) with
// value_count 1 and the value in slot 0.
type UsageQuery struct {
	// Account is the account id.
	Account uint64
	// Start is the inclusive start, in Unix nanoseconds.
	Start int64
	// End is the exclusive end, in Unix nanoseconds.
	End int64
	// Metric is the metric code: non-empty, at most MaxMetricCodeLen bytes.
	Metric string
	// Filters are at most MaxFilters dimensions, each with a non-empty key (the server silently
	// skips a filter with an empty key and would return the unfiltered total).
	Filters []Dim
}

// Offsets in the USAGE_QUERY, USAGE_REALTIME and USAGE_QUERY_BREAKDOWN requests.
const (
	uqStart   = 8
	uqEnd     = 16
	uqMetric  = 24
	uqCount   = 88
	uqPad     = 89
	uqMinSize = 88
	rtMetric  = 8
)

// checkQueryMetric checks the metric code shared by the query requests. Errors are not prefixed.
func checkQueryMetric(metric string) error {
	if metric == "" {
		return fmt.Errorf("metric code: %w", ErrEmpty)
	}
	return checkString("metric code", metric, MaxMetricCodeLen)
}

// putQueryBase writes account, start, end and metric into the zeroed b.
func putQueryBase(b []byte, account uint64, start, end int64, metric string) {
	le.PutUint64(b[0:], account)
	le.PutUint64(b[uqStart:], uint64(start))
	le.PutUint64(b[uqEnd:], uint64(end))
	putString(b[uqMetric:uqMetric+codeWidth], metric)
}

// getQueryMetric reads and checks the metric code of a query request strictly.
func getQueryMetric(f []byte) (string, error) {
	m, err := getString("metric code", f, MaxMetricCodeLen, true)
	if err != nil {
		return "", err
	}
	if m == "" {
		return "", fmt.Errorf("metric code: %w", ErrEmpty)
	}
	return m, nil
}

func checkUsageQuery(q *UsageQuery) error {
	if err := checkQueryMetric(q.Metric); err != nil {
		return err
	}
	if err := checkCount("filters", len(q.Filters), MaxFilters); err != nil {
		return err
	}
	for i, d := range q.Filters {
		if d.Key == "" {
			return fmt.Errorf("filter %d: key: %w", i, ErrEmpty)
		}
		if err := checkString("filter key", d.Key, MaxDimKeyLen); err != nil {
			return fmt.Errorf("filter %d: %w", i, err)
		}
		if err := checkString("filter value", d.Value, MaxDimValueLen); err != nil {
			return fmt.Errorf("filter %d: %w", i, err)
		}
	}
	return nil
}

// AppendUsageQuery appends the USAGE_QUERY payload for q to dst: 96 bytes plus 292 per filter,
// each filter with value_count 1 and its value in slot 0. It refuses an empty or over-long
// metric code, more than MaxFilters filters, an empty filter key and strings that do not fit.
// On error dst is returned unchanged.
func AppendUsageQuery(dst []byte, q *UsageQuery) ([]byte, error) {
	if err := checkUsageQuery(q); err != nil {
		return dst, fmt.Errorf("unimeter: usage query: %w", err)
	}
	dst, b := grow(dst, UsageQueryBaseSize+len(q.Filters)*FilterSize)
	clear(b)
	putQueryBase(b, q.Account, q.Start, q.End, q.Metric)
	b[uqCount] = uint8(len(q.Filters))
	w := b[UsageQueryBaseSize:]
	for _, d := range q.Filters {
		putString(w[:dimKeyWidth], d.Key)
		w[flValueCount] = 1
		putString(w[flValues:flValues+dimValueWidth], d.Value)
		w = w[FilterSize:]
	}
	return dst, nil
}

// DecodeUsageQuery decodes a USAGE_QUERY payload strictly, accepting the short forms the server
// accepts: fewer than 88 bytes fail with ErrTruncated; with exactly 88 bytes filters_count is
// absent and there are no filters; and when the payload is shorter than 96 + filters_count × 292
// the server ignores the filters, so the query decodes without filters (the bytes after the
// base are then not inspected). Otherwise the payload must be exactly that long (ErrLength),
// filters_count at most MaxFilters (ErrTooMany), each filter must have a non-empty key,
// value_count 1 and zero bytes in the other slots, and all padding must be zero.
func DecodeUsageQuery(p []byte) (UsageQuery, error) {
	if len(p) < uqMinSize {
		return UsageQuery{}, fmt.Errorf("unimeter: usage query: %w: %d bytes, want at least %d", ErrTruncated, len(p), uqMinSize)
	}
	q := UsageQuery{
		Account: le.Uint64(p[0:]),
		Start:   int64(le.Uint64(p[uqStart:])),
		End:     int64(le.Uint64(p[uqEnd:])),
	}
	var err error
	if q.Metric, err = getQueryMetric(p[uqMetric : uqMetric+codeWidth]); err != nil {
		return UsageQuery{}, fmt.Errorf("unimeter: usage query: %w", err)
	}
	if len(p) == uqMinSize {
		return q, nil
	}
	fc := int(p[uqCount])
	if err := checkPad("usage query", p[uqPad:min(len(p), UsageQueryBaseSize)]); err != nil {
		return UsageQuery{}, fmt.Errorf("unimeter: usage query: %w", err)
	}
	want := UsageQueryBaseSize + fc*FilterSize
	if len(p) < want {
		return q, nil // the server ignores the filters
	}
	if fc > MaxFilters {
		return UsageQuery{}, fmt.Errorf("unimeter: usage query: %w filters: %d, max %d", ErrTooMany, fc, MaxFilters)
	}
	if len(p) > want {
		return UsageQuery{}, fmt.Errorf("unimeter: usage query: %w: %d bytes for %d filters, want %d", ErrLength, len(p), fc, want)
	}
	if fc == 0 {
		return q, nil
	}
	q.Filters = make([]Dim, fc)
	w := p[UsageQueryBaseSize:]
	for i := range q.Filters {
		if err := parseQueryFilter(&q.Filters[i], w[:FilterSize]); err != nil {
			return UsageQuery{}, fmt.Errorf("unimeter: usage query: filter %d: %w", i, err)
		}
		w = w[FilterSize:]
	}
	return q, nil
}

// parseQueryFilter reads a USAGE_QUERY filter strictly: non-empty key, value_count 1, the
// value in slot 0 and zeros elsewhere.
func parseQueryFilter(d *Dim, w []byte) error {
	var err error
	if d.Key, err = getString("filter key", w[:dimKeyWidth], MaxDimKeyLen, true); err != nil {
		return err
	}
	if d.Key == "" {
		return fmt.Errorf("key: %w", ErrEmpty)
	}
	if w[flValueCount] != 1 {
		return fmt.Errorf("value_count %d: %w (want 1)", w[flValueCount], ErrInvalid)
	}
	if err := checkPad("filter", w[flPad:flValues]); err != nil {
		return err
	}
	if d.Value, err = getString("filter value", w[flValues:flValues+dimValueWidth], MaxDimValueLen, true); err != nil {
		return err
	}
	return checkPad("unused filter values", w[flValues+dimValueWidth:FilterSize])
}

// AggValue is the AggValueWire reply of USAGE_QUERY and USAGE_REALTIME (56 bytes): sum_lo u64
// @0, sum_hi u64 @8, count u64 @16, max u64 @24, last_value u64 @32, last_timestamp i64 @40,
// alert_flags u64 @48. Which field carries the answer depends on the metric's AggType.
type AggValue struct {
	// SumLo is the low 64 bits of the u128 sum (AggSum).
	SumLo uint64
	// SumHi is the high 64 bits of the u128 sum.
	SumHi uint64
	// Count is the number of events (AggCount) or distinct values (AggCountUnique); 0 for AggSum.
	Count uint64
	// Max is the largest value (AggMax).
	Max uint64
	// LastValue is the value with the greatest timestamp (AggLatest).
	LastValue uint64
	// LastTimestamp is the timestamp of LastValue, in Unix nanoseconds.
	LastTimestamp int64
	// AlertFlags has bit i set when threshold i was crossed.
	AlertFlags uint64
}

// putAggValue writes v into b (at least AggValueSize bytes).
func putAggValue(b []byte, v *AggValue) {
	le.PutUint64(b[0:], v.SumLo)
	le.PutUint64(b[8:], v.SumHi)
	le.PutUint64(b[16:], v.Count)
	le.PutUint64(b[24:], v.Max)
	le.PutUint64(b[32:], v.LastValue)
	le.PutUint64(b[40:], uint64(v.LastTimestamp))
	le.PutUint64(b[48:], v.AlertFlags)
}

// getAggValue reads an AggValue from b (at least AggValueSize bytes).
func getAggValue(b []byte) AggValue {
	return AggValue{
		SumLo:         le.Uint64(b[0:]),
		SumHi:         le.Uint64(b[8:]),
		Count:         le.Uint64(b[16:]),
		Max:           le.Uint64(b[24:]),
		LastValue:     le.Uint64(b[32:]),
		LastTimestamp: int64(le.Uint64(b[40:])),
		AlertFlags:    le.Uint64(b[48:]),
	}
}

// AppendAggValue appends the 56-byte encoding of v to dst.
func AppendAggValue(dst []byte, v AggValue) []byte {
	dst, b := grow(dst, AggValueSize)
	putAggValue(b, &v)
	return dst
}

// DecodeAggValue decodes a USAGE_QUERY or USAGE_REALTIME reply payload of exactly AggValueSize
// bytes.
func DecodeAggValue(p []byte) (AggValue, error) {
	if err := exactLen("agg value", p, AggValueSize); err != nil {
		return AggValue{}, err
	}
	return getAggValue(p), nil
}

// RealtimeQuery is the USAGE_REALTIME request (72 bytes): account_id u64 @0, metric_code 64 B
// @8. The server answers with the unfiltered aggregate of the bucket containing its current time.
type RealtimeQuery struct {
	// Account is the account id.
	Account uint64
	// Metric is the metric code: non-empty, at most MaxMetricCodeLen bytes.
	Metric string
}

// AppendUsageRealtime appends the 72-byte USAGE_REALTIME payload for q to dst. It refuses an
// empty or over-long metric code; on error dst is returned unchanged.
func AppendUsageRealtime(dst []byte, q RealtimeQuery) ([]byte, error) {
	if err := checkQueryMetric(q.Metric); err != nil {
		return dst, fmt.Errorf("unimeter: usage realtime: %w", err)
	}
	dst, b := grow(dst, UsageRealtimeSize)
	clear(b)
	le.PutUint64(b[0:], q.Account)
	putString(b[rtMetric:], q.Metric)
	return dst, nil
}

// DecodeUsageRealtime decodes a USAGE_REALTIME payload strictly: exactly UsageRealtimeSize bytes
// with a non-empty metric code followed by zero bytes.
func DecodeUsageRealtime(p []byte) (RealtimeQuery, error) {
	if err := exactLen("usage realtime", p, UsageRealtimeSize); err != nil {
		return RealtimeQuery{}, err
	}
	m, err := getQueryMetric(p[rtMetric:])
	if err != nil {
		return RealtimeQuery{}, fmt.Errorf("unimeter: usage realtime: %w", err)
	}
	return RealtimeQuery{Account: le.Uint64(p[0:]), Metric: m}, nil
}

// BreakdownQuery is the USAGE_QUERY_BREAKDOWN request: an account's aggregates over
// [Start, End) split by the declared values of the GroupBy keys.
//
// Layout: account_id u64 @0, period_start i64 @8, period_end i64 @16, metric_code 64 B @24,
// group_by_count u8 @88, 7 bytes padding, then group_by_count keys of 32 B each @96.
type BreakdownQuery struct {
	// Account is the account id.
	Account uint64
	// Start is the inclusive start, in Unix nanoseconds.
	Start int64
	// End is the exclusive end, in Unix nanoseconds.
	End int64
	// Metric is the metric code: non-empty, at most MaxMetricCodeLen bytes.
	Metric string
	// GroupBy are 1..MaxGroupBy non-empty keys, each a declared filter key of the metric and at
	// most MaxDimKeyLen bytes.
	GroupBy []string
}

func checkBreakdownQuery(q *BreakdownQuery) error {
	if err := checkQueryMetric(q.Metric); err != nil {
		return err
	}
	if len(q.GroupBy) == 0 {
		return fmt.Errorf("group-by keys: %w", ErrEmpty)
	}
	if err := checkCount("group-by keys", len(q.GroupBy), MaxGroupBy); err != nil {
		return err
	}
	for i, k := range q.GroupBy {
		if k == "" {
			return fmt.Errorf("group-by key %d: %w", i, ErrEmpty)
		}
		if err := checkString("group-by key", k, MaxDimKeyLen); err != nil {
			return fmt.Errorf("group-by key %d: %w", i, err)
		}
	}
	return nil
}

// AppendBreakdownQuery appends the USAGE_QUERY_BREAKDOWN payload for q to dst (96 bytes plus
// 32 per key). It refuses an empty or over-long metric code, zero or more than MaxGroupBy keys
// (ErrEmpty, ErrTooMany), an empty key and strings that do not fit. On error dst is returned
// unchanged.
func AppendBreakdownQuery(dst []byte, q *BreakdownQuery) ([]byte, error) {
	if err := checkBreakdownQuery(q); err != nil {
		return dst, fmt.Errorf("unimeter: breakdown query: %w", err)
	}
	dst, b := grow(dst, UsageQueryBaseSize+len(q.GroupBy)*GroupByKeySize)
	clear(b)
	putQueryBase(b, q.Account, q.Start, q.End, q.Metric)
	b[uqCount] = uint8(len(q.GroupBy))
	w := b[UsageQueryBaseSize:]
	for _, k := range q.GroupBy {
		putString(w[:GroupByKeySize], k)
		w = w[GroupByKeySize:]
	}
	return dst, nil
}

// DecodeBreakdownQuery decodes a USAGE_QUERY_BREAKDOWN payload strictly: fewer than 96 bytes fail
// with ErrTruncated, group_by_count 0 with ErrEmpty and above MaxGroupBy with ErrTooMany, a length
// other than 96 + count × 32 with ErrTruncated or ErrLength; the metric code and keys must be
// non-empty and all padding zero.
func DecodeBreakdownQuery(p []byte) (BreakdownQuery, error) {
	if len(p) < UsageQueryBaseSize {
		return BreakdownQuery{}, fmt.Errorf("unimeter: breakdown query: %w: %d bytes, want at least %d", ErrTruncated, len(p), UsageQueryBaseSize)
	}
	q := BreakdownQuery{
		Account: le.Uint64(p[0:]),
		Start:   int64(le.Uint64(p[uqStart:])),
		End:     int64(le.Uint64(p[uqEnd:])),
	}
	var err error
	if q.Metric, err = getQueryMetric(p[uqMetric : uqMetric+codeWidth]); err != nil {
		return BreakdownQuery{}, fmt.Errorf("unimeter: breakdown query: %w", err)
	}
	gc := int(p[uqCount])
	if gc == 0 {
		return BreakdownQuery{}, fmt.Errorf("unimeter: breakdown query: group-by keys: %w", ErrEmpty)
	}
	if gc > MaxGroupBy {
		return BreakdownQuery{}, fmt.Errorf("unimeter: breakdown query: %w group-by keys: %d, max %d", ErrTooMany, gc, MaxGroupBy)
	}
	if err := checkPad("breakdown query", p[uqPad:UsageQueryBaseSize]); err != nil {
		return BreakdownQuery{}, fmt.Errorf("unimeter: breakdown query: %w", err)
	}
	if err := exactLen("breakdown query", p, UsageQueryBaseSize+gc*GroupByKeySize); err != nil {
		return BreakdownQuery{}, err
	}
	q.GroupBy = make([]string, gc)
	w := p[UsageQueryBaseSize:]
	for i := range q.GroupBy {
		k, err := getString("group-by key", w[:GroupByKeySize], MaxDimKeyLen, true)
		if err != nil {
			return BreakdownQuery{}, fmt.Errorf("unimeter: breakdown query: group-by key %d: %w", i, err)
		}
		if k == "" {
			return BreakdownQuery{}, fmt.Errorf("unimeter: breakdown query: group-by key %d: %w", i, ErrEmpty)
		}
		q.GroupBy[i] = k
		w = w[GroupByKeySize:]
	}
	return q, nil
}

// BreakdownEntry is one BreakdownEntryWire of the USAGE_QUERY_BREAKDOWN reply (320 bytes):
// dims_count u8 @0, 7 bytes padding, dim_keys 4 × 32 B @8, dim_values 4 × 32 B @136, then the
// AggValueWire fields @264.
type BreakdownEntry struct {
	// Dims are the entry's dimension values, one per group-by key in request order, at most
	// MaxGroupBy.
	Dims []Dim
	// Value is the aggregate of that combination.
	Value AggValue
}

// Offsets in a BreakdownEntryWire.
const (
	beKeys   = 8
	beValues = beKeys + MaxGroupBy*dimKeyWidth
	beAgg    = beValues + MaxGroupBy*dimValueWidth
)

// AppendBreakdown appends the USAGE_QUERY_BREAKDOWN reply payload to dst: the entries, 320 bytes
// each, without a count header. It refuses more than MaxBreakdownEntries entries, more than
// MaxGroupBy dims in an entry and strings that do not fit. On error dst is returned unchanged.
func AppendBreakdown(dst []byte, entries []BreakdownEntry) ([]byte, error) {
	if err := checkCount("breakdown entries", len(entries), MaxBreakdownEntries); err != nil {
		return dst, fmt.Errorf("unimeter: breakdown: %w", err)
	}
	for i := range entries {
		e := &entries[i]
		if err := checkCount("dims", len(e.Dims), MaxGroupBy); err != nil {
			return dst, fmt.Errorf("unimeter: breakdown: entry %d: %w", i, err)
		}
		for j, d := range e.Dims {
			if err := checkString("dim key", d.Key, MaxDimKeyLen); err != nil {
				return dst, fmt.Errorf("unimeter: breakdown: entry %d: dim %d: %w", i, j, err)
			}
			if err := checkString("dim value", d.Value, MaxDimValueLen); err != nil {
				return dst, fmt.Errorf("unimeter: breakdown: entry %d: dim %d: %w", i, j, err)
			}
		}
	}
	dst, b := grow(dst, len(entries)*BreakdownEntrySize)
	clear(b)
	for i := range entries {
		e := &entries[i]
		w := b[i*BreakdownEntrySize : (i+1)*BreakdownEntrySize]
		w[0] = uint8(len(e.Dims))
		for j, d := range e.Dims {
			putString(w[beKeys+j*dimKeyWidth:beKeys+(j+1)*dimKeyWidth], d.Key)
			putString(w[beValues+j*dimValueWidth:beValues+(j+1)*dimValueWidth], d.Value)
		}
		putAggValue(w[beAgg:], &e.Value)
	}
	return dst, nil
}

// DecodeBreakdown decodes a USAGE_QUERY_BREAKDOWN reply payload leniently (padding, unused dim
// slots and bytes after a string's NUL are ignored). The length must be a multiple of
// BreakdownEntrySize (ErrLength) with at most MaxBreakdownEntries entries (ErrTooMany), and
// dims_count at most MaxGroupBy (ErrTooMany). An empty payload decodes as nil, as do the Dims of
// an entry with dims_count 0.
func DecodeBreakdown(p []byte) ([]BreakdownEntry, error) {
	if len(p)%BreakdownEntrySize != 0 {
		return nil, fmt.Errorf("unimeter: breakdown: %w: %d bytes is not a multiple of %d", ErrLength, len(p), BreakdownEntrySize)
	}
	n := len(p) / BreakdownEntrySize
	if n > MaxBreakdownEntries {
		return nil, fmt.Errorf("unimeter: breakdown: %w entries: %d, max %d", ErrTooMany, n, MaxBreakdownEntries)
	}
	if n == 0 {
		return nil, nil
	}
	entries := make([]BreakdownEntry, n)
	for i := range entries {
		e := &entries[i]
		w := p[i*BreakdownEntrySize : (i+1)*BreakdownEntrySize]
		dc := int(w[0])
		if dc > MaxGroupBy {
			return nil, fmt.Errorf("unimeter: breakdown: entry %d: %w dims: %d, max %d", i, ErrTooMany, dc, MaxGroupBy)
		}
		if dc > 0 {
			e.Dims = make([]Dim, dc)
		}
		for j := range e.Dims {
			d := &e.Dims[j]
			var err error
			if d.Key, err = getString("dim key", w[beKeys+j*dimKeyWidth:beKeys+(j+1)*dimKeyWidth], MaxDimKeyLen, false); err != nil {
				return nil, fmt.Errorf("unimeter: breakdown: entry %d: dim %d: %w", i, j, err)
			}
			if d.Value, err = getString("dim value", w[beValues+j*dimValueWidth:beValues+(j+1)*dimValueWidth], MaxDimValueLen, false); err != nil {
				return nil, fmt.Errorf("unimeter: breakdown: entry %d: dim %d: %w", i, j, err)
			}
		}
		e.Value = getAggValue(w[beAgg:])
	}
	return entries, nil
}
