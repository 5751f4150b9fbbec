package stripefake_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82"

	"github.com/meterbill/meterbill/internal/stripefake"
)

// rawResult is an HTTP answer of the fake, read without stripe-go.
type rawResult struct {
	Status    int
	RequestID bool // a Request-Id header is present
	Error     map[string]string
}

// doRaw sends a request with plain net/http.
func doRaw(t *testing.T, method, u, auth, body string) rawResult {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Error map[string]string `json:"error"`
	}
	if err := json.Unmarshal(b, &parsed); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	if res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type = %q", res.Header.Get("Content-Type"))
	}
	return rawResult{Status: res.StatusCode, RequestID: strings.HasPrefix(res.Header.Get("Request-Id"), "req_"), Error: parsed.Error}
}

func TestHTTP(t *testing.T) {
	f, _ := newFake(t)
	tests := []struct {
		name                string
		method, path, auth  string
		body                string
		wantStatus          int
		wantType, wantCode  string
		wantMessageContains string
	}{
		{name: "no credentials", method: http.MethodGet, path: "/v1/customers/cus_a", wantStatus: 401, wantType: "invalid_request_error", wantMessageContains: "did not provide an API key"},
		{name: "publishable key", method: http.MethodGet, path: "/v1/customers/cus_a", auth: "Bearer pk_test_x", wantStatus: 401, wantType: "invalid_request_error"},
		{name: "basic auth", method: http.MethodGet, path: "/v1/customers/cus_a", auth: "Basic c2tfdGVzdF94Og==", wantStatus: 401, wantType: "invalid_request_error"},
		{name: "unknown route", method: http.MethodGet, path: "/v1/charges", auth: "Bearer sk_test_x", wantStatus: 404, wantType: "invalid_request_error", wantMessageContains: "Unrecognized request URL (GET: /v1/charges)"},
		{name: "wrong method", method: http.MethodDelete, path: "/v1/invoices/in_draft", auth: "Bearer sk_test_x", wantStatus: 404, wantType: "invalid_request_error"},
		{name: "unknown customer", method: http.MethodGet, path: "/v1/customers/cus_nope", auth: "Bearer sk_test_x", wantStatus: 404, wantType: "invalid_request_error", wantCode: "resource_missing"},
		{name: "unknown invoice", method: http.MethodGet, path: "/v1/invoices/in_nope", auth: "Bearer sk_test_x", wantStatus: 404, wantType: "invalid_request_error", wantCode: "resource_missing"},
		{
			name: "POST without an idempotency key just runs", method: http.MethodPost, path: "/v1/invoiceitems", auth: "Bearer sk_test_x",
			body: url.Values{"customer": {"cus_a"}, "currency": {"usd"}, "amount": {"3"}}.Encode(), wantStatus: 200,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := doRaw(t, tt.method, f.URL+tt.path, tt.auth, tt.body)
			if got.Status != tt.wantStatus || !got.RequestID {
				t.Errorf("status %d, Request-Id present %v; want %d, true", got.Status, got.RequestID, tt.wantStatus)
			}
			if got.Error["type"] != tt.wantType || got.Error["code"] != tt.wantCode {
				t.Errorf("error %v, want type %q code %q", got.Error, tt.wantType, tt.wantCode)
			}
			if !strings.Contains(got.Error["message"], tt.wantMessageContains) {
				t.Errorf("message %q does not contain %q", got.Error["message"], tt.wantMessageContains)
			}
		})
	}
}

func TestAuthThroughStripeGo(t *testing.T) {
	f, _ := newFake(t)
	b := stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:               stripe.String(f.URL),
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	sc := stripe.NewClient("rk_test_restricted", stripe.WithBackends(b))
	_, err := sc.V1Customers.Retrieve(context.Background(), "cus_a", nil)
	if got := viewErr(t, err); got.Status != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", got.Status)
	}
}

func TestRetrieveInvoice(t *testing.T) {
	f, sc := newFake(t)
	f.AddInvoice(stripefake.Invoice{
		ID: "in_sub", Customer: "cus_a", Currency: "eur", Status: "draft", BillingReason: "subscription_cycle",
		PeriodStart: 1_772_323_200, PeriodEnd: 1_775_001_600,
		Subscription: "sub_1", SubscriptionMetadata: map[string]string{"meterbill_plan": "pro"},
	})

	type invoiceView struct {
		ID, Object, Customer, Currency, Status, BillingReason string
		PeriodStart, PeriodEnd                                int64
		Livemode                                              bool
		Metadata                                              map[string]string
		ParentType, Subscription                              string
		SubscriptionMetadata                                  map[string]string
		Lines                                                 int
		LinesHasMore                                          bool
	}
	view := func(inv *stripe.Invoice) invoiceView {
		v := invoiceView{
			ID: inv.ID, Object: inv.Object, Currency: string(inv.Currency), Status: string(inv.Status),
			BillingReason: string(inv.BillingReason), PeriodStart: inv.PeriodStart, PeriodEnd: inv.PeriodEnd,
			Livemode: inv.Livemode, Metadata: inv.Metadata,
		}
		if inv.Customer != nil {
			v.Customer = inv.Customer.ID
		}
		if inv.Parent != nil {
			v.ParentType = string(inv.Parent.Type)
			if d := inv.Parent.SubscriptionDetails; d != nil {
				v.SubscriptionMetadata = d.Metadata
				if d.Subscription != nil {
					v.Subscription = d.Subscription.ID
				}
			}
		}
		if inv.Lines != nil {
			v.Lines, v.LinesHasMore = len(inv.Lines.Data), inv.Lines.HasMore
		}
		return v
	}

	tests := []struct {
		id   string
		want invoiceView
	}{
		{
			id: "in_sub",
			want: invoiceView{
				ID: "in_sub", Object: "invoice", Customer: "cus_a", Currency: "eur", Status: "draft",
				BillingReason: "subscription_cycle", PeriodStart: 1_772_323_200, PeriodEnd: 1_775_001_600,
				Metadata: map[string]string{}, ParentType: "subscription_details", Subscription: "sub_1",
				SubscriptionMetadata: map[string]string{"meterbill_plan": "pro"},
			},
		},
		{
			id: "in_open",
			want: invoiceView{
				ID: "in_open", Object: "invoice", Customer: "cus_a", Currency: "usd", Status: "open",
				Metadata: map[string]string{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			inv, err := sc.V1Invoices.Retrieve(context.Background(), tt.id, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, view(inv)); diff != "" {
				t.Errorf("invoice mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetrieveCustomer(t *testing.T) {
	_, sc := newFake(t)
	c, err := sc.V1Customers.Retrieve(context.Background(), "cus_a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"tenant": "t1"}, c.Metadata); diff != "" || c.ID != "cus_a" {
		t.Errorf("customer %s metadata mismatch (-want +got):\n%s", c.ID, diff)
	}
	_, err = sc.V1Customers.Retrieve(context.Background(), "cus_nope", nil)
	want := errView{Status: http.StatusNotFound, Type: stripe.ErrorTypeInvalidRequest, Code: stripe.ErrorCodeResourceMissing, Param: "id"}
	if diff := cmp.Diff(want, viewErr(t, err)); diff != "" {
		t.Errorf("error mismatch (-want +got):\n%s", diff)
	}
}

func TestRetrieveItem(t *testing.T) {
	_, sc := newFake(t)
	created, err := create(sc, usd(42, "in_draft", ""))
	if err != nil {
		t.Fatal(err)
	}
	got, err := sc.V1InvoiceItems.Retrieve(context.Background(), created.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(viewItem(created), viewItem(got)); diff != "" {
		t.Errorf("item mismatch (-want +got):\n%s", diff)
	}
}

func TestInspection(t *testing.T) {
	f, sc := newFake(t)
	if _, err := create(sc, usd(5, "in_draft", "k1")); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.V1Invoices.Retrieve(context.Background(), "in_nope", nil); err == nil {
		t.Fatal("unknown invoice found")
	}

	want := []stripefake.Request{
		{
			Method: http.MethodPost, Path: "/v1/invoiceitems", IdempotencyKey: "k1", Status: 200,
			Form: url.Values{"customer": {"cus_a"}, "currency": {"usd"}, "amount": {"5"}, "invoice": {"in_draft"}},
		},
		{Method: http.MethodGet, Path: "/v1/invoices/in_nope", Form: url.Values{}, Status: 404},
	}
	if diff := cmp.Diff(want, f.Requests()); diff != "" {
		t.Errorf("Requests mismatch (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		method, prefix string
		want           int
	}{
		{http.MethodPost, "/v1/invoiceitems", 1},
		{http.MethodGet, "/v1/invoiceitems", 0},
		{http.MethodGet, "/v1/", 1},
		{"", "/v1/", 2},
	} {
		if got := f.CountRequests(c.method, c.prefix); got != c.want {
			t.Errorf("CountRequests(%q, %q) = %d, want %d", c.method, c.prefix, got, c.want)
		}
	}

	f.SetInvoiceStatus("in_draft", "open")
	inv, ok := f.Invoice("in_draft")
	wantInv := stripefake.Invoice{
		ID: "in_draft", Customer: "cus_a", Currency: "usd", Status: "open", BillingReason: "subscription_cycle",
		SubscriptionMetadata: map[string]string{},
	}
	if diff := cmp.Diff(wantInv, inv); diff != "" || !ok {
		t.Errorf("Invoice(in_draft) found %v, mismatch (-want +got):\n%s", ok, diff)
	}
	if _, ok := f.Invoice("in_nope"); ok {
		t.Error("Invoice(in_nope) found")
	}
	f.AddInvoice(stripefake.Invoice{ID: "in_new", Customer: "cus_b", Currency: "usd"})
	if inv, _ := f.Invoice("in_new"); inv.Status != "draft" {
		t.Errorf("an invoice added without a status has status %q, want draft", inv.Status)
	}
}
