package stripefake

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Fault is a misbehaviour queued with Inject.
//
// A fault without AfterApply is taken by a request before idempotency
// handling: with a Status it sleeps Delay and answers that status without
// doing anything (and nothing is stored under the idempotency key); with
// Status 0 the request is served normally and its answer is held back by
// Delay while its idempotency key is still in flight, so that duplicates
// overlap with it.
//
// A fault with AfterApply is taken only after a request was served
// successfully (not replayed): the work stays done, the answer is held back by
// Delay, then replaced by Status (if not 0), and that replacement is what an
// idempotent request stores under its key. It models "Stripe did the work but
// answered 500".
type Fault struct {
	Method string // the method to match exactly; "" matches any
	Path   string // the path prefix to match, e.g. "/v1/invoiceitems"; "" matches any
	// Status is the status to answer: 429 (code "rate_limit"), 5xx (type
	// "api_error"), 409 (code "idempotency_key_in_use"), any other 4xx (type
	// "invalid_request_error"), or 0 for a delay alone.
	Status int
	Times  int           // how many matching requests it applies to; below 1 means 1
	Delay  time.Duration // how long to sleep before answering; cut short when the client goes away
	// AfterApply makes the fault apply after the work succeeded, see Fault.
	AfterApply bool
	// Stored makes a fault without AfterApply go through idempotency handling: the work is not
	// done, but the answer is stored under the request's key and replayed for the key's life,
	// as Stripe does with a failure once "the endpoint started executing". A request whose key
	// is replayed or still in flight never reaches the endpoint and does not use the fault up.
	Stored bool
	// Code overrides the error code of the answer, e.g. "lock_timeout" for a 429.
	Code string
	// Form, if set, makes the fault match only requests whose parameters have these values,
	// e.g. {"metadata[meterbill_tier]": "2"}: a fault for one line, whatever order lines are
	// sent in.
	Form map[string]string
}

// Inject queues a fault. Each request takes the first queued fault that
// matches it and has uses left, and uses it up once.
func (s *Server) Inject(f Fault) {
	if f.Times < 1 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// takeFault takes one use of the first matching fault of the given kind.
func (s *Server) takeFault(method, path string, form url.Values, afterApply bool) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.AfterApply != afterApply || (f.Method != "" && f.Method != method) || !strings.HasPrefix(path, f.Path) || !formHas(form, f.Form) {
			continue
		}
		f.Times--
		if f.Times <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return *f, true
	}
	return Fault{}, false
}

// formHas reports whether form has every value of want.
func formHas(form url.Values, want map[string]string) bool {
	for k, v := range want {
		if form.Get(k) != v {
			return false
		}
	}
	return true
}

// giveBack returns one use of a fault taken by a request that never reached
// the endpoint (its key was replayed or in flight), at the front of the queue.
func (s *Server) giveBack(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Times = 1
	s.faults = append([]*Fault{&f}, s.faults...)
}

// faultResponse is the Stripe error an injected status answers with.
func faultResponseFor(f Fault) response {
	res := faultResponse(f.Status)
	if f.Code != "" {
		e := apiError{Type: typeInvalidRequest, Code: f.Code, Message: "stripefake: injected " + f.Code + "."}
		if f.Status >= 500 {
			e.Type = typeAPI
		}
		res = errorResponse(f.Status, e)
	}
	return res
}

func faultResponse(status int) response {
	e := apiError{Type: typeInvalidRequest}
	switch {
	case status == http.StatusTooManyRequests:
		e.Code = "rate_limit"
		e.Message = "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."
	case status == http.StatusConflict:
		e.Code = "idempotency_key_in_use"
		e.Message = msgKeyInUse
	case status >= 500:
		e.Type = typeAPI
		e.Message = fmt.Sprintf("stripefake: injected server error (%d).", status)
	default:
		e.Message = fmt.Sprintf("stripefake: injected error (%d).", status)
	}
	return errorResponse(status, e)
}
