package meterbill

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/meterbill/meterbill/internal/fixed"
	"github.com/meterbill/meterbill/internal/money"
)

// Pricing errors.
var (
	// ErrInvalidPlan reports a price list that cannot price anything: a malformed decimal, tiers
	// out of order, a model without the fields it needs.
	ErrInvalidPlan = errors.New("meterbill: invalid plan")
	// ErrNoPrice reports usage that has no price: a metric the plan does not bill, or a currency the
	// metric has no price in. meterbill never guesses a price or bills zero instead.
	ErrNoPrice = errors.New("meterbill: no price")
	// ErrAmountOverflow reports an amount that does not fit in int64 minor units.
	ErrAmountOverflow = errors.New("meterbill: amount overflows int64 minor units")
)

// maxPriceDecimals is the precision Stripe accepts in unit_amount_decimal.
const maxPriceDecimals = 12

// Pricer turns metered usage into priced invoice lines. Implementations must be safe for
// concurrent use; [Plan] is the default.
type Pricer interface {
	// Metrics returns the metrics that are billed, each with its definition.
	Metrics() []Metric
	// Price prices one account's usage of one metric over u.Window in currency (an ISO 4217
	// code, lower case as Stripe sends it). No usage means no lines. A currency or metric
	// without a price is an error wrapping [ErrNoPrice].
	Price(ctx context.Context, currency string, u Usage) ([]Line, error)
}

// Line is one priced invoice line.
type Line struct {
	// Metric is the code of the metric priced.
	Metric string
	// Description is the text for the invoice: the price's description, with the tier for
	// tiered models.
	Description string
	// Currency is the ISO 4217 code, lower case.
	Currency string
	// Tier is the 1-based tier for Graduated and Volume prices, 0 otherwise.
	Tier int
	// Quantity is the billable quantity on this line: usage less included units, and for
	// Graduated only the part that falls in this tier.
	Quantity Value
	// Packages is the number of whole packages billed, for Package prices; zero otherwise.
	Packages Value
	// UnitPrice is the price per unit (per package for Package) in minor units, an exact decimal.
	UnitPrice string
	// FlatFee is the flat fee included in Amount, in minor units, an exact decimal; "0" if none.
	FlatFee string
	// Amount is the line's total in minor units: Quantity (or Packages) × UnitPrice + FlatFee,
	// rounded half-up to an integer once, on this line.
	Amount int64
}

// PriceModel is how a price turns a quantity into an amount. The zero value is [PerUnit].
type PriceModel uint8

// The price models.
const (
	// PerUnit prices every unit at the single tier's unit price.
	PerUnit PriceModel = PriceModel(money.PerUnit)
	// Package prices whole packages of PackageSize units, rounding the count up.
	Package PriceModel = PriceModel(money.Package)
	// Graduated prices the units in each tier at that tier's price, one line per tier reached.
	Graduated PriceModel = PriceModel(money.Graduated)
	// Volume prices every unit at the price of the tier the whole quantity reaches; a quantity
	// exactly at a tier's UpTo stays in that tier.
	Volume PriceModel = PriceModel(money.Volume)
)

// String returns the model's name, such as "graduated".
func (m PriceModel) String() string { return money.Model(m).String() }

// Price is how one metric is priced. It is plain data, checked by [NewPlan].
type Price struct {
	// Metric is the billed metric's definition.
	Metric Metric
	// Description is shown on invoice lines. Defaults to the metric's code.
	Description string
	// Model turns a quantity into an amount. Defaults to PerUnit.
	Model PriceModel
	// Included is a number of free units per billing window, subtracted before the model
	// applies, as an exact decimal ("1000"). Defaults to none.
	Included string
	// PackageSize is the number of units in a package, for Package only.
	PackageSize string
	// Currencies maps an ISO 4217 currency code (any case) to the tiers in that currency.
	// PerUnit and Package take one tier without UpTo; Graduated and Volume take up to 32, the
	// last without UpTo.
	Currencies map[string][]Tier
}

// Tier is one price band. Amounts are exact decimals in the currency's minor unit, as Stripe's
// unit_amount_decimal: in USD "0.1" is $0.001 and "250" is $2.50; in JPY "3" is ¥3. No currency
// table is needed to be right.
type Tier struct {
	// UpTo is the tier's inclusive upper bound in units, or "" for the last tier.
	UpTo string
	// Unit is the price per unit (per package for Package), up to 12 decimals.
	Unit string
	// Flat is a fee charged once when usage reaches the tier, up to 12 decimals. Defaults to 0.
	Flat string
}

var _ Pricer = (*Plan)(nil)

// Plan is the default [Pricer]: a fixed price list. It is immutable and safe for concurrent use.
type Plan struct {
	metrics []Metric
	prices  map[string]planPrice // by metric code
}

type planPrice struct {
	Price
	schedules map[string]money.Schedule // by lower-case currency
}

// NewPlan checks and compiles a price list. Every decimal is parsed once here, so pricing cannot
// fail on a typo at invoice time. Errors wrap [ErrInvalidPlan].
func NewPlan(prices ...Price) (*Plan, error) {
	p := &Plan{prices: make(map[string]planPrice, len(prices))}
	for _, pr := range prices {
		if err := pr.Metric.validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidPlan, err)
		}
		code := pr.Metric.Code
		if _, dup := p.prices[code]; dup {
			return nil, fmt.Errorf("%w: metric %q is priced twice", ErrInvalidPlan, code)
		}
		if len(pr.Currencies) == 0 {
			return nil, fmt.Errorf("%w: metric %q has no currencies", ErrInvalidPlan, code)
		}
		if pr.Description == "" {
			pr.Description = code
		}
		pp := planPrice{Price: pr, schedules: make(map[string]money.Schedule, len(pr.Currencies))}
		for cur, tiers := range pr.Currencies {
			lc := strings.ToLower(cur)
			if !isCurrencyCode(lc) {
				return nil, fmt.Errorf("%w: metric %q: currency %s is not a three-letter ISO 4217 code", ErrInvalidPlan, code, quote(cur))
			}
			if _, dup := pp.schedules[lc]; dup {
				return nil, fmt.Errorf("%w: metric %q: currency %q is priced twice", ErrInvalidPlan, code, lc)
			}
			s, err := compileSchedule(pr, tiers)
			if err != nil {
				return nil, fmt.Errorf("%w: metric %q in %s: %w", ErrInvalidPlan, code, lc, err)
			}
			pp.schedules[lc] = s
		}
		p.prices[code] = pp
		p.metrics = append(p.metrics, pr.Metric)
	}
	return p, nil
}

func compileSchedule(pr Price, tiers []Tier) (money.Schedule, error) {
	s := money.Schedule{Model: money.Model(pr.Model)}
	if pr.Model > Volume {
		return s, fmt.Errorf("unknown price model %d", pr.Model)
	}
	var err error
	if s.Included, err = parseOptional(pr.Included, fixed.Decimals, "included units"); err != nil {
		return s, err
	}
	if s.PackageSize, err = parseOptional(pr.PackageSize, fixed.Decimals, "package size"); err != nil {
		return s, err
	}
	for i, t := range tiers {
		var mt money.Tier
		if t.UpTo == "" {
			mt.Unbounded = true
		} else if mt.UpTo, err = money.ParseDecimal(t.UpTo, fixed.Decimals); err != nil {
			return s, fmt.Errorf("tier %d up to: %w", i+1, err)
		}
		if mt.Unit, err = money.ParseDecimal(t.Unit, maxPriceDecimals); err != nil {
			return s, fmt.Errorf("tier %d unit price: %w", i+1, err)
		}
		if mt.Flat, err = parseOptional(t.Flat, maxPriceDecimals, fmt.Sprintf("tier %d flat fee", i+1)); err != nil {
			return s, err
		}
		s.Tiers = append(s.Tiers, mt)
	}
	return s, s.Validate()
}

func parseOptional(s string, scale int32, what string) (decimal.Decimal, error) {
	if s == "" {
		return decimal.Zero, nil
	}
	d, err := money.ParseDecimal(s, scale)
	if err != nil {
		return d, fmt.Errorf("%s: %w", what, err)
	}
	return d, nil
}

func isCurrencyCode(s string) bool {
	return len(s) == 3 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz") == ""
}

// Metrics implements [Pricer]: the plan's metrics, in the order given to [NewPlan].
func (p *Plan) Metrics() []Metric { return append([]Metric(nil), p.metrics...) }

// Price implements [Pricer].
func (p *Plan) Price(_ context.Context, currency string, u Usage) ([]Line, error) {
	pp, ok := p.prices[u.Metric.Code]
	if !ok {
		return nil, fmt.Errorf("%w: the plan does not bill metric %q", ErrNoPrice, u.Metric.Code)
	}
	cur := strings.ToLower(currency)
	s, ok := pp.schedules[cur]
	if !ok {
		return nil, fmt.Errorf("%w: metric %q has no price in %s", ErrNoPrice, u.Metric.Code, quote(currency))
	}
	q := decimal.NewFromBigInt(u.Value.m.Big(), -fixed.Decimals)
	mls, err := s.Price(q)
	if err != nil {
		if errors.Is(err, money.ErrOverflow) {
			return nil, fmt.Errorf("%w: %s of %q in %s: %w", ErrAmountOverflow, u.Value, u.Metric.Code, cur, err)
		}
		return nil, fmt.Errorf("meterbill: pricing %s of %q in %s: %w", u.Value, u.Metric.Code, cur, err)
	}
	lines := make([]Line, 0, len(mls))
	for _, ml := range mls {
		l := Line{
			Metric:      u.Metric.Code,
			Description: pp.Description,
			Currency:    cur,
			Tier:        ml.Tier,
			Quantity:    valueOf(ml.Quantity),
			Packages:    valueOf(ml.Packages),
			UnitPrice:   ml.Unit.String(),
			FlatFee:     ml.Flat.String(),
			Amount:      ml.Amount,
		}
		if ml.Tier > 0 {
			l.Description = fmt.Sprintf("%s (tier %d)", pp.Description, ml.Tier)
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// valueOf converts an exact decimal with at most six decimals (every quantity the engine returns:
// differences of Values and package counts) back to a Value.
func valueOf(d decimal.Decimal) Value {
	m, err := fixed.Parse(d.String())
	if err != nil {
		panic("meterbill: internal quantity " + d.String() + " is not a Value: " + err.Error())
	}
	return Value{m}
}
