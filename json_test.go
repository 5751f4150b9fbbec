package meterbill_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill"
)

// TestJSON pins the JSON encoding of what apps show in a portal or an admin page: stable
// snake_case keys, amounts as integers in minor units, quantities and unit prices as exact
// decimal strings, enums by name, errors as text. A change here breaks users' clients: change
// the golden text only on purpose.
func TestJSON(t *testing.T) {
	ctx := context.Background()
	plan, err := meterbill.NewPlan(meterbill.Price{Metric: gbDays, Description: "Storage", Model: meterbill.Graduated,
		Currencies: map[string][]meterbill.Tier{"usd": {{UpTo: "10", Unit: "0"}, {Unit: "2.5"}}}})
	if err != nil {
		t.Fatal(err)
	}
	meter := meterbill.NewMemoryMeter()
	if err := meter.Define(ctx, plan.Metrics()...); err != nil {
		t.Fatal(err)
	}
	ingestAll(t, meter, []meterbill.Event{{Account: 7, Metric: gbDays.Code, Value: meterbill.Micros(12_500_000), Time: at(2028, 3, 8, 12, 0)}})
	est, err := meterbill.Preview(ctx, meter, plan, 7, "usd", at(2028, 3, 8, 18, 0))
	if err != nil {
		t.Fatal(err)
	}
	usage, err := meter.Query(ctx, 7, gbDays, meterbill.Period{Start: date(2028, 3, 1), End: date(2028, 4, 1)})
	if err != nil {
		t.Fatal(err)
	}
	report := meterbill.Report{Event: "evt_1", Invoice: "in_1", Customer: "cus_1", Account: 7,
		Window: meterbill.Period{Start: date(2028, 3, 1), End: date(2028, 4, 1)}, Outcome: meterbill.OutcomeFailed,
		Created: []meterbill.InvoiceItem{{ID: "ii_1", Customer: "cus_1", Invoice: "in_1", Currency: "usd", Description: "Storage",
			Amount: 625, Quantity: 250, UnitAmountDecimal: "2.5", PeriodStart: date(2028, 3, 1), PeriodEnd: date(2028, 4, 1),
			Metadata: map[string]string{"meterbill_metric": "gb_days"}}},
		Refused:        []meterbill.RefusedLine{{Item: meterbill.InvoiceItem{Customer: "cus_1", Currency: "usd", Description: "Big", Amount: 1 << 40}, Err: errors.New("over the limit")}},
		StripeRequests: 3, Err: errors.New("stripe: 500")}

	tests := []struct {
		name string
		v    any
		want string
	}{
		{
			name: "estimate",
			v:    est,
			want: `{"account":7,"currency":"usd","at":"2028-03-08T18:00:00Z",` +
				`"current":[{"period":{"start":"2028-03-08T00:00:00Z","end":"2028-03-09T00:00:00Z"},` +
				`"metric":"gb_days","description":"Storage (tier 1)","currency":"usd","tier":1,"quantity":"10","unit_price":"0","flat_fee":"0","amount":0,"plan":"` + est.Current[0].Plan + `"},` +
				`{"period":{"start":"2028-03-08T00:00:00Z","end":"2028-03-09T00:00:00Z"},` +
				`"metric":"gb_days","description":"Storage (tier 2)","currency":"usd","tier":2,"quantity":"2.5","unit_price":"2.5","flat_fee":"0","amount":6,"plan":"` + est.Current[0].Plan + `"}],` +
				`"last":[],"current_total":6,"last_total":0}`,
		},
		{
			name: "usage",
			v:    usage,
			want: `{"account":7,"metric":{"code":"gb_days","aggregation":"sum","period":"day"},` +
				`"window":{"start":"2028-03-01T00:00:00Z","end":"2028-04-01T00:00:00Z"},"value":"12.5"}`,
		},
		{
			name: "report",
			v:    report,
			want: `{"event":"evt_1","invoice":"in_1","customer":"cus_1","account":7,` +
				`"window":{"start":"2028-03-01T00:00:00Z","end":"2028-04-01T00:00:00Z"},"outcome":"failed",` +
				`"created":[{"id":"ii_1","customer":"cus_1","invoice":"in_1","currency":"usd","description":"Storage","amount":625,"quantity":250,"unit_amount_decimal":"2.5",` +
				`"period_start":"2028-03-01T00:00:00Z","period_end":"2028-04-01T00:00:00Z","metadata":{"meterbill_metric":"gb_days"}}],` +
				`"existing":0,"refused":[{"item":{"id":"","customer":"cus_1","currency":"usd","description":"Big","amount":1099511627776,` +
				`"period_start":"0001-01-01T00:00:00Z","period_end":"0001-01-01T00:00:00Z"},"error":"over the limit"}],` +
				`"stripe_requests":3,"error":"stripe: 500"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}

	// What has no error field decodes back to what was encoded.
	for _, tt := range []struct {
		name string
		v    any
		into any
	}{
		{name: "estimate", v: est, into: new(meterbill.Estimate)},
		{name: "usage", v: usage, into: new(meterbill.Usage)},
	} {
		t.Run(tt.name+" round trip", func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(tt.into); err != nil {
				t.Fatal(err)
			}
			want := tt.v
			if u, ok := tt.v.(meterbill.Usage); ok {
				want = &u
			}
			if diff := cmp.Diff(want, tt.into, cmp.Comparer(func(a, b meterbill.Value) bool { return a.Cmp(b) == 0 }),
				cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
		})
	}
}
