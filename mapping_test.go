package meterbill_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/meterbill/meterbill"
)

func TestResolvers(t *testing.T) {
	static, err := meterbill.StaticAccounts(map[string]uint64{"cus_a": 1})
	if err != nil {
		t.Fatal(err)
	}
	sub := meterbill.SubscriptionMetadataAccount("meter_account")
	chain := meterbill.FirstAccount(sub, static)
	custom := meterbill.AccountResolverFunc(func(_ context.Context, c meterbill.Customer) (uint64, error) {
		if c.ID == "cus_down" {
			return 0, errors.New("directory unavailable")
		}
		return 0, meterbill.ErrUnknownCustomer
	})
	tests := []struct {
		name     string
		resolver meterbill.AccountResolver
		customer meterbill.Customer
		want     uint64
		wantErr  error
		// wantOutage: an error that must not read as an unknown customer (the webhook answers 500).
		wantOutage bool
	}{
		{name: "static hit", resolver: static, customer: meterbill.Customer{ID: "cus_a"}, want: 1},
		{name: "static miss", resolver: static, customer: meterbill.Customer{ID: "cus_b"}, wantErr: meterbill.ErrUnknownCustomer},
		{name: "subscription metadata", resolver: sub, customer: meterbill.Customer{ID: "cus_b", SubscriptionMetadata: map[string]string{"meter_account": "77"}}, want: 77},
		{name: "no subscription", resolver: sub, customer: meterbill.Customer{ID: "cus_b"}, wantErr: meterbill.ErrUnknownCustomer},
		{name: "non-numeric account", resolver: sub, customer: meterbill.Customer{ID: "cus_b", SubscriptionMetadata: map[string]string{"meter_account": "acme"}}, wantErr: meterbill.ErrInvalidAccount},
		{name: "account zero", resolver: sub, customer: meterbill.Customer{ID: "cus_b", SubscriptionMetadata: map[string]string{"meter_account": "0"}}, wantErr: meterbill.ErrInvalidAccount},
		{name: "negative account", resolver: sub, customer: meterbill.Customer{ID: "cus_b", SubscriptionMetadata: map[string]string{"meter_account": "-3"}}, wantErr: meterbill.ErrInvalidAccount},
		{name: "chain falls through unknown", resolver: chain, customer: meterbill.Customer{ID: "cus_a"}, want: 1},
		{name: "chain stops at an invalid mapping", resolver: chain, customer: meterbill.Customer{ID: "cus_a", SubscriptionMetadata: map[string]string{"meter_account": "x"}}, wantErr: meterbill.ErrInvalidAccount},
		{name: "chain of nothing", resolver: meterbill.FirstAccount(), customer: meterbill.Customer{ID: "cus_a"}, wantErr: meterbill.ErrUnknownCustomer},
		{name: "func adapter outage is not unknown", resolver: custom, customer: meterbill.Customer{ID: "cus_down"}, wantOutage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.resolver.ResolveAccount(context.Background(), tt.customer)
			if tt.wantOutage {
				if err == nil || errors.Is(err, meterbill.ErrUnknownCustomer) {
					t.Errorf("err = %v, want an outage error that is not ErrUnknownCustomer", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) || got != tt.want {
				t.Errorf("ResolveAccount = %d, %v; want %d, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if _, err := meterbill.StaticAccounts(map[string]uint64{"cus_a": 0}); !errors.Is(err, meterbill.ErrInvalidAccount) {
		t.Errorf("StaticAccounts with account 0 = %v", err)
	}
}

// metadataStripe serves customer metadata and counts lookups.
type metadataStripe struct {
	stubStripe
	mu      sync.Mutex
	lookups int
	md      map[string]map[string]string
}

func (m *metadataStripe) CustomerMetadata(_ context.Context, id string) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookups++
	if id == "cus_down" {
		return nil, &meterbill.StripeError{Op: "retrieve customer", Status: 503}
	}
	return m.md[id], nil
}

func TestCustomerMetadataAccountCaches(t *testing.T) {
	now := date(2026, 4, 1)
	clock := func() time.Time { return now }
	st := &metadataStripe{md: map[string]map[string]string{
		"cus_a": {"meter_account": "1"}, "cus_b": {"meter_account": "2"}, "cus_c": {"meter_account": "3"}, "cus_new": {},
	}}
	r, err := meterbill.CustomerMetadataAccount(st, "meter_account", meterbill.WithCache(2, time.Minute), meterbill.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	resolve := func(id string) (uint64, error) {
		return r.ResolveAccount(context.Background(), meterbill.Customer{ID: id})
	}
	steps := []struct {
		name        string
		customer    string
		advance     time.Duration
		want        uint64
		wantErr     error
		wantOutage  bool
		wantLookups int
	}{
		{name: "first lookup", customer: "cus_a", want: 1, wantLookups: 1},
		{name: "cached", customer: "cus_a", want: 1, wantLookups: 1},
		{name: "second customer", customer: "cus_b", want: 2, wantLookups: 2},
		{name: "third evicts the least recent (a)", customer: "cus_c", want: 3, wantLookups: 3},
		{name: "b still cached", customer: "cus_b", want: 2, wantLookups: 3},
		{name: "a was evicted", customer: "cus_a", want: 1, wantLookups: 4},
		{name: "expired after the ttl", customer: "cus_a", advance: 2 * time.Minute, want: 1, wantLookups: 5},
		{name: "unknown is not cached", customer: "cus_new", wantErr: meterbill.ErrUnknownCustomer, wantLookups: 6},
		{name: "unknown asked again", customer: "cus_new", wantErr: meterbill.ErrUnknownCustomer, wantLookups: 7},
		{name: "outage is an error, not unknown", customer: "cus_down", wantOutage: true, wantLookups: 8},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		got, err := resolve(s.customer)
		if s.wantOutage {
			var se *meterbill.StripeError
			if !errors.As(err, &se) || errors.Is(err, meterbill.ErrUnknownCustomer) {
				t.Errorf("%s: err = %v, want a StripeError", s.name, err)
			}
		} else if got != s.want || !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
			t.Errorf("%s: = %d, %v; want %d, %v", s.name, got, err, s.want, s.wantErr)
		}
		if st.lookups != s.wantLookups {
			t.Errorf("%s: %d lookups, want %d", s.name, st.lookups, s.wantLookups)
		}
	}
	if _, err := meterbill.CustomerMetadataAccount(st, "meter_account", meterbill.WithCache(-1, time.Second)); err == nil {
		t.Error("a negative cache size was accepted by CustomerMetadataAccount")
	}
}
