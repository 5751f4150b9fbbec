package meterbill_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/internal/stripefake"
)

// TestStripeClientSettings: WithItemParams adds the fields meterbill does not own and cannot
// change the ones it does; a product moves the exact unit amount into price_data, for the same
// amount; NewStripeClientFrom uses the caller's client, and WithStripeAccount puts every request
// on the connected account.
func TestStripeClientSettings(t *testing.T) {
	from, to := date(2026, 3, 1), date(2026, 4, 1)
	hostile := func(p *stripe.InvoiceItemCreateParams) {
		p.TaxCode, p.TaxBehavior, p.Discountable = stripe.String("txcd_10000000"), stripe.String("exclusive"), stripe.Bool(false)
		p.TaxRates = []*string{stripe.String("txr_1"), stripe.String("txr_2")}
		// What meterbill owns, which the hook must not change:
		p.Amount, p.Customer, p.Currency, p.Invoice = stripe.Int64(1), stripe.String("cus_other"), stripe.String("eur"), stripe.String("in_other")
		p.Subscription = stripe.String("sub_other")
		p.Metadata = map[string]string{"team": "search", "meterbill_metric": "forged"}
	}
	product := func(p *stripe.InvoiceItemCreateParams) {
		p.PriceData = &stripe.InvoiceItemCreatePriceDataParams{Product: stripe.String("prod_api"), TaxBehavior: stripe.String("inclusive")}
	}
	type item struct {
		Amount, Quantity       int64
		UnitAmountDecimal      string
		Customer, Invoice, Cur string
		Metadata, Extra        map[string]string
		Account                string // the Stripe-Account of the create request
	}
	tests := []struct {
		name   string
		client func(url string) (*meterbill.StripeAPI, error)
		item   meterbill.InvoiceItem
		want   item
	}{
		{
			name: "item params cannot change what meterbill owns",
			client: func(url string) (*meterbill.StripeAPI, error) {
				return meterbill.NewStripeClient("sk_test_x", meterbill.WithStripeURL(url), meterbill.WithItemParams(hostile))
			},
			item: meterbill.InvoiceItem{Customer: "cus_a", Invoice: "in_a", Currency: "usd", Description: "API calls: 1234", Amount: 123,
				PeriodStart: from, PeriodEnd: to, Metadata: map[string]string{"meterbill_metric": "api_calls"}},
			want: item{Amount: 123, Quantity: 1, UnitAmountDecimal: "123", Customer: "cus_a", Invoice: "in_a", Cur: "usd",
				Metadata: map[string]string{"team": "search", "meterbill_metric": "api_calls"},
				Extra:    map[string]string{"tax_code": "txcd_10000000", "tax_behavior": "exclusive", "discountable": "false", "tax_rates": "txr_1,txr_2"}},
		},
		{
			name: "a product: the exact unit amount goes in price_data",
			client: func(url string) (*meterbill.StripeAPI, error) {
				return meterbill.NewStripeClient("sk_test_x", meterbill.WithStripeURL(url), meterbill.WithItemParams(product))
			},
			item: meterbill.InvoiceItem{Customer: "cus_a", Invoice: "in_a", Currency: "usd", Description: "API calls: 3100", Amount: 310,
				Quantity: 3100, UnitAmountDecimal: "0.1", PeriodStart: from, PeriodEnd: to},
			want: item{Amount: 310, Quantity: 3100, UnitAmountDecimal: "0.1", Customer: "cus_a", Invoice: "in_a", Cur: "usd",
				Extra: map[string]string{"price_data[product]": "prod_api", "price_data[tax_behavior]": "inclusive"}},
		},
		{
			name: "a product on an amount-only item: 1 × the amount",
			client: func(url string) (*meterbill.StripeAPI, error) {
				return meterbill.NewStripeClient("sk_test_x", meterbill.WithStripeURL(url), meterbill.WithItemParams(product))
			},
			item: meterbill.InvoiceItem{Customer: "cus_a", Currency: "usd", Description: "API calls: 1234", Amount: 123, PeriodStart: from, PeriodEnd: to},
			want: item{Amount: 123, Quantity: 1, UnitAmountDecimal: "123", Customer: "cus_a", Cur: "usd",
				Extra: map[string]string{"price_data[product]": "prod_api", "price_data[tax_behavior]": "inclusive"}},
		},
		{
			name: "own stripe-go client, on a connected account",
			client: func(url string) (*meterbill.StripeAPI, error) {
				sc := stripe.NewClient("sk_test_x", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
					URL: stripe.String(url), MaxNetworkRetries: stripe.Int64(0), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}})))
				return meterbill.NewStripeClientFrom(sc, meterbill.WithStripeAccount("acct_1"))
			},
			item: meterbill.InvoiceItem{Customer: "cus_a", Invoice: "in_a", Currency: "usd", Description: "API calls: 1234", Amount: 123, PeriodStart: from, PeriodEnd: to},
			want: item{Amount: 123, Quantity: 1, UnitAmountDecimal: "123", Customer: "cus_a", Invoice: "in_a", Cur: "usd", Account: "acct_1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := stripefake.New()
			defer fake.Close()
			fake.AddCustomer("cus_a", nil)
			fake.AddInvoice(stripefake.Invoice{ID: "in_a", Customer: "cus_a", Currency: "usd", PeriodStart: from.Unix(), PeriodEnd: to.Unix()})
			sc, err := tt.client(fake.URL)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sc.CreateInvoiceItem(context.Background(), tt.item, "key-1"); err != nil {
				t.Fatal(err)
			}
			items := fake.Items("cus_a")
			if len(items) != 1 {
				t.Fatalf("%d items on Stripe, want 1", len(items))
			}
			it, reqs := items[0], fake.Requests()
			got := item{Amount: it.Amount, Quantity: it.Quantity, UnitAmountDecimal: it.UnitAmountDecimal, Customer: it.Customer, Invoice: it.Invoice,
				Cur: it.Currency, Metadata: it.Metadata, Extra: it.Extra, Account: reqs[len(reqs)-1].StripeAccount}
			if len(got.Metadata) == 0 {
				got.Metadata = nil
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("item on Stripe (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("a nil client is refused", func(t *testing.T) {
		if _, err := meterbill.NewStripeClientFrom(nil); err == nil {
			t.Error("NewStripeClientFrom accepted a nil client")
		}
	})
}
