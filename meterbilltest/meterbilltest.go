// Package meterbilltest helps you test an integration of meterbill without Stripe and without a
// Unimeter cluster, in the spirit of net/http/httptest: a stateful fake of the part of Stripe's
// API meterbill uses, signed webhook events to send to your handler, and a fake Unimeter cluster
// that speaks the wire protocol over loopback.
//
// The Stripe fake keeps customers, subscriptions, invoices and invoice items, answers with
// Stripe's status codes and error shapes, honours idempotency keys, refuses parameters Stripe
// would refuse, and can inject faults (429, 500, timeouts). It is what meterbill's own tests and
// its quickstart run against. It is not Stripe: for the shape of every request, meterbill's CI
// also runs stripe-mock, which validates them against Stripe's OpenAPI specification.
package meterbilltest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/meterbill/meterbill/internal/stripefake"
	"github.com/meterbill/meterbill/internal/unimetertest"
)

// The Stripe fake and its data. Point a client at the fake with
// meterbill.NewStripeClient("sk_test_…", meterbill.WithStripeURL(fake.URL)).
type (
	// Stripe is a fake of the Stripe API on a loopback HTTP server. Its URL field is the base
	// URL; Close stops it.
	Stripe = stripefake.Server
	// Invoice is an invoice the fake holds (AddInvoice, Invoice).
	Invoice = stripefake.Invoice
	// Subscription is a subscription the fake holds (AddSubscription).
	Subscription = stripefake.Subscription
	// Item is an invoice item the fake holds (Items, InvoiceItems).
	Item = stripefake.Item
	// Request is a request the fake received (Requests).
	Request = stripefake.Request
	// Fault is a failure the fake injects into the requests it matches (Inject).
	Fault = stripefake.Fault
)

// NewStripe starts a Stripe fake on loopback. Call Close when done.
func NewStripe() *Stripe { return stripefake.New() }

// The fake Unimeter cluster. Point a meter at it with
// meterbill.DialUnimeter(ctx, cluster.Addrs()).
type (
	// Cluster is a fake Unimeter cluster on loopback: nodes that follow the server's wire
	// layouts, partition map and redirects, dedup and aggregation, with Kill, Restart,
	// DropConnections and injected faults for failure tests.
	Cluster = unimetertest.Cluster
	// ClusterOptions configures StartCluster; the zero value is one node.
	ClusterOptions = unimetertest.Options
)

// StartCluster starts a fake Unimeter cluster on loopback. Call Close when done.
func StartCluster(opts ClusterOptions) (*Cluster, error) { return unimetertest.Start(opts) }

// APIVersion is the Stripe API version of the events built here: meterbill's own (basil).
const APIVersion = "2025-08-27.basil"

// InvoiceCreated returns the body of the invoice.created event Stripe sends for inv, with the
// fields meterbill reads: the invoice's id, customer, currency, status, billing reason, period,
// and its subscription and that subscription's metadata (under parent.subscription_details, as
// in API version basil). The event id is "evt_" and the invoice id.
func InvoiceCreated(inv Invoice) []byte {
	status := inv.Status
	if status == "" {
		status = "draft"
	}
	object := map[string]any{
		"id": inv.ID, "object": "invoice", "customer": inv.Customer, "currency": inv.Currency, "status": status,
		"billing_reason": inv.BillingReason, "period_start": inv.PeriodStart, "period_end": inv.PeriodEnd,
		"livemode": inv.Livemode, "metadata": nonNil(inv.Metadata),
	}
	if inv.Subscription != "" || inv.SubscriptionMetadata != nil {
		object["parent"] = map[string]any{"type": "subscription_details", "subscription_details": map[string]any{
			"subscription": inv.Subscription, "metadata": nonNil(inv.SubscriptionMetadata)}}
	}
	return event("evt_"+inv.ID, "invoice.created", object)
}

// SubscriptionDeleted returns the body of the customer.subscription.deleted event Stripe sends
// when sub ends at endedAt, in the middle of its current period [periodStart, periodEnd) (basil
// keeps the period on the subscription's items). The event id is "evt_end_" and the
// subscription id.
func SubscriptionDeleted(sub Subscription, currency string, endedAt, periodStart, periodEnd time.Time) []byte {
	return event("evt_end_"+sub.ID, "customer.subscription.deleted", map[string]any{
		"id": sub.ID, "object": "subscription", "customer": sub.Customer, "status": "canceled", "currency": currency,
		"metadata": nonNil(sub.Metadata), "start_date": sub.StartDate, "ended_at": endedAt.Unix(), "canceled_at": endedAt.Unix(),
		"items": map[string]any{"object": "list", "data": []any{map[string]any{
			"object": "subscription_item", "current_period_start": periodStart.Unix(), "current_period_end": periodEnd.Unix()}}},
	})
}

func event(id, typ string, object map[string]any) []byte {
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": APIVersion, "type": typ, "data": map[string]any{"object": object},
	})
	if err != nil {
		panic(fmt.Sprintf("meterbilltest: encoding an event: %v", err)) // plain maps, strings and numbers: cannot happen
	}
	return b
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// SignatureHeader returns the Stripe-Signature header Stripe would send with payload, signed
// with the endpoint's secret ("whsec_…") at time at.
func SignatureHeader(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}

// NewWebhookRequest returns a POST of payload to target, signed now with secret as Stripe signs
// a delivery, for a handler's ServeHTTP or an http.Client. It panics if target is not a valid
// URL, as httptest.NewRequest does.
func NewWebhookRequest(target string, payload []byte, secret string) *http.Request {
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		panic("meterbilltest: NewWebhookRequest: " + err.Error())
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Stripe-Signature", SignatureHeader(payload, secret, time.Now()))
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	return req
}
