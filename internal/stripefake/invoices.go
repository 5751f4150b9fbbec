package stripefake

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// invoiceCreateParamNames are the parameters of POST /v1/invoices the fake
// models, besides metadata[…] and expand[…].
var invoiceCreateParamNames = map[string]bool{
	"customer": true, "currency": true, "collection_method": true, "days_until_due": true,
	"auto_advance": true, "pending_invoice_items_behavior": true, "description": true,
}

// createInvoice serves POST /v1/invoices: a draft for the customer. With
// pending_invoice_items_behavior=include, the customer's pending items in the
// invoice's currency move onto it; the default (API 2022-08-01 and later) is
// exclude.
func (s *Server) createInvoice(form url.Values, _ string) response {
	for _, name := range sortedKeys(form) {
		if !invoiceCreateParamNames[name] && !isExpand(name) && !strings.HasPrefix(name, "metadata[") {
			return unknownParam(name)
		}
	}
	customer, res, ok := required(form, "customer")
	if !ok {
		return res
	}
	inv := Invoice{Customer: customer, Currency: form.Get("currency"), Status: "draft", BillingReason: "manual",
		CollectionMethod: form.Get("collection_method"), AutoAdvance: form.Get("auto_advance") == "true"}
	if inv.Currency == "" {
		inv.Currency = "usd"
	}
	if !currencyRE.MatchString(inv.Currency) {
		return badParam("", "currency", "Invalid currency: "+inv.Currency)
	}
	switch inv.CollectionMethod {
	case "", "charge_automatically":
		inv.CollectionMethod = "charge_automatically"
		if form.Has("days_until_due") {
			return badParam("", "days_until_due", "Invalid days_until_due: can only be set with collection_method send_invoice.")
		}
	case "send_invoice":
		n, err := strconv.Atoi(form.Get("days_until_due"))
		if err != nil || n < 0 {
			return badParam("", "days_until_due", "Missing or invalid days_until_due: required with collection_method send_invoice.")
		}
	default:
		return badParam("", "collection_method", "Invalid collection_method: "+inv.CollectionMethod)
	}
	behavior := form.Get("pending_invoice_items_behavior")
	if behavior != "" && behavior != "include" && behavior != "exclude" {
		return badParam("", "pending_invoice_items_behavior", "Invalid pending_invoice_items_behavior: "+behavior)
	}
	md, res, ok := parseMetadata(form)
	if !ok {
		return res
	}
	inv.Metadata = md
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.customers[customer]; !ok {
		return stateError("resource_missing", "customer", fmt.Sprintf("No such customer: '%s'", customer))
	}
	s.lastInvoice++
	inv.ID = fmt.Sprintf("in_fake%08d", s.lastInvoice)
	inv.Created = s.now.Unix()
	inv.PeriodStart, inv.PeriodEnd = inv.Created, inv.Created
	if behavior == "include" {
		for _, it := range s.items {
			if it.Customer == customer && it.Invoice == "" && it.Currency == inv.Currency {
				it.Invoice = inv.ID
			}
		}
	}
	s.invoices[inv.ID] = &inv
	return okJSON(renderInvoice(&inv))
}

// finalizeInvoice serves POST /v1/invoices/{id}/finalize: a draft becomes
// open; any other status is refused.
func (s *Server) finalizeInvoice(id string, form url.Values) response {
	for _, name := range sortedKeys(form) {
		if name != "auto_advance" && !isExpand(name) {
			return unknownParam(name)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invoices[id]
	if !ok {
		return notFound("invoice", id)
	}
	if inv.Status != "draft" {
		return stateError("invoice_not_editable", "", fmt.Sprintf("This invoice is already finalized; its status is %s.", inv.Status))
	}
	inv.Status = "open"
	if form.Has("auto_advance") {
		inv.AutoAdvance = form.Get("auto_advance") == "true"
	}
	return okJSON(renderInvoice(inv))
}
