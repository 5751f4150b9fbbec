// Command quickstart runs meterbill end to end on its embedded defaults, with no keys and no
// servers: it defines three metrics in the in-process meter, records usage for two customers from
// late March to early May 2026, and prints the priced lines the April invoice gets.
//
//	go run ./examples/quickstart
//
// Everything is deterministic: the usage comes from a seeded generator and the invoice moment is
// fixed, because meterbill never takes a billing period from the wall clock.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"text/tabwriter"
	"time"

	"github.com/shopspring/decimal"

	"github.com/meterbill/meterbill"
)

// The billed metrics: what the meter aggregates and how it buckets time.
var (
	apiCalls = meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
	compute  = meterbill.Metric{Code: "compute_hours", Aggregation: meterbill.Sum, Period: meterbill.Calendar, CycleDay: 1}
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
}

type customer struct {
	name    string
	account uint64
	calls   int // API calls a day
	hours   int // compute sessions a day
	seats   int // people on the team
}

var customers = []customer{
	{name: "Acme Corp", account: 1001, calls: 41_000, hours: 9, seats: 12},
	{name: "Globex", account: 1002, calls: 2_300, hours: 1, seats: 3},
}

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	meter := meterbill.NewMemoryMeter()
	plan, err := meterbill.NewPlan(prices...)
	if err != nil {
		return err
	}
	if err := meter.Define(ctx, plan.Metrics()...); err != nil {
		return err
	}

	// Usage from March 25 to May 2: the days outside April must stay out of April's invoice.
	from, to := time.Date(2026, 3, 25, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 3, 0, 0, 0, 0, time.UTC)
	recorded := 0
	for _, c := range customers {
		n, err := record(ctx, meter, c, from, to)
		if err != nil {
			return err
		}
		recorded += n
	}
	fmt.Fprintf(out, "Recorded %d usage events for %d customers, %s to %s.\n\n", recorded, len(customers), from.Format("Jan 2"), to.Add(-time.Nanosecond).Format("Jan 2"))

	// The invoice is created at the start of May: each metric bills its last complete period.
	invoiceAt := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range customers {
		if err := printInvoice(ctx, out, meter, plan, c, invoiceAt); err != nil {
			return err
		}
	}
	return nil
}

// record sends a customer's synthetic usage to the meter in batches. Each event gets its own
// nanosecond, so no two distinct events share the meter's dedup key.
func record(ctx context.Context, meter meterbill.Meter, c customer, from, to time.Time) (int, error) {
	rng := rand.New(rand.NewPCG(c.account, 2026))
	var batch []meterbill.Event
	total := 0
	flush := func() error {
		_, err := meter.Ingest(ctx, batch)
		total += len(batch)
		batch = batch[:0]
		return err
	}
	add := func(e meterbill.Event) error {
		e.Account = c.account
		batch = append(batch, e)
		if len(batch) == 500 {
			return flush()
		}
		return nil
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
	return total, flush()
}

func printInvoice(ctx context.Context, out io.Writer, meter meterbill.Meter, plan *meterbill.Plan, c customer, invoiceAt time.Time) error {
	fmt.Fprintf(out, "%s (account %d), invoice of %s\n", c.name, c.account, invoiceAt.Format("2006-01-02"))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "Line\tPeriod\tUsage\tBilled qty\tUnit price\tAmount\t")
	var total int64
	for _, m := range plan.Metrics() {
		// The last complete period of this metric before the invoice: never the wall clock.
		window := m.Bucket(invoiceAt.Add(-time.Nanosecond))
		usage, err := meter.Query(ctx, c.account, m, window)
		if err != nil {
			return err
		}
		lines, err := plan.Price(ctx, "usd", usage)
		if err != nil {
			return err
		}
		for _, l := range lines {
			fmt.Fprintf(tw, "%s\t%s – %s\t%s\t%s\t%s\t%s\t\n", l.Description,
				usage.Window.Start.Format("Jan 2"), usage.Window.End.Add(-time.Nanosecond).Format("Jan 2"),
				usage.Value, l.Quantity, dollars(l.UnitPrice), cents(l.Amount))
			total += l.Amount
		}
	}
	fmt.Fprintf(tw, "Total\t\t\t\t\t%s\t\n", cents(total))
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
