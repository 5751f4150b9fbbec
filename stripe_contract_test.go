package meterbill_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/internal/ledger"
)

// stripeMock returns the URL of a running stripe-mock (github.com/stripe/stripe-mock), which
// validates every request against Stripe's OpenAPI spec. .ci/run starts one and sets
// STRIPE_MOCK_URL; locally the contract test is skipped without it, in CI it must run.
func stripeMock(t *testing.T) string {
	t.Helper()
	u := os.Getenv("STRIPE_MOCK_URL")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("STRIPE_MOCK_URL is not set in CI: .ci/run must start stripe-mock")
		}
		t.Skip("stripe-mock not running: start it with `stripe-mock -http-addr 127.0.0.1:12111 -https-addr 127.0.0.1:12112` and set STRIPE_MOCK_URL=http://127.0.0.1:12111")
	}
	return u
}

// TestStripeContract sends every request the adapter makes to stripe-mock and checks it is
// accepted as Stripe's spec describes it.
func TestStripeContract(t *testing.T) {
	base := stripeMock(t)
	sc, err := meterbill.NewStripeClient("sk_test_123", meterbill.WithStripeURL(base))
	if err != nil {
		t.Fatal(err)
	}
	withItems, err := meterbill.NewStripeClient("sk_test_123", meterbill.WithStripeURL(base), meterbill.WithItemParams(func(p *stripe.InvoiceItemCreateParams) {
		p.TaxCode, p.TaxBehavior, p.Discountable = stripe.String("txcd_10000000"), stripe.String("exclusive"), stripe.Bool(false)
		p.PriceData = &stripe.InvoiceItemCreatePriceDataParams{Product: stripe.String("prod_123"), TaxBehavior: stripe.String("exclusive")}
	}))
	if err != nil {
		t.Fatal(err)
	}
	own, err := meterbill.NewStripeClientFrom(stripe.NewClient("sk_test_123", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(base), MaxNetworkRetries: stripe.Int64(0), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}}))),
		meterbill.WithStripeAccount("acct_123"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	from, to := date(2026, 3, 1), date(2026, 4, 1)
	md, err := ledger.Encode(ledger.Entry{Account: 42, Metric: "api_calls", Period: "calendar/1", From: from, To: to, Quantity: "1234", Tier: 0, LineQty: "1234", UnitPrice: "0.1", Invoice: "in_123",
		Plan: "pl_0123456789abcdef", Lines: []ledger.Line{{Tier: 0, Quantity: "1234", UnitPrice: "0.1", Amount: 123}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{name: "retrieve invoice", call: func() error { _, err := sc.Invoice(ctx, "in_123"); return err }},
		{name: "retrieve customer", call: func() error { _, err := sc.CustomerMetadata(ctx, "cus_123"); return err }},
		{name: "retrieve subscription", call: func() error { _, err := sc.Subscription(ctx, "sub_123"); return err }},
		{name: "list a customer's invoice items", call: func() error { _, err := sc.InvoiceItems(ctx, "cus_123", from); return err }},
		{name: "list a subscription's voided invoices", call: func() error {
			_, err := sc.Invoices(ctx, meterbill.InvoiceQuery{Subscription: "sub_123", Status: "void", CreatedSince: from})
			return err
		}},
		{name: "list a customer's invoices", call: func() error {
			_, err := sc.Invoices(ctx, meterbill.InvoiceQuery{Customer: "cus_123", CreatedSince: from})
			return err
		}},
		{name: "create a final invoice, charged automatically", call: func() error {
			_, err := sc.CreateInvoice(ctx, meterbill.NewInvoice{Customer: "cus_123", Currency: "usd", Description: "Usage up to the end of your subscription",
				AutoAdvance: true, IncludePending: true, Metadata: map[string]string{"meterbill_final": "sub_123"}}, "meterbill-final-sub_123")
			return err
		}},
		{name: "create an invoice sent for payment", call: func() error {
			_, err := sc.CreateInvoice(ctx, meterbill.NewInvoice{Customer: "cus_123", Currency: "eur", SendInvoice: true, DaysUntilDue: 14}, "meterbill-contract-3")
			return err
		}},
		{name: "finalize an invoice", call: func() error { _, err := sc.FinalizeInvoice(ctx, "in_123"); return err }},
		{name: "create an invoice item on an invoice", call: func() error {
			_, err := sc.CreateInvoiceItem(ctx, meterbill.InvoiceItem{Customer: "cus_123", Invoice: "in_123", Currency: "usd", Description: "API calls: 1234", Amount: 123, PeriodStart: from, PeriodEnd: to, Metadata: md}, "meterbill-contract-1")
			return err
		}},
		{name: "create an invoice item with a quantity and an exact unit price", call: func() error {
			_, err := sc.CreateInvoiceItem(ctx, meterbill.InvoiceItem{Customer: "cus_123", Invoice: "in_123", Currency: "usd", Description: "API calls: 3100", Amount: 310,
				Quantity: 3100, UnitAmountDecimal: "0.1", PeriodStart: from, PeriodEnd: to, Metadata: md}, "meterbill-contract-4")
			return err
		}},
		{name: "create an invoice item with tax fields and a product (WithItemParams)", call: func() error {
			_, err := withItems.CreateInvoiceItem(ctx, meterbill.InvoiceItem{Customer: "cus_123", Invoice: "in_123", Currency: "usd", Description: "API calls: 3100", Amount: 310,
				Quantity: 3100, UnitAmountDecimal: "0.1", PeriodStart: from, PeriodEnd: to, Metadata: md}, "meterbill-contract-5")
			return err
		}},
		{name: "own stripe-go client, on a connected account", call: func() error {
			_, err := own.CreateInvoiceItem(ctx, meterbill.InvoiceItem{Customer: "cus_123", Invoice: "in_123", Currency: "usd", Description: "API calls: 1234", Amount: 123, PeriodStart: from, PeriodEnd: to, Metadata: md}, "meterbill-contract-6")
			if err == nil {
				_, err = own.InvoiceItems(ctx, "cus_123", from)
			}
			return err
		}},
		{name: "create a pending invoice item", call: func() error {
			_, err := sc.CreateInvoiceItem(ctx, meterbill.InvoiceItem{Customer: "cus_123", Currency: "jpy", Description: "API calls: 7", Amount: 21, PeriodStart: from, PeriodEnd: to, Metadata: md}, "meterbill-contract-2")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Errorf("stripe-mock refused it: %v", err)
			}
		})
	}

	// Negative control: the mock does validate. The unit_amount of Unimeter's Stripe integration guide was removed in basil.
	t.Run("the integration guide's unit_amount is refused", func(t *testing.T) {
		form := url.Values{"customer": {"cus_123"}, "currency": {"usd"}, "unit_amount": {"10"}, "quantity": {"1"}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/invoiceitems", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer sk_test_123")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("unit_amount got %d, want 400: stripe-mock is not validating", resp.StatusCode)
		}
	})
}
