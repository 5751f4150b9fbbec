package stripefake

import "net/url"

// retrieve serves GET of one object: expand is the only parameter, and an id the fake does not
// hold is 404 resource_missing.
func retrieve[V any](s *Server, form url.Values, object, id string, objects map[string]V, render func(V) any) response {
	if res, ok := onlyExpand(form); !ok {
		return res
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := objects[id]
	if !ok {
		return notFound(object, id)
	}
	return okJSON(render(v))
}

// retrieveCustomer serves GET /v1/customers/{id}.
func (s *Server) retrieveCustomer(id string, form url.Values) response {
	return retrieve(s, form, "customer", id, s.customers, func(md map[string]string) any {
		return customerJSON{ID: id, Object: "customer", Metadata: cloneMap(md)}
	})
}

// retrieveInvoice serves GET /v1/invoices/{id}.
func (s *Server) retrieveInvoice(id string, form url.Values) response {
	return retrieve(s, form, "invoice", id, s.invoices, func(inv *Invoice) any { return renderInvoice(inv) })
}

// retrieveItem serves GET /v1/invoiceitems/{id}.
func (s *Server) retrieveItem(id string, form url.Values) response {
	return retrieve(s, form, "invoiceitem", id, s.itemByID, func(it *itemRecord) any { return renderItem(it) })
}

// retrieveSubscription serves GET /v1/subscriptions/{id}.
func (s *Server) retrieveSubscription(id string, form url.Values) response {
	return retrieve(s, form, "subscription", id, s.subscriptions, func(sub *Subscription) any { return renderSubscription(sub) })
}
