// Package stripeevent verifies and decodes Stripe webhook deliveries for meterbill: the
// signature against any of several secrets, and only the fields of invoice.created that
// meterbill reads.
package stripeevent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
)

// ErrMalformed reports a signed body that is not a usable event.
var ErrMalformed = errors.New("malformed event")

// Verify checks the Stripe-Signature header against each secret through stripe-go's webhook
// package (constant-time HMAC over every v1 signature, tolerance on the timestamp's age), and
// also refuses timestamps more than tolerance in the future, which stripe-go accepts.
func Verify(payload []byte, header string, secrets []string, tolerance time.Duration, now time.Time) error {
	err := errors.New("no signing secret") // fail closed
	for _, secret := range secrets {
		err = webhook.ValidatePayloadWithTolerance(payload, header, secret, tolerance)
		if err == nil {
			break
		}
		if !errors.Is(err, webhook.ErrNoValidSignature) {
			return err // the header or its age: no other secret helps
		}
	}
	if err != nil {
		return err
	}
	if t, ok := signedAt(header); !ok || t.After(now.Add(tolerance)) {
		return errors.New("timestamp is in the future")
	}
	return nil
}

// signedAt returns the t= timestamp of a Stripe-Signature header: the last one, as stripe-go
// reads it.
func signedAt(header string) (time.Time, bool) {
	t, ok := time.Time{}, false
	for part := range strings.SplitSeq(header, ",") {
		if v, found := strings.CutPrefix(strings.TrimSpace(part), "t="); found {
			sec, err := strconv.ParseInt(v, 10, 64)
			t, ok = time.Unix(sec, 0), err == nil
		}
	}
	return t, ok
}

// Event is the envelope of a delivery.
type Event struct {
	ID, Type string
}

// Invoice is what meterbill reads of an invoice.created's invoice.
type Invoice struct {
	ID, Customer, Currency, Status string
	PeriodStart, PeriodEnd         int64 // Unix seconds
	SubscriptionMetadata           map[string]string
	BillingReason                  string // "subscription_cycle", "manual", ...; "" if absent
	Subscription                   string // the subscription's id; "" for an invoice without one
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
	Parent        *struct {
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
	if ev.Type != "invoice.created" {
		return ev, Invoice{}, nil
	}
	var wi wireInvoice
	if err := json.Unmarshal(we.Data.Object, &wi); err != nil {
		return ev, Invoice{}, fmt.Errorf("%w: invoice: %w", ErrMalformed, err)
	}
	inv := Invoice{ID: wi.ID, Currency: strings.ToLower(wi.Currency), Status: wi.Status, PeriodStart: wi.PeriodStart, PeriodEnd: wi.PeriodEnd, BillingReason: wi.BillingReason}
	inv.Customer = idOf(wi.Customer)
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
