// Package stripeevent verifies and decodes Stripe webhook deliveries for meterbill: the
// signature against any of several secrets, and only the fields of invoice.created that
// meterbill reads.
package stripeevent

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
)

// ErrMalformed reports a signed body that is not a usable event.
var ErrMalformed = errors.New("malformed event")

// Header refusals of meterbill's own. The others are stripe-go's: webhook.ErrNotSigned,
// webhook.ErrInvalidHeader, webhook.ErrTooOld and webhook.ErrNoValidSignature.
var (
	// ErrFuture reports a timestamp more than the tolerance ahead, which stripe-go accepts.
	ErrFuture = errors.New("timestamp is in the future")
	// ErrTimestamps reports a header without exactly one t part: stripe-go would sign-check the
	// last one, and nothing else may then be read as the signing time.
	ErrTimestamps = errors.New("webhook Stripe-Signature header needs exactly one t= part")
)

// CheckHeader refuses a Stripe-Signature header that cannot verify whatever the body: missing,
// malformed, without exactly one t part or any v1 signature, or with a timestamp more than
// tolerance away from now in either direction. It reads no body and costs no HMAC, so a handler
// calls it before reading the request. [Verify] calls it too.
func CheckHeader(header string, tolerance time.Duration, now time.Time) error {
	at, err := signedAt(header)
	if err != nil {
		return err
	}
	switch {
	case now.Sub(at) > tolerance: // as stripe-go: time.Since(t) > tolerance
		return webhook.ErrTooOld
	case at.Sub(now) > tolerance:
		return ErrFuture
	}
	return nil
}

// Verify checks the Stripe-Signature header: first [CheckHeader], against now, then the HMAC
// against each secret through stripe-go's webhook package (constant-time, every v1 signature
// tried, so secrets can be rolled). The HMAC is checked over the very timestamp CheckHeader
// checked, because both read the header the same way and a header has only one t.
func Verify(payload []byte, header string, secrets []string, tolerance time.Duration, now time.Time) error {
	if err := CheckHeader(header, tolerance, now); err != nil {
		return err
	}
	err := errors.New("no signing secret") // fail closed
	for _, secret := range secrets {
		// The timestamp's age was checked above, against now rather than the wall clock.
		if err = webhook.ValidatePayloadIgnoringTolerance(payload, header, secret); err == nil {
			return nil
		}
		if !errors.Is(err, webhook.ErrNoValidSignature) {
			return err // the header: no other secret helps
		}
	}
	return err
}

// signedAt returns the t= timestamp of a Stripe-Signature header, reading the header exactly as
// stripe-go's parseSignatureHeader does: parts split on ",", each split on "=" into exactly two,
// no trimming (so " t=1" is an unknown part, ignored), v1 values that are not hex skipped. It
// refuses what stripe-go refuses, and also a header with no t part or more than one: stripe-go
// signs over the last, and any other reading could then disagree with it.
func signedAt(header string) (time.Time, error) {
	if header == "" {
		return time.Time{}, webhook.ErrNotSigned
	}
	var (
		sec     int64
		ts      int
		signed  bool
		invalid bool
	)
	for pair := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || strings.Contains(v, "=") {
			invalid = true
			continue
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				invalid = true
				continue
			}
			sec, ts = n, ts+1
		case "v1":
			if _, err := hex.DecodeString(v); err == nil {
				signed = true
			}
		}
	}
	switch {
	case invalid:
		return time.Time{}, webhook.ErrInvalidHeader
	case !signed:
		return time.Time{}, webhook.ErrNoValidSignature
	case ts != 1:
		return time.Time{}, ErrTimestamps
	}
	return time.Unix(sec, 0), nil
}

// Event is the envelope of a delivery.
type Event struct {
	ID, Type string
	// Subscription is the event's subscription, for customer.subscription.deleted; nil for other
	// types.
	Subscription *Subscription
}

// SubscriptionDeleted is the event type of a subscription that ended.
const SubscriptionDeleted = "customer.subscription.deleted"

// Subscription is what meterbill reads of a customer.subscription.deleted's subscription.
type Subscription struct {
	ID, Customer, Status, Currency string
	Metadata                       map[string]string
	// PriceIDs are the Stripe prices of its items.
	PriceIDs []string
	// StartDate, TrialEnd, EndedAt and the current period are Unix seconds, 0 when absent. The
	// current period is that of the subscription's first item (basil moved it from the
	// subscription onto its items), or the subscription's own in older versions.
	StartDate, TrialEnd, EndedAt, CurrentPeriodStart, CurrentPeriodEnd int64
}

// wireLine is an invoice line: its price in basil (pricing.price_details.price) or before
// (price.id).
type wireLine struct {
	Pricing *struct {
		PriceDetails *struct {
			Price string `json:"price"`
		} `json:"price_details"`
	} `json:"pricing"`
	Price *struct {
		ID string `json:"id"`
	} `json:"price"`
}

func (l wireLine) priceID() string {
	switch {
	case l.Pricing != nil && l.Pricing.PriceDetails != nil:
		return l.Pricing.PriceDetails.Price
	case l.Price != nil:
		return l.Price.ID
	}
	return ""
}

type wireSubscription struct {
	ID         string            `json:"id"`
	Object     string            `json:"object"`
	Customer   json.RawMessage   `json:"customer"`
	Status     string            `json:"status"`
	Currency   string            `json:"currency"`
	Metadata   map[string]string `json:"metadata"`
	StartDate  int64             `json:"start_date"`
	TrialEnd   *int64            `json:"trial_end"`
	EndedAt    *int64            `json:"ended_at"`
	CanceledAt *int64            `json:"canceled_at"`
	// Before basil, the current period was the subscription's own.
	CurrentPeriodStart int64 `json:"current_period_start"`
	CurrentPeriodEnd   int64 `json:"current_period_end"`
	Items              struct {
		Data []struct {
			CurrentPeriodStart int64 `json:"current_period_start"`
			CurrentPeriodEnd   int64 `json:"current_period_end"`
			Price              *struct {
				ID string `json:"id"`
			} `json:"price"`
		} `json:"data"`
	} `json:"items"`
}

// decodeSubscription reads a customer.subscription.deleted's subscription.
func decodeSubscription(raw json.RawMessage) (*Subscription, error) {
	var ws wireSubscription
	if err := json.Unmarshal(raw, &ws); err != nil {
		return nil, fmt.Errorf("%w: subscription: %w", ErrMalformed, err)
	}
	sub := &Subscription{ID: ws.ID, Customer: idOf(ws.Customer), Status: ws.Status, Currency: strings.ToLower(ws.Currency),
		Metadata: ws.Metadata, StartDate: ws.StartDate}
	if ws.TrialEnd != nil {
		sub.TrialEnd = *ws.TrialEnd
	}
	switch {
	case ws.EndedAt != nil:
		sub.EndedAt = *ws.EndedAt
	case ws.CanceledAt != nil:
		sub.EndedAt = *ws.CanceledAt
	}
	sub.CurrentPeriodStart, sub.CurrentPeriodEnd = ws.CurrentPeriodStart, ws.CurrentPeriodEnd
	if len(ws.Items.Data) > 0 {
		sub.CurrentPeriodStart, sub.CurrentPeriodEnd = ws.Items.Data[0].CurrentPeriodStart, ws.Items.Data[0].CurrentPeriodEnd
	}
	for _, it := range ws.Items.Data {
		if it.Price != nil && it.Price.ID != "" {
			sub.PriceIDs = append(sub.PriceIDs, it.Price.ID)
		}
	}
	switch {
	case ws.Object != "subscription" || sub.ID == "":
		return nil, fmt.Errorf("%w: %s without a subscription", ErrMalformed, SubscriptionDeleted)
	case sub.Customer == "":
		return nil, fmt.Errorf("%w: subscription %.40q has no customer", ErrMalformed, sub.ID)
	case sub.EndedAt <= 0:
		return nil, fmt.Errorf("%w: subscription %.40q has not ended", ErrMalformed, sub.ID)
	case len(sub.Currency) != 3 || strings.Trim(sub.Currency, "abcdefghijklmnopqrstuvwxyz") != "":
		return nil, fmt.Errorf("%w: subscription %.40q has currency %.10q", ErrMalformed, sub.ID, ws.Currency)
	case sub.CurrentPeriodStart <= 0 || sub.CurrentPeriodStart > sub.EndedAt || sub.CurrentPeriodEnd < sub.CurrentPeriodStart:
		return nil, fmt.Errorf("%w: subscription %.40q has no current period ending after it began, starting before it ended", ErrMalformed, sub.ID)
	}
	return sub, nil
}

// Invoice is what meterbill reads of an invoice.created's invoice.
type Invoice struct {
	ID, Customer, Currency, Status string
	PeriodStart, PeriodEnd         int64 // Unix seconds
	SubscriptionMetadata           map[string]string
	BillingReason                  string   // "subscription_cycle", "manual", ...; "" if absent
	Subscription                   string   // the subscription's id; "" for an invoice without one
	PriceIDs                       []string // the Stripe prices of the lines the event lists
}

// The JSON shapes. These fields are the same in the basil, clover and dahlia API versions, so
// events of any of them decode; stripe-go's ConstructEvent would reject the newer ones, and a
// rejected event leaves an invoice unbilled.
type wireEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

type wireInvoice struct {
	ID          string          `json:"id"`
	Object      string          `json:"object"`
	Customer    json.RawMessage `json:"customer"` // an id, or an object when expanded
	Currency    string          `json:"currency"`
	Status      string          `json:"status"`
	PeriodStart int64           `json:"period_start"`
	PeriodEnd   int64           `json:"period_end"`
	// BillingReason is optional: catch-up keys off it, and its absence only turns catch-up off.
	BillingReason string `json:"billing_reason"`
	Lines         struct {
		Data []wireLine `json:"data"`
	} `json:"lines"`
	Parent *struct {
		SubscriptionDetails *struct {
			Metadata     map[string]string `json:"metadata"`
			Subscription json.RawMessage   `json:"subscription"` // an id, or an object when expanded
		} `json:"subscription_details"`
	} `json:"parent"`
}

// Decode reads a delivery. For types other than invoice.created it returns the envelope and a
// zero Invoice. Errors wrap ErrMalformed.
func Decode(payload []byte) (Event, Invoice, error) {
	var we wireEvent
	if err := json.Unmarshal(payload, &we); err != nil {
		return Event{}, Invoice{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	ev := Event{ID: we.ID, Type: we.Type}
	if ev.ID == "" || ev.Type == "" {
		return ev, Invoice{}, fmt.Errorf("%w: no event id or type", ErrMalformed)
	}
	if ev.Type == SubscriptionDeleted {
		sub, err := decodeSubscription(we.Data.Object)
		if err != nil {
			return ev, Invoice{}, err
		}
		ev.Subscription = sub
		return ev, Invoice{}, nil
	}
	if ev.Type != "invoice.created" {
		return ev, Invoice{}, nil
	}
	var wi wireInvoice
	if err := json.Unmarshal(we.Data.Object, &wi); err != nil {
		return ev, Invoice{}, fmt.Errorf("%w: invoice: %w", ErrMalformed, err)
	}
	inv := Invoice{ID: wi.ID, Currency: strings.ToLower(wi.Currency), Status: wi.Status, PeriodStart: wi.PeriodStart, PeriodEnd: wi.PeriodEnd, BillingReason: wi.BillingReason}
	inv.Customer = idOf(wi.Customer)
	for _, l := range wi.Lines.Data {
		if id := l.priceID(); id != "" && !slices.Contains(inv.PriceIDs, id) {
			inv.PriceIDs = append(inv.PriceIDs, id)
		}
	}
	if wi.Parent != nil && wi.Parent.SubscriptionDetails != nil {
		inv.SubscriptionMetadata = wi.Parent.SubscriptionDetails.Metadata
		inv.Subscription = idOf(wi.Parent.SubscriptionDetails.Subscription)
	}
	switch {
	case wi.Object != "invoice" || inv.ID == "":
		return ev, inv, fmt.Errorf("%w: invoice.created without an invoice", ErrMalformed)
	case inv.Customer == "":
		return ev, inv, fmt.Errorf("%w: invoice %.40q has no customer", ErrMalformed, inv.ID)
	case inv.Status == "":
		return ev, inv, fmt.Errorf("%w: invoice %.40q has no status", ErrMalformed, inv.ID)
	case len(inv.Currency) != 3 || strings.Trim(inv.Currency, "abcdefghijklmnopqrstuvwxyz") != "":
		return ev, inv, fmt.Errorf("%w: invoice %.40q has currency %.10q", ErrMalformed, inv.ID, wi.Currency)
	case inv.PeriodStart <= 0 || inv.PeriodEnd < inv.PeriodStart:
		return ev, inv, fmt.Errorf("%w: invoice %.40q has period [%d, %d)", ErrMalformed, inv.ID, inv.PeriodStart, inv.PeriodEnd)
	}
	return ev, inv, nil
}

// idOf reads an expandable field: an id, or an object with an id. Anything else is "".
func idOf(raw json.RawMessage) string {
	var id string
	if json.Unmarshal(raw, &id) == nil {
		return id
	}
	var expanded struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &expanded)
	return expanded.ID
}
