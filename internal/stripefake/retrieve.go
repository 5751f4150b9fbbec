package stripefake

import "net/url"

// retrieveCustomer serves GET /v1/customers/{id}.
func (s *Server) retrieveCustomer(id string, form url.Values) response {
	if res, ok := onlyExpand(form); !ok {
		return res
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	md, ok := s.customers[id]
	if !ok {
		return notFound("customer", id)
	}
	return okJSON(customerJSON{ID: id, Object: "customer", Metadata: cloneMap(md)})
}

// retrieveInvoice serves GET /v1/invoices/{id}.
func (s *Server) retrieveInvoice(id string, form url.Values) response {
	if res, ok := onlyExpand(form); !ok {
		return res
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invoices[id]
	if !ok {
		return notFound("invoice", id)
	}
	return okJSON(renderInvoice(inv))
}

// retrieveItem serves GET /v1/invoiceitems/{id}.
func (s *Server) retrieveItem(id string, form url.Values) response {
	if res, ok := onlyExpand(form); !ok {
		return res
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.itemByID[id]
	if !ok {
		return notFound("invoiceitem", id)
	}
	return okJSON(renderItem(it))
}

// retrieveSubscription serves GET /v1/subscriptions/{id}.
func (s *Server) retrieveSubscription(id string, form url.Values) response {
	if res, ok := onlyExpand(form); !ok {
		return res
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.subscriptions[id]
	if !ok {
		return notFound("subscription", id)
	}
	return okJSON(renderSubscription(sub))
}
