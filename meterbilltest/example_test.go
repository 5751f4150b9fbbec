package meterbilltest_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"time"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/meterbilltest"
)

// A test of your billing integration: usage in the embedded meter, Stripe played by the fake,
// and a signed invoice.created sent to your handler, as Stripe delivers it.
func Example() {
	ctx := context.Background()
	const secret = "whsec_test_0123456789abcdef"
	calls := meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
	plan, _ := meterbill.NewPlan(meterbill.Price{Metric: calls, Description: "API calls",
		Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.1"}}}}) // $0.001 a call

	// Usage: 3,100 calls in March for meter account 42.
	meter := meterbill.NewMemoryMeter()
	_ = meter.Define(ctx, calls)
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var events []meterbill.Event
	for i := range 3100 {
		events = append(events, meterbill.Event{Account: 42, Metric: calls.Code, Value: meterbill.Units(1), Time: march.Add(time.Duration(i) * time.Minute)})
	}
	for batch := range slices.Chunk(events, meterbill.MaxBatchEvents) {
		if _, err := meter.Ingest(ctx, batch); err != nil {
			panic(err)
		}
	}

	// Stripe: a customer subscribed since February, and the draft renewal for March with the
	// subscription's metadata, which maps the customer to meter account 42.
	stripe := meterbilltest.NewStripe()
	defer stripe.Close()
	stripe.AddCustomer("cus_1", nil)
	stripe.AddSubscription(meterbilltest.Subscription{ID: "sub_1", Customer: "cus_1", StartDate: march.AddDate(0, -1, 0).Unix(),
		Metadata: map[string]string{"meter_account": "42"}})
	inv := meterbilltest.Invoice{ID: "in_march", Customer: "cus_1", Currency: "usd", BillingReason: "subscription_cycle",
		PeriodStart: march.Unix(), PeriodEnd: march.AddDate(0, 1, 0).Unix(),
		Subscription: "sub_1", SubscriptionMetadata: map[string]string{"meter_account": "42"}}
	stripe.AddInvoice(inv)

	sc, _ := meterbill.NewStripeClient("sk_test_example", meterbill.WithStripeURL(stripe.URL))
	handler, _ := meterbill.NewHandler(meter, sc, meterbill.SubscriptionMetadataAccount("meter_account"), plan, []string{secret})

	w := httptest.NewRecorder()
	handler.ServeHTTP(w, meterbilltest.NewWebhookRequest("/webhook", meterbilltest.InvoiceCreated(inv), secret))
	fmt.Println(w.Code, w.Body.String())
	for _, it := range stripe.InvoiceItems("in_march") {
		fmt.Printf("%s: %d × %s ¢ = %d ¢\n", it.Description, it.Quantity, it.UnitAmountDecimal, it.Amount)
	}
	// Output:
	// 200 {"outcome":"billed","invoice":"in_march","lines_added":1,"lines_already_there":0}
	//
	// API calls: 3100: 3100 × 0.1 ¢ = 310 ¢
}
