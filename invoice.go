package meterbill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stripe/stripe-go/v82"

	"github.com/meterbill/meterbill/internal/backoff"
	"github.com/meterbill/meterbill/internal/billing"
	"github.com/meterbill/meterbill/internal/fixed"
	"github.com/meterbill/meterbill/internal/ledger"
	"github.com/meterbill/meterbill/internal/money"
	"github.com/meterbill/meterbill/internal/stripeapi"
	"github.com/meterbill/meterbill/internal/stripeevent"
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
	// ErrAmountOverLimit reports a line whose amount is over [MaxItemAmount]. The line is not
	// sent to Stripe; the rest of the invoice is billed, and the line is reported (see
	// [Report].Refused).
	ErrAmountOverLimit = errors.New("meterbill: line amount over Stripe's per-item limit")
	// ErrLineRefused reports lines Stripe refused for good (a 4xx other than the invoice being
	// finalized), or over [MaxItemAmount]. The handler creates every other line and answers
	// 500 while a line of the invoice's own window is refused.
	ErrLineRefused = errors.New("meterbill: invoice line refused")
)

// MaxItemAmount is the largest amount, in minor units, meterbill puts on one invoice item:
// Stripe documents amounts of up to eight digits (99999999, $999,999.99 in USD), and a charge
// above it cannot be collected. A line over it is refused with [ErrAmountOverLimit] before
// any request, so the rest of the invoice is billed.
const MaxItemAmount = 99_999_999

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

// Line is one priced invoice line. It is plain data.
type Line struct {
	// Metric is the code of the metric priced.
	Metric string `json:"metric"`
	// Description is the text for the invoice: the price's description, with the tier for
	// tiered models.
	Description string `json:"description"`
	// Currency is the ISO 4217 code, lower case.
	Currency string `json:"currency"`
	// Tier is the 1-based tier for Graduated and Volume prices, 0 otherwise.
	Tier int `json:"tier,omitzero"`
	// Quantity is the billable quantity on this line: usage less included units, and for
	// Graduated only the part that falls in this tier.
	Quantity Value `json:"quantity"`
	// Packages is the number of whole packages billed, for Package prices; zero otherwise.
	Packages Value `json:"packages,omitzero"`
	// UnitPrice is the price per unit (per package for Package) in minor units, an exact decimal.
	UnitPrice string `json:"unit_price"`
	// FlatFee is the flat fee included in Amount, in minor units, an exact decimal; "0" if none.
	FlatFee string `json:"flat_fee"`
	// Amount is the line's total in minor units: Quantity (or Packages) × UnitPrice + FlatFee,
	// rounded half-up to an integer once, on this line.
	Amount int64 `json:"amount"`
	// Plan identifies the price that priced the line, so that the ledger can say which prices a
	// run was billed at. [Plan] sets a fingerprint of the metric's price in the currency
	// ("pl_" and 16 hex digits), which changes whenever any of its numbers does. "" if unknown.
	Plan string `json:"plan,omitempty"`
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
	// Included is a number of free units, as an exact decimal ("1000"), subtracted once from
	// each usage priced, before the model applies: once per invoice for each metric, whether the
	// invoice bills one period of it or several (a Day metric on a monthly invoice). Defaults to
	// none.
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
// Build it with [NewPlan]; the zero Plan bills nothing and prices everything as [ErrNoPrice].
type Plan struct {
	metrics []Metric
	prices  map[string]planPrice // by metric code
}

type planPrice struct {
	Price
	schedules map[string]money.Schedule // by lower-case currency
	ids       map[string]string         // Line.Plan, by lower-case currency
}

// NewPlan checks and compiles a price list. Every decimal is parsed once here, so pricing cannot
// fail on a typo at invoice time. Errors wrap [ErrInvalidPlan].
func NewPlan(prices ...Price) (*Plan, error) {
	p := &Plan{prices: make(map[string]planPrice, len(prices))}
	for _, pr := range prices {
		if err := pr.Metric.Validate(); err != nil {
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
		pp := planPrice{Price: pr, schedules: make(map[string]money.Schedule, len(pr.Currencies)), ids: make(map[string]string, len(pr.Currencies))}
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
			pp.ids[lc] = priceID(pr, lc, s)
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

// priceID fingerprints a metric's compiled price in one currency: FNV-1a over every number that
// decides an amount, so two plans that price alike share it and any change makes a new one.
func priceID(pr Price, currency string, s money.Schedule) string {
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%s|%s|%d|%s|%s", pr.Metric.Code, currency, s.Model, s.Included, s.PackageSize)
	for _, t := range s.Tiers {
		_, _ = fmt.Fprintf(h, "|%t:%s:%s:%s", t.Unbounded, t.UpTo, t.Unit, t.Flat)
	}
	return fmt.Sprintf("pl_%016x", h.Sum64())
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
	if u.Metric != pp.Metric {
		return nil, fmt.Errorf("%w: usage of %q as %s, but the plan prices it as %s", ErrMetricConflict, u.Metric.Code, describe(u.Metric), describe(pp.Metric))
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
		qty, err1 := valueOf(ml.Quantity)
		packages, err2 := valueOf(ml.Packages)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%w: %s of %q in %s: %w", ErrAmountOverflow, u.Value, u.Metric.Code, cur, err)
		}
		l := Line{
			Metric:      u.Metric.Code,
			Description: pp.Description,
			Currency:    cur,
			Tier:        ml.Tier,
			Quantity:    qty,
			Packages:    packages,
			UnitPrice:   ml.Unit.String(),
			FlatFee:     ml.Flat.String(),
			Amount:      ml.Amount,
			Plan:        pp.ids[cur],
		}
		if ml.Tier > 0 {
			l.Description = fmt.Sprintf("%s (tier %d)", pp.Description, ml.Tier)
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// Subscriber is who an invoice bills, as a [PlanSelector] sees it. It is plain data.
type Subscriber struct {
	Customer string
	Account  uint64
	// Subscription, SubscriptionMetadata and PriceIDs are the invoice's subscription, its
	// metadata as the invoice carries it, and the Stripe prices of its lines.
	Subscription         string
	SubscriptionMetadata map[string]string
	PriceIDs             []string
	// BillingReason is the invoice's: "subscription_update" for the invoice of a plan change,
	// which bills the part of the period before the change.
	BillingReason string
	// LastPlan, for a plan change's invoice, is the name of the plan that billed the customer's
	// latest run, as the ledger records it (the plan before the change); "" if none or unknown.
	LastPlan string
}

// PlanSelector is a [Pricer] that prices each subscriber by a plan of its own. The handler asks
// PlanFor which Pricer bills an invoice, and records that pricer's lines (with their
// [Line].Plan) in the ledger; anything else that takes a Pricer ([Preview]) uses it as the Pricer
// it is. [PlansByMetadata] and [PlansByPrice] are the stock selectors.
type PlanSelector interface {
	Pricer
	// PlanFor returns the Pricer for s. An error fails the invoice (and is retried by Stripe).
	PlanFor(ctx context.Context, s Subscriber) (Pricer, error)
}

// ErrNoPlan reports a subscriber that no plan of a [Plans] prices, when it has no fallback.
var ErrNoPlan = errors.New("meterbill: no plan for the subscriber")

var _ PlanSelector = (*Plans)(nil)

// Plans is the stock [PlanSelector]: named [Plan]s, one chosen per subscriber. As a Pricer it is
// its fallback plan, and its Metrics are every plan's (a metric priced by several plans must be
// defined alike in each). It is immutable and safe for concurrent use.
type Plans struct {
	plans    map[string]*Plan
	fallback string
	choose   func(Subscriber) string
	metrics  []Metric
}

// PlansByMetadata chooses the plan named by the subscription's metadata under key (for
// instance "plan": "pro"), or fallback when it names none ("" for no fallback: the invoice then
// fails with [ErrNoPlan]). Each line records the plan's name and its prices' fingerprint.
func PlansByMetadata(key string, plans map[string]*Plan, fallback string) (*Plans, error) {
	return newPlans(plans, fallback, func(s Subscriber) string { return s.SubscriptionMetadata[key] })
}

// PlansByPrice chooses the plan named by the first of the subscription's Stripe price ids
// ("price_…") that names one, or fallback ("" for none: the invoice then fails with
// [ErrNoPlan]).
func PlansByPrice(plans map[string]*Plan, fallback string) (*Plans, error) {
	return newPlans(plans, fallback, func(s Subscriber) string {
		for _, id := range s.PriceIDs {
			if _, ok := plans[id]; ok {
				return id
			}
		}
		return ""
	})
}

func newPlans(plans map[string]*Plan, fallback string, choose func(Subscriber) string) (*Plans, error) {
	if len(plans) == 0 {
		return nil, fmt.Errorf("%w: no plans", ErrInvalidPlan)
	}
	if _, ok := plans[fallback]; fallback != "" && !ok {
		return nil, fmt.Errorf("%w: fallback plan %s is not one of the plans", ErrInvalidPlan, quote(fallback))
	}
	p := &Plans{plans: make(map[string]*Plan, len(plans)), fallback: fallback, choose: choose}
	seen := map[string]Metric{}
	names := slices.Sorted(maps.Keys(plans))
	for _, name := range names {
		plan := plans[name]
		if plan == nil || name == "" {
			return nil, fmt.Errorf("%w: plan %s is nil or unnamed", ErrInvalidPlan, quote(name))
		}
		p.plans[name] = plan
		for _, m := range plan.Metrics() {
			if prev, ok := seen[m.Code]; ok {
				if prev != m {
					return nil, fmt.Errorf("%w: metric %q is defined differently by two plans", ErrInvalidPlan, m.Code)
				}
				continue
			}
			seen[m.Code] = m
			p.metrics = append(p.metrics, m)
		}
	}
	return p, nil
}

// Metrics implements [Pricer]: every plan's metrics.
func (p *Plans) Metrics() []Metric { return append([]Metric(nil), p.metrics...) }

// Price implements [Pricer] with the fallback plan; without one it is [ErrNoPlan].
func (p *Plans) Price(ctx context.Context, currency string, u Usage) ([]Line, error) {
	if p.fallback == "" {
		return nil, fmt.Errorf("%w: pricing %q without a subscriber, and no fallback plan", ErrNoPlan, u.Metric.Code)
	}
	return namedPlan{p.fallback, p.plans[p.fallback], p}.Price(ctx, currency, u)
}

// PlanFor implements [PlanSelector]. The invoice of a plan change (billing_reason
// subscription_update) bills the part of the period before the change, at the prices of the plan
// that billed the customer last, when it is one of these plans: each part at its own prices.
func (p *Plans) PlanFor(_ context.Context, s Subscriber) (Pricer, error) {
	if _, ok := p.plans[s.LastPlan]; ok && s.BillingReason == "subscription_update" {
		return namedPlan{s.LastPlan, p.plans[s.LastPlan], p}, nil
	}
	name := p.choose(s)
	if _, ok := p.plans[name]; !ok {
		name = p.fallback
	}
	if name == "" {
		return nil, fmt.Errorf("%w: customer %s", ErrNoPlan, quote(s.Customer))
	}
	return namedPlan{name, p.plans[name], p}, nil
}

// Named returns the pricer of the named plan, nil if there is none such.
func (p *Plans) named(name string) Pricer {
	if plan, ok := p.plans[name]; ok {
		return namedPlan{name, plan, p}
	}
	return nil
}

// namedPlan prices with one plan of a Plans and records its name with its prices' fingerprint.
// Its metrics are all the Plans' metrics, so that a metric the plan does not price is never
// dropped: no usage of it costs nothing, and usage of it is an error wrapping errNotInPlan (the
// handler then prices it with the plan that billed it last).
type namedPlan struct {
	name string
	*Plan
	all *Plans
}

// errNotInPlan marks usage of a metric the chosen plan does not price.
var errNotInPlan = errors.New("not in the subscriber's plan")

func (n namedPlan) Metrics() []Metric { return n.all.Metrics() }

func (n namedPlan) Price(ctx context.Context, currency string, u Usage) ([]Line, error) {
	if _, ok := n.prices[u.Metric.Code]; !ok {
		if u.Value.IsZero() {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s of %q, %w %s", ErrNoPrice, u.Value, u.Metric.Code, errNotInPlan, quote(n.name))
	}
	lines, err := n.Plan.Price(ctx, currency, u)
	for i := range lines {
		lines[i].Plan = n.name + ":" + lines[i].Plan
	}
	return lines, err
}

// valueOf converts an exact decimal back to a Value. Quantities are differences of Values and
// always fit; a package count can exceed 128 bits only with absurd package sizes.
func valueOf(d decimal.Decimal) (Value, error) {
	m, err := fixed.Parse(d.String())
	if err != nil {
		return Value{}, fmt.Errorf("quantity %s: %w", describeDecimal(d), err)
	}
	return Value{m}, nil
}

func describeDecimal(d decimal.Decimal) string {
	if s := d.String(); len(s) <= 60 {
		return s
	}
	return "a number of " + strconv.Itoa(len(d.Coefficient().String())) + " digits"
}

// ---------------------------------------------------------------------------------------------
// Stripe

// StripeClient lists the Stripe calls meterbill makes, and no others. [NewStripeClient] is the
// default, over stripe-go v82; tests can use a fake. Implementations must be safe for concurrent
// use and should return *[StripeError] for failed calls, so retries can tell transient failures
// from permanent ones.
//
// It has eight methods rather than the house's usual three: reading an invoice (for
// [Handler.BillInvoice]), listing invoices (a subscription's voided ones, whose usage is waived;
// a customer's final one), a subscription's start, the customer (for [CustomerMetadataAccount])
// and the items (the ledger), and the writes: an item, and a subscription's final invoice,
// created and finalized.
type StripeClient interface {
	// Invoice retrieves an invoice.
	Invoice(ctx context.Context, id string) (StripeInvoice, error)
	// Invoices lists the invoices q selects, every page.
	Invoices(ctx context.Context, q InvoiceQuery) ([]StripeInvoice, error)
	// CreateInvoice creates a draft invoice under an idempotency key (a subscription's final
	// invoice).
	CreateInvoice(ctx context.Context, inv NewInvoice, idempotencyKey string) (StripeInvoice, error)
	// FinalizeInvoice finalizes a draft invoice and turns on its automatic collection
	// (auto_advance).
	FinalizeInvoice(ctx context.Context, id string) (StripeInvoice, error)
	// Subscription retrieves a subscription.
	Subscription(ctx context.Context, id string) (StripeSubscription, error)
	// CustomerMetadata retrieves a customer's metadata.
	CustomerMetadata(ctx context.Context, id string) (map[string]string, error)
	// InvoiceItems lists a customer's invoice items, pending or on an invoice, created at or
	// after since (zero: all of them), every page.
	InvoiceItems(ctx context.Context, customer string, since time.Time) ([]InvoiceItem, error)
	// CreateInvoiceItem creates an invoice item under an idempotency key.
	CreateInvoiceItem(ctx context.Context, item InvoiceItem, idempotencyKey string) (InvoiceItem, error)
}

// StripeInvoice is the part of a Stripe invoice meterbill reads. It is plain data.
type StripeInvoice struct {
	ID, Customer string
	Currency     string // lower case
	Status       string // "draft", "open", "paid", "uncollectible" or "void"
	// PeriodStart and PeriodEnd are the invoice's usage period: for a renewal, the period that
	// just ended. meterbill bills the complete buckets that end inside (PeriodStart, PeriodEnd].
	PeriodStart, PeriodEnd time.Time
	// SubscriptionMetadata is the subscription's metadata as the invoice carries it.
	SubscriptionMetadata map[string]string
	// BillingReason is Stripe's billing_reason: "subscription_cycle" for a renewal, which covers
	// a whole billing period and so may catch up periods a lost webhook left unbilled;
	// "manual", "subscription_update" and the others never do.
	BillingReason string
	// Subscription is the id of the subscription that generated the invoice, "" if none.
	Subscription string
	// Metadata is the invoice's own metadata.
	Metadata map[string]string
	// PriceIDs are the Stripe prices of the invoice's subscription lines, as far as the event
	// or the invoice lists them (the first page of lines): what the customer subscribed to.
	PriceIDs []string
}

// InvoiceQuery selects invoices to list. It is plain data.
type InvoiceQuery struct {
	Subscription string    // the subscription's invoices; or
	Customer     string    // the customer's, when Subscription is ""
	Status       string    // "draft", "open", "paid", "uncollectible" or "void"; "" for any
	CreatedSince time.Time // created at or after; zero for any time
}

// NewInvoice is an invoice for [StripeClient.CreateInvoice] to create. It is plain data.
type NewInvoice struct {
	Customer, Currency, Description string
	// SendInvoice sends it for payment within DaysUntilDue days; otherwise Stripe charges the
	// customer's default payment method (collection_method charge_automatically).
	SendInvoice  bool
	DaysUntilDue int64
	// AutoAdvance lets Stripe finalize and collect it without further action.
	AutoAdvance bool
	// IncludePending moves the customer's pending invoice items in the currency onto it.
	IncludePending bool
	Metadata       map[string]string
}

// StripeSubscription is the part of a Stripe subscription meterbill reads. It is plain data.
type StripeSubscription struct {
	ID, Customer string
	Status       string // "active", "trialing", "canceled", …
	// Start is the subscription's start_date: no usage before it is billed.
	Start time.Time
	// TrialEnd is the end of its trial, zero without one: usage during the trial is not billed.
	TrialEnd time.Time
	Metadata map[string]string
}

// InvoiceItem is a Stripe invoice item. It is plain data.
type InvoiceItem struct {
	ID       string `json:"id"` // set by Stripe
	Customer string `json:"customer"`
	// Invoice is the draft invoice the item is on; "" makes it pending, so Stripe adds it to the
	// customer's next invoice.
	Invoice     string `json:"invoice,omitempty"`
	Currency    string `json:"currency"`
	Description string `json:"description"`
	Amount      int64  `json:"amount"` // minor units
	// Quantity and UnitAmountDecimal, when Quantity is above 0, are how Stripe shows the line:
	// "Qty 3100 × $0.001". Stripe then computes the amount from them, so meterbill sets them
	// only when Quantity × UnitAmountDecimal is exactly Amount; otherwise the item is
	// amount-only and Quantity is 0.
	Quantity          int64  `json:"quantity,omitzero"`
	UnitAmountDecimal string `json:"unit_amount_decimal,omitempty"` // minor units, an exact decimal
	// PeriodStart and PeriodEnd are the usage period, half-open (Stripe's own end is inclusive;
	// the adapter converts).
	PeriodStart time.Time         `json:"period_start"`
	PeriodEnd   time.Time         `json:"period_end"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// StripeError is a failed Stripe call: the HTTP status (0 when no answer arrived), Stripe's
// error type and code, and its request id for support.
type StripeError struct {
	Op        string // e.g. "create invoice item"
	Status    int
	Type      string // "api_error", "invalid_request_error", "idempotency_error", …
	Code      string // e.g. "rate_limit", "idempotency_key_in_use", "invoice_not_editable"
	RequestID string
	// Replayed reports an answer Stripe stored earlier under the same idempotency key and
	// replayed (its Idempotent-Replayed header). After a replayed 5xx, meterbill moves to the
	// next key at once; a custom client that leaves it false is still correct, but each such
	// answer then counts against a delivery's budget of fresh failures (see [Handler]).
	Replayed bool
	Err      error
}

// Error describes the failure without any secret.
func (e *StripeError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("meterbill: stripe %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("meterbill: stripe %s: HTTP %d %s %s (request %s)", e.Op, e.Status, e.Type, e.Code, e.RequestID)
}

// Unwrap returns the underlying error.
func (e *StripeError) Unwrap() error { return e.Err }

// Retryable reports whether the same request may succeed later: no answer, 409 (a concurrent
// request with the same idempotency key), 429 or 5xx. stripe-go v82 retries none of these
// itself.
func (e *StripeError) Retryable() bool {
	if e.Status == 0 {
		return !errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, context.DeadlineExceeded)
	}
	return e.Status == http.StatusConflict || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

var _ StripeClient = (*StripeAPI)(nil)

// StripeAPI is the default [StripeClient], over stripe-go v82's stripe.Client (API version
// 2025-08-27.basil). The SDK's own retries are off, because meterbill retries with its own
// deadline, and the SDK's logs go to [WithLogger]. It is safe for concurrent use.
type StripeAPI struct {
	c *stripeapi.Client
}

// NewStripeClient returns a Stripe client for a secret or restricted API key (sk_… or rk_…;
// a restricted key needs read access to customers and invoices and write access to invoice
// items). Every request it sends (each page, each retry) is held to one budget
// ([WithStripeRateLimit]), so every handler, BillInvoice and resolver that shares the client
// shares it. To bring a stripe-go client of your own, use [NewStripeClientFrom]. Options:
// [WithStripeURL], [WithHTTPClient], [WithStripeRateLimit], [WithStripeAccount],
// [WithItemParams], [WithLogger].
func NewStripeClient(apiKey string, opts ...StripeClientOption) (*StripeAPI, error) {
	if !strings.HasPrefix(apiKey, "sk_") && !strings.HasPrefix(apiKey, "rk_") {
		return nil, errors.New("meterbill: NewStripeClient needs a secret (sk_…) or restricted (rk_…) API key")
	}
	o, err := newOptions(opts, StripeClientOption.applyStripeClient)
	if err != nil {
		return nil, err
	}
	perSecond := o.stripeRate
	if perSecond == 0 {
		perSecond = 20 // 80% of test mode's 25 a second
		if strings.Contains(apiKey, "_live_") {
			perSecond = 80 // 80% of live mode's 100
		}
	}
	c := stripeapi.New(apiKey, o.stripeURL, o.httpClient, o.logger, newLimiter(perSecond))
	c.Account, c.ItemHook = o.stripeAcct, o.itemParams
	return &StripeAPI{c: c}, nil
}

// NewStripeClientFrom returns a Stripe client over a stripe-go v82 client you configured: its
// backends (HTTP client, URL, retries, telemetry, logging) stay yours. meterbill still sets an
// idempotency key on every write. Each call is held to one budget ([WithStripeRateLimit], 20 a
// second by default), and counted as one request in [Report.StripeRequests], since the client's
// transport is not meterbill's to watch: a list's further pages are neither held nor counted.
// If you set MaxNetworkRetries, the SDK retries with the same idempotency key, which is safe;
// meterbill's own retries of 409, 429 and 5xx come on top. Options: [WithStripeRateLimit],
// [WithStripeAccount], [WithItemParams].
func NewStripeClientFrom(client *stripe.Client, opts ...StripeClientFromOption) (*StripeAPI, error) {
	if client == nil {
		return nil, errors.New("meterbill: NewStripeClientFrom needs a stripe-go client")
	}
	o, err := newOptions(opts, StripeClientFromOption.applyStripeClientFrom)
	if err != nil {
		return nil, err
	}
	perSecond := o.stripeRate
	if perSecond == 0 {
		perSecond = 20
	}
	c := stripeapi.Wrap(client, newLimiter(perSecond))
	c.Account, c.ItemHook = o.stripeAcct, o.itemParams
	return &StripeAPI{c: c}, nil
}

// newLimiter returns a budget of perSecond requests a second, or none for -1.
func newLimiter(perSecond int) *stripeapi.Limiter {
	if perSecond > 0 {
		return stripeapi.NewLimiter(perSecond)
	}
	return nil
}

// Invoice implements [StripeClient].
func (s *StripeAPI) Invoice(ctx context.Context, id string) (StripeInvoice, error) {
	inv, err := s.c.Invoice(ctx, id)
	return StripeInvoice(inv), stripeError(err)
}

// Invoices implements [StripeClient].
func (s *StripeAPI) Invoices(ctx context.Context, q InvoiceQuery) ([]StripeInvoice, error) {
	invs, err := s.c.Invoices(ctx, q.Customer, q.Subscription, q.Status, q.CreatedSince)
	out := make([]StripeInvoice, len(invs))
	for i, inv := range invs {
		out[i] = StripeInvoice(inv)
	}
	return out, stripeError(err)
}

// CreateInvoice implements [StripeClient].
func (s *StripeAPI) CreateInvoice(ctx context.Context, inv NewInvoice, idempotencyKey string) (StripeInvoice, error) {
	made, err := s.c.CreateInvoice(ctx, stripeapi.NewInvoice(inv), idempotencyKey)
	return StripeInvoice(made), stripeError(err)
}

// FinalizeInvoice implements [StripeClient].
func (s *StripeAPI) FinalizeInvoice(ctx context.Context, id string) (StripeInvoice, error) {
	done, err := s.c.FinalizeInvoice(ctx, id)
	return StripeInvoice(done), stripeError(err)
}

// Subscription implements [StripeClient].
func (s *StripeAPI) Subscription(ctx context.Context, id string) (StripeSubscription, error) {
	sub, err := s.c.Subscription(ctx, id)
	return StripeSubscription(sub), stripeError(err)
}

// CustomerMetadata implements [StripeClient].
func (s *StripeAPI) CustomerMetadata(ctx context.Context, id string) (map[string]string, error) {
	md, err := s.c.CustomerMetadata(ctx, id)
	return md, stripeError(err)
}

// InvoiceItems implements [StripeClient].
func (s *StripeAPI) InvoiceItems(ctx context.Context, customer string, since time.Time) ([]InvoiceItem, error) {
	items, err := s.c.InvoiceItems(ctx, customer, since)
	out := make([]InvoiceItem, len(items))
	for i, it := range items {
		out[i] = InvoiceItem(it)
	}
	return out, stripeError(err)
}

// CreateInvoiceItem implements [StripeClient].
func (s *StripeAPI) CreateInvoiceItem(ctx context.Context, item InvoiceItem, idempotencyKey string) (InvoiceItem, error) {
	it, err := s.c.CreateInvoiceItem(ctx, stripeapi.Item(item), idempotencyKey)
	return InvoiceItem(it), stripeError(err)
}

func stripeError(err error) error {
	var e *stripeapi.Error
	if errors.As(err, &e) {
		return &StripeError{Op: e.Op, Status: e.Status, Type: e.Type, Code: e.Code, RequestID: e.RequestID, Replayed: e.Replayed, Err: e.Err}
	}
	return err
}

// ---------------------------------------------------------------------------------------------
// The webhook handler and the invoice bridge

// Webhook errors. The handler answers 400 for the first two and 413 for the third.
var (
	// ErrBadSignature reports a request whose Stripe-Signature header is missing, malformed,
	// stale, from the future, or matches none of the signing secrets.
	ErrBadSignature = errors.New("meterbill: bad webhook signature")
	// ErrMalformedEvent reports a correctly signed body that is not a usable event.
	ErrMalformedEvent = errors.New("meterbill: malformed webhook event")
	// ErrBodyTooLarge reports a body over [WithMaxBodyBytes].
	ErrBodyTooLarge = errors.New("meterbill: webhook body too large")
	// ErrBusy reports an invoice that found no room among [WithMaxConcurrentInvoices] within
	// half its deadline; the webhook answers 503 and Stripe redelivers it.
	ErrBusy = errors.New("meterbill: too many invoices being billed")
)

// Outcome says what handling one invoice did.
type Outcome string

// The outcomes.
const (
	// OutcomeBilled: lines were added to the invoice.
	OutcomeBilled Outcome = "billed"
	// OutcomePending: the invoice was finalized before its lines could be added, so they were
	// created as pending invoice items that Stripe adds to the customer's next invoice.
	OutcomePending Outcome = "pending"
	// OutcomeAlreadyBilled: every line was already on Stripe (a redelivery).
	OutcomeAlreadyBilled Outcome = "already_billed"
	// OutcomeNothingToBill: no complete period ends inside the invoice's window, or no usage.
	OutcomeNothingToBill Outcome = "nothing_to_bill"
	// OutcomeVoid: the invoice was voided before its lines could be added. Its usage is waived:
	// no later invoice catches it up. [Rebill] bills it on a replacement.
	OutcomeVoid Outcome = "void"
	// OutcomeDeleted: the draft was deleted (only one-off drafts can be) before its lines could
	// be added. Its usage was not billed; the subscription's next invoice bills it.
	OutcomeDeleted Outcome = "deleted"
	// OutcomeUnknownCustomer: the resolver does not know the customer; it is not metered.
	OutcomeUnknownCustomer Outcome = "unknown_customer"
	// OutcomeIgnored: an event other than invoice.created.
	OutcomeIgnored Outcome = "ignored"
	// OutcomeFailed: an error; the webhook was answered 500 (400 for [ErrInvalidPeriod] and
	// [ErrInvalidAccount], data no retry changes) and Stripe will redeliver.
	OutcomeFailed Outcome = "failed"
)

// ErrNotVoid reports a [Rebill] of an invoice that is not a voided invoice of the same customer.
var ErrNotVoid = errors.New("meterbill: not a voided invoice of the customer")

// BillOption is an option of [Handler.BillInvoice].
type BillOption func(*billOptions)

type billOptions struct{ rebill string }

// Rebill bills, on the invoice BillInvoice handles, the usage of a voided invoice of the same
// customer (its replacement, say): usage on a voided invoice is waived, unless it is re-billed
// this way. The voided invoice's window is billed like a missed period, from the meter's usage
// now, whatever lines the voided invoice held; once billed on the replacement, it is not billed
// again.
func Rebill(voidedInvoiceID string) BillOption {
	return func(o *billOptions) { o.rebill = voidedInvoiceID }
}

// Report describes the handling of one invoice. It is plain data.
//
// Its JSON encoding has stable snake_case keys, and Err as its text under "error".
type Report struct {
	Event    string  `json:"event,omitempty"` // the webhook event id; "" for BillInvoice
	Invoice  string  `json:"invoice"`
	Customer string  `json:"customer"`
	Account  uint64  `json:"account"`
	Window   Period  `json:"window"` // the invoice's usage period
	Outcome  Outcome `json:"outcome"`
	// Created lists the items this call created.
	Created []InvoiceItem `json:"created"`
	// Existing counts meterbill's items already on Stripe for the buckets this invoice bills.
	Existing int `json:"existing"`
	// Refused lists the lines not billed: refused by Stripe for good, or over [MaxItemAmount].
	// Every other line was created. A refused line of the invoice's own window makes the
	// outcome [OutcomeFailed] (so Stripe redelivers, and the refusal is seen); one caught up
	// from an earlier period, or a late-usage adjustment, does not hold this invoice back: it
	// is reported on every invoice that plans it, within the lookback.
	Refused []RefusedLine `json:"refused"`
	// StripeRequests counts the HTTP requests made to Stripe: every page of a list and every
	// retry included. A custom [StripeClient] is counted one request a call.
	StripeRequests int `json:"stripe_requests"`
	// Err is the failure, for OutcomeFailed.
	Err error `json:"-"`
}

// MarshalJSON encodes r with Err as its text, under "error" (omitted when nil), and empty lists
// as [], not null.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	if r.Created == nil {
		r.Created = []InvoiceItem{}
	}
	if r.Refused == nil {
		r.Refused = []RefusedLine{}
	}
	return json.Marshal(struct {
		plain
		Err string `json:"error,omitempty"`
	}{plain(r), errorText(r.Err)})
}

// RefusedLine is a line that was not billed, and why. It is plain data; its JSON encoding has
// Err as its text, under "error".
type RefusedLine struct {
	Item InvoiceItem `json:"item"`
	Err  error       `json:"-"`
}

// MarshalJSON encodes l with Err as its text, under "error".
func (l RefusedLine) MarshalJSON() ([]byte, error) {
	type plain RefusedLine
	return json.Marshal(struct {
		plain
		Err string `json:"error"`
	}{plain(l), errorText(l.Err)})
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// maxFreshFailures bounds the 5xx answers one handling may provoke under keys not used before.
// Each such answer may be stored under its key for a day, so every one of them is a key later
// deliveries walk past (a ledger read and a create each); bounding them per handling keeps that
// walk short, and Stripe's redelivery (or the next BillInvoice) carries on. Replayed failures do
// not count: walking past them is how billing makes progress once Stripe is healthy again.
const maxFreshFailures = 3

var _ http.Handler = (*Handler)(nil)

// Estimate is what an account's usage costs so far: for each billed metric, its current period
// (partial: the usage recorded in it until now) and its last complete period, priced as an
// invoice would price them. It is plain data.
//
// Its JSON encoding has stable snake_case keys, for a customer portal or an admin page; amounts
// are integers in minor units, quantities and unit prices exact decimals in strings. Preview
// returns empty lists, not nil, so that they encode as [].
type Estimate struct {
	Account  uint64 `json:"account"`
	Currency string `json:"currency"`
	// At is the time the estimate is for; each metric's current period is the one containing it.
	At time.Time `json:"at"`
	// Current and Last are the priced lines of the current and the last complete periods, in the
	// pricer's metric order. A metric without usage in a period has no line there.
	Current []EstimateLine `json:"current"`
	Last    []EstimateLine `json:"last"`
	// CurrentTotal and LastTotal add up the lines' amounts, in minor units.
	CurrentTotal int64 `json:"current_total"`
	LastTotal    int64 `json:"last_total"`
}

// EstimateLine is one priced line of an [Estimate]: the line and the metric period it prices.
// In JSON, the line's fields sit beside "period".
type EstimateLine struct {
	Period Period `json:"period"`
	Line
}

// Preview prices an account's usage without writing anywhere: what dashboards and support need
// for "how much will I pay?". For each metric of pricer it returns the period containing at (in
// the metric's own periods: the month from its cycle day for Calendar, the UTC day for Day, the
// ISO week for Week) with the usage recorded in it so far, and the period before it, complete.
// The meter answers whole periods, so at only picks them: with at in the past, usage recorded
// later in the same period counts too; with at = now, that is the usage so far.
// Catch-up and late-usage lines are not included: they depend on what Stripe's ledger holds,
// which Preview does not read. An account's currency comes from the caller (the Stripe
// customer's). Errors are the meter's and the pricer's (a currency without a price is
// [ErrNoPrice]).
func Preview(ctx context.Context, meter Meter, pricer Pricer, account uint64, currency string, at time.Time) (*Estimate, error) {
	if account == 0 {
		return nil, fmt.Errorf("%w: account 0", ErrInvalidAccount)
	}
	est := &Estimate{Account: account, Currency: strings.ToLower(currency), At: at.UTC(), Current: []EstimateLine{}, Last: []EstimateLine{}}
	for _, m := range pricer.Metrics() {
		cur := m.Bucket(at)
		last := m.Bucket(cur.Start.Add(-time.Nanosecond))
		for _, p := range []struct {
			period Period
			lines  *[]EstimateLine
			total  *int64
		}{{last, &est.Last, &est.LastTotal}, {cur, &est.Current, &est.CurrentTotal}} {
			u, err := meter.Query(ctx, account, m, p.period)
			if err != nil {
				return nil, fmt.Errorf("meterbill: preview of %s for account %d: %w", m.Code, account, err)
			}
			lines, err := pricer.Price(ctx, est.Currency, u)
			if err != nil {
				return nil, fmt.Errorf("meterbill: preview of %s for account %d: %w", m.Code, account, err)
			}
			for _, l := range lines {
				if *p.total+l.Amount < *p.total {
					return nil, fmt.Errorf("%w: preview total for account %d", ErrAmountOverflow, account)
				}
				*p.total += l.Amount
				*p.lines = append(*p.lines, EstimateLine{Period: p.period, Line: l})
			}
		}
	}
	return est, nil
}

// Handler is the Stripe webhook endpoint: it verifies each request, and on invoice.created for a
// draft invoice adds the invoice's usage lines exactly once. Mount it on the route you register
// with Stripe. It keeps no state: what was billed lives in the invoice items' metadata on
// Stripe, so any number of replicas can serve the same endpoint. It is safe for concurrent use.
type Handler struct {
	meter    Meter
	stripe   StripeClient
	resolver AccountResolver
	pricer   Pricer
	secrets  *secrets // a pointer, so that printing a Handler shows an address, never a secret
	o        *options
	backoff  backoff.Policy
	locks    keyedMutex    // one billing at a time per customer, within this process
	slots    chan struct{} // WithMaxConcurrentInvoices; nil without a bound
}

// acquire takes a slot among WithMaxConcurrentInvoices, waiting at most half the time left
// before ctx's deadline. The release function is never nil.
func (h *Handler) acquire(ctx context.Context) (release func(), err error) {
	if h.slots == nil {
		return func() {}, nil
	}
	wait := h.o.deadline / 2
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d) / 2
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return func() { <-h.slots }, nil
	case <-t.C:
		return func() {}, fmt.Errorf("%w: %d at once, waited %s", ErrBusy, cap(h.slots), wait)
	case <-ctx.Done():
		return func() {}, fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
	}
}

// secrets holds the signing secrets. It never prints them: not with %v, %+v, %#v or slog. The
// list sits behind one more pointer because fmt given a wrong verb (%s, %d, %x of a Handler)
// prints an unexported pointer field's target by reflection, where no method can redact; a
// pointer one level further down it prints only as an address.
type secrets struct{ list *[]string }

// newSecrets holds a copy of list.
func newSecrets(list []string) *secrets {
	own := append([]string(nil), list...)
	return &secrets{list: &own}
}

func (s secrets) String() string             { return fmt.Sprintf("[%d redacted secrets]", len(*s.list)) }
func (s secrets) GoString() string           { return s.String() }
func (s secrets) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }
func (s secrets) LogValue() slog.Value       { return slog.StringValue(s.String()) }

// keyedMutex serialises work per key (a customer), creating and dropping locks as needed.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// NewHandler returns the webhook handler. secrets are the endpoint's signing secrets
// ("whsec_…"); list both the old and the new one while you roll a secret. Options:
// [WithMaxBodyBytes], [WithTolerance], [WithDeadline], [WithZeroUsageLines],
// [WithErrorHandler], [WithReportHook], [WithObserver], [WithLogger].
func NewHandler(meter Meter, stripeClient StripeClient, resolver AccountResolver, pricer Pricer, secretList []string, opts ...HandlerOption) (*Handler, error) {
	switch {
	case meter == nil || stripeClient == nil || resolver == nil || pricer == nil:
		return nil, errors.New("meterbill: NewHandler needs a meter, a Stripe client, a resolver and a pricer")
	case len(secretList) == 0:
		return nil, errors.New("meterbill: NewHandler needs the endpoint's signing secret")
	}
	for i, s := range secretList {
		if !strings.HasPrefix(s, "whsec_") || len(s) < len("whsec_")+8 {
			return nil, fmt.Errorf("meterbill: signing secret %d is not a webhook secret (whsec_…)", i+1)
		}
	}
	o, err := newOptions(opts, HandlerOption.applyHandler)
	if err != nil {
		return nil, err
	}
	if len(pricer.Metrics()) == 0 {
		return nil, errors.New("meterbill: the pricer bills no metric")
	}
	h := &Handler{
		meter: observedMeter{Meter: meter, obs: o.observer}, stripe: observedStripe{StripeClient: stripeClient, obs: o.observer, log: o.logger},
		resolver: resolver, pricer: pricer,
		secrets: newSecrets(secretList), o: o,
		backoff: backoff.Policy{Base: o.retryBase, Max: o.retryMax},
	}
	if o.maxInvoices > 0 {
		h.slots = make(chan struct{}, o.maxInvoices)
	}
	return h, nil
}

// ServeHTTP handles one webhook delivery: 200 when the invoice is billed or there is nothing to
// do, with a short JSON body that Stripe's dashboard shows (the outcome, the invoice, how many
// lines were added and were already there), 400 or 413 for a request that is not a valid signed event, 400 for a signed invoice whose
// period or account mapping is unbillable, 500 when billing failed otherwise (Stripe then
// redelivers, and holds the invoice as a draft for up to three days), 405 for a method other
// than POST.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		h.o.logger.Warn("meterbill: webhook refused", "status", http.StatusMethodNotAllowed, "method", r.Method)
		h.o.observer.Observe(Measurement{Kind: WebhooksRefused, N: 1, Status: "405"})
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	// A header that cannot verify costs no body read and no HMAC.
	if err := stripeevent.CheckHeader(r.Header.Get("Stripe-Signature"), h.o.tolerance, h.o.now()); err != nil {
		h.fail(w, r, fmt.Errorf("%w: %w", ErrBadSignature, err))
		return
	}
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			err = fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, h.o.maxBody)
		} else {
			err = fmt.Errorf("%w: reading the body: %w", ErrMalformedEvent, err)
		}
		h.fail(w, r, err)
		return
	}
	if err := stripeevent.Verify(payload, r.Header.Get("Stripe-Signature"), *h.secrets.list, h.o.tolerance, h.o.now()); err != nil {
		h.fail(w, r, fmt.Errorf("%w: %w", ErrBadSignature, err))
		return
	}
	ev, wi, err := stripeevent.Decode(payload)
	if err != nil {
		h.fail(w, r, fmt.Errorf("%w: %w", ErrMalformedEvent, err))
		return
	}
	ended := ev.Type == stripeevent.SubscriptionDeleted && h.o.finalInvoice != FinalInvoiceOff
	if ev.Type != "invoice.created" && !ended {
		h.o.logger.Debug("meterbill: webhook ignored", "event", ev.ID, "type", ev.Type)
		h.o.observer.Observe(Measurement{Kind: WebhooksIgnored, N: 1, Op: ev.Type})
		answer(w, webhookAnswer{Outcome: OutcomeIgnored, EventType: ev.Type})
		return
	}
	// Finish even if Stripe hangs up: the work is idempotent, and a redelivery then finds it done.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.o.deadline)
	defer cancel()
	sc := &countingStripe{StripeClient: h.stripe}
	release, err := h.acquire(ctx)
	defer release()
	var rep *Report
	switch {
	case err != nil:
		rep = &Report{Outcome: OutcomeFailed, Err: err}
		if wi.ID != "" {
			rep.Invoice, rep.Customer = wi.ID, wi.Customer
		}
	case ended:
		rep = h.billEnd(ctx, sc, *ev.Subscription)
	default:
		inv := StripeInvoice{ID: wi.ID, Customer: wi.Customer, Currency: wi.Currency, Status: wi.Status,
			PeriodStart: time.Unix(wi.PeriodStart, 0).UTC(), PeriodEnd: time.Unix(wi.PeriodEnd, 0).UTC(),
			SubscriptionMetadata: wi.SubscriptionMetadata, BillingReason: wi.BillingReason, Subscription: wi.Subscription,
			PriceIDs: wi.PriceIDs}
		rep = h.billWith(ctx, sc, inv, handling{})
	}
	rep.Event, rep.StripeRequests = ev.ID, int(sc.n.Load())
	h.report(rep)
	if rep.Err != nil {
		h.fail(w, r, rep.Err)
		return
	}
	answer(w, webhookAnswer{Outcome: rep.Outcome, Invoice: rep.Invoice, Added: len(rep.Created), Existing: rep.Existing, Refused: len(rep.Refused)})
}

// webhookAnswer is the body of a 200: short JSON that Stripe's dashboard shows with the
// delivery, so that what a delivery did can be read there.
type webhookAnswer struct {
	Outcome   Outcome `json:"outcome"`
	EventType string  `json:"event_type,omitempty"` // for an ignored event
	Invoice   string  `json:"invoice,omitempty"`
	Added     int     `json:"lines_added"`
	Existing  int     `json:"lines_already_there"`
	Refused   int     `json:"lines_refused,omitzero"`
}

func answer(w http.ResponseWriter, a webhookAnswer) {
	body, _ := json.Marshal(a) // plain strings and integers: cannot fail
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}

// BillInvoice does for one invoice what the webhook does, without HTTP: for back-fills, support
// and tests. It is safe to call any number of times, concurrently with the webhook too, and it
// works within the handler's deadline ([WithDeadline]). Like the webhook, it bills an invoice
// that is no longer a draft (one finalized after its webhook failed for three days, say) as
// pending invoice items that Stripe adds to the customer's next invoice, and leaves a voided
// one alone. [Rebill] also bills a voided invoice's usage on this one. The returned error is the
// Report's Err.
func (h *Handler) BillInvoice(ctx context.Context, invoiceID string, opts ...BillOption) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, h.o.deadline)
	defer cancel()
	var bo billOptions
	for _, o := range opts {
		o(&bo)
	}
	release, err := h.acquire(ctx)
	defer release()
	if err != nil {
		rep := &Report{Invoice: invoiceID, Outcome: OutcomeFailed, Err: fmt.Errorf("meterbill: invoice %s: %w", invoiceID, err)}
		h.report(rep)
		return rep, rep.Err
	}
	sc := &countingStripe{StripeClient: h.stripe}
	inv, err := retry(ctx, h, func() (StripeInvoice, error) { return sc.Invoice(ctx, invoiceID) })
	var voided StripeInvoice
	if err == nil && bo.rebill != "" {
		voided, err = retry(ctx, h, func() (StripeInvoice, error) { return sc.Invoice(ctx, bo.rebill) })
		switch {
		case err != nil:
		case voided.Status != "void":
			err = fmt.Errorf("%w: Rebill(%s): the invoice is %s, not void", ErrNotVoid, bo.rebill, voided.Status)
		case voided.Customer != inv.Customer:
			err = fmt.Errorf("%w: Rebill(%s): the invoice is another customer's", ErrNotVoid, bo.rebill)
		}
	}
	var rep *Report
	switch {
	case err != nil:
		rep = &Report{Invoice: invoiceID, Outcome: OutcomeFailed, Err: fmt.Errorf("meterbill: invoice %s: %w", invoiceID, err)}
	case bo.rebill != "":
		rep = h.billWith(ctx, sc, inv, handling{fresh: true, rebill: &voided})
	default:
		rep = h.billWith(ctx, sc, inv, handling{fresh: true})
	}
	rep.StripeRequests = int(sc.n.Load())
	h.report(rep)
	return rep, rep.Err
}

func (h *Handler) report(rep *Report) {
	attrs := []any{"event", rep.Event, "invoice", rep.Invoice, "customer", rep.Customer, "account", rep.Account,
		"outcome", rep.Outcome, "created", len(rep.Created), "existing", rep.Existing, "stripe_requests", rep.StripeRequests}
	switch rep.Outcome {
	case OutcomeFailed:
		h.o.logger.Error("meterbill: invoice not billed; Stripe will redeliver", append(attrs, "err", rep.Err)...)
	case OutcomeUnknownCustomer, OutcomeVoid, OutcomeDeleted, OutcomePending:
		h.o.logger.Warn("meterbill: invoice "+string(rep.Outcome), attrs...)
	default:
		h.o.logger.Info("meterbill: invoice "+string(rep.Outcome), attrs...)
	}
	pending := 0
	for _, it := range rep.Created {
		if it.Invoice == "" {
			pending++
		}
	}
	h.o.observer.Observe(Measurement{Kind: InvoicesHandled, N: 1, Outcome: rep.Outcome})
	count(h.o.observer, LinesCreated, len(rep.Created)-pending)
	count(h.o.observer, LinesPending, pending)
	count(h.o.observer, LinesExisting, rep.Existing)
	count(h.o.observer, LinesRefused, len(rep.Refused))
	if h.o.reportHook != nil {
		h.o.reportHook(rep)
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrBodyTooLarge):
		status = http.StatusRequestEntityTooLarge
		h.refused(status, err)
	case errors.Is(err, ErrBadSignature), errors.Is(err, ErrMalformedEvent):
		status = http.StatusBadRequest
		h.refused(status, err)
	case errors.Is(err, ErrInvalidPeriod), errors.Is(err, ErrInvalidAccount):
		// The data Stripe holds is unbillable (the invoice's period, the account mapping), not
		// this server: a 400, already logged by report. Stripe redelivers any non-2xx, so fixing
		// the metadata within three days still bills it. A currency without a price stays a 500:
		// it is this side's plan that is missing it.
		status = http.StatusBadRequest
	case errors.Is(err, ErrBusy):
		status = http.StatusServiceUnavailable
	}
	if h.o.errorHandler != nil {
		h.o.errorHandler(w, r, err)
		return
	}
	http.Error(w, http.StatusText(status), status)
}

// refused logs and counts a webhook request refused before any invoice was looked at.
func (h *Handler) refused(status int, err error) {
	h.o.logger.Warn("meterbill: webhook refused", "status", status, "err", err)
	h.o.observer.Observe(Measurement{Kind: WebhooksRefused, N: 1, Status: strconv.Itoa(status)})
}

// countingStripe counts the HTTP requests one handling makes: the default client reports each
// request it sends (every page of a list, every retry); any other client counts one a call.
type countingStripe struct {
	StripeClient
	n atomic.Int64
}

// call runs f under a per-call counter and adds what it counted, at least one, to the total.
func countCall[T any](ctx context.Context, c *countingStripe, f func(context.Context) (T, error)) (T, error) {
	var n atomic.Int64
	v, err := f(stripeapi.WithCounter(ctx, &n))
	c.n.Add(max(n.Load(), 1))
	return v, err
}

func (c *countingStripe) Invoice(ctx context.Context, id string) (StripeInvoice, error) {
	return countCall(ctx, c, func(ctx context.Context) (StripeInvoice, error) { return c.StripeClient.Invoice(ctx, id) })
}

func (c *countingStripe) Invoices(ctx context.Context, q InvoiceQuery) ([]StripeInvoice, error) {
	return countCall(ctx, c, func(ctx context.Context) ([]StripeInvoice, error) { return c.StripeClient.Invoices(ctx, q) })
}

func (c *countingStripe) CreateInvoice(ctx context.Context, inv NewInvoice, key string) (StripeInvoice, error) {
	return countCall(ctx, c, func(ctx context.Context) (StripeInvoice, error) { return c.StripeClient.CreateInvoice(ctx, inv, key) })
}

func (c *countingStripe) FinalizeInvoice(ctx context.Context, id string) (StripeInvoice, error) {
	return countCall(ctx, c, func(ctx context.Context) (StripeInvoice, error) { return c.StripeClient.FinalizeInvoice(ctx, id) })
}

func (c *countingStripe) Subscription(ctx context.Context, id string) (StripeSubscription, error) {
	return countCall(ctx, c, func(ctx context.Context) (StripeSubscription, error) { return c.StripeClient.Subscription(ctx, id) })
}

func (c *countingStripe) InvoiceItems(ctx context.Context, customer string, since time.Time) ([]InvoiceItem, error) {
	return countCall(ctx, c, func(ctx context.Context) ([]InvoiceItem, error) {
		return c.StripeClient.InvoiceItems(ctx, customer, since)
	})
}

func (c *countingStripe) CreateInvoiceItem(ctx context.Context, item InvoiceItem, key string) (InvoiceItem, error) {
	return countCall(ctx, c, func(ctx context.Context) (InvoiceItem, error) {
		return c.StripeClient.CreateInvoiceItem(ctx, item, key)
	})
}

// retry calls f until it succeeds, fails permanently, or ctx ends, waiting with jittered
// backoff between attempts. Only *StripeError.Retryable failures are retried.
func retry[T any](ctx context.Context, h *Handler, f func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := f()
		var se *StripeError
		var stop *stopRetry
		if err == nil || errors.As(err, &stop) || !errors.As(err, &se) || ctx.Err() != nil {
			return v, err
		}
		// No answer while our own deadline still runs (an HTTP client timeout wraps
		// context.DeadlineExceeded too, so Retryable alone would give up on one slow request):
		// retry, under the same idempotency key, which Stripe replays if the first one landed.
		if !se.Retryable() && se.Status != 0 {
			return v, err
		}
		if werr := backoff.Sleep(ctx, h.backoff.Wait(attempt)); werr != nil {
			return v, fmt.Errorf("meterbill: giving up after %d attempts: %w", attempt, err)
		}
	}
}

// billWith is the invoice bridge. It reads the ledger (the customer's items on Stripe), plans the
// lines for every complete bucket that ends in the invoice's window and is not billed yet,
// prices them all before writing anything, then creates them under deterministic idempotency
// keys. After a 5xx or an idempotency conflict it re-reads the ledger, so a line Stripe created
// despite the error is never created twice.
//
// With pendingIfFinal, an invoice that is no longer a draft is billed as pending items; without
// it (the webhook), such an invoice is left alone.
// ledgerMargin is how much older than the horizon an item that matters may be: an item is
// created no earlier than the start of the first bucket it bills (usually when its period ends;
// a final invoice's when the subscription ends, inside the bucket that straddles the end), and a
// bucket that ends after the horizon began at most a month (31 days) before it; four days more
// for clocks that differ.
const ledgerMargin = 35 * 24 * time.Hour

// ledgerSince is how far back the ledger read goes: the items the planner needs bill buckets
// from the lookback horizon on (the invoice's window, catch-up, late usage, runs to finish), or
// the window of a voided invoice re-billed; older items cannot change what this invoice owes.
// So a read costs the same pages after ten years of history as after one month.
func ledgerSince(inv StripeInvoice, rebill *StripeInvoice, lookback time.Duration) time.Time {
	since := inv.PeriodStart.Add(-lookback)
	if rebill != nil && rebill.PeriodStart.Before(since) {
		since = rebill.PeriodStart
	}
	return since.Add(-ledgerMargin)
}

// handling says how billWith treats its invoice.
type handling struct {
	fresh  bool           // the invoice's status was read from Stripe now, not from an event's snapshot
	rebill *StripeInvoice // a voided invoice whose window this one bills
	// final bills a subscription that ended: the buckets straddling its end, and catch-up
	// stepping back by nominal period lengths. The invoice is made by makeInvoice, only once
	// there is a line to put on it.
	final       bool
	nominalEnd  time.Time
	makeInvoice func() (StripeInvoice, error)
}

func (h *Handler) billWith(ctx context.Context, sc StripeClient, inv StripeInvoice, how handling) *Report {
	fresh, rebill := how.fresh, how.rebill
	rep := &Report{Invoice: inv.ID, Customer: inv.Customer, Window: Period{Start: inv.PeriodStart, End: inv.PeriodEnd}}
	fail := func(err error) *Report {
		rep.Outcome, rep.Err = OutcomeFailed, fmt.Errorf("meterbill: invoice %s: %w", inv.ID, err)
		return rep
	}
	acct, err := h.resolver.ResolveAccount(ctx, Customer{ID: inv.Customer, SubscriptionMetadata: inv.SubscriptionMetadata})
	if errors.Is(err, ErrUnknownCustomer) {
		rep.Outcome = OutcomeUnknownCustomer
		return rep
	}
	if err == nil && acct == 0 {
		err = fmt.Errorf("%w: the resolver returned account 0 for customer %s", ErrInvalidAccount, quote(inv.Customer))
	}
	if err != nil {
		return fail(err)
	}
	rep.Account = acct
	if inv.Status != "draft" && inv.Status != "void" && !fresh {
		// The event's snapshot says the invoice was finalized when it was created; what is it now?
		cur, err := retry(ctx, h, func() (StripeInvoice, error) { return sc.Invoice(ctx, inv.ID) })
		var se *StripeError
		switch {
		case errors.As(err, &se) && se.Status == http.StatusNotFound:
			rep.Outcome = OutcomeDeleted
			return rep
		case err != nil:
			return fail(err)
		}
		inv.Status = cur.Status
	}
	pending := false
	switch inv.Status {
	case "draft":
	case "void":
		rep.Outcome = OutcomeVoid // waived
		return rep
	default:
		// Finalized before it was billed (open, paid, uncollectible): the lines become pending
		// items, which Stripe adds to the customer's next invoice.
		pending = true
	}
	// Within this process, one billing per customer at a time: two invoices of one customer
	// (two subscriptions renewing together) then never race for the same buckets.
	defer h.locks.lock(inv.Customer)()
	if inv.PeriodStart.Before(minTime) || inv.PeriodEnd.After(maxTime) || inv.PeriodEnd.Before(inv.PeriodStart) {
		return fail(fmt.Errorf("%w: invoice period %s", ErrInvalidPeriod, rep.Window))
	}
	pricer := h.pricer
	subscriber := Subscriber{Customer: inv.Customer, Account: acct, Subscription: inv.Subscription,
		SubscriptionMetadata: inv.SubscriptionMetadata, PriceIDs: inv.PriceIDs, BillingReason: inv.BillingReason}
	sel, selects := pricer.(PlanSelector)
	if selects {
		if pricer, err = sel.PlanFor(ctx, subscriber); err != nil {
			return fail(err)
		}
	}
	// A currency the plan has no price in fails every metric: find out before asking Stripe.
	for _, m := range pricer.Metrics() {
		if _, err := pricer.Price(ctx, inv.Currency, Usage{Account: acct, Metric: m}); err != nil {
			return fail(err)
		}
	}

	start := &usageStart{h: h, sc: sc, inv: inv}
	since := ledgerSince(inv, rebill, h.o.lookback)
	w := &writes{gens: map[string]int{}}
	refused := map[string]bool{}
	ownRefused := 0 // refused lines of the invoice's own window
	for round := 1; ; round++ {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		items, err := retry(ctx, h, func() ([]InvoiceItem, error) { return sc.InvoiceItems(ctx, inv.Customer, since) })
		if err != nil {
			return fail(err)
		}
		entries, err := ledgerEntries(items, acct)
		if err != nil {
			return fail(err)
		}
		if selects && inv.BillingReason == "subscription_update" && round == 1 {
			// A plan change's invoice bills the part of the period before the change: the
			// selector may want the plan that billed the customer last (the ledger says which).
			subscriber.LastPlan = lastPlan(entries, "")
			if pricer, err = sel.PlanFor(ctx, subscriber); err != nil {
				return fail(err)
			}
		}
		todo, existing, err := h.plan(ctx, sc, pricer, inv, acct, entries, start, rebill, how)
		if err != nil {
			return fail(err)
		}
		rep.Existing = existing
		todo = slices.DeleteFunc(todo, func(a billing.Action) bool { return refused[a.Key(inv.Customer, acct, 1)] })
		if len(todo) == 0 {
			switch {
			case ownRefused > 0:
				rep.Outcome = OutcomeFailed
				rep.Err = fmt.Errorf("meterbill: invoice %s: %w: %d of its lines not billed", inv.ID, ErrLineRefused, ownRefused)
			case len(rep.Created) > 0 && pending:
				rep.Outcome = OutcomePending
			case len(rep.Created) > 0:
				rep.Outcome = OutcomeBilled
			case existing > 0:
				rep.Outcome = OutcomeAlreadyBilled
			default:
				rep.Outcome = OutcomeNothingToBill
			}
			return rep
		}
		if inv.ID == "" && how.makeInvoice != nil {
			made, err := how.makeInvoice()
			if err != nil {
				return fail(err)
			}
			inv.ID, inv.Status, rep.Invoice = made.ID, made.Status, made.ID
		}
		w.pending = pending
		reread, err := h.createAll(ctx, sc, inv, acct, todo, w, func(a billing.Action, ref *refusal) {
			// Refused for good: bill everything else, and say so loudly.
			refused[a.Key(inv.Customer, acct, 1)] = true
			if !a.CatchUp && a.Base == nil {
				ownRefused++
			}
			rep.Refused = append(rep.Refused, RefusedLine{Item: ref.item, Err: ref.err})
			h.o.logger.Error("meterbill: invoice line refused; its usage is not billed", "invoice", inv.ID,
				"customer", inv.Customer, "account", acct, "metric", a.Metric.Code, "from", a.From, "to", a.To,
				"amount", a.Line.Amount, "err", ref.err)
		})
		pending = w.pending
		rep.Created = append(rep.Created, w.created...)
		w.created = nil
		switch {
		case errors.Is(err, errVoided):
			rep.Outcome = OutcomeVoid // waived: lines created before the void stay on it
			return rep
		case errors.Is(err, errDeleted):
			rep.Outcome = OutcomeDeleted
			return rep
		case err != nil:
			return fail(err)
		}
		if !reread && ownRefused == 0 { // every line created: no need to read the ledger again
			rep.Outcome = OutcomeBilled
			if pending {
				rep.Outcome = OutcomePending
			}
			if len(rep.Created) == 0 {
				rep.Outcome = OutcomeNothingToBill
			}
			return rep
		}
		if err := backoff.Sleep(ctx, h.backoff.Wait(round)); err != nil {
			return fail(err)
		}
	}
}

// create creates one planned line, under the line's key of the current generation. It returns
// reread when the ledger must be read again before going on: Stripe answered a fresh 5xx (it
// may have created the item), or refused the key's parameters (another delivery created it
// with other ones), or the invoice was finalized meanwhile (*pending is then set).
func (h *Handler) create(ctx context.Context, sc StripeClient, inv StripeInvoice, acct uint64, a billing.Action, w *writes) (reread bool, err error) {
	base := a.Key(inv.Customer, acct, 1)
	if a.Line.Amount > MaxItemAmount || a.Line.Amount < -MaxItemAmount {
		item, _ := h.item(inv, acct, a, w.isPending())
		return false, &refusal{item: item,
			err: fmt.Errorf("%w: %d minor units of %s, the limit is %d", ErrAmountOverLimit, a.Line.Amount, a.Metric.Code, MaxItemAmount)}
	}
	for {
		pending := w.isPending()
		item, err := h.item(inv, acct, a, pending)
		if err != nil {
			return false, &refusal{item: item, err: fmt.Errorf("%w: %w", ErrLineRefused, err)}
		}
		key := a.Key(inv.Customer, acct, w.gen(base))
		created, err := retry(ctx, h, func() (InvoiceItem, error) {
			it, err := sc.CreateInvoiceItem(ctx, item, key)
			var se *StripeError
			if errors.As(err, &se) && (se.Status >= 500 || se.Code == "lock_timeout") {
				// Stripe may have stored this failure under the key (it replays a 5xx for a
				// day): never retry the key.
				return it, &stopRetry{err}
			}
			return it, err
		})
		var se *StripeError
		var stop *stopRetry
		switch {
		case err == nil:
			w.add(created)
			return false, nil
		case errors.As(err, &stop) && errors.As(err, &se) && se.Replayed:
			// A failure an earlier attempt stored under this key. The key is spent, but that
			// attempt may have created the item before failing (another replica's, since this
			// handling's ledger read): read the ledger again, then the next key. Every handling
			// walks the same sequence of keys, so concurrent ones meet; a replay provoked no new
			// failure, so it does not count against this handling's budget of fresh ones.
			w.next(base)
			return true, nil
		case errors.As(err, &stop):
			// A fresh 5xx: the item may exist despite it. Read the ledger, then a fresh key.
			if n := w.failedFresh(); n > maxFreshFailures {
				return false, fmt.Errorf("stripe failed %d times under fresh keys: %w", n, err)
			}
			w.next(base)
			return true, nil
		case errors.As(err, &se) && se.Type == "idempotency_error":
			// The key was used with other parameters (usage changed between two concurrent
			// deliveries, or one made it a pending item): the ledger says what exists.
			w.next(base)
			return true, nil
		case errors.As(err, &se) && se.Status >= 400 && se.Status < 500 && !pending:
			// Perhaps the invoice was finalized while we worked: then the lines go to the
			// customer's next invoice as pending items, never lost.
			cur, gerr := retry(ctx, h, func() (StripeInvoice, error) { return sc.Invoice(ctx, inv.ID) })
			var gse *StripeError
			switch {
			case errors.As(gerr, &gse) && gse.Status == http.StatusNotFound:
				return false, errDeleted // never pending items for an invoice that is gone
			case gerr != nil:
				return false, err
			case cur.Status == "draft":
				return false, &refusal{item: item, err: err}
			case cur.Status == "void":
				return false, errVoided // never pending items for a voided invoice
			}
			w.setPending()
			return true, nil
		case errors.As(err, &se) && se.Status >= 400 && se.Status < 500 && se.Status != http.StatusTooManyRequests:
			return false, &refusal{item: item, err: err}
		default:
			return false, err
		}
	}
}

// maxParallelRuns bounds the runs one handling creates at once: a few, so that an invoice with
// many lines finishes well within its deadline at Stripe's latencies, while the process's Stripe
// budget (WithStripeRateLimit) stays the limit that counts.
const maxParallelRuns = 4

// writes is what the creates of one handling share: they run concurrently, a run each.
type writes struct {
	mu      sync.Mutex
	pending bool           // lines go on as pending items
	gens    map[string]int // idempotency key generation per line, moved on after Stripe stored a failure
	fresh   int            // 5xx answers to keys not used before
	created []InvoiceItem
}

func (w *writes) isPending() bool     { w.mu.Lock(); defer w.mu.Unlock(); return w.pending }
func (w *writes) setPending()         { w.mu.Lock(); w.pending = true; w.mu.Unlock() }
func (w *writes) gen(base string) int { w.mu.Lock(); defer w.mu.Unlock(); return max(w.gens[base], 1) }
func (w *writes) next(base string) {
	w.mu.Lock()
	w.gens[base] = max(w.gens[base], 1) + 1
	w.mu.Unlock()
}
func (w *writes) failedFresh() int { w.mu.Lock(); defer w.mu.Unlock(); w.fresh++; return w.fresh }
func (w *writes) add(created InvoiceItem) {
	w.mu.Lock()
	w.created = append(w.created, created)
	w.mu.Unlock()
}

// createAll creates planned lines: the lines of one run in order (its first line decides its
// quantity for any concurrent handling), up to maxParallelRuns runs at once. It returns reread
// when the ledger must be read again before going on (a run stops at that line), and the first
// error that stops the handling; refusals go to refused, under a lock.
func (h *Handler) createAll(ctx context.Context, sc StripeClient, inv StripeInvoice, acct uint64, todo []billing.Action, w *writes,
	refused func(billing.Action, *refusal)) (reread bool, err error) {
	var runs [][]billing.Action
	index := map[string]int{}
	for _, a := range todo {
		k := fmt.Sprint(a.Metric.Code, a.From.Unix(), a.To.Unix(), a.Runs, a.Base != nil, a.Rebill)
		i, ok := index[k]
		if !ok {
			i = len(runs)
			index[k] = i
			runs = append(runs, nil)
		}
		runs[i] = append(runs[i], a)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxParallelRuns)
	stopped := false
	for _, run := range runs {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			for _, a := range run {
				mu.Lock()
				stop := stopped
				mu.Unlock()
				if stop {
					return
				}
				again, cerr := h.create(ctx, sc, inv, acct, a, w)
				mu.Lock()
				var ref *refusal
				switch {
				case errors.As(cerr, &ref):
					refused(a, ref)
				case cerr != nil:
					if err == nil {
						err = cerr
					}
					stopped = true
				}
				if again {
					reread = true
				}
				mu.Unlock()
				if again || cerr != nil && ref == nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return reread, err
}

// finalKey is the metadata key of a final invoice meterbill made: the subscription it ends.
const finalKey = "meterbill_final"

// billEnd bills what a subscription that ended still owes, on a final invoice meterbill makes
// (customer.subscription.deleted): its usage is billed in arrears, so its last period, the
// buckets straddling the end included, and any period missed before it, have no invoice of
// Stripe's to go on. The invoice is made only if something is owed, under an idempotency key
// and metadata naming the subscription, so redeliveries find it; with [FinalInvoiceCharge] it is
// finalized once its lines are on, and Stripe collects it.
func (h *Handler) billEnd(ctx context.Context, sc StripeClient, sub stripeevent.Subscription) *Report {
	ended := time.Unix(sub.EndedAt, 0).UTC()
	inv := StripeInvoice{Customer: sub.Customer, Currency: sub.Currency, Status: "draft",
		PeriodStart: time.Unix(sub.CurrentPeriodStart, 0).UTC(), PeriodEnd: ended,
		SubscriptionMetadata: sub.Metadata, BillingReason: "subscription_cycle", Subscription: sub.ID, PriceIDs: sub.PriceIDs}
	how := handling{fresh: true, final: true, nominalEnd: time.Unix(sub.CurrentPeriodEnd, 0).UTC()}
	failed := func(err error) *Report {
		return &Report{Customer: sub.Customer, Window: Period{Start: inv.PeriodStart, End: ended}, Outcome: OutcomeFailed,
			Err: fmt.Errorf("meterbill: final invoice of subscription %s: %w", sub.ID, err)}
	}
	// Final invoices made by earlier deliveries: lines go on the one still a draft. If they were
	// all finalized (by Stripe or by hand) before everything was on them, what is still owed
	// goes on a new one, the next of the subscription's final invoices.
	invs, err := retry(ctx, h, func() ([]StripeInvoice, error) {
		return sc.Invoices(ctx, InvoiceQuery{Customer: sub.Customer, CreatedSince: ended.Add(-24 * time.Hour)})
	})
	if err != nil {
		return failed(err)
	}
	finals := 0
	for _, made := range invs {
		if made.Metadata[finalKey] != sub.ID {
			continue
		}
		finals++
		if made.Status == "draft" {
			inv.ID = made.ID
		}
	}
	key := "meterbill-final-" + sub.ID
	if finals > 0 {
		key += "-" + strconv.Itoa(finals+1)
	}
	// Made with auto_advance off, so that Stripe never finalizes it before its lines are on.
	makeInvoice := func() (StripeInvoice, error) {
		return retry(ctx, h, func() (StripeInvoice, error) {
			return sc.CreateInvoice(ctx, NewInvoice{Customer: sub.Customer, Currency: sub.Currency,
				Description: "Usage up to the end of your subscription", IncludePending: true,
				Metadata: map[string]string{finalKey: sub.ID}}, key)
		})
	}
	if inv.ID == "" {
		how.makeInvoice = makeInvoice
	}
	rep := h.billWith(ctx, sc, inv, how)
	if rep.Err == nil && rep.Invoice == "" {
		// Nothing new is owed; pending items (usage of an invoice that arrived finalized, say)
		// would wait for an invoice that never comes: they go on the final invoice too.
		items, err := retry(ctx, h, func() ([]InvoiceItem, error) {
			return sc.InvoiceItems(ctx, sub.Customer, ledgerSince(inv, nil, h.o.lookback))
		})
		if err != nil {
			return failed(err)
		}
		if slices.ContainsFunc(items, func(it InvoiceItem) bool { return it.Invoice == "" && it.Currency == sub.Currency }) {
			made, err := makeInvoice()
			if err != nil {
				return failed(err)
			}
			rep.Invoice, rep.Outcome = made.ID, OutcomeBilled
		}
	}
	if rep.Err != nil || rep.Invoice == "" || h.o.finalInvoice != FinalInvoiceCharge {
		return rep
	}
	if _, err := retry(ctx, h, func() (StripeInvoice, error) { return sc.FinalizeInvoice(ctx, rep.Invoice) }); err != nil {
		rep.Outcome, rep.Err = OutcomeFailed, fmt.Errorf("meterbill: final invoice %s: finalizing: %w", rep.Invoice, err)
	}
	return rep
}

// errVoided and errDeleted stop a handling whose invoice was voided or deleted meanwhile.
var (
	errVoided  = errors.New("invoice voided")
	errDeleted = errors.New("invoice deleted")
)

// refusal is a line Stripe refused for good, or one over MaxItemAmount.
type refusal struct {
	item InvoiceItem
	err  error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// stopRetry marks an error retry must return at once.
type stopRetry struct{ err error }

func (s *stopRetry) Error() string { return s.err.Error() }
func (s *stopRetry) Unwrap() error { return s.err }

// ledgerEntries reads meterbill's records for account from a customer's items.
func ledgerEntries(items []InvoiceItem, account uint64) ([]ledger.Entry, error) {
	var out []ledger.Entry
	for _, it := range items {
		e, ours, err := ledger.Decode(it.Metadata)
		if err != nil {
			// Someone edited meterbill's metadata: stop rather than risk billing twice.
			return nil, fmt.Errorf("invoice item %s: %w", it.ID, err)
		}
		if ours && e.Account == account {
			e.Amount, e.OnInvoice = it.Amount, it.Invoice
			out = append(out, e)
		}
	}
	return out, nil
}

// plan returns the lines still to create for inv, and how many of its lines already exist. The
// decision is the planner's (internal/billing); the world it asks reads the meter, the pricer
// and, only when catch-up needs it, the subscription.
func (h *Handler) plan(ctx context.Context, sc StripeClient, pricer Pricer, inv StripeInvoice, acct uint64, entries []ledger.Entry, start *usageStart, rebill *StripeInvoice, how handling) ([]billing.Action, int, error) {
	metrics := pricer.Metrics()
	w := &world{ctx: ctx, h: h, sc: sc, pricer: pricer, inv: inv, currency: inv.Currency, acct: acct, start: start, metrics: make(map[string]Metric, len(metrics))}
	w.entries = entries
	planned := make([]billing.Metric, len(metrics))
	for i, m := range metrics {
		w.metrics[m.Code] = m
		merge := billing.Add // Count, Sum and CountUnique add across buckets, as in the meter
		switch m.Aggregation {
		case Max:
			merge = billing.Largest
		case Latest:
			merge = billing.Last
		}
		planned[i] = billing.Metric{Code: m.Code, Spec: m.spec(), Merge: merge}
	}
	binv := billing.Invoice{ID: inv.ID, Subscription: inv.Subscription, Start: inv.PeriodStart, End: inv.PeriodEnd,
		Renewal: inv.BillingReason == "subscription_cycle", Final: how.final, NominalEnd: how.nominalEnd}
	if rebill != nil {
		binv.Rebill = &billing.Voided{ID: rebill.ID, Start: rebill.PeriodStart, End: rebill.PeriodEnd}
	}
	todo, existing, err := billing.Plan(binv, planned, entries, w, h.o.lookback)
	if errors.Is(err, billing.ErrOverflow) && !errors.Is(err, ErrAmountOverflow) {
		err = fmt.Errorf("%w: %w", ErrAmountOverflow, err)
	}
	return todo, existing, err
}

// lastPlan is the name of the plan that billed the latest run of metric ("" for any metric) in
// the ledger, "" if none names one.
func lastPlan(entries []ledger.Entry, metric string) string {
	var name string
	var to time.Time
	for _, e := range entries {
		if n, _, ok := strings.Cut(e.Plan, ":"); ok && (metric == "" || e.Metric == metric) && !e.To.Before(to) {
			name, to = n, e.To
		}
	}
	return name
}

// world is what the planner asks of one handling: the account's usage, the pricer's lines in the
// invoice's currency, and when the subscription began.
type world struct {
	ctx      context.Context
	h        *Handler
	sc       StripeClient
	pricer   Pricer
	entries  []ledger.Entry // the ledger, for the plan that billed a metric last
	inv      StripeInvoice
	currency string
	acct     uint64
	start    *usageStart
	metrics  map[string]Metric
}

var _ billing.World = (*world)(nil)

func (w *world) Usage(m billing.Metric, runs []ledger.Run) (fixed.Micros, error) {
	u, err := w.h.usageOf(w.ctx, w.acct, w.metrics[m.Code], runs)
	return u.Value.m, err
}

func (w *world) Price(m billing.Metric, from, to time.Time, q fixed.Micros) ([]billing.Line, error) {
	u := Usage{Account: w.acct, Metric: w.metrics[m.Code], Window: Period{Start: from, End: to}, Value: Value{q}}
	lines, err := w.h.price(w.ctx, w.pricer, w.currency, u)
	if errors.Is(err, errNotInPlan) {
		// The subscriber's plan does not price this metric (it changed plans): its usage is
		// priced by the plan that billed the metric last, never dropped.
		if plans, ok := w.h.pricer.(*Plans); ok {
			if prev := plans.named(lastPlan(w.entries, m.Code)); prev != nil {
				lines, err = w.h.price(w.ctx, prev, w.currency, u)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]billing.Line, len(lines))
	for i, l := range lines {
		out[i] = billing.Line{Tier: l.Tier, Description: l.Description, Quantity: l.Quantity.m, Packages: l.Packages.m,
			UnitPrice: l.UnitPrice, FlatFee: l.FlatFee, Amount: l.Amount, Plan: l.Plan}
	}
	return out, nil
}

func (w *world) Start() (time.Time, bool, error) { return w.start.get(w.ctx) }

// Voided lists the subscription's voided invoices created since the horizon: their usage is
// waived, never caught up.
func (w *world) Voided(since time.Time) ([]billing.Voided, error) {
	if w.inv.Subscription == "" {
		return nil, nil
	}
	invs, err := retry(w.ctx, w.h, func() ([]StripeInvoice, error) {
		return w.sc.Invoices(w.ctx, InvoiceQuery{Subscription: w.inv.Subscription, Status: "void", CreatedSince: since})
	})
	if err != nil {
		return nil, fmt.Errorf("voided invoices of %s: %w", w.inv.Subscription, err)
	}
	out := make([]billing.Voided, len(invs))
	for i, v := range invs {
		out[i] = billing.Voided{ID: v.ID, Start: v.PeriodStart, End: v.PeriodEnd}
	}
	return out, nil
}

// usageStart is when an invoice's subscription began to bill usage: its start, or the end of
// its trial. It is read from Stripe at most once per handling, and only when needed.
type usageStart struct {
	h     *Handler
	sc    StripeClient
	inv   StripeInvoice
	done  bool
	at    time.Time
	known bool
	err   error
}

func (u *usageStart) get(ctx context.Context) (time.Time, bool, error) {
	if u.done {
		return u.at, u.known, u.err
	}
	u.done = true
	sub, err := retry(ctx, u.h, func() (StripeSubscription, error) { return u.sc.Subscription(ctx, u.inv.Subscription) })
	var se *StripeError
	switch {
	case errors.As(err, &se) && se.Status >= 400 && se.Status < 500 && !se.Retryable():
		// Gone (404), or the key may not read subscriptions (403): nobody can tell where the
		// customer's usage begins. The invoice's own window is billed as Stripe framed it,
		// nothing before it is caught up, and the log says so on every invoice.
		u.h.o.logger.Error("meterbill: subscription unreadable; its start is unknown, periods before the invoice are not caught up",
			"invoice", u.inv.ID, "subscription", u.inv.Subscription, "err", err)
	case err != nil:
		u.err = fmt.Errorf("subscription %s: %w", u.inv.Subscription, err)
	default:
		u.at, u.known = sub.Start, true
		if !u.h.o.trialUsage && sub.TrialEnd.After(u.at) {
			u.at = sub.TrialEnd
		}
	}
	return u.at, u.known, u.err
}

// price prices u with pricer, adding a zero line for no usage when WithZeroUsageLines asks for it.
func (h *Handler) price(ctx context.Context, pricer Pricer, currency string, u Usage) ([]Line, error) {
	lines, err := pricer.Price(ctx, currency, u)
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		if !strings.EqualFold(l.Currency, currency) {
			return nil, fmt.Errorf("%w: the pricer priced %s in %s for a %s invoice", ErrNoPrice, u.Metric.Code, l.Currency, currency)
		}
	}
	if len(lines) == 0 && h.o.zeroLines {
		lines = []Line{{Metric: u.Metric.Code, Description: u.Metric.Code, Currency: currency, UnitPrice: "0", FlatFee: "0"}}
	}
	return lines, nil
}

// item builds the Stripe invoice item for one action, with its ledger metadata. It fails only for
// a run with more lines than Stripe's metadata can record.
func (h *Handler) item(inv StripeInvoice, acct uint64, a billing.Action, pending bool) (InvoiceItem, error) {
	desc := fmt.Sprintf("%s: %s", a.Line.Description, a.Line.Quantity)
	if !a.Line.Packages.IsZero() {
		desc += fmt.Sprintf(" (%s packages)", a.Line.Packages)
	}
	var kind, base string
	switch {
	case a.Base != nil:
		desc, kind, base = a.Line.Description, ledger.KindAdjustment, a.Base.String()
	case a.Offset != nil:
		base = a.Offset.String()
	}
	if a.CatchUp && a.Base == nil {
		desc += fmt.Sprintf(" (%s, not billed before)", a.From.Format("2006-01-02"))
	}
	md, err := ledger.Encode(ledger.Entry{
		Account: acct, Metric: a.Metric.Code, Period: ledger.SpecString(a.Metric.Spec), From: a.From, To: a.To, Runs: a.Runs,
		Quantity: a.Quantity.String(), Tier: a.Line.Tier, LineQty: a.Line.Quantity.String(), UnitPrice: a.Line.UnitPrice, Invoice: inv.ID,
		Kind: kind, Base: base, Plan: a.Line.Plan, Lines: a.Run, Subscription: inv.Subscription,
	})
	it := InvoiceItem{
		Customer: inv.Customer, Invoice: inv.ID, Currency: inv.Currency, Description: desc, Amount: a.Line.Amount,
		PeriodStart: a.From, PeriodEnd: a.To, Metadata: md,
	}
	if a.Base == nil {
		it.Quantity, it.UnitAmountDecimal = shownQuantity(a.Line)
	}
	if pending {
		it.Invoice = ""
	}
	return it, err
}

// shownQuantity returns the whole quantity and unit price that show a line as Stripe shows its
// own ("Qty 3100 × $0.001"), or 0 when they cannot say it exactly: a fractional quantity, a flat
// fee, or a product that is not exactly the line's amount (Stripe would round it its own way).
// Package prices show the packages.
func shownQuantity(l billing.Line) (int64, string) {
	q := l.Quantity
	if !l.Packages.IsZero() {
		q = l.Packages
	}
	if l.UnitPrice == "" || q.IsZero() || q.Hi != 0 || q.Lo%1e6 != 0 || (l.FlatFee != "" && l.FlatFee != "0") {
		return 0, ""
	}
	n := int64(q.Lo / 1e6)
	unit, err := decimal.NewFromString(l.UnitPrice)
	if err != nil || unit.IsNegative() || !unit.Mul(decimal.NewFromInt(n)).Equal(decimal.NewFromInt(l.Amount)) {
		return 0, ""
	}
	return n, l.UnitPrice
}

// usageOf queries each run of buckets and merges them as the meter merges buckets: counts and
// sums add, Max takes the largest, Latest the newest reading.
func (h *Handler) usageOf(ctx context.Context, acct uint64, m Metric, runs []ledger.Run) (Usage, error) {
	var merged Usage
	for i, r := range runs {
		f, t := r.Window(m.spec())
		u, err := h.meter.Query(ctx, acct, m, Period{Start: unixUTC(f), End: unixUTC(t)})
		if err != nil {
			return Usage{}, fmt.Errorf("querying %s of account %d: %w", m.Code, acct, err)
		}
		if i == 0 {
			merged = u
			continue
		}
		switch m.Aggregation {
		case Max:
			if u.Value.Cmp(merged.Value) > 0 {
				merged.Value = u.Value
			}
		case Latest:
			if u.LatestAt.After(merged.LatestAt) {
				merged.Value, merged.LatestAt = u.Value, u.LatestAt
			}
		default: // Count, Sum, CountUnique add, as across a meter's buckets
			var ok bool
			if merged.Value, ok = merged.Value.Add(u.Value); !ok {
				return Usage{}, fmt.Errorf("%w: usage of %s overflows", ErrAmountOverflow, m.Code)
			}
		}
	}
	return merged, nil
}

// observedStripe times every Stripe request, and logs the failed ones at debug level (the
// invoice's outcome is logged once it is known). NewHandler and CustomerMetadataAccount wrap
// their client in it.
type observedStripe struct {
	StripeClient
	obs Observer
	log *slog.Logger
}

var _ StripeClient = observedStripe{}

func (s observedStripe) observe(op string, start time.Time, err error) {
	d := time.Since(start)
	status := "2xx"
	if err != nil {
		status = "error"
		var se *StripeError
		if errors.As(err, &se) {
			switch se.Status / 100 {
			case 4:
				status = "4xx"
			case 5:
				status = "5xx"
			}
		}
		s.log.Debug("meterbill: stripe request failed", "op", op, "status", status, "err", err)
	}
	s.obs.Observe(Measurement{Kind: StripeLatency, Op: op, Status: status, Duration: d})
}

func (s observedStripe) Invoice(ctx context.Context, id string) (StripeInvoice, error) {
	start := time.Now()
	inv, err := s.StripeClient.Invoice(ctx, id)
	s.observe("invoice", start, err)
	return inv, err
}

func (s observedStripe) Invoices(ctx context.Context, q InvoiceQuery) ([]StripeInvoice, error) {
	start := time.Now()
	invs, err := s.StripeClient.Invoices(ctx, q)
	s.observe("invoices", start, err)
	return invs, err
}

func (s observedStripe) CreateInvoice(ctx context.Context, inv NewInvoice, key string) (StripeInvoice, error) {
	start := time.Now()
	made, err := s.StripeClient.CreateInvoice(ctx, inv, key)
	s.observe("create_invoice", start, err)
	return made, err
}

func (s observedStripe) FinalizeInvoice(ctx context.Context, id string) (StripeInvoice, error) {
	start := time.Now()
	done, err := s.StripeClient.FinalizeInvoice(ctx, id)
	s.observe("finalize_invoice", start, err)
	return done, err
}

func (s observedStripe) Subscription(ctx context.Context, id string) (StripeSubscription, error) {
	start := time.Now()
	sub, err := s.StripeClient.Subscription(ctx, id)
	s.observe("subscription", start, err)
	return sub, err
}

func (s observedStripe) CustomerMetadata(ctx context.Context, id string) (map[string]string, error) {
	start := time.Now()
	md, err := s.StripeClient.CustomerMetadata(ctx, id)
	s.observe("customer_metadata", start, err)
	return md, err
}

func (s observedStripe) InvoiceItems(ctx context.Context, customer string, since time.Time) ([]InvoiceItem, error) {
	start := time.Now()
	items, err := s.StripeClient.InvoiceItems(ctx, customer, since)
	s.observe("invoice_items", start, err)
	return items, err
}

func (s observedStripe) CreateInvoiceItem(ctx context.Context, item InvoiceItem, idempotencyKey string) (InvoiceItem, error) {
	start := time.Now()
	it, err := s.StripeClient.CreateInvoiceItem(ctx, item, idempotencyKey)
	s.observe("create_invoice_item", start, err)
	return it, err
}
