package unimeter

import "fmt"

// Filter is one declared dimension of a metric schema: a property key and the values whose
// aggregates the server keeps separately.
//
// DimensionFilterWire layout (292 bytes): key 32 B @0, value_count u8 @32, 3 bytes padding,
// values 8 × 32 B @36 (the first value_count used, NUL-padded).
type Filter struct {
	// Key is the property key, at most MaxDimKeyLen bytes.
	Key string
	// Values are the declared values, at most MaxFilterValues, each at most MaxDimValueLen
	// bytes.
	Values []string
}

// Threshold is one alert threshold of a metric schema.
//
// AlertThresholdWire layout (48 bytes): code 32 B @0, value u64 @32, recurring u8 @40, 7 bytes
// padding.
type Threshold struct {
	// Code labels the threshold (for example "soft_cap"), at most MaxThresholdCodeLen bytes.
	Code string
	// Value is the threshold, in the units of the aggregate.
	Value uint64
	// Recurring makes the alert fire again on every update while the aggregate is above Value.
	Recurring bool
}

// Schema is a metric definition: the METRIC_PUT request payload and one METRIC_LIST record.
//
// Layout: base (132 bytes: code 64 B @0, agg_type u8 @64, recurring u8 @65, filter_count u8 @66,
// 1 byte padding, field_name 64 B @68), then filter_count × DimensionFilterWire (292 B), then
// the thresholds section (count u8, 7 bytes padding, count × AlertThresholdWire of 48 B), then
// the period section (period_type u8, billing_cycle_day u8, 6 bytes padding).
type Schema struct {
	// Code is the metric code: non-empty, at most MaxMetricCodeLen bytes.
	Code string
	// Agg is the aggregation type.
	Agg AggType
	// Recurring is stored by the server but has no effect on aggregation.
	Recurring bool
	// FieldName is stored and listed by the server but has no effect, at most MaxFieldNameLen
	// bytes.
	FieldName string
	// Filters are the declared dimensions, at most MaxFilters.
	Filters []Filter
	// Thresholds are the alert thresholds, at most MaxThresholds.
	Thresholds []Threshold
	// Period is the bucketing scheme.
	Period PeriodType
	// CycleDay is the billing cycle day for PeriodCalendar, at most MaxCycleDay (the server
	// treats 0 as 1).
	CycleDay uint8
}

// Offsets in the schema base, a filter, a threshold and the period section.
const (
	scAgg         = 64
	scRecurring   = 65
	scFilterCount = 66
	scPad         = 67
	scFieldName   = 68

	flValueCount = 32
	flPad        = 33
	flValues     = 36

	thValue     = 32
	thRecurring = 40
	thPad       = 41

	pdCycleDay = 1
	pdPad      = 2
)

// checkSchema checks s against the codec's limits. Errors are not prefixed.
func checkSchema(s *Schema) error {
	if s.Code == "" {
		return fmt.Errorf("metric code: %w", ErrEmpty)
	}
	if err := checkString("metric code", s.Code, MaxMetricCodeLen); err != nil {
		return err
	}
	if s.Agg > AggCountUnique {
		return fmt.Errorf("agg type %d: %w", s.Agg, ErrInvalid)
	}
	if err := checkString("field name", s.FieldName, MaxFieldNameLen); err != nil {
		return err
	}
	if err := checkCount("filters", len(s.Filters), MaxFilters); err != nil {
		return err
	}
	for i := range s.Filters {
		f := &s.Filters[i]
		if err := checkString("filter key", f.Key, MaxDimKeyLen); err != nil {
			return fmt.Errorf("filter %d: %w", i, err)
		}
		if err := checkCount("filter values", len(f.Values), MaxFilterValues); err != nil {
			return fmt.Errorf("filter %d: %w", i, err)
		}
		for j, v := range f.Values {
			if err := checkString("filter value", v, MaxDimValueLen); err != nil {
				return fmt.Errorf("filter %d: value %d: %w", i, j, err)
			}
		}
	}
	if err := checkCount("thresholds", len(s.Thresholds), MaxThresholds); err != nil {
		return err
	}
	for i := range s.Thresholds {
		if err := checkString("threshold code", s.Thresholds[i].Code, MaxThresholdCodeLen); err != nil {
			return fmt.Errorf("threshold %d: %w", i, err)
		}
	}
	if s.Period > PeriodWeek {
		return fmt.Errorf("period type %d: %w", s.Period, ErrInvalid)
	}
	if s.CycleDay > MaxCycleDay {
		return fmt.Errorf("billing cycle day %d: %w (max %d)", s.CycleDay, ErrInvalid, MaxCycleDay)
	}
	return nil
}

// schemaLen returns the encoded size of a schema that passed checkSchema.
func schemaLen(s *Schema) int {
	return MinSchemaSize + len(s.Filters)*FilterSize + len(s.Thresholds)*ThresholdSize
}

// SchemaSize returns the size of the encoding of s with the thresholds and period sections
// (132 + filters × 292 + 8 + thresholds × 48 + 8), or the error AppendMetricPut would return.
func SchemaSize(s *Schema) (int, error) {
	if err := checkSchema(s); err != nil {
		return 0, fmt.Errorf("unimeter: schema: %w", err)
	}
	return schemaLen(s), nil
}

// putSchema writes s into the zeroed b of exactly schemaLen(s) bytes.
func putSchema(b []byte, s *Schema) {
	putString(b[:codeWidth], s.Code)
	b[scAgg] = uint8(s.Agg)
	b[scRecurring] = putBool(s.Recurring)
	b[scFilterCount] = uint8(len(s.Filters))
	putString(b[scFieldName:SchemaBaseSize], s.FieldName)
	w := b[SchemaBaseSize:]
	for i := range s.Filters {
		f := &s.Filters[i]
		putString(w[:dimKeyWidth], f.Key)
		w[flValueCount] = uint8(len(f.Values))
		for j, v := range f.Values {
			putString(w[flValues+j*dimValueWidth:flValues+(j+1)*dimValueWidth], v)
		}
		w = w[FilterSize:]
	}
	w[0] = uint8(len(s.Thresholds))
	w = w[ThresholdsHeaderSize:]
	for i := range s.Thresholds {
		t := &s.Thresholds[i]
		putString(w[:thrCodeWidth], t.Code)
		le.PutUint64(w[thValue:], t.Value)
		w[thRecurring] = putBool(t.Recurring)
		w = w[ThresholdSize:]
	}
	w[0] = uint8(s.Period)
	w[pdCycleDay] = s.CycleDay
}

// AppendMetricPut appends the METRIC_PUT payload for s to dst, always with the thresholds
// section (even with no thresholds) and the period section.
//
// It refuses an empty or over-long code, unknown Agg or Period, CycleDay above MaxCycleDay, more
// than MaxFilters filters, MaxFilterValues values in a filter or MaxThresholds thresholds, and
// strings that do not fit. On error dst is returned unchanged.
func AppendMetricPut(dst []byte, s *Schema) ([]byte, error) {
	if err := checkSchema(s); err != nil {
		return dst, fmt.Errorf("unimeter: metric put: %w", err)
	}
	dst, b := grow(dst, schemaLen(s))
	clear(b)
	putSchema(b, s)
	return dst, nil
}

// parseSchema reads one schema from the start of p and returns it with the number of bytes it
// used. With full false (a METRIC_PUT request) the input may end right after the filters or
// right after the thresholds section, as the server tolerates; with full true (a METRIC_LIST
// record) both sections are required. With strict, padding and the bytes after strings' NULs
// must be zero, booleans 0 or 1, and value slots past value_count zero. Input that ends too
// early fails with ErrTruncated, or with ErrLength in a list. Errors are not prefixed. Slices are allocated only after the input is known to hold them.
func parseSchema(p []byte, strict, full bool) (Schema, int, error) {
	var s Schema
	var err error
	short := ErrTruncated
	if full {
		short = ErrLength // in a list, running out means the count does not fit
	}
	if len(p) < SchemaBaseSize {
		return Schema{}, 0, fmt.Errorf("%w: %d bytes, want at least %d", short, len(p), SchemaBaseSize)
	}
	if s.Code, err = getString("metric code", p[:codeWidth], MaxMetricCodeLen, strict); err != nil {
		return Schema{}, 0, err
	}
	if s.Code == "" {
		return Schema{}, 0, fmt.Errorf("metric code: %w", ErrEmpty)
	}
	// Only the strict (request) decoder refuses unknown enum values: a metric list may hold
	// schemas another client registered with values the server keeps as sent, and one of those
	// must not make the whole list unreadable.
	if s.Agg = AggType(p[scAgg]); strict && s.Agg > AggCountUnique {
		return Schema{}, 0, fmt.Errorf("agg type %d: %w", s.Agg, ErrInvalid)
	}
	if s.Recurring, err = getBool("recurring", p[scRecurring], strict); err != nil {
		return Schema{}, 0, err
	}
	fc := int(p[scFilterCount])
	if fc > MaxFilters {
		return Schema{}, 0, fmt.Errorf("%w filters: %d, max %d", ErrTooMany, fc, MaxFilters)
	}
	if strict {
		if err := checkPad("schema", p[scPad:scFieldName]); err != nil {
			return Schema{}, 0, err
		}
	}
	if s.FieldName, err = getString("field name", p[scFieldName:SchemaBaseSize], MaxFieldNameLen, strict); err != nil {
		return Schema{}, 0, err
	}
	n := SchemaBaseSize
	if len(p) < n+fc*FilterSize {
		return Schema{}, 0, fmt.Errorf("%w: %d bytes, want at least %d for %d filters", short, len(p), n+fc*FilterSize, fc)
	}
	if fc > 0 {
		s.Filters = make([]Filter, fc)
		for i := range s.Filters {
			if err := parseFilter(&s.Filters[i], p[n:n+FilterSize], strict); err != nil {
				return Schema{}, 0, fmt.Errorf("filter %d: %w", i, err)
			}
			n += FilterSize
		}
	}
	if !full && len(p) == n {
		return s, n, nil
	}
	if len(p) < n+ThresholdsHeaderSize {
		return Schema{}, 0, fmt.Errorf("thresholds section: %w: %d bytes, want at least %d", short, len(p), n+ThresholdsHeaderSize)
	}
	tc := int(p[n])
	if tc > MaxThresholds {
		return Schema{}, 0, fmt.Errorf("%w thresholds: %d, max %d", ErrTooMany, tc, MaxThresholds)
	}
	if strict {
		if err := checkPad("thresholds section", p[n+1:n+ThresholdsHeaderSize]); err != nil {
			return Schema{}, 0, err
		}
	}
	n += ThresholdsHeaderSize
	if len(p) < n+tc*ThresholdSize {
		return Schema{}, 0, fmt.Errorf("%w: %d bytes, want at least %d for %d thresholds", short, len(p), n+tc*ThresholdSize, tc)
	}
	if tc > 0 {
		s.Thresholds = make([]Threshold, tc)
		for i := range s.Thresholds {
			t := &s.Thresholds[i]
			w := p[n : n+ThresholdSize]
			if t.Code, err = getString("threshold code", w[:thrCodeWidth], MaxThresholdCodeLen, strict); err != nil {
				return Schema{}, 0, fmt.Errorf("threshold %d: %w", i, err)
			}
			t.Value = le.Uint64(w[thValue:])
			if t.Recurring, err = getBool("threshold recurring", w[thRecurring], strict); err != nil {
				return Schema{}, 0, fmt.Errorf("threshold %d: %w", i, err)
			}
			if strict {
				if err := checkPad("threshold", w[thPad:]); err != nil {
					return Schema{}, 0, fmt.Errorf("threshold %d: %w", i, err)
				}
			}
			n += ThresholdSize
		}
	}
	if !full && len(p) == n {
		return s, n, nil
	}
	if len(p) < n+PeriodSectionSize {
		return Schema{}, 0, fmt.Errorf("period section: %w: %d bytes, want at least %d", short, len(p), n+PeriodSectionSize)
	}
	w := p[n : n+PeriodSectionSize]
	if s.Period = PeriodType(w[0]); strict && s.Period > PeriodWeek {
		return Schema{}, 0, fmt.Errorf("period type %d: %w", s.Period, ErrInvalid)
	}
	if s.CycleDay = w[pdCycleDay]; strict && s.CycleDay > MaxCycleDay {
		return Schema{}, 0, fmt.Errorf("billing cycle day %d: %w (max %d)", s.CycleDay, ErrInvalid, MaxCycleDay)
	}
	if strict {
		if err := checkPad("period section", w[pdPad:]); err != nil {
			return Schema{}, 0, err
		}
	}
	return s, n + PeriodSectionSize, nil
}

// parseFilter reads one DimensionFilterWire from w (exactly FilterSize bytes).
func parseFilter(f *Filter, w []byte, strict bool) error {
	var err error
	if f.Key, err = getString("filter key", w[:dimKeyWidth], MaxDimKeyLen, strict); err != nil {
		return err
	}
	vc := int(w[flValueCount])
	if vc > MaxFilterValues {
		return fmt.Errorf("%w filter values: %d, max %d", ErrTooMany, vc, MaxFilterValues)
	}
	if strict {
		if err := checkPad("filter", w[flPad:flValues]); err != nil {
			return err
		}
		if err := checkPad("unused filter values", w[flValues+vc*dimValueWidth:FilterSize]); err != nil {
			return err
		}
	}
	if vc == 0 {
		return nil
	}
	f.Values = make([]string, vc)
	for j := range f.Values {
		o := flValues + j*dimValueWidth
		if f.Values[j], err = getString("filter value", w[o:o+dimValueWidth], MaxDimValueLen, strict); err != nil {
			return fmt.Errorf("value %d: %w", j, err)
		}
	}
	return nil
}

// DecodeMetricPut decodes a METRIC_PUT payload strictly (zero padding, nothing after a string's
// NUL, booleans 0 or 1, known enums, counts within the caps). Besides the full form that
// AppendMetricPut produces it accepts the short forms the server tolerates: a payload ending
// after the filters (no thresholds, Period 0, CycleDay 0) or after the thresholds section (Period
// 0, CycleDay 0). Fewer than SchemaBaseSize bytes fail with ErrTruncated, a section cut short
// with ErrTruncated, and bytes after the period section with ErrLength. Zero filters, thresholds
// or values decode as nil slices.
func DecodeMetricPut(p []byte) (Schema, error) {
	s, n, err := parseSchema(p, true, false)
	if err != nil {
		return Schema{}, fmt.Errorf("unimeter: metric put: %w", err)
	}
	if n != len(p) {
		return Schema{}, fmt.Errorf("unimeter: metric put: %w: %d bytes, want %d", ErrLength, len(p), n)
	}
	return s, nil
}

// AppendMetricDelete appends the METRIC_DELETE payload (the 64-byte code) to dst. It refuses an
// empty or over-long code; on error dst is returned unchanged.
func AppendMetricDelete(dst []byte, code string) ([]byte, error) {
	if code == "" {
		return dst, fmt.Errorf("unimeter: metric delete: metric code: %w", ErrEmpty)
	}
	if err := checkString("metric code", code, MaxMetricCodeLen); err != nil {
		return dst, fmt.Errorf("unimeter: metric delete: %w", err)
	}
	dst, b := grow(dst, MetricDeleteSize)
	clear(b)
	putString(b, code)
	return dst, nil
}

// DecodeMetricDelete decodes a METRIC_DELETE payload strictly: exactly MetricDeleteSize bytes
// holding a non-empty code followed by zero bytes.
func DecodeMetricDelete(p []byte) (string, error) {
	if err := exactLen("metric delete", p, MetricDeleteSize); err != nil {
		return "", err
	}
	code, err := getString("metric code", p, MaxMetricCodeLen, true)
	if err != nil {
		return "", fmt.Errorf("unimeter: metric delete: %w", err)
	}
	if code == "" {
		return "", fmt.Errorf("unimeter: metric delete: metric code: %w", ErrEmpty)
	}
	return code, nil
}

// AppendMetricList appends the METRIC_LIST reply payload to dst: an 8-byte header (count u32,
// padding u32) then each schema in the METRIC_PUT layout, always with its thresholds and period
// sections. It refuses schemas AppendMetricPut would refuse and, unlike the server (which
// silently truncates), a result longer than MaxPayload (ErrPayloadTooLarge). On error dst is
// returned unchanged.
func AppendMetricList(dst []byte, schemas []Schema) ([]byte, error) {
	n := MetricListHeaderSize
	for i := range schemas {
		if err := checkSchema(&schemas[i]); err != nil {
			return dst, fmt.Errorf("unimeter: metric list: schema %d: %w", i, err)
		}
		n += schemaLen(&schemas[i])
		if n > MaxPayload {
			return dst, fmt.Errorf("unimeter: metric list: %d schemas: %w", len(schemas), ErrPayloadTooLarge)
		}
	}
	dst, b := grow(dst, n)
	clear(b)
	le.PutUint32(b[0:], uint32(len(schemas)))
	w := b[MetricListHeaderSize:]
	for i := range schemas {
		l := schemaLen(&schemas[i])
		putSchema(w[:l], &schemas[i])
		w = w[l:]
	}
	return dst, nil
}

// DecodeMetricList decodes a METRIC_LIST reply payload leniently (padding and bytes after a
// string's NUL are ignored, any non-zero boolean byte is true). The count must match the
// records exactly: fewer than MetricListHeaderSize bytes fail with ErrTruncated; a count whose
// records do not fit (a record cut short) or bytes after the last record fail with ErrLength. Every
// record must carry its thresholds and period sections, counts within the caps, known enums and
// strings that fit the codec's limits. An empty list decodes as nil.
func DecodeMetricList(p []byte) ([]Schema, error) {
	if len(p) < MetricListHeaderSize {
		return nil, fmt.Errorf("unimeter: metric list: %w: %d bytes, want at least %d", ErrTruncated, len(p), MetricListHeaderSize)
	}
	count := le.Uint32(p[0:])
	body := p[MetricListHeaderSize:]
	if uint64(count)*MinSchemaSize > uint64(len(body)) {
		return nil, fmt.Errorf("unimeter: metric list: %w: count %d does not fit in %d bytes", ErrLength, count, len(p))
	}
	var schemas []Schema
	if count > 0 {
		schemas = make([]Schema, count)
	}
	for i := range schemas {
		s, n, err := parseSchema(body, false, true)
		if err != nil {
			return nil, fmt.Errorf("unimeter: metric list: schema %d: %w", i, err)
		}
		schemas[i] = s
		body = body[n:]
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("unimeter: metric list: %w: %d bytes after %d schemas", ErrLength, len(body), count)
	}
	return schemas, nil
}
