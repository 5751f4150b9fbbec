package meterbill_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/internal/stripefake"
)

// bridge is the whole invoice pipeline wired as in production, with the fake Stripe behind the
// real stripe-go adapter and the handler behind a real HTTP server.
type bridge struct {
	stripe  *stripefake.Server
	meter   *meterbill.MemoryMeter
	handler *meterbill.Handler
	server  *httptest.Server
	mu      sync.Mutex
	reports []*meterbill.Report
}

var (
	// A graduated daily-active metric and a per-unit call metric, both on cycle day 1.
	requests = meterbill.Metric{Code: "requests", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
	gbDays   = meterbill.Metric{Code: "gb_days", Aggregation: meterbill.Sum, Period: meterbill.Day}
	billPlan = []meterbill.Price{
		{Metric: requests, Description: "Requests", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.1"}}}},
		{Metric: gbDays, Description: "Storage", Model: meterbill.Graduated, Currencies: map[string][]meterbill.Tier{
			"usd": {{UpTo: "100", Unit: "0"}, {UpTo: "1000", Unit: "2"}, {Unit: "1"}},
		}},
	}
)

func newBridge(t testing.TB, prices []meterbill.Price, opts ...meterbill.HandlerOption) *bridge {
	t.Helper()
	b := &bridge{stripe: stripefake.New(), meter: meterbill.NewMemoryMeter()}
	t.Cleanup(b.stripe.Close)
	plan, err := meterbill.NewPlan(prices...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.meter.Define(context.Background(), plan.Metrics()...); err != nil {
		t.Fatal(err)
	}
	sc, err := meterbill.NewStripeClient("sk_test_fake", meterbill.WithStripeURL(b.stripe.URL), meterbill.WithStripeRateLimit(-1))
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]meterbill.HandlerOption{
		meterbill.WithRetryBackoff(time.Millisecond, 5*time.Millisecond),
		meterbill.WithReportHook(func(r *meterbill.Report) { b.mu.Lock(); b.reports = append(b.reports, r); b.mu.Unlock() }),
	}, opts...)
	b.handler, err = meterbill.NewHandler(b.meter, sc, meterbill.SubscriptionMetadataAccount("meter_account"), plan, []string{secret}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	b.server = httptest.NewServer(b.handler)
	t.Cleanup(b.server.Close)
	return b
}

// invoice sets up an invoice of customer's subscription, whose metadata maps it to account. The
// subscription ("sub_" + customer) starts at the period start of the customer's first invoice
// set up, unless the test added it before. The fake's clock moves to the period's start if it is
// earlier, so that items are dated as Stripe would date them (the ledger read filters on it).
func (b *bridge) invoice(id, customer string, account uint64, status string, start, end time.Time) stripefake.Invoice {
	b.stripe.AddCustomer(customer, nil)
	if !b.stripe.HasSubscription("sub_" + customer) {
		b.stripe.AddSubscription(stripefake.Subscription{ID: "sub_" + customer, Customer: customer, StartDate: start.Unix()})
	}
	b.stripe.AdvanceTo(start) // Stripe's clock is past the invoices it has made: items are dated after the periods they bill
	inv := stripefake.Invoice{ID: id, Customer: customer, Currency: "usd", Status: status, BillingReason: "subscription_cycle",
		PeriodStart: start.Unix(), PeriodEnd: end.Unix(), Subscription: "sub_" + customer,
		SubscriptionMetadata: map[string]string{"meter_account": fmt.Sprint(account)}}
	b.stripe.AddInvoice(inv)
	return inv
}

// deliver posts a freshly signed invoice.created for inv, as Stripe does on each attempt.
func (b *bridge) deliver(t testing.TB, inv stripefake.Invoice, eventStatus string) int {
	t.Helper()
	return postTo(t, b.server.URL, inv, eventStatus)
}

// record ingests n requests and a storage reading for every day of [from, to) for account.
func (b *bridge) record(t testing.TB, account uint64, from, to time.Time, perDay int, gb string) {
	t.Helper()
	var events []meterbill.Event
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		for i := range perDay {
			events = append(events, meterbill.Event{Account: account, Metric: requests.Code, Value: meterbill.Units(1), Time: d.Add(time.Duration(i) * time.Second)})
		}
		if gb != "" {
			events = append(events, meterbill.Event{Account: account, Metric: gbDays.Code, Value: mustValue(t, gb), Time: d.Add(12 * time.Hour)})
		}
	}
	ingestAll(t, b.meter, events)
}

// itemView is the comparable projection of a Stripe item.
type itemView struct {
	Invoice, Desc string
	Amount        int64
	From, To      string
	Tier          string
}

func view(items []stripefake.Item) []itemView {
	var out []itemView
	for _, it := range items {
		out = append(out, itemView{Invoice: it.Invoice, Desc: it.Description, Amount: it.Amount,
			From: it.Metadata["meterbill_from"][:10], To: it.Metadata["meterbill_to"][:10], Tier: it.Metadata["meterbill_tier"]})
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

// marchLines is what account 42's March invoice gets: 100 requests a day for 31 days at
// $0.001, and 31 daily readings of 40 GB (1240 GB-days): 100 free, 900 at 2¢, 240 at 1¢.
func marchLines(invoice string) []itemView {
	return []itemView{
		{Invoice: invoice, Desc: "Requests: 3100", Amount: 310, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
		{Invoice: invoice, Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-03-01", To: "2026-04-01", Tier: "1"},
		{Invoice: invoice, Desc: "Storage (tier 2): 900", Amount: 1800, From: "2026-03-01", To: "2026-04-01", Tier: "2"},
		{Invoice: invoice, Desc: "Storage (tier 3): 240", Amount: 240, From: "2026-03-01", To: "2026-04-01", Tier: "3"},
	}
}

func TestBillingExactlyOnce(t *testing.T) {
	tests := []struct {
		name string
		// run drives the scenario; it returns the items to compare and may assert more.
		run        func(t *testing.T, b *bridge) []stripefake.Item
		wantItems  []itemView
		wantStatus int
	}{
		{
			name: "one delivery: one line per metric and tier, a day metric as one line",
			run: func(t *testing.T, b *bridge) []stripefake.Item {
				inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
				if got := b.deliver(t, inv, "draft"); got != 200 {
					t.Fatalf("status %d", got)
				}
				return b.stripe.Items("cus_a")
			},
			wantItems: marchLines("in_mar"),
		},
		{
			name: "the same delivery 20 times concurrently",
			run: func(t *testing.T, b *bridge) []stripefake.Item {
				inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
				// Hold the first creates in flight so the duplicates overlap them (409s and replays).
				b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Delay: 50 * time.Millisecond, Times: 4})
				var wg sync.WaitGroup
				statuses := make([]int, 20)
				for i := range statuses {
					wg.Go(func() { statuses[i] = b.deliver(t, inv, "draft") })
				}
				wg.Wait()
				for i, s := range statuses {
					if s != 200 {
						t.Errorf("delivery %d answered %d", i, s)
					}
				}
				return b.stripe.Items("cus_a")
			},
			wantItems: marchLines("in_mar"),
		},
		{
			name: "bursts of 429 and 500: lines created once after retries",
			run: func(t *testing.T, b *bridge) []stripefake.Item {
				inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
				b.stripe.Inject(stripefake.Fault{Method: http.MethodGet, Path: "/v1/invoiceitems", Status: 429, Times: 3})
				b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: 429, Times: 3})
				b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: 500, Times: 2})
				if got := b.deliver(t, inv, "draft"); got != 200 {
					t.Fatalf("status %d", got)
				}
				return b.stripe.Items("cus_a")
			},
			wantItems: marchLines("in_mar"),
		},
		{
			name: "a 500 Stripe replays under the key after creating the item: no duplicate",
			run: func(t *testing.T, b *bridge) []stripefake.Item {
				inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
				b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: 500, AfterApply: true})
				if got := b.deliver(t, inv, "draft"); got != 200 {
					t.Fatalf("status %d", got)
				}
				// And a redelivery, whose first create would meet the same replayed 500.
				if got := b.deliver(t, inv, "draft"); got != 200 {
					t.Fatalf("redelivery status %d", got)
				}
				return b.stripe.Items("cus_a")
			},
			wantItems: marchLines("in_mar"),
		},
		{
			name: "a redelivery three days later, keys expired: no duplicate",
			run: func(t *testing.T, b *bridge) []stripefake.Item {
				inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
				b.deliver(t, inv, "draft")
				b.stripe.Advance(72 * time.Hour)
				b.record(t, 42, date(2026, 3, 31), date(2026, 4, 1), 5, "") // late usage must not re-bill
				if got := b.deliver(t, inv, "draft"); got != 200 {
					t.Fatalf("status %d", got)
				}
				if r := b.lastReport(); r.Outcome != meterbill.OutcomeAlreadyBilled {
					t.Errorf("redelivery outcome %q, want already_billed", r.Outcome)
				}
				return b.stripe.Items("cus_a")
			},
			wantItems: marchLines("in_mar"),
		},
		{
			name: "a delivery cut short between two tiers is completed by the redelivery",
			run: func(t *testing.T, b *bridge) []stripefake.Item {
				inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
				// Stripe refuses storage's second tier; the invoice is still a draft. The other
				// three lines are still created: one refused line blocks nothing else.
				b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: 402,
					Form: map[string]string{"metadata[meterbill_metric]": gbDays.Code, "metadata[meterbill_tier]": "2"}})
				if got := b.deliver(t, inv, "draft"); got != 500 {
					t.Fatalf("cut-short delivery answered %d, want 500 so Stripe redelivers", got)
				}
				if n := len(b.stripe.Items("cus_a")); n != 3 {
					t.Fatalf("%d items after the cut, want 3", n)
				}
				b.record(t, 42, date(2026, 3, 10), date(2026, 3, 11), 0, "500") // usage grew meanwhile
				if got := b.deliver(t, inv, "draft"); got != 200 {
					t.Fatalf("redelivery status %d", got)
				}
				return b.stripe.Items("cus_a")
			},
			// The tiers complete at the quantity first priced, so they add up.
			wantItems: marchLines("in_mar"),
		},
		{
			name: "invoice finalized before the lines are added: pending items for the next invoice",
			run: func(t *testing.T, b *bridge) []stripefake.Item {
				inv := b.invoice("in_mar", "cus_a", 42, "open", date(2026, 3, 1), date(2026, 4, 1))
				if got := b.deliver(t, inv, "draft"); got != 200 { // the event still says draft
					t.Fatalf("status %d", got)
				}
				if r := b.lastReport(); r.Outcome != meterbill.OutcomePending {
					t.Errorf("outcome %q, want pending", r.Outcome)
				}
				// The next renewal must not bill March again.
				next := b.invoice("in_apr", "cus_a", 42, "draft", date(2026, 4, 1), date(2026, 5, 1))
				b.deliver(t, next, "draft")
				return b.stripe.Items("cus_a")
			},
			wantItems: append(marchLines(""), []itemView{
				{Invoice: "in_apr", Desc: "Requests: 3000", Amount: 300, From: "2026-04-01", To: "2026-05-01", Tier: "0"},
				{Invoice: "in_apr", Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-04-01", To: "2026-05-01", Tier: "1"},
				{Invoice: "in_apr", Desc: "Storage (tier 2): 900", Amount: 1800, From: "2026-04-01", To: "2026-05-01", Tier: "2"},
				{Invoice: "in_apr", Desc: "Storage (tier 3): 200", Amount: 200, From: "2026-04-01", To: "2026-05-01", Tier: "3"},
			}...),
		},
		{
			name: "a manual invoice between two renewals: no bucket twice, none skipped",
			run: func(t *testing.T, b *bridge) []stripefake.Item {
				// A manual invoice on March 20 whose window (Mar 1, Mar 20] holds 19 day buckets.
				manual := b.invoice("in_manual", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 3, 20))
				manual.BillingReason = "manual"
				b.deliver(t, manual, "draft")
				renewal := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
				b.deliver(t, renewal, "draft")
				return b.stripe.Items("cus_a")
			},
			wantItems: []itemView{
				// The manual invoice bills the 19 complete days it holds (760 GB-days); the month's
				// requests bucket has not ended yet.
				{Invoice: "in_manual", Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-03-01", To: "2026-03-20", Tier: "1"},
				{Invoice: "in_manual", Desc: "Storage (tier 2): 660", Amount: 1320, From: "2026-03-01", To: "2026-03-20", Tier: "2"},
				// The renewal bills the month's requests and the 12 days left (480 GB-days) on top
				// of the 760 billed: the month's 1240 priced once (2040 cents) less the 1320 billed.
				// Its storage run covers the whole month from now on.
				{Invoice: "in_mar", Desc: "Requests: 3100", Amount: 310, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
				{Invoice: "in_mar", Desc: "Storage (tier 2): 240", Amount: 480, From: "2026-03-01", To: "2026-04-01", Tier: "2"},
				{Invoice: "in_mar", Desc: "Storage (tier 3): 240", Amount: 240, From: "2026-03-01", To: "2026-04-01", Tier: "3"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBridge(t, billPlan)
			b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 100, "40")
			items := tt.run(t, b)
			want := append([]itemView(nil), tt.wantItems...)
			sort.Slice(want, func(i, j int) bool { return fmt.Sprint(want[i]) < fmt.Sprint(want[j]) })
			if diff := cmp.Diff(want, view(items)); diff != "" {
				t.Errorf("Stripe items mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func (b *bridge) lastReport() *meterbill.Report {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.reports) == 0 {
		return &meterbill.Report{}
	}
	return b.reports[len(b.reports)-1]
}

// TestAnchorDayDiffersFromCycleDay: a subscription renewing on the 15th, a metric on cycle day
// 1: the invoice for Feb 15 to Mar 15 bills February, the next bills March.
func TestAnchorDayDiffersFromCycleDay(t *testing.T) {
	b := newBridge(t, billPlan[:1])
	b.stripe.AddSubscription(stripefake.Subscription{ID: "sub_cus_b", Customer: "cus_b", StartDate: date(2026, 1, 15).Unix()})
	b.record(t, 7, date(2026, 1, 20), date(2026, 4, 20), 10, "")
	feb := b.invoice("in_feb15", "cus_b", 7, "draft", date(2026, 2, 15), date(2026, 3, 15))
	mar := b.invoice("in_mar15", "cus_b", 7, "draft", date(2026, 3, 15), date(2026, 4, 15))
	b.deliver(t, feb, "draft")
	b.deliver(t, mar, "draft")
	want := []itemView{
		{Invoice: "in_feb15", Desc: "Requests: 280", Amount: 28, From: "2026-02-01", To: "2026-03-01", Tier: "0"},
		{Invoice: "in_mar15", Desc: "Requests: 310", Amount: 31, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
	}
	if diff := cmp.Diff(want, view(b.stripe.Items("cus_b"))); diff != "" {
		t.Errorf("items mismatch (-want +got):\n%s", diff)
	}
}

func TestBillingFailuresAnswer500AndWriteNothing(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(b *bridge) stripefake.Invoice
		wantStatus int // defaults to 500
	}{
		{name: "currency without a price", setup: func(b *bridge) stripefake.Invoice {
			inv := b.invoice("in_eur", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
			inv.Currency = "eur"
			b.stripe.AddInvoice(inv)
			return inv
		}},
		{name: "stripe times out past the deadline", setup: func(b *bridge) stripefake.Invoice {
			b.stripe.Inject(stripefake.Fault{Method: http.MethodGet, Path: "/v1/invoiceitems", Delay: 5 * time.Second, Times: 100})
			return b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
		}},
		{name: "invalid account in the subscription metadata", setup: func(b *bridge) stripefake.Invoice {
			inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
			inv.SubscriptionMetadata = map[string]string{"meter_account": "acme"}
			b.stripe.AddInvoice(inv)
			return inv
		}, wantStatus: 400}, // unbillable data, not a server failure (see hostile_test.go)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBridge(t, billPlan, meterbill.WithDeadline(300*time.Millisecond))
			b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 10, "1")
			inv := tt.setup(b)
			// The event carries what the fake holds, currency included.
			payload := invoiceEvent(t, "2025-08-27.basil", inv.ID, inv.Customer, "draft", time.Unix(inv.PeriodStart, 0), time.Unix(inv.PeriodEnd, 0), inv.SubscriptionMetadata)
			payload = bytes.Replace(payload, []byte(`"currency":"usd"`), []byte(`"currency":"`+inv.Currency+`"`), 1)
			sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret})
			req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(payload))
			req.Header.Set("Stripe-Signature", sp.Header)
			w := httptest.NewRecorder()
			b.handler.ServeHTTP(w, req)
			want := tt.wantStatus
			if want == 0 {
				want = 500
			}
			if w.Code != want {
				t.Errorf("status %d, want %d", w.Code, want)
			}
			if n := b.stripe.CountRequests(http.MethodPost, "/v1/invoiceitems"); n != 0 {
				t.Errorf("%d invoice items written, want none", n)
			}
			if r := b.lastReport(); r.Outcome != meterbill.OutcomeFailed || r.Err == nil {
				t.Errorf("report %+v, want failed with an error", r)
			}
		})
	}
}

func TestBillInvoiceDirect(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 100, "40")
	b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	rep, err := b.handler.BillInvoice(context.Background(), "in_mar")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != meterbill.OutcomeBilled || len(rep.Created) != 4 || rep.Account != 42 {
		t.Errorf("report %+v", rep)
	}
	again, err := b.handler.BillInvoice(context.Background(), "in_mar")
	if err != nil || again.Outcome != meterbill.OutcomeAlreadyBilled || len(again.Created) != 0 {
		t.Errorf("second call: %+v, %v", again, err)
	}
	if diff := cmp.Diff(marchLines("in_mar"), view(b.stripe.Items("cus_a"))); diff != "" {
		t.Errorf("items mismatch (-want +got):\n%s", diff)
	}
	if _, err := b.handler.BillInvoice(context.Background(), "in_missing"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown invoice: %v, want a 404 error", err)
	}
}

// TestChangedPlanNeverTopsUpAnotherInvoicesRun: a run billed in full on one invoice is never
// given more lines by a later invoice, even when a new plan would price it into more tiers.
func TestChangedPlanNeverTopsUpAnotherInvoicesRun(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 100, "40")
	manual := b.invoice("in_manual", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 3, 20))
	b.deliver(t, manual, "draft") // 760 GB-days: tiers 1 and 2 of the old plan

	// The plan changes: a third tier now starts at 500, so 760 would reach it.
	newPlan := []meterbill.Price{billPlan[0], {Metric: gbDays, Description: "Storage", Model: meterbill.Graduated, Currencies: map[string][]meterbill.Tier{
		"usd": {{UpTo: "100", Unit: "0"}, {UpTo: "500", Unit: "2"}, {Unit: "1"}},
	}}}
	plan, err := meterbill.NewPlan(newPlan...)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := meterbill.NewStripeClient("sk_test_fake", meterbill.WithStripeURL(b.stripe.URL), meterbill.WithStripeRateLimit(-1))
	if err != nil {
		t.Fatal(err)
	}
	h, err := meterbill.NewHandler(b.meter, sc, meterbill.SubscriptionMetadataAccount("meter_account"), plan, []string{secret}, meterbill.WithRetryBackoff(time.Millisecond, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	if _, err := h.BillInvoice(context.Background(), "in_mar"); err != nil {
		t.Fatal(err)
	}
	want := []itemView{
		{Invoice: "in_manual", Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-03-01", To: "2026-03-20", Tier: "1"},
		{Invoice: "in_manual", Desc: "Storage (tier 2): 660", Amount: 1320, From: "2026-03-01", To: "2026-03-20", Tier: "2"},
		// The month is priced once, at today's prices, less what was billed: its 1240 cost 1540
		// under the new plan, and the manual invoice billed 1320, so the rest costs 220, on one
		// line (the new tiers do not line up with what was billed). The manual invoice's lines
		// stay as billed.
		{Invoice: "in_mar", Desc: "Requests: 3100", Amount: 310, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
		{Invoice: "in_mar", Desc: "Storage: 480", Amount: 220, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
	}
	sort.Slice(want, func(i, j int) bool { return fmt.Sprint(want[i]) < fmt.Sprint(want[j]) })
	if diff := cmp.Diff(want, view(b.stripe.Items("cus_a"))); diff != "" {
		t.Errorf("items mismatch (-want +got):\n%s", diff)
	}
}

// replica is a second handler over the same meter and Stripe: another instance of the app,
// sharing nothing with the first but Stripe.
func (b *bridge) replica(t testing.TB, prices []meterbill.Price, opts ...meterbill.HandlerOption) *meterbill.Handler {
	t.Helper()
	plan, err := meterbill.NewPlan(prices...)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := meterbill.NewStripeClient("sk_test_fake", meterbill.WithStripeURL(b.stripe.URL), meterbill.WithStripeRateLimit(-1))
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]meterbill.HandlerOption{meterbill.WithRetryBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)
	h, err := meterbill.NewHandler(b.meter, sc, meterbill.SubscriptionMetadataAccount("meter_account"), plan, []string{secret}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestTwoInvoicesOfOneCustomerAtOnce: two subscriptions of one customer renew together, and
// two replicas bill their invoices at the same moment. The month's usage is billed once.
func TestTwoInvoicesOfOneCustomerAtOnce(t *testing.T) {
	for run := range 5 {
		t.Run(fmt.Sprint("run ", run), func(t *testing.T) {
			b := newBridge(t, billPlan)
			b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 100, "40")
			b.invoice("in_sub1", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
			b.invoice("in_sub2", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
			other := b.replica(t, billPlan)
			b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Delay: 20 * time.Millisecond, Times: 2})
			var wg sync.WaitGroup
			wg.Go(func() { _, _ = b.handler.BillInvoice(context.Background(), "in_sub1") })
			wg.Go(func() { _, _ = other.BillInvoice(context.Background(), "in_sub2") })
			wg.Wait()
			// Each line of the month exists once for the customer, on one of the two invoices.
			got := view(b.stripe.Items("cus_a"))
			for i := range got {
				if got[i].Invoice != "in_sub1" && got[i].Invoice != "in_sub2" {
					t.Errorf("item on invoice %q", got[i].Invoice)
				}
				got[i].Invoice = ""
			}
			sort.Slice(got, func(i, j int) bool { return fmt.Sprint(got[i]) < fmt.Sprint(got[j]) })
			if diff := cmp.Diff(marchLines(""), got); diff != "" {
				t.Errorf("items mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStoredServerErrorMovesToAFreshKey: Stripe stored a 500 under a line's key without creating
// the item. Retrying that key would replay the 500 for a day; the handler re-reads the ledger
// and creates the line under a derived key.
func TestStoredServerErrorMovesToAFreshKey(t *testing.T) {
	tests := []struct {
		name  string
		fault stripefake.Fault
	}{
		{name: "stored 500", fault: stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: 500, Stored: true}},
		{name: "stored 429 lock_timeout", fault: stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: 429, Code: "lock_timeout", Stored: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBridge(t, billPlan)
			b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 100, "40")
			inv := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
			b.stripe.Inject(tt.fault)
			if got := b.deliver(t, inv, "draft"); got != 200 {
				t.Fatalf("status %d", got)
			}
			if diff := cmp.Diff(marchLines("in_mar"), view(b.stripe.Items("cus_a"))); diff != "" {
				t.Errorf("items mismatch (-want +got):\n%s", diff)
			}
			derived := 0
			for _, it := range b.stripe.Items("cus_a") {
				if strings.HasSuffix(it.IdempotencyKey, "-r2") {
					derived++
				}
			}
			if derived != 1 {
				t.Errorf("%d items under a derived key, want 1", derived)
			}
		})
	}
}

// TestConcurrentDeliveriesWithChangingUsage: a second replica delivers while the first is still
// creating lines, and usage grew in between. Stripe refuses the second's parameters under the
// shared keys; it then finds the first's lines and completes them at the first's quantity.
func TestConcurrentDeliveriesWithChangingUsage(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 100, "40")
	b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	other := b.replica(t, billPlan)
	// The first replica's first line is held in flight for a while.
	b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Delay: 100 * time.Millisecond})
	first := make(chan *meterbill.Report, 1)
	go func() { r, _ := b.handler.BillInvoice(context.Background(), "in_mar"); first <- r }()
	time.Sleep(30 * time.Millisecond)
	b.record(t, 42, date(2026, 3, 5), date(2026, 3, 6), 50, "20") // late usage arrives
	second, err := other.BillInvoice(context.Background(), "in_mar")
	if err != nil {
		t.Fatal(err)
	}
	if r := <-first; r.Err != nil {
		t.Fatal(r.Err)
	}
	if second.Outcome == meterbill.OutcomeFailed {
		t.Errorf("second replica: %+v", second)
	}
	// Whichever replica created a run's first line set its quantity (with or without the late
	// usage); every line of the run is priced at it, once, so the tiers add up.
	byRun := map[string][]stripefake.Item{}
	for _, it := range b.stripe.Items("cus_a") {
		byRun[it.Metadata["meterbill_metric"]] = append(byRun[it.Metadata["meterbill_metric"]], it)
	}
	wantQty := map[string][]string{"requests": {"3100", "3150"}, "gb_days": {"1240", "1260"}}
	wantLines := map[string]int{"requests": 1, "gb_days": 3}
	for metric, items := range byRun {
		if len(items) != wantLines[metric] {
			t.Errorf("%s: %d lines, want %d", metric, len(items), wantLines[metric])
		}
		qty := items[0].Metadata["meterbill_quantity"]
		if !slices.Contains(wantQty[metric], qty) {
			t.Errorf("%s priced at %s, want one of %v", metric, qty, wantQty[metric])
		}
		var sum meterbill.Value
		tiers := map[string]bool{}
		for _, it := range items {
			if it.Metadata["meterbill_quantity"] != qty {
				t.Errorf("%s: lines priced at %s and %s", metric, qty, it.Metadata["meterbill_quantity"])
			}
			if tiers[it.Metadata["meterbill_tier"]] {
				t.Errorf("%s: tier %s twice", metric, it.Metadata["meterbill_tier"])
			}
			tiers[it.Metadata["meterbill_tier"]] = true
			sum, _ = sum.Add(mustValue(t, it.Metadata["meterbill_line_qty"]))
		}
		if sum.String() != qty {
			t.Errorf("%s: lines add up to %s, priced %s", metric, sum, qty)
		}
	}
}

// TestFinalizedInvoiceIsBilledAsPendingItems: an invoice that arrives already finalized (a
// charge-automatically invoice, say), or was finalized before its webhook succeeded, gets its
// usage as pending items for the customer's next invoice, once, whether the webhook or
// BillInvoice bills it.
func TestFinalizedInvoiceIsBilledAsPendingItems(t *testing.T) {
	b := newBridge(t, billPlan)
	b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 100, "40")
	inv := b.invoice("in_mar", "cus_a", 42, "open", date(2026, 3, 1), date(2026, 4, 1))
	for range 2 { // and a redelivery
		if got := b.deliver(t, inv, "open"); got != 200 {
			t.Fatalf("the webhook for a finalized invoice: %d", got)
		}
	}
	if rep := b.lastReport(); rep.Outcome != meterbill.OutcomeAlreadyBilled {
		t.Errorf("redelivery: %q, want already_billed", rep.Outcome)
	}
	if again, err := b.handler.BillInvoice(context.Background(), "in_mar"); err != nil || again.Outcome != meterbill.OutcomeAlreadyBilled {
		t.Errorf("BillInvoice = %+v, %v; want already_billed", again, err)
	}
	if diff := cmp.Diff(marchLines(""), view(b.stripe.Items("cus_a"))); diff != "" {
		t.Errorf("items mismatch (-want +got):\n%s", diff)
	}
}

func TestBillInvoiceHonoursTheDeadline(t *testing.T) {
	b := newBridge(t, billPlan, meterbill.WithDeadline(200*time.Millisecond))
	b.record(t, 42, date(2026, 3, 1), date(2026, 4, 1), 10, "")
	b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	b.stripe.Inject(stripefake.Fault{Method: http.MethodGet, Path: "/v1/invoiceitems", Status: 503, Times: 1 << 20})
	start := time.Now()
	_, err := b.handler.BillInvoice(context.Background(), "in_mar")
	if err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("BillInvoice = %v after %s; want a failure near the 200 ms deadline", err, time.Since(start))
	}
}

// TestSplitRunIsPricedOnce: a manual invoice billed the middle of March; the renewal bills the
// rest of the month on top of it: the included units and the tiers apply once to the month.
func TestSplitRunIsPricedOnce(t *testing.T) {
	b := newBridge(t, billPlan)
	b.stripe.AddSubscription(stripefake.Subscription{ID: "sub_cus_a", Customer: "cus_a", StartDate: date(2026, 3, 1).Unix()})
	b.record(t, 42, date(2026, 3, 1), date(2026, 5, 1), 100, "40")
	manual := b.invoice("in_manual", "cus_a", 42, "draft", date(2026, 3, 10), date(2026, 3, 20))
	b.deliverAs(t, manual, "manual")
	renewal := b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	b.deliver(t, renewal, "draft")
	want := []itemView{
		// Mar 10 to Mar 20: 10 days, 400 GB-days.
		{Invoice: "in_manual", Desc: "Storage (tier 1): 100", Amount: 0, From: "2026-03-10", To: "2026-03-20", Tier: "1"},
		{Invoice: "in_manual", Desc: "Storage (tier 2): 300", Amount: 600, From: "2026-03-10", To: "2026-03-20", Tier: "2"},
		{Invoice: "in_mar", Desc: "Requests: 3100", Amount: 310, From: "2026-03-01", To: "2026-04-01", Tier: "0"},
		// Mar 1 to 10 and Mar 20 to Apr 1: 21 days, 840 GB-days, priced on top of the 400 billed:
		// the month's 1240 cost 2040, the 400 cost 600, the rest 1440. The run covers the month.
		{Invoice: "in_mar", Desc: "Storage (tier 2): 600", Amount: 1200, From: "2026-03-01", To: "2026-04-01", Tier: "2"},
		{Invoice: "in_mar", Desc: "Storage (tier 3): 240", Amount: 240, From: "2026-03-01", To: "2026-04-01", Tier: "3"},
	}
	sort.Slice(want, func(i, j int) bool { return fmt.Sprint(want[i]) < fmt.Sprint(want[j]) })
	if diff := cmp.Diff(want, view(b.stripe.Items("cus_a"))); diff != "" {
		t.Errorf("items mismatch (-want +got):\n%s", diff)
	}
	// A redelivery of the renewal finds both runs covered.
	if got := b.deliver(t, renewal, "draft"); got != 200 || b.lastReport().Outcome != meterbill.OutcomeAlreadyBilled {
		t.Errorf("redelivery: %d %q", got, b.lastReport().Outcome)
	}
}

func TestResolverReturningAccountZeroIsRefused(t *testing.T) {
	b := newBridge(t, billPlan)
	b.invoice("in_mar", "cus_a", 42, "draft", date(2026, 3, 1), date(2026, 4, 1))
	zero := meterbill.AccountResolverFunc(func(context.Context, meterbill.Customer) (uint64, error) { return 0, nil })
	plan, _ := meterbill.NewPlan(billPlan...)
	sc, _ := meterbill.NewStripeClient("sk_test_fake", meterbill.WithStripeURL(b.stripe.URL), meterbill.WithStripeRateLimit(-1))
	h, err := meterbill.NewHandler(b.meter, sc, zero, plan, []string{secret}, meterbill.WithZeroUsageLines(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.BillInvoice(context.Background(), "in_mar"); !errors.Is(err, meterbill.ErrInvalidAccount) {
		t.Errorf("BillInvoice = %v, want ErrInvalidAccount", err)
	}
	if n := len(b.stripe.Items("cus_a")); n != 0 {
		t.Errorf("%d items written for account 0", n)
	}
}

func TestHandlerNeverPrintsItsSecrets(t *testing.T) {
	b := newBridge(t, billPlan)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("handler", "h", b.handler)
	for _, s := range []string{fmt.Sprintf("%v", b.handler), fmt.Sprintf("%+v", b.handler), fmt.Sprintf("%#v", b.handler), logs.String()} {
		if strings.Contains(s, secret) {
			t.Errorf("the signing secret leaks: %.200s", s)
		}
	}
}
