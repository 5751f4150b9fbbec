// Package stripeapi is meterbill's adapter over stripe-go v82's stripe.Client: the four calls
// meterbill makes, with the SDK's own retries switched off (meterbill retries 409, 429 and 5xx
// itself, which v82 does not) and its logging sent to slog.
package stripeapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// Invoice is the part of a Stripe invoice meterbill reads.
type Invoice struct {
	ID, Customer, Currency, Status string
	PeriodStart, PeriodEnd         time.Time
	SubscriptionMetadata           map[string]string
	BillingReason                  string
	Subscription                   string
	Metadata                       map[string]string
	PriceIDs                       []string
}

// NewInvoice is an invoice to create.
type NewInvoice struct {
	Customer, Currency, Description string
	// SendInvoice sends the invoice for payment within DaysUntilDue days instead of charging the
	// customer's default payment method.
	SendInvoice    bool
	DaysUntilDue   int64
	AutoAdvance    bool
	IncludePending bool // the customer's pending items in the currency go onto it
	Metadata       map[string]string
}

// Subscription is the part of a Stripe subscription meterbill reads.
type Subscription struct {
	ID, Customer, Status string
	Start, TrialEnd      time.Time // TrialEnd is zero without a trial
	Metadata             map[string]string
}

// Item is an invoice item. PeriodEnd is exclusive here; Stripe's is inclusive, so the adapter
// sends and reads it one second earlier.
type Item struct {
	ID, Customer, Invoice, Currency, Description string
	Amount                                       int64
	// Quantity above 0 sends quantity and unit_amount_decimal (the exact string, not
	// stripe-go's float64) instead of amount.
	Quantity               int64
	UnitAmountDecimal      string
	PeriodStart, PeriodEnd time.Time
	Metadata               map[string]string
}

// Error is a failed Stripe call. Status is 0 when no HTTP answer arrived.
type Error struct {
	Op        string
	Status    int
	Type      string
	Code      string
	RequestID string
	// Replayed is true when Stripe answered with a result it stored earlier under the same
	// idempotency key (the Idempotent-Replayed header).
	Replayed bool
	Err      error
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("stripe %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("stripe %s: HTTP %d %s %s (request %s)", e.Op, e.Status, e.Type, e.Code, e.RequestID)
}

func (e *Error) Unwrap() error { return e.Err }

// Client calls Stripe through stripe-go.
type Client struct {
	sc      *stripe.Client
	perCall *Limiter // a caller's client: the budget is held once per call (its transport is not ours)

	// Account, when set, is the connected account every request acts on (the Stripe-Account
	// header of Connect).
	Account string
	// ItemHook, when set, adds fields to every invoice item created, before the fields
	// meterbill owns are set (see CreateInvoiceItem).
	ItemHook func(*stripe.InvoiceItemCreateParams)
}

// Wrap returns a client over a stripe-go client the caller configured (its backends, retries,
// telemetry and logging stay as they are). Requests are not counted by page, and limiter (nil:
// none) holds each call, not each page of a list, to its budget.
func Wrap(sc *stripe.Client, limiter *Limiter) *Client {
	return &Client{sc: sc, perCall: limiter}
}

// call makes one SDK call: its parameters scoped to the connected account, the call held to the
// per-call budget (a caller's client) and its answer fed back to it, its error wrapped as op.
func call[P interface{ SetStripeAccount(string) }, R any](ctx context.Context, c *Client, op string, params P, f func(P) (R, error)) (R, error) {
	var zero R
	if c.Account != "" {
		params.SetStripeAccount(c.Account)
	}
	if c.perCall != nil {
		if err := c.perCall.wait(ctx); err != nil {
			return zero, wrap(op, err)
		}
	}
	r, err := f(params)
	c.end(err)
	if err != nil {
		return zero, wrap(op, err)
	}
	return r, nil
}

// end feeds a call's answer back to the per-call budget, so that a 429 slows it down.
func (c *Client) end(err error) {
	if c.perCall == nil {
		return
	}
	status, retryAfter := http.StatusOK, ""
	var se *stripe.Error
	if errors.As(err, &se) {
		status = se.HTTPStatusCode
		if se.LastResponse != nil {
			retryAfter = se.LastResponse.Header.Get("Retry-After")
		}
	}
	c.perCall.answered(status, retryAfter)
}

// New returns a client for key. url "" means Stripe's API; hc nil means a 30 s timeout client;
// limiter nil means no limit.
func New(key, url string, hc *http.Client, logger *slog.Logger, limiter *Limiter) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	counted := *hc // a copy: the caller's client is not changed
	counted.Transport = countingTransport{base: hc.Transport, limiter: limiter}
	hc = &counted
	cfg := &stripe.BackendConfig{
		HTTPClient:        hc,
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     slogLogger{logger},
		EnableTelemetry:   stripe.Bool(false),
	}
	if url != "" {
		cfg.URL = stripe.String(url)
	}
	return &Client{sc: stripe.NewClient(key, stripe.WithBackends(stripe.NewBackendsWithConfig(cfg)))}
}

type counterKey struct{}

// WithCounter returns a context under which every HTTP request the client sends, each page of a
// list and each retry included, adds one to n.
func WithCounter(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, counterKey{}, n)
}

// countingTransport holds each request to the limiter's budget, and counts it into the counter
// its context carries.
type countingTransport struct {
	base    http.RoundTripper
	limiter *Limiter
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.limiter != nil {
		if err := t.limiter.wait(r.Context()); err != nil {
			return nil, err
		}
	}
	if n, ok := r.Context().Value(counterKey{}).(*atomic.Int64); ok {
		n.Add(1)
	}
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	res, err := base.RoundTrip(r)
	if err == nil && t.limiter != nil {
		t.limiter.answered(res.StatusCode, res.Header.Get("Retry-After"))
	}
	return res, err
}

// Invoice retrieves an invoice.
func (c *Client) Invoice(ctx context.Context, id string) (Invoice, error) {
	inv, err := call(ctx, c, "retrieve invoice", &stripe.InvoiceRetrieveParams{}, func(p *stripe.InvoiceRetrieveParams) (*stripe.Invoice, error) {
		return c.sc.V1Invoices.Retrieve(ctx, id, p)
	})
	if err != nil {
		return Invoice{}, err
	}
	return invoiceOf(inv), nil
}

func invoiceOf(inv *stripe.Invoice) Invoice {
	var prices []string
	if inv.Lines != nil {
		for _, l := range inv.Lines.Data {
			if l.Pricing != nil && l.Pricing.PriceDetails != nil && l.Pricing.PriceDetails.Price != "" && !slices.Contains(prices, l.Pricing.PriceDetails.Price) {
				prices = append(prices, l.Pricing.PriceDetails.Price)
			}
		}
	}
	out := Invoice{ID: inv.ID, Currency: string(inv.Currency), Status: string(inv.Status), Metadata: inv.Metadata, PriceIDs: prices,
		PeriodStart: time.Unix(inv.PeriodStart, 0).UTC(), PeriodEnd: time.Unix(inv.PeriodEnd, 0).UTC(),
		BillingReason: string(inv.BillingReason)}
	if inv.Customer != nil {
		out.Customer = inv.Customer.ID
	}
	if inv.Parent != nil && inv.Parent.SubscriptionDetails != nil {
		out.SubscriptionMetadata = inv.Parent.SubscriptionDetails.Metadata
		if inv.Parent.SubscriptionDetails.Subscription != nil {
			out.Subscription = inv.Parent.SubscriptionDetails.Subscription.ID
		}
	}
	return out
}

// Invoices lists invoices, newest first, every page: those of subscription (or of customer, if
// subscription is ""), with status if not "", created at or after since if not zero.
func (c *Client) Invoices(ctx context.Context, customer, subscription, status string, since time.Time) ([]Invoice, error) {
	params := &stripe.InvoiceListParams{}
	params.Limit = stripe.Int64(100)
	if subscription != "" {
		params.Subscription = stripe.String(subscription)
	} else if customer != "" {
		params.Customer = stripe.String(customer)
	}
	if status != "" {
		params.Status = stripe.String(status)
	}
	if !since.IsZero() {
		params.CreatedRange = &stripe.RangeQueryParams{GreaterThanOrEqual: since.Unix()}
	}
	return call(ctx, c, "list invoices", params, func(p *stripe.InvoiceListParams) ([]Invoice, error) {
		return collect(c.sc.V1Invoices.List(ctx, p), invoiceOf)
	})
}

// collect reads every page of a list, converting each object.
func collect[S, T any](list stripe.Seq2[*S, error], convert func(*S) T) ([]T, error) {
	var out []T
	for obj, err := range list {
		if err != nil {
			return nil, err
		}
		out = append(out, convert(obj))
	}
	return out, nil
}

// CreateInvoice creates a draft invoice under an idempotency key.
func (c *Client) CreateInvoice(ctx context.Context, n NewInvoice, key string) (Invoice, error) {
	params := &stripe.InvoiceCreateParams{
		Customer:    stripe.String(n.Customer),
		Currency:    stripe.String(n.Currency),
		AutoAdvance: stripe.Bool(n.AutoAdvance),
		Metadata:    n.Metadata,
	}
	if n.Description != "" {
		params.Description = stripe.String(n.Description)
	}
	if n.SendInvoice {
		params.CollectionMethod = stripe.String(string(stripe.InvoiceCollectionMethodSendInvoice))
		params.DaysUntilDue = stripe.Int64(n.DaysUntilDue)
	} else {
		params.CollectionMethod = stripe.String(string(stripe.InvoiceCollectionMethodChargeAutomatically))
	}
	if n.IncludePending {
		params.PendingInvoiceItemsBehavior = stripe.String("include")
	} else {
		params.PendingInvoiceItemsBehavior = stripe.String("exclude")
	}
	params.SetIdempotencyKey(key)
	inv, err := call(ctx, c, "create invoice", params, func(p *stripe.InvoiceCreateParams) (*stripe.Invoice, error) {
		return c.sc.V1Invoices.Create(ctx, p)
	})
	if err != nil {
		return Invoice{}, err
	}
	return invoiceOf(inv), nil
}

// FinalizeInvoice finalizes a draft invoice, with automatic collection on.
func (c *Client) FinalizeInvoice(ctx context.Context, id string) (Invoice, error) {
	params := &stripe.InvoiceFinalizeInvoiceParams{AutoAdvance: stripe.Bool(true)}
	inv, err := call(ctx, c, "finalize invoice", params, func(p *stripe.InvoiceFinalizeInvoiceParams) (*stripe.Invoice, error) {
		return c.sc.V1Invoices.FinalizeInvoice(ctx, id, p)
	})
	if err != nil {
		return Invoice{}, err
	}
	return invoiceOf(inv), nil
}

// Subscription retrieves a subscription.
func (c *Client) Subscription(ctx context.Context, id string) (Subscription, error) {
	sub, err := call(ctx, c, "retrieve subscription", &stripe.SubscriptionRetrieveParams{}, func(p *stripe.SubscriptionRetrieveParams) (*stripe.Subscription, error) {
		return c.sc.V1Subscriptions.Retrieve(ctx, id, p)
	})
	if err != nil {
		return Subscription{}, err
	}
	out := Subscription{ID: sub.ID, Status: string(sub.Status), Start: time.Unix(sub.StartDate, 0).UTC(), Metadata: sub.Metadata}
	if sub.Customer != nil {
		out.Customer = sub.Customer.ID
	}
	if sub.TrialEnd != 0 {
		out.TrialEnd = time.Unix(sub.TrialEnd, 0).UTC()
	}
	return out, nil
}

// CustomerMetadata retrieves a customer's metadata.
func (c *Client) CustomerMetadata(ctx context.Context, id string) (map[string]string, error) {
	cu, err := call(ctx, c, "retrieve customer", &stripe.CustomerRetrieveParams{}, func(p *stripe.CustomerRetrieveParams) (*stripe.Customer, error) {
		return c.sc.V1Customers.Retrieve(ctx, id, p)
	})
	if err != nil {
		return nil, err
	}
	return cu.Metadata, nil
}

// InvoiceItems lists a customer's invoice items, pending or invoiced, created at or after since
// (zero: all), 100 a page.
func (c *Client) InvoiceItems(ctx context.Context, customer string, since time.Time) ([]Item, error) {
	params := &stripe.InvoiceItemListParams{Customer: stripe.String(customer)}
	params.Limit = stripe.Int64(100)
	if !since.IsZero() {
		params.CreatedRange = &stripe.RangeQueryParams{GreaterThanOrEqual: since.Unix()}
	}
	return call(ctx, c, "list invoice items", params, func(p *stripe.InvoiceItemListParams) ([]Item, error) {
		return collect(c.sc.V1InvoiceItems.List(ctx, p), fromStripe)
	})
}

// CreateInvoiceItem creates an item under an idempotency key. An item without Invoice is
// pending: Stripe puts it on the customer's next invoice.
//
// ItemHook runs first, on empty parameters. Then the fields meterbill owns are set, whatever the
// hook put there: the customer, currency, description, invoice and period; the amount (or the
// quantity and exact unit amount); metadata keys of meterbill's (others the hook set are kept);
// and the idempotency key and account. Where the item goes is meterbill's too: subscription
// and pricing are cleared. A product set by the hook (price_data[product]) is
// kept: the item's unit amount then goes in price_data, so that Stripe computes the same amount.
func (c *Client) CreateInvoiceItem(ctx context.Context, it Item, key string) (Item, error) {
	params := &stripe.InvoiceItemCreateParams{}
	if c.ItemHook != nil {
		c.ItemHook(params)
	}
	params.Customer, params.Currency, params.Description = stripe.String(it.Customer), stripe.String(it.Currency), stripe.String(it.Description)
	params.Subscription, params.Pricing = nil, nil
	params.Amount, params.Quantity, params.UnitAmountDecimal = nil, nil, nil
	if len(params.Metadata) > 0 {
		md := make(map[string]string, len(params.Metadata)+len(it.Metadata))
		maps.Copy(md, params.Metadata)
		maps.Copy(md, it.Metadata)
		params.Metadata = md
	} else {
		params.Metadata = it.Metadata
	}
	quantity, unit := it.Quantity, it.UnitAmountDecimal
	if quantity <= 0 {
		quantity, unit = 1, strconv.FormatInt(it.Amount, 10)
	}
	switch {
	case params.PriceData != nil: // the hook names a product: the amount goes in price_data
		params.PriceData.Currency = stripe.String(it.Currency)
		params.PriceData.UnitAmount, params.PriceData.UnitAmountDecimal = nil, nil
		params.AddExtra("price_data[unit_amount_decimal]", unit) // exact: stripe-go's field is a float64
		params.Quantity = stripe.Int64(quantity)
	case it.Quantity > 0:
		params.Quantity = stripe.Int64(it.Quantity)
		params.AddExtra("unit_amount_decimal", it.UnitAmountDecimal) // exact: stripe-go's field is a float64
	default:
		params.Amount = stripe.Int64(it.Amount)
	}
	params.Invoice, params.Period = nil, nil
	if it.Invoice != "" {
		params.Invoice = stripe.String(it.Invoice)
	}
	if !it.PeriodStart.IsZero() {
		params.Period = &stripe.InvoiceItemCreatePeriodParams{
			Start: stripe.Int64(it.PeriodStart.Unix()),
			End:   stripe.Int64(it.PeriodEnd.Unix() - 1), // Stripe's end is inclusive
		}
	}
	params.SetIdempotencyKey(key)
	params.StripeAccount = nil // the account is meterbill's: call sets it, or none
	ii, err := call(ctx, c, "create invoice item", params, func(p *stripe.InvoiceItemCreateParams) (*stripe.InvoiceItem, error) {
		return c.sc.V1InvoiceItems.Create(ctx, p)
	})
	if err != nil {
		return Item{}, err
	}
	return fromStripe(ii), nil
}

func fromStripe(ii *stripe.InvoiceItem) Item {
	out := Item{ID: ii.ID, Currency: string(ii.Currency), Description: ii.Description, Amount: ii.Amount, Metadata: ii.Metadata}
	if ii.Quantity > 1 { // a quantity of 1 is Stripe's default for an amount-only item
		out.Quantity = ii.Quantity
	}
	if ii.Customer != nil {
		out.Customer = ii.Customer.ID
	}
	if ii.Invoice != nil {
		out.Invoice = ii.Invoice.ID
	}
	if ii.Period != nil {
		out.PeriodStart = time.Unix(ii.Period.Start, 0).UTC()
		out.PeriodEnd = time.Unix(ii.Period.End+1, 0).UTC()
	}
	return out
}

func wrap(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Op: op, Err: err}
	}
	var se *stripe.Error
	if errors.As(err, &se) {
		replayed := se.LastResponse != nil && se.LastResponse.Header.Get("Idempotent-Replayed") == "true"
		return &Error{Op: op, Status: se.HTTPStatusCode, Type: string(se.Type), Code: string(se.Code), RequestID: se.RequestID, Replayed: replayed, Err: err}
	}
	return &Error{Op: op, Err: err}
}

// slogLogger sends stripe-go's own log lines to slog at DEBUG, whatever the SDK's level: it
// writes three lines a call at INFO, one of them "Not retrying request: max retries exceeded"
// after a success (meterbill sets no SDK retries), and an ERROR line for every answer that is not
// a 2xx, including the 404s and 409s meterbill expects and handles. meterbill reports each
// failure itself, with the invoice it concerns; the SDK's lines are for debugging.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Debugf(format string, v ...any) { s.debug(format, v) }
func (s slogLogger) Infof(format string, v ...any)  { s.debug(format, v) }
func (s slogLogger) Warnf(format string, v ...any)  { s.debug(format, v) }
func (s slogLogger) Errorf(format string, v ...any) { s.debug(format, v) }

func (s slogLogger) debug(format string, v []any) {
	if s.l.Enabled(context.Background(), slog.LevelDebug) { // format only what is kept
		s.l.Debug(fmt.Sprintf(format, v...), "source", "stripe-go")
	}
}
