package meterbill_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill"
)

// TestPreview prices the current (partial) and last complete period of each metric without
// Stripe, at month ends, on a leap day and with a cycle day other than the 1st.
func TestPreview(t *testing.T) {
	ctx := context.Background()
	midCycle := meterbill.Metric{Code: "seats_15", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 15}
	plan, err := meterbill.NewPlan(
		meterbill.Price{Metric: requests, Description: "Requests", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.1"}}}},
		meterbill.Price{Metric: gbDays, Description: "Storage", Model: meterbill.Graduated, Currencies: map[string][]meterbill.Tier{
			"usd": {{UpTo: "10", Unit: "0"}, {Unit: "2"}},
		}},
		meterbill.Price{Metric: midCycle, Description: "Seats", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "100"}}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	meter := meterbill.NewMemoryMeter()
	if err := meter.Define(ctx, plan.Metrics()...); err != nil {
		t.Fatal(err)
	}
	// Every day from 2028-01-01 to 2028-03-31 (a leap year): 10 requests, a 25 GB reading and one
	// seat event, all at noon UTC.
	var events []meterbill.Event
	for d := date(2028, 1, 1); d.Before(date(2028, 4, 1)); d = d.AddDate(0, 0, 1) {
		noon := d.Add(12 * time.Hour)
		for i := range 10 {
			events = append(events, meterbill.Event{Account: 7, Metric: requests.Code, Value: meterbill.Units(1), Time: noon.Add(time.Duration(i))})
		}
		events = append(events,
			meterbill.Event{Account: 7, Metric: gbDays.Code, Value: meterbill.Units(25), Time: noon},
			meterbill.Event{Account: 7, Metric: midCycle.Code, Value: meterbill.Units(1), Time: noon})
	}
	ingestAll(t, meter, events)

	type line struct {
		Metric, Period string
		Tier           int
		Quantity       string
		Amount         int64
	}
	lines := func(ls []meterbill.EstimateLine) []line {
		var out []line
		for _, l := range ls {
			out = append(out, line{Metric: l.Metric, Period: l.Period.Start.Format(time.DateOnly) + "/" + l.Period.End.Format(time.DateOnly), Tier: l.Tier, Quantity: l.Quantity.String(), Amount: l.Amount})
		}
		return out
	}
	tests := []struct {
		name        string
		at          time.Time
		wantCurrent []line
		wantLast    []line
	}{
		{
			name: "leap day: February so far, January complete; yesterday Feb 28; the 15th-cycle month",
			at:   at(2028, 2, 29, 18, 0),
			wantCurrent: []line{
				{Metric: "requests", Period: "2028-02-01/2028-03-01", Quantity: "290", Amount: 29},
				{Metric: "gb_days", Period: "2028-02-29/2028-03-01", Tier: 1, Quantity: "10", Amount: 0},
				{Metric: "gb_days", Period: "2028-02-29/2028-03-01", Tier: 2, Quantity: "15", Amount: 30},
				// The meter answers whole periods: at picks the period, and what is recorded in it
				// counts, here up to March 14 (with at = now, that is the usage so far).
				{Metric: "seats_15", Period: "2028-02-15/2028-03-15", Quantity: "29", Amount: 2900},
			},
			wantLast: []line{
				{Metric: "requests", Period: "2028-01-01/2028-02-01", Quantity: "310", Amount: 31},
				{Metric: "gb_days", Period: "2028-02-28/2028-02-29", Tier: 1, Quantity: "10", Amount: 0},
				{Metric: "gb_days", Period: "2028-02-28/2028-02-29", Tier: 2, Quantity: "15", Amount: 30},
				{Metric: "seats_15", Period: "2028-01-15/2028-02-15", Quantity: "31", Amount: 3100},
			},
		},
		{
			name: "the last nanosecond of March is still March",
			at:   date(2028, 4, 1).Add(-time.Nanosecond),
			wantCurrent: []line{
				{Metric: "requests", Period: "2028-03-01/2028-04-01", Quantity: "310", Amount: 31},
				{Metric: "gb_days", Period: "2028-03-31/2028-04-01", Tier: 1, Quantity: "10", Amount: 0},
				{Metric: "gb_days", Period: "2028-03-31/2028-04-01", Tier: 2, Quantity: "15", Amount: 30},
				{Metric: "seats_15", Period: "2028-03-15/2028-04-15", Quantity: "17", Amount: 1700},
			},
			wantLast: []line{
				{Metric: "requests", Period: "2028-02-01/2028-03-01", Quantity: "290", Amount: 29},
				{Metric: "gb_days", Period: "2028-03-30/2028-03-31", Tier: 1, Quantity: "10", Amount: 0},
				{Metric: "gb_days", Period: "2028-03-30/2028-03-31", Tier: 2, Quantity: "15", Amount: 30},
				{Metric: "seats_15", Period: "2028-02-15/2028-03-15", Quantity: "29", Amount: 2900},
			},
		},
		{
			name: "April 1 00:00: a new month with nothing yet, March complete",
			at:   date(2028, 4, 1),
			wantLast: []line{
				{Metric: "requests", Period: "2028-03-01/2028-04-01", Quantity: "310", Amount: 31},
				{Metric: "gb_days", Period: "2028-03-31/2028-04-01", Tier: 1, Quantity: "10", Amount: 0},
				{Metric: "gb_days", Period: "2028-03-31/2028-04-01", Tier: 2, Quantity: "15", Amount: 30},
				{Metric: "seats_15", Period: "2028-02-15/2028-03-15", Quantity: "29", Amount: 2900},
			},
			wantCurrent: []line{
				{Metric: "seats_15", Period: "2028-03-15/2028-04-15", Quantity: "17", Amount: 1700},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			est, err := meterbill.Preview(ctx, meter, plan, 7, "USD", tt.at)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantCurrent, lines(est.Current)); diff != "" {
				t.Errorf("current (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLast, lines(est.Last)); diff != "" {
				t.Errorf("last (-want +got):\n%s", diff)
			}
			var cur, last int64
			for _, l := range tt.wantCurrent {
				cur += l.Amount
			}
			for _, l := range tt.wantLast {
				last += l.Amount
			}
			if est.CurrentTotal != cur || est.LastTotal != last || est.Currency != "usd" {
				t.Errorf("totals %d/%d in %s, want %d/%d in usd", est.CurrentTotal, est.LastTotal, est.Currency, cur, last)
			}
		})
	}
	if _, err := meterbill.Preview(ctx, meter, plan, 7, "eur", at(2028, 2, 29, 18, 0)); !errors.Is(err, meterbill.ErrNoPrice) {
		t.Errorf("Preview in a currency without prices: %v, want ErrNoPrice", err)
	}
	if _, err := meterbill.Preview(ctx, meter, plan, 0, "usd", at(2028, 2, 29, 18, 0)); !errors.Is(err, meterbill.ErrInvalidAccount) {
		t.Errorf("Preview of account 0: %v, want ErrInvalidAccount", err)
	}
}
