package meterbill_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/internal/stripefake"
)

// hostileAPIKey is the Stripe API key of the hostile-input tests: distinctive, so that a leak
// into a log line or an error is found by substring.
const hostileAPIKey = "sk_test_hostile_K3y_n3ver_pr1nted_0042"

// logCapture is a slog.Handler target: a buffer of JSON lines, safe for concurrent writes.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func (c *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// find returns the first line logged at level that contains substr, or "".
func (c *logCapture) find(t testing.TB, level slog.Level, substr string) string {
	t.Helper()
	for line := range strings.SplitSeq(strings.TrimSpace(c.String()), "\n") {
		var rec struct {
			Level string `json:"level"`
		}
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		if rec.Level == level.String() && strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}

// hostileFixture is the production wiring of the webhook: the real Handler, the real stripe-go
// adapter (whose own logs go to the same capture) and the stateful fake Stripe, which counts every
// request. newBridge does not fit: it fixes the API key and has no logger.
type hostileFixture struct {
	stripe  *stripefake.Server
	api     *meterbill.StripeAPI
	handler *meterbill.Handler
	logs    *logCapture
	errs    []string // every error the handler reported or failed with
	mu      sync.Mutex
}

func newHostileFixture(t testing.TB, opts ...meterbill.HandlerOption) *hostileFixture {
	t.Helper()
	f := &hostileFixture{stripe: stripefake.New(), logs: &logCapture{}}
	t.Cleanup(f.stripe.Close)
	f.stripe.AddCustomer("cus_hostile", nil)
	meter := meterbill.NewMemoryMeter()
	plan, err := meterbill.NewPlan(billPlan...)
	if err != nil {
		t.Fatal(err)
	}
	if err := meter.Define(t.Context(), plan.Metrics()...); err != nil {
		t.Fatal(err)
	}
	f.api, err = meterbill.NewStripeClient(hostileAPIKey, meterbill.WithStripeURL(f.stripe.URL), meterbill.WithLogger(f.logs.logger()))
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]meterbill.HandlerOption{
		meterbill.WithLogger(f.logs.logger()),
		meterbill.WithRetryBackoff(time.Millisecond, 5*time.Millisecond),
		meterbill.WithReportHook(func(r *meterbill.Report) {
			if r.Err != nil {
				f.mu.Lock()
				f.errs = append(f.errs, r.Err.Error(), fmt.Sprintf("%+v", r.Err), fmt.Sprintf("%#v", r.Err))
				f.mu.Unlock()
			}
		}),
	}, opts...)
	f.handler, err = meterbill.NewHandler(meter, f.api, meterbill.SubscriptionMetadataAccount("meter_account"), plan, []string{secret, oldSecret}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// lazyBody yields n bytes of a JSON-looking string without ever holding them, and counts what
// was read: a 1 GiB body costs no memory in the test.
type lazyBody struct {
	remaining, read int64
}

func (b *lazyBody) Read(p []byte) (int, error) {
	if b.remaining == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), b.remaining))
	for i := range p[:n] {
		p[i] = 'x'
	}
	b.remaining -= int64(n)
	b.read += int64(n)
	return n, nil
}

// hostileEvent is a basil invoice.created for a draft March invoice of cus_hostile, mapped to
// account 42, edited by edit (the event and its invoice as decoded maps).
func hostileEvent(t testing.TB, edit func(ev, inv map[string]any)) []byte {
	t.Helper()
	base := invoiceEvent(t, "2025-08-27.basil", "in_hostile", "cus_hostile", "draft", date(2026, 3, 1), date(2026, 4, 1), map[string]string{"meter_account": "42"})
	if edit == nil {
		return base
	}
	var ev map[string]any
	if err := json.Unmarshal(base, &ev); err != nil {
		t.Fatal(err)
	}
	edit(ev, ev["data"].(map[string]any)["object"].(map[string]any))
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// manyKeys is subscription metadata with n keys and no meter_account: an unmetered customer.
func manyKeys(n int) map[string]any {
	md := make(map[string]any, n)
	for i := range n {
		md[fmt.Sprintf("k%06d", i)] = "v"
	}
	return md
}

// TestHostileWebhooks sends bad deliveries to the real handler. Each must get the right status
// and one clear log line, reach Stripe not at all (except where said), and cost memory bounded
// by the body cap, not by what the sender sends.
func TestHostileWebhooks(t *testing.T) {
	now := time.Now()
	good := hostileEvent(t, nil)
	setInv := func(key string, v any) []byte {
		return hostileEvent(t, func(_, inv map[string]any) { inv[key] = v })
	}
	setMeta := func(md map[string]any) []byte {
		return hostileEvent(t, func(_, inv map[string]any) {
			inv["parent"].(map[string]any)["subscription_details"].(map[string]any)["metadata"] = md
		})
	}
	hugeMeta := setMeta(manyKeys(100_000)) // about 1.6 MB: over the default 1 MiB cap
	giant := &lazyBody{remaining: 1 << 30}

	tests := []struct {
		name string
		// bodyCap is WithMaxBodyBytes; 0 leaves the default, 1 MiB.
		bodyCap int64
		request func() *http.Request
		// wantStatus is the answer; wantLevel and wantLog the log line that explains it (a
		// substring of its JSON).
		wantStatus int
		wantLevel  slog.Level
		wantLog    string
		// wantStripeGETs is the number of Stripe reads allowed; no row may write.
		wantStripeGETs int
		// maxBodyRead bounds the bytes the handler pulls from giant, when set.
		maxBodyRead int64
	}{
		{
			name:       "no Stripe-Signature header",
			request:    func() *http.Request { return signed(t, good, now) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "no Stripe-Signature header",
		},
		{
			name:       "signed with another secret",
			request:    func() *http.Request { return signed(t, good, now, "whsec_attacker_0000000000") },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "no valid signature",
		},
		{
			name:       "stale timestamp",
			request:    func() *http.Request { return signed(t, good, now.Add(-6*time.Minute), secret) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "wasn't within tolerance",
		},
		{
			name:       "far-future timestamp",
			request:    func() *http.Request { return signed(t, good, now.Add(24*time.Hour), secret) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "timestamp is in the future",
		},
		{
			name: "valid signature replayed over an altered body",
			request: func() *http.Request {
				r := signed(t, good, now, secret)
				altered := bytes.Replace(good, []byte(`"meter_account":"42"`), []byte(`"meter_account":"43"`), 1)
				r2 := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(altered))
				r2.Header = r.Header
				return r2
			},
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "no valid signature",
		},
		{
			name:       "truncated JSON, validly signed",
			request:    func() *http.Request { return signed(t, good[:len(good)/2], now, secret) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "malformed webhook event: malformed event: unexpected end of JSON input",
		},
		{
			// Decision: accept and process. Stripe always sends application/json, but the header is
			// not signed: any proxy may rewrite it, and refusing a body whose signature proves it is
			// Stripe's would leave an invoice unbilled while protecting nothing. The body is always
			// parsed as JSON, whatever the header says, so the header cannot change its meaning.
			// The invoice here is void, so processing it is a 200 that touches nothing.
			name: "signed body sent as text/plain is processed like JSON",
			request: func() *http.Request {
				r := signed(t, setInv("status", "void"), now, secret)
				r.Header.Set("Content-Type", "text/plain")
				return r
			},
			wantStatus: 200, wantLevel: slog.LevelWarn, wantLog: "meterbill: invoice void",
		},
		{
			name: "1 GiB body",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/webhook", giant)
				r.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: nil, Secret: secret}).Header)
				return r
			},
			wantStatus: 413, wantLevel: slog.LevelWarn, wantLog: "webhook body too large: over 1048576 bytes",
			maxBodyRead: 1<<20 + 1,
		},
		{
			name: "invoice.paid carrying an invoice is ignored",
			request: func() *http.Request {
				return signed(t, hostileEvent(t, func(ev, _ map[string]any) { ev["type"] = "invoice.paid" }), now, secret)
			},
			wantStatus: 200, wantLevel: slog.LevelDebug, wantLog: `"type":"invoice.paid"`,
		},
		{
			name: "customer.updated carrying an invoice-looking object is ignored",
			request: func() *http.Request {
				return signed(t, hostileEvent(t, func(ev, _ map[string]any) { ev["type"] = "customer.updated" }), now, secret)
			},
			wantStatus: 200, wantLevel: slog.LevelDebug, wantLog: "meterbill: webhook ignored",
		},
		{
			name: "invoice without a customer",
			request: func() *http.Request {
				return signed(t, hostileEvent(t, func(_, inv map[string]any) { delete(inv, "customer") }), now, secret)
			},
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: `has no customer`,
		},
		{
			name:       "negative period: end before start",
			request:    func() *http.Request { return signed(t, setInv("period_end", date(2026, 2, 1).Unix()), now, secret) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "has period [1772323200, 1769904000)",
		},
		{
			name:       "period starting at 0",
			request:    func() *http.Request { return signed(t, setInv("period_start", 0), now, secret) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "has period [0, ",
		},
		{
			// Well formed, so it reaches billing; refused before any Stripe call, as a 400: the
			// event will carry the same period on every redelivery.
			name:       "period ending in year 9999",
			request:    func() *http.Request { return signed(t, setInv("period_end", date(9999, 12, 1).Unix()), now, secret) },
			wantStatus: 400, wantLevel: slog.LevelError, wantLog: "invalid period: invoice period",
		},
		{
			name:       "four-letter currency",
			request:    func() *http.Request { return signed(t, setInv("currency", "usdx"), now, secret) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "has currency",
		},
		{
			// Decision: "zzz" is shaped like an ISO 4217 code, and the handler cannot tell it from
			// a real currency the plan has no price in (say "eur"); it keeps no currency table that
			// would go stale. A missing price is this side's configuration, fixed by a deploy, after
			// which a redelivery bills: a 500, as TestBillingFailuresAnswer500AndWriteNothing holds.
			// The handler checks the plan prices the currency before it reads the ledger: no
			// Stripe request at all.
			name:       "unknown three-letter currency",
			request:    func() *http.Request { return signed(t, setInv("currency", "zzz"), now, secret) },
			wantStatus: 500, wantLevel: slog.LevelError, wantLog: `has no price in \"zzz\"`,
		},
		{
			name:       "non-numeric account id in the subscription metadata",
			request:    func() *http.Request { return signed(t, setMeta(map[string]any{"meter_account": "acme"}), now, secret) },
			wantStatus: 400, wantLevel: slog.LevelError, wantLog: "invalid account mapping",
		},
		{
			name:       "account id as a JSON number where Stripe sends a string",
			request:    func() *http.Request { return signed(t, setMeta(map[string]any{"meter_account": 42}), now, secret) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "cannot unmarshal number",
		},
		{
			name:       "unknown customer is skipped",
			request:    func() *http.Request { return signed(t, setMeta(map[string]any{"plan": "pro"}), now, secret) },
			wantStatus: 200, wantLevel: slog.LevelWarn, wantLog: "meterbill: invoice unknown_customer",
		},
		{
			name:       "100k metadata keys over the default body cap",
			request:    func() *http.Request { return signed(t, hugeMeta, now, secret) },
			wantStatus: 413, wantLevel: slog.LevelWarn, wantLog: "webhook body too large",
		},
		{
			// Under a raised cap the keys decode (memory stays proportional to the cap) and the
			// customer, with no meter_account among them, is not metered.
			name:       "100k metadata keys under a raised body cap",
			bodyCap:    4 << 20,
			request:    func() *http.Request { return signed(t, hugeMeta, now, secret) },
			wantStatus: 200, wantLevel: slog.LevelWarn, wantLog: "meterbill: invoice unknown_customer",
		},
		{
			// encoding/json keeps the last duplicate; Stripe never sends duplicates, and the
			// signature rules out anyone else choosing which one is read.
			name: "duplicate type key: the last one wins",
			request: func() *http.Request {
				return signed(t, bytes.Replace(good, []byte(`"type":"invoice.created"`), []byte(`"type":"invoice.created","type":"invoice.voided"`), 1), now, secret)
			},
			wantStatus: 200, wantLevel: slog.LevelDebug, wantLog: `"type":"invoice.voided"`,
		},
		{
			name:       "customer as a JSON number",
			request:    func() *http.Request { return signed(t, setInv("customer", 42), now, secret) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "has no customer",
		},
		{
			name: "event id as a JSON number",
			request: func() *http.Request {
				return signed(t, hostileEvent(t, func(ev, _ map[string]any) { ev["id"] = 7 }), now, secret)
			},
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "cannot unmarshal number",
		},
		{
			name:       "empty body, validly signed",
			request:    func() *http.Request { return signed(t, []byte{}, now, secret) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "unexpected end of JSON input",
		},
		{
			name: "GET",
			request: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/webhook", nil)
			},
			wantStatus: 405, wantLevel: slog.LevelWarn, wantLog: `"method":"GET"`,
		},
		{
			name:       "valid JSON array, not an event",
			request:    func() *http.Request { return signed(t, []byte(`[]`), now, secret) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "cannot unmarshal array",
		},
		{
			name:       "valid JSON string, not an event",
			request:    func() *http.Request { return signed(t, []byte(`"x"`), now, secret) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "cannot unmarshal string",
		},
		{
			name:       "JSON null",
			request:    func() *http.Request { return signed(t, []byte(`null`), now, secret) },
			wantStatus: 400, wantLevel: slog.LevelWarn, wantLog: "no event id or type",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bodyCap := int64(1 << 20)
			var opts []meterbill.HandlerOption
			if tt.bodyCap != 0 {
				bodyCap = tt.bodyCap
				opts = append(opts, meterbill.WithMaxBodyBytes(bodyCap))
			}
			f := newHostileFixture(t, opts...)
			req := tt.request()
			w := httptest.NewRecorder()

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			f.handler.ServeHTTP(w, req)
			runtime.ReadMemStats(&after)

			if diff := cmp.Diff(tt.wantStatus, w.Code); diff != "" {
				t.Errorf("status mismatch (-want +got):\n%s", diff)
			}
			if line := f.logs.find(t, tt.wantLevel, tt.wantLog); line == "" {
				t.Errorf("no %s log line containing %q; logs:\n%s", tt.wantLevel, tt.wantLog, f.logs)
			}
			gotRequests := map[string]int{"GET": f.stripe.CountRequests(http.MethodGet, ""), "POST": f.stripe.CountRequests(http.MethodPost, "")}
			if diff := cmp.Diff(map[string]int{"GET": tt.wantStripeGETs, "POST": 0}, gotRequests); diff != "" {
				t.Errorf("Stripe requests mismatch (-want +got):\n%s", diff)
			}
			// Bounded memory: what one handling allocates is a small multiple of the body cap
			// (measured: 4.3 MiB at most for the 1 MiB cap, 21 MiB for 100k keys under 4 MiB),
			// whatever the sender sends; reading the 1 GiB body would take a GiB.
			if alloc, limit := after.TotalAlloc-before.TotalAlloc, uint64(8*bodyCap+1<<20); alloc > limit {
				t.Errorf("handling allocated %d KiB, want at most %d KiB", alloc>>10, limit>>10)
			}
			if tt.maxBodyRead > 0 && giant.read > tt.maxBodyRead {
				t.Errorf("the handler read %d bytes of the body, want at most %d", giant.read, tt.maxBodyRead)
			}
			if w.Code >= 400 && strings.Contains(w.Body.String(), "meterbill") {
				t.Errorf("the error body leaks internal text: %q", w.Body.String())
			}
			f.assertNoSecrets(t, w.Body.String())
		})
	}
}

// TestUnsignedWebhookReadsNoBody: a request whose Stripe-Signature header cannot verify,
// whatever its body, is refused before a byte of the body is read or hashed, so a flood of
// unsigned or replayed requests costs no body reads. A fresh header does make the handler read
// (up to its cap).
func TestUnsignedWebhookReadsNoBody(t *testing.T) {
	now := time.Now()
	sig := func(at time.Time) string {
		return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte("x"), Secret: secret, Timestamp: at}).Header
	}
	fresh := sig(now)
	tests := []struct {
		name       string
		header     string // "" sends none
		wantStatus int
		wantLog    string
		wantRead   int64 // bytes of the body read
	}{
		{name: "no header", wantStatus: 400, wantLog: "no Stripe-Signature header"},
		{name: "stale", header: sig(now.Add(-6 * time.Minute)), wantStatus: 400, wantLog: "wasn't within tolerance"},
		{name: "future", header: sig(now.Add(time.Hour)), wantStatus: 400, wantLog: "timestamp is in the future"},
		{name: "malformed", header: "t=abc,v1=00", wantStatus: 400, wantLog: "invalid Stripe-Signature header"},
		{name: "no v1", header: "t=" + strconv.FormatInt(now.Unix(), 10), wantStatus: 400, wantLog: "no valid signature"},
		{name: "two t parts", header: fresh + ",t=" + strconv.FormatInt(now.Unix(), 10), wantStatus: 400, wantLog: "exactly one t= part"},
		{name: "fresh header: the body is read, up to the cap", header: fresh, wantStatus: 413, wantLog: "webhook body too large", wantRead: 1<<20 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newHostileFixture(t)
			body := &lazyBody{remaining: 1 << 30}
			req := httptest.NewRequest(http.MethodPost, "/webhook", body)
			if tt.header != "" {
				req.Header.Set("Stripe-Signature", tt.header)
			}
			w := httptest.NewRecorder()
			f.handler.ServeHTTP(w, req)
			got := struct {
				Status int
				Read   int64
			}{w.Code, body.read}
			want := struct {
				Status int
				Read   int64
			}{tt.wantStatus, tt.wantRead}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("status and body bytes read mismatch (-want +got):\n%s", diff)
			}
			if line := f.logs.find(t, slog.LevelWarn, tt.wantLog); line == "" {
				t.Errorf("no warning containing %q; logs:\n%s", tt.wantLog, f.logs)
			}
		})
	}
}

// assertNoSecrets checks that neither signing secret nor the API key appears in the logs, the
// errors reported, or extra.
func (f *hostileFixture) assertNoSecrets(t testing.TB, extra ...string) {
	t.Helper()
	f.mu.Lock()
	texts := append(append([]string{f.logs.String()}, f.errs...), extra...)
	f.mu.Unlock()
	for _, s := range texts {
		for _, secretText := range []string{secret, oldSecret, hostileAPIKey, strings.TrimPrefix(hostileAPIKey, "sk_test_")} {
			if strings.Contains(s, secretText) {
				t.Errorf("a secret (%.9s…) leaks into: %.300s", secretText, s)
			}
		}
	}
}

// TestSecretsNeverPrinted: neither the signing secrets nor the Stripe API key shows in any
// formatting of a Handler or StripeAPI, in slog output of them, in the errors of failed Stripe
// calls or webhook refusals, or in the SDK's debug logs.
func TestSecretsNeverPrinted(t *testing.T) {
	f := newHostileFixture(t)
	var printed []string
	for _, v := range []any{f.handler, f.api, *f.api} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			printed = append(printed, fmt.Sprintf(verb, v))
		}
	}
	text := slog.New(slog.NewTextHandler(f.logs, nil))
	for _, l := range []*slog.Logger{f.logs.logger(), text} {
		l.Info("components", "handler", f.handler, "stripe", f.api, "stripe_value", *f.api)
	}

	// Stripe failures through the real adapter, with the SDK logging at debug level: a 500, a 429,
	// a 401 for a key the fake refuses, and no answer at all.
	f.stripe.Inject(stripefake.Fault{Method: http.MethodGet, Path: "/v1/invoices/", Status: 500, Times: 1})
	f.stripe.Inject(stripefake.Fault{Method: http.MethodGet, Path: "/v1/invoiceitems", Status: 429, Times: 1})
	_, err1 := f.api.Invoice(t.Context(), "in_x")
	_, err2 := f.api.InvoiceItems(t.Context(), "cus_hostile", time.Time{})
	restricted, err := meterbill.NewStripeClient("rk_test_hostile_K3y_n3ver_pr1nted_0042", meterbill.WithStripeURL(f.stripe.URL), meterbill.WithLogger(f.logs.logger()))
	if err != nil {
		t.Fatal(err)
	}
	_, err3 := restricted.CustomerMetadata(t.Context(), "cus_hostile")
	down, err := meterbill.NewStripeClient(hostileAPIKey, meterbill.WithStripeURL("http://127.0.0.1:1"), meterbill.WithLogger(f.logs.logger()))
	if err != nil {
		t.Fatal(err)
	}
	_, err4 := down.CreateInvoiceItem(t.Context(), meterbill.InvoiceItem{Customer: "cus_hostile", Currency: "usd", Amount: 1}, "key")
	for i, err := range []error{err1, err2, err3, err4} {
		if err == nil {
			t.Fatalf("Stripe call %d succeeded, want an error", i+1)
		}
		printed = append(printed, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	}

	// Webhook refusals through a custom error handler: the error it receives is clean too.
	var mu sync.Mutex
	h, err := meterbill.NewHandler(meterbill.NewMemoryMeter(), f.api, meterbill.SubscriptionMetadataAccount("meter_account"), mustPlan(t), []string{secret, oldSecret},
		meterbill.WithLogger(f.logs.logger()),
		meterbill.WithErrorHandler(func(w http.ResponseWriter, _ *http.Request, err error) {
			mu.Lock()
			printed = append(printed, err.Error(), fmt.Sprintf("%+v", err))
			mu.Unlock()
			w.WriteHeader(http.StatusBadRequest)
		}))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*http.Request{
		signed(t, hostileEvent(t, nil), time.Now(), "whsec_attacker_0000000000"),
		signed(t, hostileEvent(t, nil), time.Now().Add(-time.Hour), secret, oldSecret),
		signed(t, []byte(`{"id":`), time.Now(), oldSecret),
	} {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if len(printed) < 3 {
		t.Fatalf("collected %d texts", len(printed))
	}
	f.assertNoSecrets(t, printed...)
	if !strings.Contains(f.logs.String(), "components") {
		t.Error("the components were not logged")
	}
}

func mustPlan(t testing.TB) *meterbill.Plan {
	t.Helper()
	p, err := meterbill.NewPlan(billPlan...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
