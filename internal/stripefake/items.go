package stripefake

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Stripe's limits.
const (
	maxItemsPerInvoice = 250
	maxMetadataKeys    = 50
	maxMetadataKeyLen  = 40
	maxMetadataValLen  = 500
)

// currencyRE is a lowercase ISO 4217 code.
var currencyRE = regexp.MustCompile(`^[a-z]{3}$`)

// createParamNames are the parameters of POST /v1/invoiceitems the fake
// models, besides metadata[…] and expand[…].
var createParamNames = map[string]bool{
	"customer": true, "invoice": true, "currency": true, "amount": true,
	"unit_amount_decimal": true, "quantity": true, "description": true,
	"discountable": true, "period[start]": true, "period[end]": true,
	"tax_code": true, "tax_behavior": true, "price_data[product]": true, "price_data[currency]": true,
	"price_data[unit_amount_decimal]": true, "price_data[tax_behavior]": true,
}

// extraParamNames are the modeled parameters the fake keeps in Item.Extra as sent:
// tax_rates[…] are kept too, comma-joined under "tax_rates".
var extraParamNames = []string{"discountable", "tax_code", "tax_behavior", "price_data[product]", "price_data[tax_behavior]"}

// unmodeledCreateParams are parameters of POST /v1/invoiceitems that Stripe
// accepts in API 2025-08-27.basil and the fake does not model.
var unmodeledCreateParams = map[string]bool{
	"customer_account": true, "discounts": true, "price_data": true, "pricing": true,
	"subscription": true,
}

// createParams are the validated parameters of an invoice item create.
type createParams struct {
	customer, invoice, currency, description string
	amount, quantity                         int64
	unitAmountDecimal                        string // canonical
	hasPeriod                                bool
	periodStart, periodEnd                   int64
	metadata                                 map[string]string
	extra                                    map[string]string
}

// createItem serves POST /v1/invoiceitems.
func (s *Server) createItem(form url.Values, key string) response {
	p, res, valid := parseCreate(form)
	if !valid {
		return res
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.customers[p.customer]; !ok {
		return stateError("resource_missing", "customer", fmt.Sprintf("No such customer: '%s'", p.customer))
	}
	if p.invoice != "" {
		inv, ok := s.invoices[p.invoice]
		switch {
		case !ok:
			return stateError("resource_missing", "invoice", fmt.Sprintf("No such invoice: '%s'", p.invoice))
		case inv.Customer != p.customer:
			return stateError("", "invoice", fmt.Sprintf("The invoice %s belongs to customer %s, not to %s.", inv.ID, inv.Customer, p.customer))
		case inv.Status != "draft":
			return stateError("invoice_not_editable", "invoice", fmt.Sprintf("You can only add invoice items to draft invoices; invoice %s is %s.", inv.ID, inv.Status))
		case p.currency != inv.Currency:
			return stateError("", "currency", fmt.Sprintf("The currency of the invoice item (%s) must match the currency of the invoice (%s).", p.currency, inv.Currency))
		case s.countOnInvoice(inv.ID) >= maxItemsPerInvoice:
			return stateError("", "invoice", fmt.Sprintf("An invoice can have at most %d invoice items.", maxItemsPerInvoice))
		}
	}
	s.lastItem++
	now := s.now.Unix()
	if !p.hasPeriod {
		p.periodStart, p.periodEnd = now, now // Stripe dates an item without a period at its creation
	}
	rec := &itemRecord{
		Item: Item{
			ID:                fmt.Sprintf("ii_fake%08d", s.lastItem),
			Customer:          p.customer,
			Invoice:           p.invoice,
			Currency:          p.currency,
			Description:       p.description,
			Amount:            p.amount,
			Quantity:          p.quantity,
			UnitAmountDecimal: p.unitAmountDecimal,
			PeriodStart:       p.periodStart,
			PeriodEnd:         p.periodEnd,
			Metadata:          p.metadata,
			Extra:             p.extra,
			Created:           now,
			IdempotencyKey:    key,
		},
		seq: s.lastItem,
	}
	s.items = append(s.items, rec)
	s.itemByID[rec.ID] = rec
	s.byCustomer[rec.Customer] = append(s.byCustomer[rec.Customer], rec)
	return okJSON(renderItem(rec))
}

// countOnInvoice counts the items attached to an invoice. s.mu must be held.
func (s *Server) countOnInvoice(id string) int {
	n := 0
	for _, it := range s.items {
		if it.Invoice == id {
			n++
		}
	}
	return n
}

// stateError answers a 400 found while executing a create, against the
// fake's state; an idempotent request stores it.
func stateError(code, param, msg string) response {
	return errorResponse(http.StatusBadRequest, apiError{Type: typeInvalidRequest, Code: code, Message: msg, Param: param})
}

// badParam answers a 400 from parameter validation.
func badParam(code, param, msg string) response {
	return invalid(apiError{Type: typeInvalidRequest, Code: code, Message: msg, Param: param})
}

// parseCreate validates the form of POST /v1/invoiceitems on its own, without
// looking at the fake's state.
func parseCreate(form url.Values) (createParams, response, bool) {
	var p createParams
	for _, name := range sortedKeys(form) {
		base, _, _ := strings.Cut(name, "[")
		switch {
		case createParamNames[name], isExpand(name), strings.HasPrefix(name, "metadata["), strings.HasPrefix(name, "tax_rates["):
		case name == "metadata":
			if form.Get(name) != "" {
				return p, badParam("", "metadata", "Invalid object: metadata must be a hash of keys and values."), false
			}
		case unmodeledCreateParams[base]:
			return p, unmodeledParam(name), false
		default:
			return p, unknownParam(name), false
		}
	}

	var res response
	var ok bool
	if p.customer, res, ok = required(form, "customer"); !ok {
		return p, res, false
	}
	if p.currency, res, ok = required(form, "currency"); !ok {
		return p, res, false
	}
	if !currencyRE.MatchString(p.currency) {
		return p, badParam("", "currency", fmt.Sprintf("Invalid currency: %s. The currency must be a three-letter ISO code in lowercase.", p.currency)), false
	}
	p.invoice = form.Get("invoice")
	p.description = form.Get("description")

	if form.Has("price_data[product]") || form.Has("price_data[currency]") || form.Has("price_data[unit_amount_decimal]") {
		if res, ok = parsePriceData(form, &p); !ok {
			return p, res, false
		}
	} else if res, ok = parseAmount(form, &p); !ok {
		return p, res, false
	}
	for _, name := range extraParamNames {
		if form.Has(name) {
			if p.extra == nil {
				p.extra = map[string]string{}
			}
			p.extra[name] = form.Get(name)
		}
	}
	var rates []string
	for _, name := range sortedKeys(form) {
		if strings.HasPrefix(name, "tax_rates[") {
			rates = append(rates, form.Get(name))
		}
	}
	if len(rates) > 0 {
		if p.extra == nil {
			p.extra = map[string]string{}
		}
		p.extra["tax_rates"] = strings.Join(rates, ",")
	}
	if res, ok = parsePeriod(form, &p); !ok {
		return p, res, false
	}
	if p.metadata, res, ok = parseMetadata(form); !ok {
		return p, res, false
	}
	return p, response{}, true
}

// required returns a parameter that must be present and not empty.
func required(form url.Values, name string) (string, response, bool) {
	if !form.Has(name) {
		return "", badParam("parameter_missing", name, "Missing required param: "+name+"."), false
	}
	v := form.Get(name)
	if v == "" {
		return "", badParam("parameter_invalid_empty", name, fmt.Sprintf(
			"You passed an empty string for '%s'. We assume empty values are an attempt to unset a parameter; however '%s' cannot be unset. You should remove '%s' from your request or supply a non-empty value.",
			name, name, name)), false
	}
	return v, response{}, true
}

// parseAmount sets p.amount, p.quantity and p.unitAmountDecimal from either
// amount, or unit_amount_decimal and an optional quantity (default 1).
func parseAmount(form url.Values, p *createParams) (response, bool) {
	hasAmount, hasUnit, hasQty := form.Has("amount"), form.Has("unit_amount_decimal"), form.Has("quantity")
	switch {
	case hasAmount && hasUnit:
		return badParam("parameters_exclusive", "amount", "You may only specify one of these parameters: amount, unit_amount_decimal."), false
	case hasAmount && hasQty:
		return badParam("parameters_exclusive", "amount", "You may only specify one of these parameters: amount, quantity."), false
	case hasAmount:
		a, err := strconv.ParseInt(form.Get("amount"), 10, 64)
		if err != nil {
			return badParam("parameter_invalid_integer", "amount", "Invalid integer: "+form.Get("amount")), false
		}
		p.amount, p.quantity, p.unitAmountDecimal = a, 1, strconv.FormatInt(a, 10)
		return response{}, true
	case !hasUnit:
		return badParam("parameter_missing", "amount", "Missing required param: amount. Provide either amount, or unit_amount_decimal and quantity."), false
	}
	d, ok := parseDecimal(form.Get("unit_amount_decimal"))
	if !ok {
		return badParam("", "unit_amount_decimal", fmt.Sprintf(
			"Invalid decimal: %s. unit_amount_decimal must be a non-negative decimal with at most %d decimal places.",
			form.Get("unit_amount_decimal"), maxDecimalPlaces)), false
	}
	p.quantity = 1
	if hasQty {
		q, err := strconv.ParseInt(form.Get("quantity"), 10, 64)
		if err != nil || q < 0 {
			return badParam("parameter_invalid_integer", "quantity", "Invalid non-negative integer: "+form.Get("quantity")), false
		}
		p.quantity = q
	}
	a, ok := d.mulRoundHalfUp(p.quantity)
	if !ok {
		return badParam("", "unit_amount_decimal", "The amount (quantity × unit_amount_decimal) is too large."), false
	}
	p.amount, p.unitAmountDecimal = a, d.String()
	return response{}, true
}

// parsePriceData sets the amount from price_data (a product's price made inline): quantity ×
// price_data[unit_amount_decimal], in price_data[currency], which must be the item's currency.
// amount and unit_amount_decimal cannot come with it.
func parsePriceData(form url.Values, p *createParams) (response, bool) {
	switch {
	case form.Has("amount") || form.Has("unit_amount_decimal"):
		return badParam("parameters_exclusive", "price_data", "You may only specify one of these parameters: amount, price_data, unit_amount_decimal."), false
	case form.Get("price_data[product]") == "":
		return badParam("parameter_missing", "price_data[product]", "Missing required param: price_data[product]."), false
	case form.Get("price_data[currency]") != p.currency:
		return badParam("", "price_data[currency]", "price_data[currency] must be the currency of the invoice item."), false
	}
	sub := url.Values{"unit_amount_decimal": form["price_data[unit_amount_decimal]"]}
	if form.Has("quantity") {
		sub["quantity"] = form["quantity"]
	}
	return parseAmount(sub, p)
}

// parsePeriod sets the period from period[start] and period[end], which come
// together or not at all.
func parsePeriod(form url.Values, p *createParams) (response, bool) {
	hasStart, hasEnd := form.Has("period[start]"), form.Has("period[end]")
	switch {
	case !hasStart && !hasEnd:
		return response{}, true
	case !hasStart:
		return badParam("parameter_missing", "period[start]", "Missing required param: period[start]."), false
	case !hasEnd:
		return badParam("parameter_missing", "period[end]", "Missing required param: period[end]."), false
	}
	var err error
	if p.periodStart, err = strconv.ParseInt(form.Get("period[start]"), 10, 64); err != nil {
		return badParam("parameter_invalid_integer", "period[start]", "Invalid integer: "+form.Get("period[start]")), false
	}
	if p.periodEnd, err = strconv.ParseInt(form.Get("period[end]"), 10, 64); err != nil {
		return badParam("parameter_invalid_integer", "period[end]", "Invalid integer: "+form.Get("period[end]")), false
	}
	if p.periodEnd < p.periodStart {
		return badParam("", "period[end]", "The period end must be greater than or equal to the period start."), false
	}
	p.hasPeriod = true
	return response{}, true
}

// parseMetadata collects metadata[k]=v within Stripe's limits. An empty value
// means "unset", so it adds nothing.
func parseMetadata(form url.Values) (map[string]string, response, bool) {
	md := map[string]string{}
	for _, name := range sortedKeys(form) {
		inner, ok := strings.CutPrefix(name, "metadata[")
		if !ok {
			continue
		}
		k, ok := strings.CutSuffix(inner, "]")
		if !ok || k == "" || strings.ContainsAny(k, "[]") {
			return nil, badParam("", name, "Invalid metadata key: "+name), false
		}
		v := form.Get(name)
		if n := utf8.RuneCountInString(k); n > maxMetadataKeyLen {
			return nil, badParam("", name, fmt.Sprintf("Metadata keys can have up to %d characters, but you passed in a key with %d characters.", maxMetadataKeyLen, n)), false
		}
		if n := utf8.RuneCountInString(v); n > maxMetadataValLen {
			return nil, badParam("", name, fmt.Sprintf("Metadata values can have up to %d characters, but you passed in a value with %d characters.", maxMetadataValLen, n)), false
		}
		if v != "" {
			md[k] = v
		}
	}
	if len(md) > maxMetadataKeys {
		return nil, badParam("", "metadata", fmt.Sprintf("Invalid metadata: metadata can have up to %d keys, but you passed in %d keys.", maxMetadataKeys, len(md))), false
	}
	return md, response{}, true
}

// sortedKeys returns the form's keys in order, so that the first error found
// does not depend on map order.
func sortedKeys(form url.Values) []string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
