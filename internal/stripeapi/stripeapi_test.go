package stripeapi_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill/internal/stripeapi"
	"github.com/meterbill/meterbill/internal/stripefake"
)

// TestPeriodEndIsHalfOpenHereInclusiveOnStripe: Stripe's period end is inclusive, meterbill's
// exclusive; the adapter converts both ways.
func TestPeriodEndIsHalfOpenHereInclusiveOnStripe(t *testing.T) {
	fake := stripefake.New()
	defer fake.Close()
	fake.AddCustomer("cus_a", map[string]string{"meter_account": "7"})
	fake.AddInvoice(stripefake.Invoice{ID: "in_1", Customer: "cus_a", Currency: "usd", Status: "draft", PeriodStart: 100, PeriodEnd: 200,
		Subscription: "sub_1", SubscriptionMetadata: map[string]string{"k": "v"}})
	c := stripeapi.New("sk_test_x", fake.URL, nil, slog.New(slog.DiscardHandler), nil)
	ctx := context.Background()
	from, to := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)

	created, err := c.CreateInvoiceItem(ctx, stripeapi.Item{Customer: "cus_a", Invoice: "in_1", Currency: "usd", Description: "d", Amount: 5,
		PeriodStart: from, PeriodEnd: to, Metadata: map[string]string{"a": "b"}}, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	onStripe := fake.Items("cus_a")[0]
	if onStripe.PeriodEnd != to.Unix()-1 || onStripe.PeriodStart != from.Unix() {
		t.Errorf("sent period [%d, %d], want [%d, %d] (inclusive end)", onStripe.PeriodStart, onStripe.PeriodEnd, from.Unix(), to.Unix()-1)
	}
	listed, err := c.InvoiceItems(ctx, "cus_a", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := stripeapi.Item{ID: created.ID, Customer: "cus_a", Invoice: "in_1", Currency: "usd", Description: "d", Amount: 5, PeriodStart: from, PeriodEnd: to, Metadata: map[string]string{"a": "b"}}
	if diff := cmp.Diff([]stripeapi.Item{want}, listed); diff != "" {
		t.Errorf("listed items mismatch (-want +got):\n%s", diff)
	}
	inv, err := c.Invoice(ctx, "in_1")
	if err != nil {
		t.Fatal(err)
	}
	wantInv := stripeapi.Invoice{ID: "in_1", Customer: "cus_a", Currency: "usd", Status: "draft", PeriodStart: time.Unix(100, 0).UTC(), PeriodEnd: time.Unix(200, 0).UTC(), SubscriptionMetadata: map[string]string{"k": "v"}, Subscription: "sub_1", Metadata: map[string]string{}}
	if diff := cmp.Diff(wantInv, inv); diff != "" {
		t.Errorf("invoice mismatch (-want +got):\n%s", diff)
	}
	md, err := c.CustomerMetadata(ctx, "cus_a")
	if err != nil || md["meter_account"] != "7" {
		t.Errorf("customer metadata = %v, %v", md, err)
	}
	_, err = c.Invoice(ctx, "in_missing")
	var se *stripeapi.Error
	if !errors.As(err, &se) || se.Status != 404 || se.Op != "retrieve invoice" {
		t.Errorf("missing invoice: %v, want a 404 *Error", err)
	}
}

// TestSDKLogsAtDebug: stripe-go's own lines (three a call, one of them "Not retrying request"
// after a success, and an error line for every non-2xx that meterbill handles) reach the
// logger at DEBUG only.
func TestSDKLogsAtDebug(t *testing.T) {
	fake := stripefake.New()
	defer fake.Close()
	fake.AddCustomer("cus_a", map[string]string{"meter_account": "7"})
	levels := map[slog.Level]int{}
	var mu sync.Mutex
	h := &levelCounter{levels: levels, mu: &mu}
	c := stripeapi.New("sk_test_x", fake.URL, nil, slog.New(h), nil)
	if _, err := c.CustomerMetadata(context.Background(), "cus_a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CustomerMetadata(context.Background(), "cus_missing"); err == nil {
		t.Fatal("Customer(cus_missing) = nil error, want a 404")
	}
	mu.Lock()
	defer mu.Unlock()
	if levels[slog.LevelDebug] == 0 {
		t.Errorf("no SDK line at DEBUG (%v): the test no longer sees stripe-go's logging", levels)
	}
	delete(levels, slog.LevelDebug)
	if diff := cmp.Diff(map[slog.Level]int{}, levels); diff != "" {
		t.Errorf("SDK lines above DEBUG (-want +got):\n%s", diff)
	}
}

// levelCounter is a slog.Handler that counts records by level, at every level.
type levelCounter struct {
	mu     *sync.Mutex
	levels map[slog.Level]int
}

func (h *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.levels[r.Level]++
	h.mu.Unlock()
	return nil
}
func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelCounter) WithGroup(string) slog.Handler      { return h }
