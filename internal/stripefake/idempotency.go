package stripefake

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// keyLifetime is how long Stripe keeps an idempotency key after its first use.
const keyLifetime = 24 * time.Hour

const msgKeyInUse = "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through). Please try again later."

const msgKeyReused = "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than the one you provided if you meant to execute a different request."

// idemEntry is what the fake remembers about an idempotency key.
type idemEntry struct {
	fingerprint string    // method, path and form of the first request
	firstUsed   time.Time // on the fake's clock
	done        bool      // false while the first request is in flight
	status      int
	body        []byte
}

// beginIdempotent claims key for a request with the given fingerprint. When
// it returns started, the caller runs the request and must then call
// finishIdempotent with the entry; otherwise it answers with early: the
// replay of the stored result, a 409 while the key is in flight, or an
// idempotency_error when the parameters differ.
func (s *Server) beginIdempotent(key, fp string) (entry *idemEntry, early response, started bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.keys[key]; ok && s.now.Before(e.firstUsed.Add(keyLifetime)) {
		switch {
		case e.fingerprint != fp:
			return nil, invalid(apiError{Type: typeIdempotency, Message: msgKeyReused}), false
		case !e.done:
			return nil, response{
				status: http.StatusConflict,
				body:   errorBody(apiError{Type: typeInvalidRequest, Code: "idempotency_key_in_use", Message: msgKeyInUse}),
			}, false
		default:
			return nil, response{status: e.status, body: e.body, replayed: true}, false
		}
	}
	e := &idemEntry{fingerprint: fp, firstUsed: s.now}
	s.keys[key] = e
	return e, response{}, true
}

// finishIdempotent stores the result of the request that claimed the key, or
// forgets the key if the result is not to be stored.
func (s *Server) finishIdempotent(key string, e *idemEntry, res response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys[key] != e {
		return // expired and claimed again meanwhile
	}
	if !res.store {
		delete(s.keys, key)
		return
	}
	e.done = true
	e.status = res.status
	e.body = res.body
}

// fingerprint identifies a request's parameters regardless of their order.
func fingerprint(method, path string, form url.Values) string {
	var pairs []string
	for k, vs := range form {
		for _, v := range vs {
			pairs = append(pairs, url.QueryEscape(k)+"="+url.QueryEscape(v))
		}
	}
	slices.Sort(pairs)
	return method + " " + path + "?" + strings.Join(pairs, "&")
}
