package meterbill

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Resolution errors.
var (
	// ErrUnknownCustomer reports a Stripe customer with no meter account: a customer who is not
	// metered. The webhook handler answers 200 and skips the invoice, and the [Report] says so.
	ErrUnknownCustomer = errors.New("meterbill: unknown customer")
	// ErrInvalidAccount reports a mapping that exists but does not name a valid account, such as
	// metadata "account=abc" or "0". The webhook handler answers 400 (it is wrong data, not a
	// failure of this server); Stripe redelivers after any non-2xx answer and keeps the invoice a
	// draft meanwhile: fix the mapping within Stripe's three days of retries and the invoice is
	// billed.
	ErrInvalidAccount = errors.New("meterbill: invalid account mapping")
)

// Customer is what the handler knows of a Stripe customer when an invoice is created. It is
// plain data.
type Customer struct {
	// ID is the Stripe customer id, "cus_…".
	ID string
	// SubscriptionMetadata is the metadata of the invoice's subscription, as the invoice.created
	// payload carries it (parent.subscription_details.metadata); nil for invoices without a
	// subscription.
	SubscriptionMetadata map[string]string
}

// AccountResolver maps a Stripe customer to a meter account. It returns an error wrapping
// [ErrUnknownCustomer] for customers who are not metered; any other error makes the webhook
// answer 500 so that Stripe retries. Implementations must be safe for concurrent use.
type AccountResolver interface {
	ResolveAccount(ctx context.Context, c Customer) (uint64, error)
}

// AccountResolverFunc adapts a function to [AccountResolver].
type AccountResolverFunc func(ctx context.Context, c Customer) (uint64, error)

var _ AccountResolver = AccountResolverFunc(nil)

// ResolveAccount calls f.
func (f AccountResolverFunc) ResolveAccount(ctx context.Context, c Customer) (uint64, error) {
	return f(ctx, c)
}

// StaticAccounts resolves customers through a fixed map from customer id to account. The map is
// copied. It fails with [ErrInvalidAccount] if any account is 0.
func StaticAccounts(accounts map[string]uint64) (AccountResolverFunc, error) {
	m := make(map[string]uint64, len(accounts))
	for id, acct := range accounts {
		if acct == 0 {
			return nil, fmt.Errorf("%w: customer %s maps to account 0", ErrInvalidAccount, quote(id))
		}
		m[id] = acct
	}
	return func(_ context.Context, c Customer) (uint64, error) {
		if acct, ok := m[c.ID]; ok {
			return acct, nil
		}
		return 0, fmt.Errorf("%w %s: not in the static map", ErrUnknownCustomer, quote(c.ID))
	}, nil
}

// SubscriptionMetadataAccount resolves customers through their subscription's metadata key,
// which the invoice.created payload carries: no API call. Set it when you create the
// subscription, e.g. metadata[meter_account]=42. A missing key is [ErrUnknownCustomer]; a value
// that is not a positive integer is [ErrInvalidAccount].
func SubscriptionMetadataAccount(key string) AccountResolverFunc {
	return func(_ context.Context, c Customer) (uint64, error) {
		v, ok := c.SubscriptionMetadata[key]
		if !ok {
			return 0, fmt.Errorf("%w %s: no subscription metadata %s", ErrUnknownCustomer, quote(c.ID), quote(key))
		}
		return parseAccount(c.ID, "subscription metadata "+key, v)
	}
}

// FirstAccount tries resolvers in order and returns the first account found. A resolver's
// [ErrUnknownCustomer] moves on to the next; any other error stops.
func FirstAccount(resolvers ...AccountResolver) AccountResolverFunc {
	return func(ctx context.Context, c Customer) (uint64, error) {
		for _, r := range resolvers {
			acct, err := r.ResolveAccount(ctx, c)
			if !errors.Is(err, ErrUnknownCustomer) {
				return acct, err
			}
		}
		return 0, fmt.Errorf("%w %s: no resolver knows it", ErrUnknownCustomer, quote(c.ID))
	}
}

func parseAccount(customer, where, v string) (uint64, error) {
	acct, err := strconv.ParseUint(v, 10, 64)
	if err != nil || acct == 0 {
		return 0, fmt.Errorf("%w: customer %s: %s is %s, want a positive integer", ErrInvalidAccount, quote(customer), where, quote(v))
	}
	return acct, nil
}

var _ AccountResolver = (*CustomerMetadataResolver)(nil)

// CustomerMetadataResolver resolves customers through a key of the Stripe customer's own
// metadata, with one API call per customer, cached with a bound. It is safe for concurrent use.
type CustomerMetadataResolver struct {
	client StripeClient
	key    string
	now    func() time.Time
	size   int
	ttl    time.Duration

	mu    sync.Mutex
	lru   *list.List // of *cacheEntry, most recent first
	index map[string]*list.Element
}

type cacheEntry struct {
	customer string
	account  uint64
	expires  time.Time
}

// CustomerMetadataAccount returns a resolver that reads the account from the Stripe customer's
// metadata key through client. Found accounts are cached (see [WithCache]); unknown customers
// are not, so a customer mapped later is found at once. Options: [WithCache], [WithObserver],
// [WithLogger].
func CustomerMetadataAccount(client StripeClient, key string, opts ...ResolverOption) (*CustomerMetadataResolver, error) {
	if client == nil || key == "" {
		return nil, errors.New("meterbill: CustomerMetadataAccount needs a Stripe client and a metadata key")
	}
	o, err := newOptions(opts, ResolverOption.applyResolver)
	if err != nil {
		return nil, err
	}
	return &CustomerMetadataResolver{
		client: observedStripe{StripeClient: client, obs: o.observer, log: o.logger}, key: key, now: o.now, size: o.cacheSize, ttl: o.cacheTTL,
		lru: list.New(), index: map[string]*list.Element{},
	}, nil
}

// ResolveAccount implements [AccountResolver].
func (r *CustomerMetadataResolver) ResolveAccount(ctx context.Context, c Customer) (uint64, error) {
	if acct, ok := r.cached(c.ID); ok {
		return acct, nil
	}
	md, err := r.client.CustomerMetadata(ctx, c.ID)
	if err != nil {
		return 0, fmt.Errorf("meterbill: reading customer %s: %w", quote(c.ID), err)
	}
	v, ok := md[r.key]
	if !ok {
		return 0, fmt.Errorf("%w %s: no customer metadata %s", ErrUnknownCustomer, quote(c.ID), quote(r.key))
	}
	acct, err := parseAccount(c.ID, "customer metadata "+r.key, v)
	if err == nil {
		r.store(c.ID, acct)
	}
	return acct, err
}

func (r *CustomerMetadataResolver) cached(customer string) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	el, ok := r.index[customer]
	if !ok {
		return 0, false
	}
	e := el.Value.(*cacheEntry)
	if !r.now().Before(e.expires) {
		r.lru.Remove(el)
		delete(r.index, customer)
		return 0, false
	}
	r.lru.MoveToFront(el)
	return e.account, true
}

func (r *CustomerMetadataResolver) store(customer string, account uint64) {
	if r.size == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := &cacheEntry{customer: customer, account: account, expires: r.now().Add(r.ttl)}
	if el, ok := r.index[customer]; ok {
		el.Value = e
		r.lru.MoveToFront(el)
		return
	}
	r.index[customer] = r.lru.PushFront(e)
	for r.lru.Len() > r.size {
		oldest := r.lru.Back()
		r.lru.Remove(oldest)
		delete(r.index, oldest.Value.(*cacheEntry).customer)
	}
}
