package meterbill_test

// The subscription's life after something went wrong: final invoices finalized too early,
// voided months and their late usage, pending items at the end, usage between two
// subscriptions, plan changes, re-billing. Each test was written, failing, by a review of the
// lifecycle; they pin the fixes.

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/internal/stripefake"
)

// marchCents adds up the amounts of the customer's items that bill March (pending or on any
// invoice).
func marchCents(b *bridge, customer string) (cents int64, n int) {
	for _, it := range b.stripe.Items(customer) {
		if strings.HasPrefix(it.Metadata["meterbill_from"], "2026-03") {
			cents += it.Amount
			n++
		}
	}
	return cents, n
}

// TestFinalInvoiceFinalizedBeforeItsLinesGetsASecond: the first delivery of
// customer.subscription.deleted creates the final invoice (auto_advance off, so Stripe never
// finalizes it empty) and then fails to create its lines (Stripe 5xx). The merchant finalizes
// the empty draft by hand; the redelivery puts what is owed on a second final invoice.
func TestFinalInvoiceFinalizedBeforeItsLinesGetsASecond(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 2, 1), date(2026, 3, 21), 10, "40")
	feb := b.invoice("in_feb", "cus_a", 42, "draft", date(2026, 2, 1), date(2026, 3, 1))
	if got := b.deliver(t, feb, "draft"); got != 200 {
		t.Fatalf("February: %d", got)
	}
	ended := at(2026, 3, 20, 15, 0)
	b.stripe.Advance(ended.Sub(date(2026, 3, 15)) + time.Minute) // the fake's clock: now is just after the end
	payload := subscriptionDeleted(t, "sub_cus_a", "cus_a", 42, date(2026, 3, 1), date(2026, 4, 1), ended)

	// First delivery: the invoice is made, every line's create fails.
	b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: 500, Times: 4})
	if got := b.post(t, payload); got != 500 {
		t.Fatalf("first delivery: %d, want 500 (%v)", got, b.lastReport().Err)
	}
	final, ok := b.stripe.Invoice("in_fake00000001")
	if !ok || final.Status != "draft" || final.AutoAdvance {
		t.Fatalf("final invoice after the failed delivery: %+v, %v; want a draft without auto_advance", final, ok)
	}
	// Someone finalizes the empty draft by hand.
	b.stripe.SetInvoiceStatus(final.ID, "open")
	b.stripe.Advance(2 * time.Hour)

	// Stripe's redelivery.
	if got := b.post(t, payload); got != 200 {
		t.Fatalf("redelivery: %d (%v)", got, b.lastReport().Err)
	}
	// March's requests (200 at 0.1¢: 20 cents) and 20 days of storage (800 GB-days: 100 free,
	// 700 at 2¢) are owed: 1420 cents.
	if cents, n := marchCents(b, "cus_a"); cents != 1420 {
		t.Errorf("March billed %d cents on %d items (outcome %q), want 1420: the last period is never billed", cents, n, b.lastReport().Outcome)
	}
	if second, ok := b.stripe.Invoice("in_fake00000002"); !ok || second.Status != "open" || len(b.stripe.InvoiceItems(second.ID)) != 3 {
		t.Errorf("second final invoice %+v: want it finalized with March's 3 lines", second)
	}
}

// TestLateUsageOfAVoidedInvoiceIsWaivedToo: March's renewal was billed, then the merchant voided
// it: March's usage is waived. Events for March that arrive late must not bring March back as a
// late-usage adjustment on April's renewal.
func TestLateUsageOfAVoidedInvoiceIsWaivedToo(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 10, "40")
	mar := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	if got := b.deliver(t, mar, "draft"); got != 200 {
		t.Fatalf("March: %d", got)
	}
	b.stripe.SetInvoiceStatus("in_mar", "void") // finalized, then voided: March is waived
	var late []meterbill.Event
	for i := range 500 {
		late = append(late, meterbill.Event{Account: 42, Metric: requests.Code, Value: meterbill.Units(1), Time: at(2026, 3, 5, 10, 0).Add(time.Duration(i) * time.Second)})
	}
	ingestAll(t, b.meter, late)
	apr := b.invoice("in_apr", "cus_a", 42, "draft", date(2026, 4, 1), date(2026, 5, 1))
	if got := b.deliver(t, apr, "draft"); got != 200 {
		t.Fatalf("April: %d", got)
	}
	for _, it := range b.stripe.InvoiceItems("in_apr") {
		if strings.HasPrefix(it.Metadata["meterbill_from"], "2026-03") {
			t.Errorf("April's invoice bills waived March: %q, %d cents", it.Description, it.Amount)
		}
	}
}

// TestPendingItemsGoOnTheFinalInvoice: March's renewal arrived finalized, so its usage became
// pending items for "the customer's next invoice". The subscription is then cancelled at once on
// April 1 with no usage in April: nothing new is owed, but the pending items must not wait for an
// invoice that never comes, so meterbill makes the final invoice for them.
func TestPendingItemsGoOnTheFinalInvoice(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 2, 1), date(2026, 3, 21), 10, "40")
	feb := b.invoice("in_feb", "cus_a", 42, "draft", date(2026, 2, 1), date(2026, 3, 1))
	if got := b.deliver(t, feb, "draft"); got != 200 {
		t.Fatalf("February: %d", got)
	}
	mar := b.invoice("in_mar", "cus_a", 42, "open", date(2026, 3, 1), date(2026, 4, 1))
	if got := b.deliver(t, mar, "open"); got != 200 || b.lastReport().Outcome != meterbill.OutcomePending {
		t.Fatalf("March: %d %q, want 200 pending", got, b.lastReport().Outcome)
	}
	ended := at(2026, 4, 1, 1, 0)
	b.stripe.Advance(ended.Sub(date(2026, 3, 15)))
	if got := b.post(t, subscriptionDeleted(t, "sub_cus_a", "cus_a", 42, date(2026, 4, 1), date(2026, 5, 1), ended)); got != 200 {
		t.Fatalf("deleted: %d (%v)", got, b.lastReport().Err)
	}
	for _, it := range b.stripe.Items("cus_a") {
		if it.Invoice == "" {
			t.Errorf("item %q (%d cents) still pending after the subscription ended (outcome %q): never invoiced", it.Description, it.Amount, b.lastReport().Outcome)
		}
	}
}

// TestUsageBetweenSubscriptionsIsNotBilled: a customer cancels on March 20 (the final invoice
// bills March with the usage so far), keeps using the free tier, and subscribes again on April
// 10. No usage from between the two subscriptions may be billed, not even as late usage of the
// first one's last run.
func TestUsageBetweenSubscriptionsIsNotBilled(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 2, 1), date(2026, 3, 21), 10, "40")
	feb := b.invoice("in_feb", "cus_a", 42, "draft", date(2026, 2, 1), date(2026, 3, 1))
	if got := b.deliver(t, feb, "draft"); got != 200 {
		t.Fatalf("February: %d", got)
	}
	if got := b.post(t, subscriptionDeleted(t, "sub_cus_a", "cus_a", 42, date(2026, 3, 1), date(2026, 4, 1), at(2026, 3, 20, 15, 0))); got != 200 {
		t.Fatalf("deleted: %d (%v)", got, b.lastReport().Err)
	}
	// Free tier, no subscription, from March 21 to April 9; then a new subscription.
	b.record(t, 42, date(2026, 3, 21), date(2026, 5, 10), 10, "40")
	b.stripe.AddSubscription(stripefake.Subscription{ID: "sub_again", Customer: "cus_a", StartDate: date(2026, 4, 10).Unix()})
	renewal := stripefake.Invoice{ID: "in_again_may", Customer: "cus_a", Currency: "usd", Status: "draft", BillingReason: "subscription_cycle",
		PeriodStart: date(2026, 4, 10).Unix(), PeriodEnd: date(2026, 5, 10).Unix(), Subscription: "sub_again",
		SubscriptionMetadata: map[string]string{"meter_account": "42"}}
	b.stripe.AddInvoice(renewal)
	// BillInvoice reads the invoice (and its subscription) from Stripe, as the webhook does.
	if _, err := b.handler.BillInvoice(context.Background(), renewal.ID); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	for _, it := range b.stripe.InvoiceItems("in_again_may") {
		if it.Metadata["meterbill_from"] < "2026-04-10" {
			t.Errorf("the new subscription's renewal bills usage from before it began: %q, %d cents (%s to %s)", it.Description, it.Amount,
				it.Metadata["meterbill_from"][:10], it.Metadata["meterbill_to"][:10])
		}
	}
}

// TestPlanChangeNeverDropsAMetric: a customer on "pro" (requests and storage) moves to "basic"
// (requests only) on March 25. The renewal for March is chosen "basic" by the subscription's
// metadata; the storage used under pro from March 1 to 25 is still billed, priced by pro, the
// plan that billed storage last.
func TestPlanChangeNeverDropsAMetric(t *testing.T) {
	basic, err := meterbill.NewPlan(billPlan[0])
	if err != nil {
		t.Fatal(err)
	}
	pro, err := meterbill.NewPlan(billPlan...)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := meterbill.PlansByMetadata("plan", map[string]*meterbill.Plan{"basic": basic, "pro": pro}, "")
	if err != nil {
		t.Fatal(err)
	}
	b := newBridge(t, billPlan) // defines both metrics in the meter
	h, err := meterbill.NewHandler(b.meter, b.stripeClient(t), meterbill.SubscriptionMetadataAccount("meter_account"), plans, []string{secret},
		meterbill.WithRetryBackoff(time.Millisecond, 5*time.Millisecond),
		meterbill.WithReportHook(func(r *meterbill.Report) { b.mu.Lock(); b.reports = append(b.reports, r); b.mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	b.handler = h
	b.record(t, 42, date(2026, 2, 1), date(2026, 5, 1), 10, "40")
	b.invoice("in_feb", "cus_a", 42, "draft", date(2026, 2, 1), date(2026, 3, 1))
	b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	b.invoice("in_apr", "cus_a", 42, "draft", date(2026, 4, 1), date(2026, 5, 1))
	for _, in := range []struct {
		id         string
		start, end time.Time
		plan       string
	}{
		{"in_feb", date(2026, 2, 1), date(2026, 3, 1), "pro"},
		{"in_mar", date(2026, 3, 1), date(2026, 4, 1), "basic"}, // moved to basic on March 25
		{"in_apr", date(2026, 4, 1), date(2026, 5, 1), "basic"},
	} {
		payload := invoiceEvent(t, "2025-08-27.basil", in.id, "cus_a", "draft", in.start, in.end, map[string]string{"meter_account": "42", "plan": in.plan})
		if got := b.post(t, payload); got != 200 {
			t.Fatalf("%s: %d (%v)", in.id, got, b.lastReport().Err)
		}
	}
	storage := 0
	for _, it := range b.stripe.Items("cus_a") {
		if it.Metadata["meterbill_metric"] == gbDays.Code && strings.HasPrefix(it.Metadata["meterbill_from"], "2026-03") {
			storage++
		}
	}
	if storage == 0 {
		t.Errorf("storage used under pro in March (March 1-25) is never billed")
	}
}

// TestRebillOfAnInvoiceBilledAsPendingItemsBillsOnce: March's renewal arrived finalized, so
// meterbill billed March as pending items, recording in_mar as their invoice. The merchant voids
// in_mar and re-bills it: the pending items are not on the voided invoice and will be charged on
// the next one, so the re-bill adds nothing.
func TestRebillOfAnInvoiceBilledAsPendingItemsBillsOnce(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 10, "40")
	mar := b.invoice("in_mar", "cus_a", 42, "open", date(2026, 3, 1), date(2026, 4, 1))
	if got := b.deliver(t, mar, "open"); got != 200 || b.lastReport().Outcome != meterbill.OutcomePending {
		t.Fatalf("March: %d %q, want 200 pending", got, b.lastReport().Outcome)
	}
	once, _ := marchCents(b, "cus_a") // 31 + 0 + 1800 + 240
	b.stripe.SetInvoiceStatus("in_mar", "void")
	b.stripe.AddInvoice(stripefake.Invoice{ID: "in_mar_r", Customer: "cus_a", Currency: "usd", Status: "draft", BillingReason: "manual",
		PeriodStart: date(2026, 4, 2).Unix(), PeriodEnd: date(2026, 4, 2).Unix(), Subscription: "sub_cus_a",
		SubscriptionMetadata: map[string]string{"meter_account": "42"}})
	if _, err := b.handler.BillInvoice(context.Background(), "in_mar_r", meterbill.Rebill("in_mar")); err != nil {
		t.Fatalf("Rebill: %v", err)
	}
	if cents, n := marchCents(b, "cus_a"); cents != once {
		pending := 0
		for _, it := range b.stripe.Items("cus_a") {
			if it.Invoice == "" {
				pending++
			}
		}
		t.Errorf("March billed %d cents on %d items (%d still pending for the next invoice), want %d once", cents, n, pending, once)
	}
}

// TestRebillWithinADayBillsTheWholeRun: March was billed on its draft, then the merchant voided
// it and re-billed it on a replacement the same day, while the voided lines' idempotency keys
// are alive. The re-billed lines have keys of their own, and the voided items do not count, so
// the replacement bills all of March.
func TestRebillWithinADayBillsTheWholeRun(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 10, "40")
	mar := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	if got := b.deliver(t, mar, "draft"); got != 200 {
		t.Fatalf("March: %d", got)
	}
	var once int64
	for _, it := range b.stripe.InvoiceItems("in_mar") {
		once += it.Amount
	}
	b.stripe.SetInvoiceStatus("in_mar", "void")
	b.stripe.AddInvoice(stripefake.Invoice{ID: "in_mar_r", Customer: "cus_a", Currency: "usd", Status: "draft", BillingReason: "manual",
		PeriodStart: date(2026, 4, 2).Unix(), PeriodEnd: date(2026, 4, 2).Unix(), Subscription: "sub_cus_a",
		SubscriptionMetadata: map[string]string{"meter_account": "42"}})
	rep, err := b.handler.BillInvoice(context.Background(), "in_mar_r", meterbill.Rebill("in_mar"))
	if err != nil {
		t.Fatalf("Rebill: %v", err)
	}
	var got int64
	var descs []string
	for _, it := range b.stripe.InvoiceItems("in_mar_r") {
		got += it.Amount
		descs = append(descs, it.Description)
	}
	if got != once {
		t.Errorf("the replacement bills %d cents (%q, outcome %q), want %d: the voided invoice's March, whole", got, descs, rep.Outcome, once)
	}
}
