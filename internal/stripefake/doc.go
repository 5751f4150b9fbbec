// Package stripefake is a stateful, in-process fake of the small part of the
// Stripe API that meterbill uses, for behaviour tests that need a Stripe which
// remembers what it was told and misbehaves on demand (stripe-mock is
// stateless).
//
// It speaks Stripe's real HTTP shapes as stripe-go v82 (API version
// 2025-08-27.basil) sends and parses them: form-encoded request bodies, JSON
// responses, list objects, error bodies with the right HTTP status, a
// Request-Id header on every response and Bearer authentication with a secret
// key. Point a stripe.Client at Server.URL with network retries disabled.
//
// What it models:
//
//   - GET /v1/customers/{id}, GET /v1/invoices/{id} and
//     GET /v1/subscriptions/{id} (start date, trial end, status, metadata);
//   - GET /v1/invoices with the customer, subscription, status and
//     created[gte] filters, newest first, paginated with starting_after;
//   - voided invoices (Server.SetInvoiceStatus) and deleted drafts
//     (Server.DeleteInvoice);
//   - POST /v1/invoices (a draft for a customer: currency, collection_method,
//     days_until_due, auto_advance, pending_invoice_items_behavior,
//     description, metadata) and POST /v1/invoices/{id}/finalize;
//   - POST /v1/invoiceitems with Stripe's validation of the parameters the
//     fake knows (customer, invoice, currency, amount or unit_amount_decimal
//     and quantity, description, period, metadata, discountable, expand);
//   - GET /v1/invoiceitems with the customer, invoice, pending and created
//     filters and cursor pagination (limit, starting_after, ending_before),
//     newest first, and GET /v1/invoiceitems/{id};
//   - idempotency keys on POST requests as Stripe documents them: results are
//     stored for 24 hours of the fake's clock (including 5xx results but not
//     parameter-validation 400s or 409s), replayed byte for byte with
//     Idempotent-Replayed: true, rejected with 409 idempotency_key_in_use
//     while the first request is still running and with an idempotency_error
//     when reused with different parameters;
//   - faults injected with Server.Inject: error statuses, delays, and errors
//     returned after the work was done (AfterApply).
//
// What it does not model: taxes, discounts, prices and products, invoice
// totals and invoice lines (an invoice's lines list is always empty),
// finalization, payment or any other invoice life cycle beyond
// Server.SetInvoiceStatus, subscriptions beyond what Server.AddSubscription
// sets, updates and deletes, connected accounts, live mode, webhooks and
// events. Parameters Stripe accepts but the fake does not model are rejected
// with a 400 so that a test never silently relies on them.
package stripefake
