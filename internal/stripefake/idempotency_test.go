package stripefake_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82"

	"github.com/meterbill/meterbill/internal/stripefake"
)

func TestIdempotentReplay(t *testing.T) {
	f, sc := newFake(t)
	first, err := create(sc, usd(100, "in_draft", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	// The same parameters in another order, as another client would send them.
	p := &stripe.InvoiceItemCreateParams{
		Amount: stripe.Int64(100), Invoice: stripe.String("in_draft"),
		Currency: stripe.String("usd"), Customer: stripe.String("cus_a"),
	}
	p.SetIdempotencyKey("k1")
	again, err := create(sc, p)
	if err != nil {
		t.Fatal(err)
	}

	if again.ID != first.ID {
		t.Errorf("replay id = %s, want %s", again.ID, first.ID)
	}
	if !bytes.Equal(again.LastResponse.RawJSON, first.LastResponse.RawJSON) {
		t.Errorf("replayed body differs:\n%s\n%s", first.LastResponse.RawJSON, again.LastResponse.RawJSON)
	}
	if got := again.LastResponse.Header.Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("Idempotent-Replayed = %q, want true", got)
	}
	if got := first.LastResponse.Header.Get("Idempotent-Replayed"); got != "" {
		t.Errorf("first answer has Idempotent-Replayed = %q", got)
	}
	if got := again.LastResponse.IdempotencyKey; got != "k1" {
		t.Errorf("Idempotency-Key echoed = %q, want k1", got)
	}
	if n := len(f.Items("cus_a")); n != 1 {
		t.Errorf("%d items, want 1", n)
	}
}

func TestIdempotencyKeyReusedWithOtherParams(t *testing.T) {
	f, sc := newFake(t)
	if _, err := create(sc, usd(100, "in_draft", "k1")); err != nil {
		t.Fatal(err)
	}
	_, err := create(sc, usd(101, "in_draft", "k1"))
	want := errView{Status: http.StatusBadRequest, Type: stripe.ErrorTypeIdempotency}
	if diff := cmp.Diff(want, viewErr(t, err)); diff != "" {
		t.Errorf("error mismatch (-want +got):\n%s", diff)
	}
	if msg := asStripeErr(t, err).Msg; !strings.HasPrefix(msg, "Keys for idempotent requests can only be used with the same parameters") {
		t.Errorf("message = %q", msg)
	}
	if n := len(f.Items("cus_a")); n != 1 {
		t.Errorf("%d items, want 1", n)
	}
}

func TestIdempotencyValidationErrorsAreNotStored(t *testing.T) {
	f, sc := newFake(t)
	bad := usd(1, "in_draft", "k1")
	bad.AddExtra("unit_amount", "1")
	if _, err := create(sc, bad); err == nil {
		t.Fatal("unit_amount accepted")
	}
	// Stripe stores no result for a request that failed validation, so the
	// key is still free for a correct request.
	if _, err := create(sc, usd(1, "in_draft", "k1")); err != nil {
		t.Fatalf("after a validation error: %v", err)
	}
	// A request that got past validation and failed stores its error.
	f.SetInvoiceStatus("in_draft", "open")
	_, err1 := create(sc, usd(2, "in_draft", "k2"))
	f.SetInvoiceStatus("in_draft", "draft")
	_, err2 := create(sc, usd(2, "in_draft", "k2"))
	want := errView{Status: http.StatusBadRequest, Type: stripe.ErrorTypeInvalidRequest, Code: "invoice_not_editable", Param: "invoice"}
	for i, err := range []error{err1, err2} {
		if diff := cmp.Diff(want, viewErr(t, err)); diff != "" {
			t.Errorf("attempt %d: error mismatch (-want +got):\n%s", i+1, diff)
		}
	}
	if got := asStripeErr(t, err2).LastResponse.Header.Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("second attempt: Idempotent-Replayed = %q, want true", got)
	}
}

func TestIdempotencyConcurrentDuplicates(t *testing.T) {
	t.Run("duplicates while the first is in flight get 409, later ones the replay", func(t *testing.T) {
		f, sc := newFake(t)
		f.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Times: 1, Delay: 500 * time.Millisecond})
		type result struct {
			item *stripe.InvoiceItem
			err  error
		}
		firstDone := make(chan result, 1)
		go func() {
			it, err := create(sc, usd(100, "in_draft", "k1"))
			firstDone <- result{it, err}
		}()
		// The create is done before the delayed answer.
		waitFor(t, "the first create", func() bool { return len(f.Items("cus_a")) == 1 })

		var wg sync.WaitGroup
		errs := make([]error, 5)
		for i := range errs {
			wg.Go(func() { _, errs[i] = create(sc, usd(100, "in_draft", "k1")) })
		}
		wg.Wait()
		want := errView{Status: http.StatusConflict, Type: stripe.ErrorTypeInvalidRequest, Code: stripe.ErrorCodeIdempotencyKeyInUse}
		for i, err := range errs {
			if diff := cmp.Diff(want, viewErr(t, err)); diff != "" {
				t.Errorf("duplicate %d: error mismatch (-want +got):\n%s", i, diff)
			}
		}

		first := <-firstDone
		if first.err != nil {
			t.Fatal(first.err)
		}
		again, err := create(sc, usd(100, "in_draft", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != first.item.ID || again.LastResponse.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("after the first finished: id %s replayed %q, want %s replayed", again.ID,
				again.LastResponse.Header.Get("Idempotent-Replayed"), first.item.ID)
		}
		if n := len(f.Items("cus_a")); n != 1 {
			t.Errorf("%d items, want 1", n)
		}
	})

	t.Run("a burst makes exactly one item", func(t *testing.T) {
		f, sc := newFake(t)
		f.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Times: 1, Delay: 200 * time.Millisecond})
		var wg sync.WaitGroup
		items := make([]*stripe.InvoiceItem, 10)
		errs := make([]error, 10)
		for i := range items {
			wg.Go(func() { items[i], errs[i] = create(sc, usd(100, "in_draft", "k1")) })
		}
		wg.Wait()
		stored := f.Items("cus_a")
		if len(stored) != 1 {
			t.Fatalf("%d items, want 1", len(stored))
		}
		for i, err := range errs {
			if err != nil {
				if se := asStripeErr(t, err); se.Code != stripe.ErrorCodeIdempotencyKeyInUse {
					t.Errorf("request %d: %v, want success or idempotency_key_in_use", i, err)
				}
				continue
			}
			if items[i].ID != stored[0].ID {
				t.Errorf("request %d: id %s, want %s", i, items[i].ID, stored[0].ID)
			}
		}
	})
}

func TestIdempotencyAfterApply500(t *testing.T) {
	f, sc := newFake(t)
	f.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Status: http.StatusInternalServerError, Times: 1, AfterApply: true})

	_, err1 := create(sc, usd(100, "in_draft", "k1"))
	_, err2 := create(sc, usd(100, "in_draft", "k1"))

	want := errView{Status: http.StatusInternalServerError, Type: stripe.ErrorTypeAPI}
	for i, err := range []error{err1, err2} {
		if diff := cmp.Diff(want, viewErr(t, err)); diff != "" {
			t.Errorf("attempt %d: error mismatch (-want +got):\n%s", i+1, diff)
		}
	}
	if got := asStripeErr(t, err2).LastResponse.Header.Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("retry: Idempotent-Replayed = %q, want true", got)
	}
	items := f.InvoiceItems("in_draft")
	if len(items) != 1 || items[0].IdempotencyKey != "k1" {
		t.Fatalf("items = %+v, want the one created under k1", items)
	}
	// The fault is used up: a new key creates a second item.
	if _, err := create(sc, usd(100, "in_draft", "k2")); err != nil {
		t.Fatal(err)
	}
	if n := len(f.InvoiceItems("in_draft")); n != 2 {
		t.Errorf("%d items, want 2", n)
	}
}

func TestIdempotencyKeyExpires(t *testing.T) {
	f, sc := newFake(t)
	first, err := create(sc, usd(100, "", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	f.Advance(23 * time.Hour)
	replay, err := create(sc, usd(100, "", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	if replay.ID != first.ID {
		t.Errorf("after 23h: id %s, want the replay of %s", replay.ID, first.ID)
	}
	f.Advance(2 * time.Hour)
	fresh, err := create(sc, usd(100, "", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	if fresh.ID == first.ID || fresh.LastResponse.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("after 25h: id %s (first %s) replayed %q, want a new item", fresh.ID, first.ID,
			fresh.LastResponse.Header.Get("Idempotent-Replayed"))
	}
	if got, want := fresh.Date, epoch+int64(25*time.Hour/time.Second); got != want {
		t.Errorf("new item dated %d, want %d", got, want)
	}
	if n := len(f.Items("cus_a")); n != 2 {
		t.Errorf("%d items, want 2", n)
	}
}

func TestClientTimeoutThenRetry(t *testing.T) {
	f, sc := newFake(t)
	f.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Times: 1, Delay: 10 * time.Second})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := sc.V1InvoiceItems.Create(ctx, usd(100, "in_draft", "k1")); err == nil {
		t.Fatal("no error from a timed-out request")
	}
	// Stripe did the work although the client gave up; the fake stops
	// delaying once the client is gone.
	waitFor(t, "the first request to finish", func() bool { return f.Requests()[0].Status != 0 })
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the delay was not cut short by the client's timeout: %v", d)
	}
	retry, err := create(sc, usd(100, "in_draft", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	items := f.InvoiceItems("in_draft")
	if len(items) != 1 || retry.ID != items[0].ID || retry.LastResponse.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry got %s (replayed %q), items %v: want the replay of the single item", retry.ID,
			retry.LastResponse.Header.Get("Idempotent-Replayed"), ids(items))
	}
}
