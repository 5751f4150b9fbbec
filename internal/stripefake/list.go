package stripefake

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strconv"
)

// Limits of a list page.
const (
	defaultLimit = 10
	maxLimit     = 100
)

// listParamNames are the parameters of GET /v1/invoiceitems, besides expand.
var listParamNames = map[string]bool{
	"customer": true, "invoice": true, "pending": true,
	"limit": true, "starting_after": true, "ending_before": true,
	"created": true, "created[gt]": true, "created[gte]": true, "created[lt]": true, "created[lte]": true,
}

// itemFilter selects the items a list returns.
type itemFilter struct {
	customer, invoice string
	pending           *bool
	created           []func(int64) bool
}

// match reports whether an item passes the filter.
func (f itemFilter) match(it *itemRecord) bool {
	if f.customer != "" && it.Customer != f.customer {
		return false
	}
	if f.invoice != "" && it.Invoice != f.invoice {
		return false
	}
	if f.pending != nil && *f.pending != (it.Invoice == "") {
		return false
	}
	for _, ok := range f.created {
		if !ok(it.Created) {
			return false
		}
	}
	return true
}

// listItems serves GET /v1/invoiceitems: newest first, cursor-paginated.
func (s *Server) listItems(form url.Values, _ string) response {
	for _, name := range sortedKeys(form) {
		if !listParamNames[name] && !isExpand(name) {
			return unknownParam(name)
		}
	}
	limit := defaultLimit
	if form.Has("limit") {
		n, err := strconv.Atoi(form.Get("limit"))
		if err != nil {
			return badParam("parameter_invalid_integer", "limit", "Invalid integer: "+form.Get("limit"))
		}
		if n < 1 || n > maxLimit {
			return badParam("", "limit", fmt.Sprintf("Invalid limit: must be between 1 and %d", maxLimit))
		}
		limit = n
	}
	f := itemFilter{customer: form.Get("customer"), invoice: form.Get("invoice")}
	if form.Has("pending") {
		b, err := strconv.ParseBool(form.Get("pending"))
		if err != nil {
			return badParam("", "pending", "Invalid boolean: "+form.Get("pending"))
		}
		f.pending = &b
	}
	for _, c := range []struct {
		name string
		ok   func(created, bound int64) bool
	}{
		{"created", func(c, b int64) bool { return c == b }},
		{"created[gt]", func(c, b int64) bool { return c > b }},
		{"created[gte]", func(c, b int64) bool { return c >= b }},
		{"created[lt]", func(c, b int64) bool { return c < b }},
		{"created[lte]", func(c, b int64) bool { return c <= b }},
	} {
		if !form.Has(c.name) {
			continue
		}
		bound, err := strconv.ParseInt(form.Get(c.name), 10, 64)
		if err != nil {
			return badParam("parameter_invalid_integer", c.name, "Invalid integer: "+form.Get(c.name))
		}
		f.created = append(f.created, func(created int64) bool { return c.ok(created, bound) })
	}
	after, before := form.Get("starting_after"), form.Get("ending_before")
	if after != "" && before != "" {
		return badParam("parameters_exclusive", "ending_before", "You may only specify one of these parameters: ending_before, starting_after.")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	window := slices.Clone(s.items)
	if f.customer != "" {
		window = slices.Clone(s.byCustomer[f.customer])
	}
	slices.SortFunc(window, func(a, b *itemRecord) int {
		return cmp.Or(cmp.Compare(b.Created, a.Created), cmp.Compare(b.seq, a.seq))
	})
	for _, cur := range []struct{ param, id string }{{"starting_after", after}, {"ending_before", before}} {
		if cur.id == "" {
			continue
		}
		i := slices.IndexFunc(window, func(it *itemRecord) bool { return it.ID == cur.id })
		if i < 0 {
			return badParam("resource_missing", cur.param, fmt.Sprintf("No such invoiceitem: '%s'", cur.id))
		}
		if cur.param == "starting_after" {
			window = window[i+1:]
		} else {
			window = window[:i]
		}
	}
	var matches []*itemRecord
	for _, it := range window {
		if f.match(it) {
			matches = append(matches, it)
		}
	}
	hasMore := len(matches) > limit
	if hasMore {
		if before != "" {
			matches = matches[len(matches)-limit:] // the page just before the cursor
		} else {
			matches = matches[:limit]
		}
	}
	data := make([]itemJSON, len(matches))
	for i, it := range matches {
		data[i] = renderItem(it)
	}
	return okJSON(newList(data, hasMore, "/v1/invoiceitems"))
}

// invoiceListParamNames are the parameters of GET /v1/invoices the fake knows, besides expand.
var invoiceListParamNames = map[string]bool{
	"customer": true, "subscription": true, "status": true, "limit": true, "starting_after": true,
	"created[gte]": true,
}

// listInvoices serves GET /v1/invoices: newest first, filtered by customer, subscription, status
// and created[gte], cursor-paginated with starting_after.
func (s *Server) listInvoices(form url.Values, _ string) response {
	for _, name := range sortedKeys(form) {
		if !invoiceListParamNames[name] && !isExpand(name) {
			return unknownParam(name)
		}
	}
	limit := defaultLimit
	if form.Has("limit") {
		n, err := strconv.Atoi(form.Get("limit"))
		if err != nil || n < 1 || n > maxLimit {
			return badParam("", "limit", fmt.Sprintf("Invalid limit: must be between 1 and %d", maxLimit))
		}
		limit = n
	}
	var since int64
	if form.Has("created[gte]") {
		n, err := strconv.ParseInt(form.Get("created[gte]"), 10, 64)
		if err != nil {
			return badParam("parameter_invalid_integer", "created[gte]", "Invalid integer: "+form.Get("created[gte]"))
		}
		since = n
	}
	switch st := form.Get("status"); st {
	case "", "draft", "open", "paid", "uncollectible", "void":
	default:
		return badParam("", "status", "Invalid status: must be one of draft, open, paid, uncollectible, or void")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*Invoice
	for _, inv := range s.invoices {
		if (form.Get("customer") == "" || inv.Customer == form.Get("customer")) &&
			(form.Get("subscription") == "" || inv.Subscription == form.Get("subscription")) &&
			(form.Get("status") == "" || inv.Status == form.Get("status")) && inv.Created >= since {
			all = append(all, inv)
		}
	}
	slices.SortFunc(all, func(a, b *Invoice) int { return cmp.Or(cmp.Compare(b.Created, a.Created), cmp.Compare(b.ID, a.ID)) })
	if after := form.Get("starting_after"); after != "" {
		i := slices.IndexFunc(all, func(inv *Invoice) bool { return inv.ID == after })
		if i < 0 {
			return badParam("resource_missing", "starting_after", fmt.Sprintf("No such invoice: '%s'", after))
		}
		all = all[i+1:]
	}
	hasMore := len(all) > limit
	if hasMore {
		all = all[:limit]
	}
	data := make([]invoiceJSON, len(all))
	for i, inv := range all {
		data[i] = renderInvoice(inv)
	}
	return okJSON(newList(data, hasMore, "/v1/invoices"))
}
