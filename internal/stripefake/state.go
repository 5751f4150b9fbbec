package stripefake

import (
	"fmt"
	"maps"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Invoice is an invoice the fake knows, as set up by AddInvoice.
type Invoice struct {
	ID, Customer, Currency, Status, BillingReason string
	PeriodStart, PeriodEnd                        int64 // unix seconds
	// Subscription is the id of the subscription that generated the invoice,
	// or "" for an invoice without a parent.
	Subscription string
	// SubscriptionMetadata is shown at parent.subscription_details.metadata.
	SubscriptionMetadata map[string]string
	Livemode             bool
	// Created is when the invoice was created, unix seconds; AddInvoice sets PeriodEnd if 0,
	// as for a renewal created when its period ends.
	Created int64
	// Metadata, CollectionMethod and AutoAdvance are as created through the API.
	Metadata         map[string]string
	CollectionMethod string
	AutoAdvance      bool
}

// Subscription is a subscription the fake knows, as set up by AddSubscription.
type Subscription struct {
	ID, Customer string
	Status       string // "active" when empty
	// StartDate is the subscription's start_date; TrialEnd its trial_end, 0 without a trial.
	StartDate, TrialEnd int64
	Metadata            map[string]string
}

// Item is an invoice item the fake holds.
type Item struct {
	ID, Customer, Invoice string // Invoice is "" while the item is pending
	Currency, Description string
	Amount                int64
	// Quantity and UnitAmountDecimal are how the invoice shows the line ("Qty × unit price"):
	// as created with unit_amount_decimal and quantity, or 1 × Amount for an amount-only item.
	Quantity               int64
	UnitAmountDecimal      string
	PeriodStart, PeriodEnd int64
	Metadata               map[string]string
	// Extra holds the parameters the fake keeps as sent, without modeling them further:
	// discountable, tax_code, tax_behavior, tax_rates (comma-joined), price_data[product] and
	// price_data[tax_behavior]. nil when none was sent.
	Extra          map[string]string
	Created        int64
	IdempotencyKey string // the key it was created under, if any
}

// Request is one HTTP request the fake received.
type Request struct {
	Method, Path, IdempotencyKey string
	StripeAccount                string     // the Stripe-Account header (Connect), if any
	Form                         url.Values // the body of a POST, the query otherwise
	Status                       int        // the status answered; 0 while still running
}

// itemRecord is an item with what the API shows beyond Item.
type itemRecord struct {
	Item
	seq int64
}

// AddCustomer adds a customer, or replaces the metadata of an existing one.
func (s *Server) AddCustomer(id string, metadata map[string]string) {
	if id == "" {
		panic("stripefake: AddCustomer with an empty id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.customers[id] = cloneMap(metadata)
}

// AddInvoice adds an invoice, or replaces an existing one with the same ID
// (its items stay attached). An empty Status means "draft". The customer need
// not have been added.
func (s *Server) AddInvoice(inv Invoice) {
	if inv.ID == "" {
		panic("stripefake: AddInvoice with an empty ID")
	}
	if inv.Status == "" {
		inv.Status = "draft"
	}
	if inv.Created == 0 {
		inv.Created = inv.PeriodEnd
	}
	inv.SubscriptionMetadata = cloneMap(inv.SubscriptionMetadata)
	if inv.Metadata != nil {
		inv.Metadata = cloneMap(inv.Metadata)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invoices[inv.ID] = &inv
}

// AddSubscription adds a subscription, or replaces an existing one with the
// same ID. An empty Status means "active".
func (s *Server) AddSubscription(sub Subscription) {
	if sub.ID == "" {
		panic("stripefake: AddSubscription with an empty ID")
	}
	if sub.Status == "" {
		sub.Status = "active"
	}
	sub.Metadata = cloneMap(sub.Metadata)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subscriptions[sub.ID] = &sub
}

// HasSubscription reports whether the fake knows a subscription.
func (s *Server) HasSubscription(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.subscriptions[id]
	return ok
}

// SetInvoiceStatus changes an invoice's status, for example to "open" to model
// its finalization. It panics if the invoice does not exist.
func (s *Server) SetInvoiceStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invoices[id]
	if !ok {
		panic(fmt.Sprintf("stripefake: SetInvoiceStatus: no invoice %q", id))
	}
	inv.Status = status
}

// DeleteInvoice deletes a draft invoice, as Stripe lets one delete a one-off
// draft: it is gone, and its items become pending. It panics if the invoice
// does not exist or is not a draft.
func (s *Server) DeleteInvoice(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invoices[id]
	if !ok || inv.Status != "draft" {
		panic(fmt.Sprintf("stripefake: DeleteInvoice: no draft invoice %q", id))
	}
	delete(s.invoices, id)
	for _, it := range s.items {
		if it.Invoice == id {
			it.Invoice = ""
		}
	}
}

// Invoice returns a copy of an invoice.
func (s *Server) Invoice(id string) (Invoice, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invoices[id]
	if !ok {
		return Invoice{}, false
	}
	out := *inv
	out.SubscriptionMetadata = cloneMap(inv.SubscriptionMetadata)
	if inv.Metadata != nil {
		out.Metadata = cloneMap(inv.Metadata)
	}
	return out, true
}

// Items returns every item of the customer, oldest first.
func (s *Server) Items(customer string) []Item {
	return s.itemsWhere(func(it *itemRecord) bool { return it.Customer == customer })
}

// InvoiceItems returns the items attached to an invoice, oldest first.
func (s *Server) InvoiceItems(invoiceID string) []Item {
	return s.itemsWhere(func(it *itemRecord) bool { return invoiceID != "" && it.Invoice == invoiceID })
}

// itemsWhere copies out the items that keep returns true for, oldest first.
func (s *Server) itemsWhere(keep func(*itemRecord) bool) []Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Item
	for _, it := range s.items {
		if keep(it) {
			c := it.Item
			c.Metadata = cloneMap(it.Metadata)
			out = append(out, c)
		}
	}
	return out
}

// Requests returns every request received, in order of arrival.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Form = cloneValues(r.Form)
		out[i] = r
	}
	return out
}

// CountRequests counts the requests received with the method ("" for any)
// and a path starting with pathPrefix.
func (s *Server) CountRequests(method, pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if (method == "" || r.Method == method) && strings.HasPrefix(r.Path, pathPrefix) {
			n++
		}
	}
	return n
}

// Advance moves the fake's clock, which starts at 2026-03-15T00:00:00Z and
// otherwise stands still. It dates new items and expires idempotency keys.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = s.now.Add(d)
}

// SetRateLimit makes the fake answer 429 rate_limit (with Stripe-Rate-Limited-Reason, and
// nothing done or stored) to requests past perSecond a second, in bursts of up to perSecond, as
// Stripe does; 0 turns it off. It is off by default.
func (s *Server) SetRateLimit(perSecond int) {
	if perSecond <= 0 {
		s.rateLimit.Store(nil)
		return
	}
	s.rateLimit.Store(rate.NewLimiter(rate.Limit(perSecond), perSecond))
}

// AdvanceTo moves the fake's clock forward to t; a t not after it changes nothing.
func (s *Server) AdvanceTo(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.After(s.now) {
		s.now = t
	}
}

// cloneMap copies a map, turning nil into an empty map.
func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	maps.Copy(out, m)
	return out
}

// AddItem adds an invoice item as if it had been created earlier (history that
// meterbill did not write, or an old ledger), without a request. An empty ID
// gets a fresh one; Created 0 means the fake's clock. It returns the item as
// stored.
func (s *Server) AddItem(it Item) Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastItem++
	if it.ID == "" {
		it.ID = fmt.Sprintf("ii_fake%08d", s.lastItem)
	}
	if it.Created == 0 {
		it.Created = s.now.Unix()
	}
	if it.PeriodStart == 0 && it.PeriodEnd == 0 {
		it.PeriodStart, it.PeriodEnd = it.Created, it.Created
	}
	it.Metadata = cloneMap(it.Metadata)
	it.Quantity, it.UnitAmountDecimal = 1, strconv.FormatInt(it.Amount, 10)
	rec := &itemRecord{Item: it, seq: s.lastItem}
	s.items = append(s.items, rec)
	s.itemByID[rec.ID] = rec
	s.byCustomer[rec.Customer] = append(s.byCustomer[rec.Customer], rec)
	out := it
	out.Metadata = cloneMap(it.Metadata)
	return out
}
