package stripefake_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82"

	"github.com/meterbill/meterbill/internal/stripefake"
)

func TestCreateItem(t *testing.T) {
	manyKeys := func(n int) map[string]string {
		md := map[string]string{}
		for i := range n {
			md[fmt.Sprintf("k%02d", i)] = "v"
		}
		return md
	}
	withExtra := func(p *stripe.InvoiceItemCreateParams, kv ...string) *stripe.InvoiceItemCreateParams {
		for i := 0; i < len(kv); i += 2 {
			p.AddExtra(kv[i], kv[i+1])
		}
		return p
	}
	badRequest := func(code stripe.ErrorCode, param string) errView {
		return errView{Status: http.StatusBadRequest, Type: stripe.ErrorTypeInvalidRequest, Code: code, Param: param}
	}

	tests := []struct {
		name     string
		params   *stripe.InvoiceItemCreateParams
		want     itemView // when wantErr is zero
		wantErr  errView
		wantText string // in the error message, if not ""
	}{
		{
			name: "on a draft invoice",
			params: &stripe.InvoiceItemCreateParams{
				Customer:    stripe.String("cus_a"),
				Invoice:     stripe.String("in_draft"),
				Currency:    stripe.String("usd"),
				Amount:      stripe.Int64(1234),
				Description: stripe.String("API calls"),
				Period:      &stripe.InvoiceItemCreatePeriodParams{Start: stripe.Int64(100), End: stripe.Int64(200)},
				Metadata:    map[string]string{"meterbill_line": "l1"},
			},
			want: itemView{
				Object: "invoiceitem", Customer: "cus_a", Invoice: "in_draft", Currency: "usd",
				Description: "API calls", Amount: 1234, Quantity: 1, Metadata: map[string]string{"meterbill_line": "l1"},
				PeriodStart: 100, PeriodEnd: 200, Date: epoch, UnitAmountDecimal: 1234,
			},
		},
		{
			name:   "pending, without a period: dated now, negative amount allowed",
			params: usd(-50, "", ""),
			want: itemView{
				Object: "invoiceitem", Customer: "cus_a", Currency: "usd", Amount: -50, Quantity: 1,
				Metadata: map[string]string{}, PeriodStart: epoch, PeriodEnd: epoch, Date: epoch, UnitAmountDecimal: -50,
			},
		},
		{
			name: "unit_amount_decimal times quantity rounds half up",
			params: &stripe.InvoiceItemCreateParams{
				Customer: stripe.String("cus_a"), Currency: stripe.String("usd"),
				UnitAmountDecimal: stripe.Float64(0.5), Quantity: stripe.Int64(3),
			},
			want: itemView{
				Object: "invoiceitem", Customer: "cus_a", Currency: "usd", Amount: 2, Quantity: 3,
				Metadata: map[string]string{}, PeriodStart: epoch, PeriodEnd: epoch, Date: epoch, UnitAmountDecimal: 0.5,
			},
		},
		{
			name: "unit_amount_decimal is exact to 12 places",
			params: withExtra(&stripe.InvoiceItemCreateParams{
				Customer: stripe.String("cus_a"), Currency: stripe.String("usd"), Quantity: stripe.Int64(1_500_000_000_000),
			}, "unit_amount_decimal", "0.000000000001"),
			want: itemView{
				Object: "invoiceitem", Customer: "cus_a", Currency: "usd", Amount: 2, Quantity: 1_500_000_000_000,
				Metadata: map[string]string{}, PeriodStart: epoch, PeriodEnd: epoch, Date: epoch, UnitAmountDecimal: 1e-12,
			},
		},
		{
			name: "metadata at the limits",
			params: func() *stripe.InvoiceItemCreateParams {
				p := usd(1, "in_draft", "")
				p.Metadata = manyKeys(49)
				p.Metadata[strings.Repeat("k", 40)] = strings.Repeat("v", 500)
				return p
			}(),
			want: itemView{
				Object: "invoiceitem", Customer: "cus_a", Invoice: "in_draft", Currency: "usd", Amount: 1, Quantity: 1,
				Metadata: func() map[string]string {
					md := manyKeys(49)
					md[strings.Repeat("k", 40)] = strings.Repeat("v", 500)
					return md
				}(),
				PeriodStart: epoch, PeriodEnd: epoch, Date: epoch, UnitAmountDecimal: 1,
			},
		},
		{
			name:    "open invoice is not editable",
			params:  usd(1, "in_open", ""),
			wantErr: badRequest("invoice_not_editable", "invoice"),
		},
		{
			name:    "currency differs from the invoice's",
			params:  usd(1, "in_eur", ""),
			wantErr: badRequest("", "currency"),
		},
		{
			name: "invoice of another customer",
			params: &stripe.InvoiceItemCreateParams{
				Customer: stripe.String("cus_a"), Invoice: stripe.String("in_b"), Currency: stripe.String("usd"), Amount: stripe.Int64(1),
			},
			wantErr: badRequest("", "invoice"),
		},
		{
			name:    "unknown invoice",
			params:  usd(1, "in_nope", ""),
			wantErr: badRequest("resource_missing", "invoice"),
		},
		{
			name:    "unknown customer",
			params:  &stripe.InvoiceItemCreateParams{Customer: stripe.String("cus_nope"), Currency: stripe.String("usd"), Amount: stripe.Int64(1)},
			wantErr: badRequest("resource_missing", "customer"),
		},
		{
			name:    "customer missing",
			params:  &stripe.InvoiceItemCreateParams{Currency: stripe.String("usd"), Amount: stripe.Int64(1)},
			wantErr: badRequest("parameter_missing", "customer"),
		},
		{
			name:    "currency missing",
			params:  &stripe.InvoiceItemCreateParams{Customer: stripe.String("cus_a"), Amount: stripe.Int64(1)},
			wantErr: badRequest("parameter_missing", "currency"),
		},
		{
			name:    "currency not lowercase",
			params:  &stripe.InvoiceItemCreateParams{Customer: stripe.String("cus_a"), Currency: stripe.String("USD"), Amount: stripe.Int64(1)},
			wantErr: badRequest("", "currency"),
		},
		{
			name:     "unit_amount was removed in basil",
			params:   withExtra(usd(1, "", ""), "unit_amount", "5"),
			wantErr:  badRequest("parameter_unknown", "unit_amount"),
			wantText: "Received unknown parameter: unit_amount",
		},
		{
			name:     "unknown parameter",
			params:   withExtra(usd(1, "", ""), "colour", "blue"),
			wantErr:  badRequest("parameter_unknown", "colour"),
			wantText: "Received unknown parameter: colour",
		},
		{
			name: "a Stripe parameter the fake does not model",
			params: func() *stripe.InvoiceItemCreateParams {
				p := usd(1, "", "")
				p.Subscription = stripe.String("sub_1")
				return p
			}(),
			wantErr: badRequest("parameter_unknown", "subscription"),
		},
		{
			name:    "neither amount nor unit_amount_decimal",
			params:  &stripe.InvoiceItemCreateParams{Customer: stripe.String("cus_a"), Currency: stripe.String("usd")},
			wantErr: badRequest("parameter_missing", "amount"),
		},
		{
			name: "amount and unit_amount_decimal",
			params: func() *stripe.InvoiceItemCreateParams {
				p := usd(1, "", "")
				p.UnitAmountDecimal = stripe.Float64(1)
				return p
			}(),
			wantErr: badRequest("parameters_exclusive", "amount"),
		},
		{
			name:    "unit_amount_decimal with 13 places",
			params:  withExtra(&stripe.InvoiceItemCreateParams{Customer: stripe.String("cus_a"), Currency: stripe.String("usd")}, "unit_amount_decimal", "0.0000000000001"),
			wantErr: badRequest("", "unit_amount_decimal"),
		},
		{
			name: "period start without end",
			params: func() *stripe.InvoiceItemCreateParams {
				p := usd(1, "", "")
				p.Period = &stripe.InvoiceItemCreatePeriodParams{Start: stripe.Int64(10)}
				return p
			}(),
			wantErr: badRequest("parameter_missing", "period[end]"),
		},
		{
			name: "period ends before it starts",
			params: func() *stripe.InvoiceItemCreateParams {
				p := usd(1, "", "")
				p.Period = &stripe.InvoiceItemCreatePeriodParams{Start: stripe.Int64(10), End: stripe.Int64(9)}
				return p
			}(),
			wantErr: badRequest("", "period[end]"),
		},
		{
			name:    "metadata with 51 keys",
			params:  func() *stripe.InvoiceItemCreateParams { p := usd(1, "", ""); p.Metadata = manyKeys(51); return p }(),
			wantErr: badRequest("", "metadata"),
		},
		{
			name: "metadata key of 41 characters",
			params: func() *stripe.InvoiceItemCreateParams {
				p := usd(1, "", "")
				p.Metadata = map[string]string{strings.Repeat("k", 41): "v"}
				return p
			}(),
			wantErr: badRequest("", "metadata["+strings.Repeat("k", 41)+"]"),
		},
		{
			name: "metadata value of 501 characters",
			params: func() *stripe.InvoiceItemCreateParams {
				p := usd(1, "", "")
				p.Metadata = map[string]string{"k": strings.Repeat("v", 501)}
				return p
			}(),
			wantErr: badRequest("", "metadata[k]"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, sc := newFake(t)
			got, err := create(sc, tt.params)
			if diff := cmp.Diff(tt.wantErr, viewErr(t, err)); diff != "" {
				t.Fatalf("error mismatch (-want +got):\n%s", diff)
			}
			if err != nil {
				if msg := asStripeErr(t, err).Msg; !strings.Contains(msg, tt.wantText) {
					t.Errorf("message %q does not contain %q", msg, tt.wantText)
				}
				if n := len(f.Items("cus_a")) + len(f.Items("cus_nope")); n != 0 {
					t.Errorf("a failed create left %d items", n)
				}
				return
			}
			if diff := cmp.Diff(tt.want, viewItem(got)); diff != "" {
				t.Errorf("item mismatch (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(got.ID, "ii_") {
				t.Errorf("id %q does not start with ii_", got.ID)
			}
			if !strings.HasPrefix(got.LastResponse.RequestID, "req_") {
				t.Errorf("Request-Id %q does not start with req_", got.LastResponse.RequestID)
			}
		})
	}
}

func TestCreateItemIsStored(t *testing.T) {
	f, sc := newFake(t)
	p := usd(700, "in_draft", "key-1")
	p.Description = stripe.String("Storage")
	p.Metadata = map[string]string{"line": "l1"}
	got, err := create(sc, p)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := create(sc, usd(5, "", "key-2"))
	if err != nil {
		t.Fatal(err)
	}

	want := []stripefake.Item{
		{
			ID: got.ID, Customer: "cus_a", Invoice: "in_draft", Currency: "usd", Description: "Storage",
			Amount: 700, Quantity: 1, UnitAmountDecimal: "700", PeriodStart: epoch, PeriodEnd: epoch, Metadata: map[string]string{"line": "l1"},
			Created: epoch, IdempotencyKey: "key-1",
		},
		{
			ID: pending.ID, Customer: "cus_a", Currency: "usd", Amount: 5, Quantity: 1, UnitAmountDecimal: "5", PeriodStart: epoch, PeriodEnd: epoch,
			Metadata: map[string]string{}, Created: epoch, IdempotencyKey: "key-2",
		},
	}
	if diff := cmp.Diff(want, f.Items("cus_a")); diff != "" {
		t.Errorf("Items mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[:1], f.InvoiceItems("in_draft")); diff != "" {
		t.Errorf("InvoiceItems mismatch (-want +got):\n%s", diff)
	}
	if got := f.Items("cus_b"); got != nil {
		t.Errorf("Items(cus_b) = %v, want none", got)
	}
}

func TestCreateItemInvoiceLimit(t *testing.T) {
	f, sc := newFake(t)
	for i := range 250 {
		if _, err := create(sc, usd(1, "in_draft", "")); err != nil {
			t.Fatalf("item %d: %v", i+1, err)
		}
	}
	_, err := create(sc, usd(1, "in_draft", ""))
	want := errView{Status: http.StatusBadRequest, Type: stripe.ErrorTypeInvalidRequest, Param: "invoice"}
	if diff := cmp.Diff(want, viewErr(t, err)); diff != "" {
		t.Errorf("item 251 error mismatch (-want +got):\n%s", diff)
	}
	if n := len(f.InvoiceItems("in_draft")); n != 250 {
		t.Errorf("invoice has %d items, want 250", n)
	}
	if _, err := create(sc, usd(1, "", "")); err != nil {
		t.Errorf("a pending item after the invoice is full: %v", err)
	}
}
