package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/shopspring/decimal"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/meterbilltest"
)

// testScale divides the customers' API calls a day: the tests check relations that hold at any
// scale (redeliveries add nothing, totals are the pricer's, the wire path bills what the
// embedded meter bills) on 35,000 events a run, not 1.7 million; CI runs the full job.
const testScale = 50

// TestQuickstart runs the main job and checks what a reader relies on: it is deterministic, the
// redeliveries add nothing, both invoices are printed, and each total is the sum of its lines.
func TestQuickstart(t *testing.T) {
	var first, second bytes.Buffer
	if err := run(context.Background(), &first, testScale, nil); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), &second, testScale, nil); err != nil {
		t.Fatal(err)
	}
	out := first.String()
	if out != second.String() {
		t.Fatal("two runs printed different output; the quickstart must be deterministic")
	}
	for _, want := range []string{
		"1. invoice.created               in_acme_april    -> HTTP 200, billed",
		"4. invoice.created               in_acme_april    -> HTTP 200, already_billed 0 lines added",
		"5. invoice.created               in_acme_april    -> HTTP 200, already_billed 0 lines added",
		"6. customer.subscription.deleted sub_hooli        -> HTTP 200, billed",
		"Hooli: final invoice in_fake00000001 (open), canceled Apr 20 12:00",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	amount := regexp.MustCompile(`\$(\d+)\.(\d\d)\s*$`)
	cents := func(line string) int64 {
		m := amount.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no amount at the end of %q", line)
		}
		d, _ := strconv.ParseInt(m[1], 10, 64)
		c, _ := strconv.ParseInt(m[2], 10, 64)
		return d*100 + c
	}
	invoices := strings.Split(out, "invoice in_")[1:]
	if len(invoices) != len(customers) {
		t.Fatalf("printed %d invoices, want %d:\n%s", len(invoices), len(customers), out)
	}
	for i, inv := range invoices {
		body, _, _ := strings.Cut(inv, "\n\n") // an invoice ends at its blank line
		var sum int64
		var lines int
		head := 2
		if !customers[i].subscribed.IsZero() {
			head = 3 // a two-line heading
		}
		for _, l := range strings.Split(body, "\n")[head:] {
			if strings.HasPrefix(strings.TrimSpace(l), "Total") {
				if got := cents(l); got != sum {
					t.Errorf("total %d cents, lines add up to %d", got, sum)
				}
				continue
			}
			sum += cents(l)
			lines++
			// The columns are Stripe's: quantity × unit price is the amount, exactly.
			f := strings.Fields(l)
			qty, unit, amt := decimal.RequireFromString(f[len(f)-3]), decimal.RequireFromString(strings.TrimPrefix(f[len(f)-2], "$")),
				decimal.RequireFromString(strings.TrimPrefix(f[len(f)-1], "$"))
			if !qty.Mul(unit).Equal(amt) {
				t.Errorf("%s: %s × %s is not %s, as Stripe would show it: %q", customers[i].name, qty, unit, amt, l)
			}
		}
		c := customers[i]
		switch {
		case c.renews() && (lines < 4 || !strings.Contains(body, "Apr 1 – Apr 30")):
			t.Errorf("%s's renewal has %d lines or no April period:\n%s", c.name, lines, body)
		case !c.subscribed.IsZero() && (lines != 1 || !strings.Contains(body, "Storage (GB-days)") || !strings.Contains(body, "Apr 20 – May 19")):
			t.Errorf("%s subscribed on April 20: want only storage from April 20:\n%s", c.name, body)
		case !c.canceled.IsZero() && (lines < 4 || !strings.Contains(body, "Storage (GB-days)") || !strings.Contains(body, "Apr 1 – Apr 20")):
			t.Errorf("%s canceled on April 20: want April up to the 20th:\n%s", c.name, body)
		}
	}
}

// TestQuickstartTotalsMatchThePricer checks each invoice on Stripe against the meter and the
// plan themselves: the same lines, and a total equal to the pricer's to the cent.
func TestQuickstartTotalsMatchThePricer(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), &out, testScale, func(meter meterbill.Meter, plan *meterbill.Plan, fake *meterbilltest.Stripe, invoices []meterbilltest.Invoice) error {
		for i, c := range customers {
			if !c.renews() {
				continue // priced from the subscription's start or to its end: TestQuickstartLifecycle
			}
			april := meterbill.Period{Start: time.Unix(invoices[i].PeriodStart, 0).UTC(), End: time.Unix(invoices[i].PeriodEnd, 0).UTC()}
			var wantLines int
			var wantTotal int64
			for _, m := range plan.Metrics() {
				u, err := meter.Query(context.Background(), c.account, m, april)
				if err != nil {
					return err
				}
				lines, err := plan.Price(context.Background(), "usd", u)
				if err != nil {
					return err
				}
				for _, l := range lines {
					wantTotal += l.Amount
					wantLines++
				}
			}
			items := fake.InvoiceItems(invoices[i].ID)
			var gotTotal int64
			for _, it := range items {
				gotTotal += it.Amount
			}
			if len(items) != wantLines || gotTotal != wantTotal {
				t.Errorf("%s: Stripe holds %d lines totalling %d, the pricer says %d lines totalling %d", c.name, len(items), gotTotal, wantLines, wantTotal)
			}
			if wantTotal == 0 {
				t.Errorf("%s: nothing billed; the quickstart should bill usage", c.name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestQuickstartOnUnimeter runs the main job with BILLING_NODES pointing at a fake Unimeter cluster
// of three nodes: the wire path must bill exactly what the embedded meter bills.
func TestQuickstartOnUnimeter(t *testing.T) {
	var embedded, wire bytes.Buffer
	if err := run(context.Background(), &embedded, testScale, nil); err != nil {
		t.Fatal(err)
	}
	c, err := meterbilltest.StartCluster(meterbilltest.ClusterOptions{Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	t.Setenv("BILLING_NODES", strings.Join(c.Addrs(), ","))
	if err := run(context.Background(), &wire, testScale, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(embedded.String(), wire.String()); diff != "" {
		t.Errorf("output on Unimeter differs from the embedded meter's (-embedded +unimeter):\n%s", diff)
	}
	var stored int
	for i := range c.Addrs() {
		stored += c.Stats(i).Stored
	}
	if stored == 0 {
		t.Error("the cluster stored nothing: the quickstart did not use BILLING_NODES")
	}
}

// TestQuickstartLifecycle checks the two customers whose subscription starts or ends in April
// against the meter and the plan: Initech pays for storage from the day it subscribed and
// nothing of the calendar months that straddle that day; Hooli's final invoice is April's usage,
// its days of storage up to the day it canceled.
func TestQuickstartLifecycle(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), &out, testScale, func(meter meterbill.Meter, plan *meterbill.Plan, fake *meterbilltest.Stripe, invoices []meterbilltest.Invoice) error {
		ctx := context.Background()
		price := func(account uint64, m meterbill.Metric, p meterbill.Period) int64 {
			u, err := meter.Query(ctx, account, m, p)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := plan.Price(ctx, "usd", u)
			if err != nil {
				t.Fatal(err)
			}
			var sum int64
			for _, l := range lines {
				sum += l.Amount
			}
			return sum
		}
		total := func(id string) int64 {
			var sum int64
			for _, it := range fake.InvoiceItems(id) {
				sum += it.Amount
			}
			return sum
		}
		initech, hooli := customers[2], customers[3]
		april := meterbill.Period{Start: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
		want := price(initech.account, storage, meterbill.Period{Start: initech.subscribed, End: initech.subscribed.AddDate(0, 1, 0)})
		if got := total(invoices[2].ID); got != want || want == 0 {
			t.Errorf("Initech billed %d cents, storage from April 20 costs %d", got, want)
		}
		want = price(hooli.account, apiCalls, april) + price(hooli.account, compute, april) + price(hooli.account, seats, april) +
			price(hooli.account, storage, meterbill.Period{Start: april.Start, End: time.Date(2026, 4, 21, 0, 0, 0, 0, time.UTC)})
		if got := total(invoices[3].ID); got != want || want == 0 {
			t.Errorf("Hooli's final invoice is %d cents, April to its cancellation costs %d", got, want)
		}
		if invoices[3].Status != "open" || invoices[3].Metadata["meterbill_final"] != "sub_hooli" {
			t.Errorf("Hooli's final invoice %+v: want finalized and naming the subscription", invoices[3])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
