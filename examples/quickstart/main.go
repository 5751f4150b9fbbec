// Command quickstart runs meterbill end to end on its embedded defaults, with no keys and no
// servers: it records usage for four customers in the in-process meter (or in the Unimeter
// cluster that BILLING_NODES names), then plays Stripe. It sends correctly signed events to
// meterbill's real webhook handler over HTTP: invoice.created for two customers' April renewals
// (one delivered twice more, as Stripe's retries would) and for the first invoice of a customer
// who subscribed on April 20 after using the free tier, and customer.subscription.deleted for a
// customer who canceled on April 20. It prints the invoices that result in an in-process fake of
// Stripe's API.
//
//	go run ./examples/quickstart
//
// Everything is deterministic: the usage comes from a seeded generator, and the invoice periods
// come from the invoices, because meterbill never takes a billing period from the wall clock.
package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shopspring/decimal"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/meterbilltest"
)

// The billed metrics: what the meter aggregates and how it buckets time.
var (
	apiCalls = meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
	compute  = meterbill.Metric{Code: "compute_hours", Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 1}
	storage  = meterbill.Metric{Code: "storage_gb_days", Aggregation: meterbill.Sum, Period: meterbill.Day}
	seats    = meterbill.Metric{Code: "active_seats", Aggregation: meterbill.CountUnique, Period: meterbill.Calendar, CycleDay: 1}
)

// prices are in US cents, as exact decimals: "0.1" is $0.001.
var prices = []meterbill.Price{
	{Metric: apiCalls, Description: "API calls", Currencies: map[string][]meterbill.Tier{
		"usd": {{Unit: "0.1"}}, // $0.001 per call
	}},
	{Metric: compute, Description: "Compute hours", Model: meterbill.Graduated, Currencies: map[string][]meterbill.Tier{
		"usd": {
			{UpTo: "10", Unit: "0"},   // first 10 hours free
			{UpTo: "100", Unit: "12"}, // then $0.12 an hour
			{Unit: "8.5"},             // then $0.085 an hour
		},
	}},
	{Metric: seats, Description: "Active seats", Currencies: map[string][]meterbill.Tier{
		"usd": {{Unit: "800"}}, // $8 per seat active in the month
	}},
	{Metric: storage, Description: "Storage (GB-days)", Currencies: map[string][]meterbill.Tier{
		"usd": {{Unit: "0.1"}}, // $0.001 per GB stored a day: a Day metric, billed from the day a subscription starts
	}},
}

type customer struct {
	name    string
	stripe  string // Stripe customer id
	account uint64 // meter account, kept in the subscription's metadata
	calls   int    // API calls a day
	hours   int    // compute sessions a day
	seats   int    // people on the team
	gb      int    // GB stored
	// subscribed is when the subscription started (zero: April 1, before which the customer
	// used the free tier); canceled, when it ended (zero: it goes on).
	subscribed, canceled time.Time
}

var customers = []customer{
	{name: "Acme Corp", stripe: "cus_acme", account: 1001, calls: 41_000, hours: 9, seats: 12, gb: 800},
	{name: "Globex", stripe: "cus_globex", account: 1002, calls: 2_300, hours: 1, seats: 3, gb: 40},
	{name: "Initech", stripe: "cus_initech", account: 1003, calls: 900, hours: 2, seats: 2, gb: 120, subscribed: time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC)},
	{name: "Hooli", stripe: "cus_hooli", account: 1004, calls: 1_500, hours: 3, seats: 4, gb: 300, canceled: time.Date(2026, 4, 20, 12, 0, 0, 0, time.UTC)},
}

// renews reports whether the customer's subscription simply renews in April.
func (c customer) renews() bool { return c.subscribed.IsZero() && c.canceled.IsZero() }

// webhookSecret is the signing secret of the (fake) webhook endpoint.
const webhookSecret = "whsec_quickstart_0123456789abcdef"

// openMeter connects to the Unimeter cluster named by BILLING_NODES ("host:7001,host:7001,…"),
// or returns the in-process meter when it is unset.
func openMeter(ctx context.Context) (meterbill.Meter, func(), error) {
	nodes := os.Getenv("BILLING_NODES")
	if nodes == "" {
		return meterbill.NewMemoryMeter(), func() {}, nil
	}
	m, err := meterbill.DialUnimeter(ctx, strings.Split(nodes, ","))
	if err != nil {
		return nil, nil, err
	}
	return m, func() { _ = m.Close() }, nil
}

func main() {
	if err := run(context.Background(), os.Stdout, 1, nil); err != nil {
		log.Fatal(err)
	}
}

// inspector lets a test look at the pipeline's state before it is torn down.
type inspector func(meter meterbill.Meter, plan *meterbill.Plan, fake *meterbilltest.Stripe, invoices []meterbilltest.Invoice) error

// run runs the whole pipeline and prints it to out. scale divides the customers' API calls a
// day (1 is the full 1.7 million events; the tests run lighter, the CI runs the full job).
func run(ctx context.Context, out io.Writer, scale int, inspect inspector) error {
	// 1. The meter and the price list.
	meter, closeMeter, err := openMeter(ctx)
	if err != nil {
		return err
	}
	defer closeMeter()
	plan, err := meterbill.NewPlan(prices...)
	if err != nil {
		return err
	}
	if err := meter.Define(ctx, plan.Metrics()...); err != nil {
		return err
	}

	// 2. The recorder: it batches events to the meter in the background.
	rec, err := meterbill.NewRecorder(ctx, meter, plan.Metrics())
	if err != nil {
		return err
	}

	// 3. Usage as it happens, through the usage middleware on the app's API: each successful
	// request counts one API call, stamped now, for a later invoice.
	served, err := serveAPI(ctx, rec)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Usage middleware: %d API requests served and recorded as they happened.\n", served)

	// 4. Historical usage from March 25 to May 2, recorded directly with the times it happened:
	// only April's must reach the April invoices.
	from, to := time.Date(2026, 3, 25, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 3, 0, 0, 0, 0, time.UTC)
	recorded := 0
	for _, c := range customers {
		c.calls = max(1, c.calls/scale)
		n, err := record(ctx, rec, c, from, to)
		if err != nil {
			return err
		}
		recorded += n
	}
	if err := rec.Close(ctx); err != nil { // delivers everything queued, or says what it could not
		return err
	}
	st := rec.Stats()
	fmt.Fprintf(out, "Recorded %d usage events for %d customers, %s to %s; the meter has all %d.\n\n", recorded, len(customers),
		from.Format("Jan 2"), to.Add(-time.Nanosecond).Format("Jan 2"), st.Delivered-uint64(served))

	// 5. Stripe, played by an in-process fake of its API: each customer and subscription, and
	// as drafts the April renewals and Initech's first invoice (it subscribed on April 20, so its
	// period runs to May 20). Subscription metadata maps each customer to a meter account.
	fake := meterbilltest.NewStripe()
	defer fake.Close()
	april := [2]time.Time{time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	var invoices []meterbilltest.Invoice
	var subscriptions []meterbilltest.Subscription
	for _, c := range customers {
		fake.AddCustomer(c.stripe, nil)
		start := cmp.Or(c.subscribed, april[0])
		sub := meterbilltest.Subscription{ID: "sub_" + c.stripe[4:], Customer: c.stripe, StartDate: start.Unix(),
			Metadata: map[string]string{"meter_account": fmt.Sprint(c.account)}}
		fake.AddSubscription(sub)
		subscriptions = append(subscriptions, sub)
		if !c.canceled.IsZero() {
			invoices = append(invoices, meterbilltest.Invoice{}) // its final invoice is meterbill's to make
			continue
		}
		period, id := april, "in_"+c.stripe[4:]+"_april"
		if !c.subscribed.IsZero() {
			period, id = [2]time.Time{c.subscribed, c.subscribed.AddDate(0, 1, 0)}, "in_"+c.stripe[4:]+"_first"
		}
		inv := meterbilltest.Invoice{ID: id, Customer: c.stripe, Currency: "usd",
			Status: "draft", BillingReason: "subscription_cycle", PeriodStart: period[0].Unix(), PeriodEnd: period[1].Unix(),
			Subscription: "sub_" + c.stripe[4:], SubscriptionMetadata: map[string]string{"meter_account": fmt.Sprint(c.account)}}
		fake.AddInvoice(inv)
		invoices = append(invoices, inv)
	}

	// 6. meterbill's webhook handler, mounted on an HTTP server as an app would mount it.
	sc, err := meterbill.NewStripeClient("sk_test_quickstart", meterbill.WithStripeURL(fake.URL))
	if err != nil {
		return err
	}
	var reports []*meterbill.Report
	handler, err := meterbill.NewHandler(meter, sc, meterbill.SubscriptionMetadataAccount("meter_account"), plan,
		[]string{webhookSecret}, meterbill.WithReportHook(func(r *meterbill.Report) { reports = append(reports, r) }))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhook", handler)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// 7. Stripe delivers invoice.created for each invoice, and Acme's twice more, as it does
	// when it retries or redelivers; and customer.subscription.deleted for Hooli, who canceled
	// on April 20 (its usage is billed in arrears, so April has no invoice of Stripe's).
	type delivery struct {
		event   string
		payload []byte
		name    string
	}
	var deliveries []delivery
	for _, i := range []int{0, 1, 2, 0, 0, 3} {
		c, inv := customers[i], invoices[i]
		if c.canceled.IsZero() {
			deliveries = append(deliveries, delivery{"invoice.created", meterbilltest.InvoiceCreated(inv), inv.ID})
		} else {
			deliveries = append(deliveries, delivery{"customer.subscription.deleted", meterbilltest.SubscriptionDeleted(subscriptions[i], "usd", c.canceled, april[0], april[1]), "sub_" + c.stripe[4:]})
		}
	}
	fmt.Fprintln(out, "Webhook deliveries:")
	for i, d := range deliveries {
		status, err := deliver(ctx, srv.URL+"/webhook", d.payload, i+1)
		if err != nil {
			return err
		}
		r := reports[len(reports)-1]
		fmt.Fprintf(out, "  %d. %-29s %-16s -> HTTP %d, %-14s %d lines added, %d already there, %d Stripe requests\n",
			i+1, d.event, d.name, status, r.Outcome, len(r.Created), r.Existing, r.StripeRequests)
		if d.event != "invoice.created" {
			final, _ := fake.Invoice(r.Invoice)
			invoices[3] = final
		}
	}
	fmt.Fprintln(out)

	// 8. The invoices as Stripe now holds them.
	for i, c := range customers {
		if err := printInvoice(out, fake, c, invoices[i]); err != nil {
			return err
		}
	}
	// 9. A preview, without Stripe: what a dashboard shows on May 2 ("how much will I pay?").
	previewAt := time.Date(2026, 5, 2, 12, 0, 0, 0, time.UTC)
	for _, c := range customers {
		est, err := meterbill.Preview(ctx, meter, plan, c.account, "usd", previewAt)
		if err != nil {
			return err
		}
		if err := printEstimate(out, c, est); err != nil {
			return err
		}
	}
	if inspect != nil {
		return inspect(meter, plan, fake, invoices)
	}
	return nil
}

// printEstimate prints a preview: the current period so far and the last complete one, each
// under its heading.
func printEstimate(out io.Writer, c customer, est *meterbill.Estimate) error {
	fmt.Fprintf(out, "%s: preview on %s (nothing written to Stripe)\n", c.name, est.At.Format("Jan 2 15:04 MST"))
	for _, part := range []struct {
		heading string
		lines   []meterbill.EstimateLine
		total   int64
	}{{"So far in the current periods", est.Current, est.CurrentTotal}, {"The last complete periods", est.Last, est.LastTotal}} {
		fmt.Fprintf(out, "  %s:\n", part.heading)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "    Line\tUsage period\tQuantity\tAmount\t")
		for _, l := range part.lines {
			fmt.Fprintf(tw, "%s\t%s – %s\t%s\t%s\t\n", l.Description, l.Period.Start.Format("Jan 2"),
				l.Period.End.Add(-time.Nanosecond).Format("Jan 2"), l.Quantity, cents(l.Amount))
		}
		fmt.Fprintf(tw, "Total\t\t\t%s\t\n", cents(part.total))
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(out)
	return nil
}

// serveAPI runs a small API behind the usage middleware and calls it as clients would.
func serveAPI(ctx context.Context, rec *meterbill.Recorder) (int, error) {
	apiKeys := map[string]uint64{"Bearer key_acme": 1001, "Bearer key_globex": 1002}
	usage := meterbill.NewMiddleware(rec, apiCalls.Code, func(r *http.Request) (uint64, bool) {
		acct, ok := apiKeys[r.Header.Get("Authorization")] // your authentication decides the account
		return acct, ok
	})
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"hello":"world"}`) })
	srv := httptest.NewServer(usage(api))
	defer srv.Close()
	served := 0
	for i := range 100 {
		key := "Bearer key_acme"
		if i%4 == 0 {
			key = "Bearer key_globex"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/hello", nil)
		if err != nil {
			return served, err
		}
		req.Header.Set("Authorization", key)
		resp, err := srv.Client().Do(req)
		if err != nil {
			return served, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		served++
	}
	return served, nil
}

// record sends a customer's synthetic usage through the recorder, with the times it happened.
// Each event gets its own nanosecond, so no two distinct events share the meter's dedup key.
func record(ctx context.Context, rec *meterbill.Recorder, c customer, from, to time.Time) (int, error) {
	rng := rand.New(rand.NewPCG(c.account, 2026))
	total := 0
	add := func(e meterbill.Event) error {
		e.Account = c.account
		total++
		return rec.Record(ctx, e)
	}
	if !c.canceled.IsZero() {
		to = c.canceled // no usage after the subscription ended
	}
	for day := from; day.Before(to); day = day.AddDate(0, 0, 1) {
		calls := c.calls/2 + rng.IntN(c.calls)
		for i := range calls {
			t := day.Add(time.Duration(i) * (24 * time.Hour / time.Duration(calls)))
			if err := add(meterbill.Event{Metric: apiCalls.Code, Value: meterbill.Units(1), Time: t}); err != nil {
				return total, err
			}
		}
		for i := range c.hours {
			// Sessions of 15 minutes to 2 hours, in quarter hours: exact decimals, never floats.
			hours := meterbill.Micros(uint64(1+rng.IntN(8)) * 250_000)
			t := day.Add(time.Duration(i)*time.Hour + time.Minute)
			if err := add(meterbill.Event{Metric: compute.Code, Value: hours, Time: t}); err != nil {
				return total, err
			}
		}
		// Storage: one reading a day, a few GB more or less.
		gb := meterbill.Units(uint64(c.gb + rng.IntN(c.gb/10+1)))
		if err := add(meterbill.Event{Metric: storage.Code, Value: gb, Time: day.Add(23 * time.Hour)}); err != nil {
			return total, err
		}
		for s := range c.seats {
			if rng.IntN(3) == 0 {
				continue // not everyone works every day
			}
			t := day.Add(9*time.Hour + time.Duration(s)*time.Second)
			if err := add(meterbill.Event{Metric: seats.Code, Value: meterbill.Units(uint64(s + 1)), Time: t, Op: meterbill.OpAdd}); err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// deliver posts a signed event, as Stripe does, and returns the HTTP status.
func deliver(ctx context.Context, url string, payload []byte, attempt int) (int, error) {
	// Stripe signs every attempt afresh.
	req := meterbilltest.NewWebhookRequest(url, payload, webhookSecret).WithContext(ctx)
	req.Header.Set("User-Agent", fmt.Sprintf("Stripe/1.0 (attempt %d)", attempt))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	return resp.StatusCode, nil
}

func printInvoice(out io.Writer, fake *meterbilltest.Stripe, c customer, inv meterbilltest.Invoice) error {
	switch {
	case !c.canceled.IsZero():
		fmt.Fprintf(out, "%s: final invoice %s (%s), canceled %s\n", c.name, inv.ID, inv.Status, c.canceled.Format("Jan 2 15:04"))
	case !c.subscribed.IsZero():
		fmt.Fprintf(out, "%s: invoice %s for %s – %s, subscribed %s after the free tier (monthly lines start with May:\n"+
			"  April's months straddle the start, and no usage from before it is billed)\n", c.name, inv.ID,
			time.Unix(inv.PeriodStart, 0).UTC().Format("Jan 2"), time.Unix(inv.PeriodEnd, 0).UTC().Add(-time.Second).Format("Jan 2 2006"),
			c.subscribed.Format("Jan 2"))
	default:
		fmt.Fprintf(out, "%s: invoice %s for %s – %s\n", c.name, inv.ID,
			time.Unix(inv.PeriodStart, 0).UTC().Format("Jan 2"), time.Unix(inv.PeriodEnd, 0).UTC().Add(-time.Second).Format("Jan 2 2006"))
	}
	// The columns of the invoice the customer receives: the description and the period, then
	// Stripe's quantity and unit price. meterbill sets those only when they multiply to the amount
	// exactly; otherwise the item is amount-only and Stripe shows 1 × the amount, with the
	// quantity in the description.
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "Description\tPeriod\tQty\tUnit price\tAmount\t")
	var total int64
	items := fake.InvoiceItems(inv.ID)
	// In the plan's order, tier by tier, as Stripe lists lines by when they were added (meterbill
	// adds an invoice's runs at once, so that order is not fixed).
	order := func(it meterbilltest.Item) string {
		i := slices.IndexFunc(prices, func(p meterbill.Price) bool { return p.Metric.Code == it.Metadata["meterbill_metric"] })
		return fmt.Sprintf("%02d %s %03s", i, it.Metadata["meterbill_from"], it.Metadata["meterbill_tier"])
	}
	slices.SortFunc(items, func(a, b meterbilltest.Item) int { return strings.Compare(order(a), order(b)) })
	for _, it := range items {
		fmt.Fprintf(tw, "%s\t%s – %s\t%d\t%s\t%s\t\n", it.Description,
			time.Unix(it.PeriodStart, 0).UTC().Format("Jan 2"), time.Unix(it.PeriodEnd, 0).UTC().Format("Jan 2"),
			it.Quantity, dollars(it.UnitAmountDecimal), cents(it.Amount))
		total += it.Amount
	}
	fmt.Fprintf(tw, "Total\t\t\t\t%s\t\n", cents(total))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	return nil
}

// dollars formats a unit price in cents, an exact decimal, as dollars without rounding.
func dollars(centsDecimal string) string {
	return "$" + decimal.RequireFromString(centsDecimal).Shift(-2).String()
}

// cents formats an integer amount of cents as dollars.
func cents(n int64) string { return fmt.Sprintf("$%d.%02d", n/100, n%100) }
