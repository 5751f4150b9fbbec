package stripefake

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// Stripe error types.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAPI            = "api_error"
	typeIdempotency    = "idempotency_error"
)

// apiError is the "error" member of a Stripe error body.
type apiError struct {
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

// errorBody encodes a Stripe error body.
func errorBody(e apiError) []byte {
	return mustJSON(struct {
		Error apiError `json:"error"`
	}{e})
}

// errorResponse answers an error that an idempotent request stores: the
// request got past validation and started executing.
func errorResponse(status int, e apiError) response {
	return response{status: status, body: errorBody(e), store: true}
}

// invalid answers a 400 from parameter validation, which Stripe does not
// store under the idempotency key.
func invalid(e apiError) response {
	return response{status: http.StatusBadRequest, body: errorBody(e)}
}

// okJSON answers 200 with v encoded as JSON.
func okJSON(v any) response {
	return response{status: http.StatusOK, body: mustJSON(v), store: true}
}

// notFound answers 404 resource_missing for an object that does not exist.
func notFound(object, id string) response {
	return errorResponse(http.StatusNotFound, apiError{
		Type:    typeInvalidRequest,
		Code:    "resource_missing",
		Message: "No such " + object + ": '" + id + "'",
		Param:   "id",
	})
}

// unknownParam answers 400 parameter_unknown.
func unknownParam(name string) response {
	return invalid(apiError{
		Type:    typeInvalidRequest,
		Code:    "parameter_unknown",
		Message: "Received unknown parameter: " + name,
		Param:   name,
	})
}

// unmodeledParam answers 400 for a parameter Stripe knows but the fake does
// not model, so that a test never silently depends on it being ignored.
func unmodeledParam(name string) response {
	return invalid(apiError{
		Type:    typeInvalidRequest,
		Code:    "parameter_unknown",
		Message: "stripefake: parameter " + name + " exists in Stripe but is not modeled by this fake",
		Param:   name,
	})
}

// onlyExpand rejects any parameter but expand[…] on a retrieve.
func onlyExpand(form url.Values) (response, bool) {
	for _, name := range sortedKeys(form) {
		if !isExpand(name) {
			return unknownParam(name), false
		}
	}
	return response{}, true
}

// isExpand reports whether a form key is expand or expand[n]; the fake
// accepts and ignores it.
func isExpand(name string) bool {
	return name == "expand" || name == "expand[]" || strings.HasPrefix(name, "expand[")
}

// mustJSON encodes v, which is always one of the fake's own shapes.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("stripefake: " + err.Error())
	}
	return b
}

// strOrNull is s, or JSON null when s is empty.
func strOrNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// customerJSON is a customer object.
type customerJSON struct {
	ID       string            `json:"id"`
	Object   string            `json:"object"`
	Livemode bool              `json:"livemode"`
	Metadata map[string]string `json:"metadata"`
}

// listJSON is a list object.
type listJSON[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
	URL     string `json:"url"`
}

// newList makes a list object; data is never null.
func newList[T any](data []T, hasMore bool, url string) listJSON[T] {
	if data == nil {
		data = []T{}
	}
	return listJSON[T]{Object: "list", Data: data, HasMore: hasMore, URL: url}
}

// invoiceJSON is an invoice object, reduced to what the fake models.
type invoiceJSON struct {
	ID               string             `json:"id"`
	Object           string             `json:"object"`
	AutoAdvance      bool               `json:"auto_advance"`
	BillingReason    *string            `json:"billing_reason"`
	CollectionMethod string             `json:"collection_method"`
	Created          int64              `json:"created"`
	Currency         string             `json:"currency"`
	Customer         string             `json:"customer"`
	Lines            listJSON[struct{}] `json:"lines"`
	Livemode         bool               `json:"livemode"`
	Metadata         map[string]string  `json:"metadata"`
	Parent           *invoiceParentJSON `json:"parent"`
	PeriodEnd        int64              `json:"period_end"`
	PeriodStart      int64              `json:"period_start"`
	Status           string             `json:"status"`
}

// invoiceParentJSON is an invoice's parent, always a subscription here.
type invoiceParentJSON struct {
	QuoteDetails        *struct{}               `json:"quote_details"`
	SubscriptionDetails subscriptionDetailsJSON `json:"subscription_details"`
	Type                string                  `json:"type"`
}

// subscriptionDetailsJSON is parent.subscription_details.
type subscriptionDetailsJSON struct {
	Metadata     map[string]string `json:"metadata"`
	Subscription string            `json:"subscription"`
}

// renderInvoice shows an invoice as Stripe does.
func renderInvoice(inv *Invoice) invoiceJSON {
	out := invoiceJSON{
		ID:               inv.ID,
		Object:           "invoice",
		BillingReason:    strOrNull(inv.BillingReason),
		Created:          inv.Created,
		Currency:         inv.Currency,
		Customer:         inv.Customer,
		Lines:            newList[struct{}](nil, false, "/v1/invoices/"+inv.ID+"/lines"),
		Livemode:         inv.Livemode,
		Metadata:         cloneMap(inv.Metadata),
		AutoAdvance:      inv.AutoAdvance,
		CollectionMethod: cmp.Or(inv.CollectionMethod, "charge_automatically"),
		PeriodEnd:        inv.PeriodEnd,
		PeriodStart:      inv.PeriodStart,
		Status:           inv.Status,
	}
	if inv.Subscription != "" {
		out.Parent = &invoiceParentJSON{
			SubscriptionDetails: subscriptionDetailsJSON{
				Metadata:     cloneMap(inv.SubscriptionMetadata),
				Subscription: inv.Subscription,
			},
			Type: "subscription_details",
		}
	}
	return out
}

// subscriptionJSON is a subscription object, with the fields the fake models.
type subscriptionJSON struct {
	ID        string             `json:"id"`
	Object    string             `json:"object"`
	Customer  string             `json:"customer"`
	Items     listJSON[struct{}] `json:"items"`
	Livemode  bool               `json:"livemode"`
	Metadata  map[string]string  `json:"metadata"`
	StartDate int64              `json:"start_date"`
	Status    string             `json:"status"`
	TrialEnd  *int64             `json:"trial_end"`
}

func renderSubscription(sub *Subscription) subscriptionJSON {
	out := subscriptionJSON{ID: sub.ID, Object: "subscription", Customer: sub.Customer,
		Items:    newList[struct{}](nil, false, "/v1/subscription_items?subscription="+sub.ID),
		Metadata: cloneMap(sub.Metadata), StartDate: sub.StartDate, Status: sub.Status}
	if sub.TrialEnd != 0 {
		out.TrialEnd = &sub.TrialEnd
	}
	return out
}

// itemJSON is an invoice item object.
type itemJSON struct {
	ID           string            `json:"id"`
	Object       string            `json:"object"`
	Amount       int64             `json:"amount"`
	Currency     string            `json:"currency"`
	Customer     string            `json:"customer"`
	Date         int64             `json:"date"`
	Description  *string           `json:"description"`
	Discountable bool              `json:"discountable"`
	Discounts    []string          `json:"discounts"`
	Invoice      *string           `json:"invoice"`
	Livemode     bool              `json:"livemode"`
	Metadata     map[string]string `json:"metadata"`
	Parent       *struct{}         `json:"parent"`
	Period       periodJSON        `json:"period"`
	Pricing      pricingJSON       `json:"pricing"`
	Proration    bool              `json:"proration"`
	Quantity     int64             `json:"quantity"`
	TaxRates     []string          `json:"tax_rates"`
	TestClock    *string           `json:"test_clock"`
}

// periodJSON is an item's period.
type periodJSON struct {
	End   int64 `json:"end"`
	Start int64 `json:"start"`
}

// pricingJSON is an item's pricing: no price, only the unit amount.
type pricingJSON struct {
	PriceDetails      *struct{} `json:"price_details"`
	UnitAmountDecimal string    `json:"unit_amount_decimal"`
}

// renderItem shows an invoice item as Stripe does.
func renderItem(it *itemRecord) itemJSON {
	return itemJSON{
		ID:           it.ID,
		Object:       "invoiceitem",
		Amount:       it.Amount,
		Currency:     it.Currency,
		Customer:     it.Customer,
		Date:         it.Created,
		Description:  strOrNull(it.Description),
		Discountable: it.Amount >= 0, // Stripe's default; the parameter is ignored
		Discounts:    []string{},
		Invoice:      strOrNull(it.Invoice),
		Metadata:     cloneMap(it.Metadata),
		Period:       periodJSON{End: it.PeriodEnd, Start: it.PeriodStart},
		Pricing:      pricingJSON{UnitAmountDecimal: it.UnitAmountDecimal},
		Quantity:     it.Quantity,
		TaxRates:     []string{},
	}
}
