package stripefake

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// apiVersion is the Stripe API version stripe-go v82 pins and the fake speaks.
const apiVersion = "2025-08-27.basil"

// maxBody bounds the request bodies the fake reads.
const maxBody = 1 << 20

// epoch is where the fake's clock starts.
var epoch = time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)

// Server is a running fake of the Stripe API. Its state is set up and
// inspected through its methods, which are safe for concurrent use with each
// other and with the HTTP requests it serves.
type Server struct {
	// URL is the fake's base URL (http://127.0.0.1:port), for
	// stripe.BackendConfig.URL.
	URL string

	ts        *httptest.Server
	closing   chan struct{}
	closeOnce sync.Once

	mu            sync.Mutex
	now           time.Time
	customers     map[string]map[string]string
	invoices      map[string]*Invoice
	subscriptions map[string]*Subscription
	items         []*itemRecord // in creation order
	itemByID      map[string]*itemRecord
	keys          map[string]*idemEntry
	faults        []*Fault
	requests      []Request
	lastItem      int64
	lastInvoice   int64
	rateLimit     atomic.Pointer[rate.Limiter]
	byCustomer    map[string][]*itemRecord // items by customer, in creation order
	lastReq       int64
}

// New starts a fake on a loopback address. The caller must Close it.
func New() *Server {
	s := &Server{
		closing:       make(chan struct{}),
		now:           epoch,
		customers:     map[string]map[string]string{},
		invoices:      map[string]*Invoice{},
		subscriptions: map[string]*Subscription{},
		itemByID:      map[string]*itemRecord{},
		byCustomer:    map[string][]*itemRecord{},
		keys:          map[string]*idemEntry{},
	}
	s.ts = httptest.NewServer(http.HandlerFunc(s.handle))
	s.URL = s.ts.URL
	return s
}

// Close cuts short any injected delays still running and shuts the fake down.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.ts.Close()
}

// response is one answer of the fake, as written to the client and, for
// idempotent requests, as stored under the key.
type response struct {
	status   int
	body     []byte
	store    bool // an idempotent request may store it (false for validation 400s and 409s)
	replayed bool
	limited  bool // answered 429 by the rate limit
}

// handler serves one routed request: its form and its idempotency key.
type handler func(form url.Values, key string) response

// handle is the fake's http.HandlerFunc.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	form, formErr := readForm(r)
	key := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	reqID, idx := s.record(r.Method, r.URL.Path, key, r.Header.Get("Stripe-Account"), form)

	res := s.serve(r, key, form, formErr)

	s.mu.Lock()
	s.requests[idx].Status = res.status
	s.mu.Unlock()

	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Request-Id", reqID)
	h.Set("Stripe-Version", apiVersion)
	if key != "" && r.Method == http.MethodPost {
		h.Set("Idempotency-Key", key)
	}
	if res.replayed {
		h.Set("Idempotent-Replayed", "true")
	}
	if res.limited {
		h.Set("Stripe-Rate-Limited-Reason", "global-rate")
	}
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

// serve runs a request through authentication, faults, routing and
// idempotency, in that order.
func (s *Server) serve(r *http.Request, key string, form url.Values, formErr error) response {
	if res, ok := checkAuth(r); !ok {
		return res
	}
	if l := s.rateLimit.Load(); l != nil && !l.Allow() {
		res := faultResponse(http.StatusTooManyRequests)
		res.store, res.limited = false, true
		return res
	}
	ctx := r.Context()
	var delay time.Duration
	var stored *Fault // a failure to store under the key instead of doing the work
	if f, ok := s.takeFault(r.Method, r.URL.Path, form, false); ok {
		switch {
		case f.Status != 0 && f.Stored:
			stored = &f
		case f.Status != 0:
			s.sleep(ctx, f.Delay)
			return faultResponseFor(f)
		}
		delay = f.Delay
	}
	if formErr != nil {
		return invalid(apiError{Type: typeInvalidRequest, Message: "Invalid request body or query string: " + formErr.Error()})
	}
	h := s.route(r.Method, r.URL.Path)
	if h == nil {
		return errorResponse(http.StatusNotFound, apiError{
			Type:    typeInvalidRequest,
			Message: fmt.Sprintf("Unrecognized request URL (%s: %s).", r.Method, r.URL.Path),
		})
	}
	idempotent := r.Method == http.MethodPost && key != ""
	var entry *idemEntry
	if idempotent {
		var early response
		var started bool
		entry, early, started = s.beginIdempotent(key, fingerprint(r.Method, r.URL.Path, form))
		if !started {
			if stored != nil { // a replay or a conflict never reaches the endpoint: the fault is not used
				s.giveBack(*stored)
			}
			return early
		}
	}
	var res response
	if stored != nil {
		res = faultResponseFor(*stored)
		res.store = true
	} else {
		res = h(form, key)
	}
	if stored == nil && res.status/100 == 2 {
		if f, ok := s.takeFault(r.Method, r.URL.Path, form, true); ok {
			delay += f.Delay
			if f.Status != 0 {
				res = faultResponseFor(f)
				res.store = true
			}
		}
	}
	// Sleep while the key is still in flight, so that duplicates overlap.
	s.sleep(ctx, delay)
	if idempotent {
		s.finishIdempotent(key, entry, res)
	}
	return res
}

// route finds the handler of a method and path, or nil.
func (s *Server) route(method, path string) handler {
	if path == "/v1/invoiceitems" {
		switch method {
		case http.MethodGet:
			return s.listItems
		case http.MethodPost:
			return s.createItem
		}
		return nil
	}
	if path == "/v1/invoices" {
		switch method {
		case http.MethodGet:
			return s.listInvoices
		case http.MethodPost:
			return s.createInvoice
		}
		return nil
	}
	if rest, ok := strings.CutPrefix(path, "/v1/invoices/"); ok && method == http.MethodPost {
		if id, ok := strings.CutSuffix(rest, "/finalize"); ok && id != "" && !strings.Contains(id, "/") {
			return func(form url.Values, _ string) response { return s.finalizeInvoice(id, form) }
		}
		return nil
	}
	if method != http.MethodGet {
		return nil
	}
	if id, ok := pathID(path, "/v1/invoiceitems/"); ok {
		return func(form url.Values, _ string) response { return s.retrieveItem(id, form) }
	}
	if id, ok := pathID(path, "/v1/customers/"); ok {
		return func(form url.Values, _ string) response { return s.retrieveCustomer(id, form) }
	}
	if id, ok := pathID(path, "/v1/invoices/"); ok {
		return func(form url.Values, _ string) response { return s.retrieveInvoice(id, form) }
	}
	if id, ok := pathID(path, "/v1/subscriptions/"); ok {
		return func(form url.Values, _ string) response { return s.retrieveSubscription(id, form) }
	}
	return nil
}

// pathID returns the single path segment after prefix.
func pathID(path, prefix string) (string, bool) {
	id, ok := strings.CutPrefix(path, prefix)
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// readForm parses the request's parameters: the form-encoded body of a POST,
// the query string otherwise.
func readForm(r *http.Request) (url.Values, error) {
	raw := r.URL.RawQuery
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			return url.Values{}, err
		}
		raw = string(body)
	}
	form, err := url.ParseQuery(raw)
	if form == nil {
		form = url.Values{}
	}
	return form, err
}

// checkAuth requires "Authorization: Bearer sk_…".
func checkAuth(r *http.Request) (response, bool) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return errorResponse(http.StatusUnauthorized, apiError{
			Type:    typeInvalidRequest,
			Message: "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
		}), false
	}
	key, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || !strings.HasPrefix(key, "sk_") || len(key) <= len("sk_") {
		return errorResponse(http.StatusUnauthorized, apiError{
			Type:    typeInvalidRequest,
			Message: "Invalid API Key provided.",
		}), false
	}
	return response{}, true
}

// record appends a request to the log and returns its Request-Id and index.
func (s *Server) record(method, path, key, account string, form url.Values) (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastReq++
	s.requests = append(s.requests, Request{
		Method:         method,
		Path:           path,
		IdempotencyKey: key,
		StripeAccount:  account,
		Form:           cloneValues(form),
	})
	return fmt.Sprintf("req_fake%08d", s.lastReq), len(s.requests) - 1
}

// sleep waits d, or less if the client goes away or the fake is closed.
func (s *Server) sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.closing:
	}
}

// cloneValues deep-copies form values.
func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
