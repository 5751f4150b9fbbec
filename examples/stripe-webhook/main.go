// Command stripe-webhook is a billing server: Stripe's invoice.created webhook adds each
// customer's metered usage to their draft invoice, exactly once. It is the server of Unimeter's
// Stripe integration guide, rewritten with meterbill.
//
// Run it against your Stripe test account:
//
//	export STRIPE_SECRET_KEY=sk_test_…             # or a restricted key: customers and invoices read, invoice items write
//	export STRIPE_WEBHOOK_SECRET=whsec_…           # from `stripe listen`; comma-separate two while rolling a secret
//	go run ./examples/stripe-webhook &
//	stripe listen --forward-to localhost:4242/webhook
//
// Then record usage, and let a renewal bill it:
//
//	curl -X POST -H 'Authorization: Bearer demo_42' localhost:4242/api/calls   # one metered call for account 42; repeat
//	curl -H 'Authorization: Bearer demo_42' localhost:4242/api/usage           # this month's usage so far
//
// In the Stripe dashboard, in test mode: create a test clock, a customer on it, and a monthly
// subscription (any price) with the metadata meter_account=42; then advance the clock by a month.
// The renewal's invoice.created reaches the server, which adds the month's calls to the draft; the
// delivery's response in the dashboard reads {"outcome":"billed","invoice":"in_…","lines_added":1,…}.
// The bearer token stands in for your authentication (see demoAccount).
//
// Other settings: ADDR (default :4242) and STRIPE_API_URL (another API base URL, such as a
// stripe-mock). Customers are mapped to meter accounts through the subscription's metadata
// "meter_account", or failing that the customer's. Usage lives in the Unimeter cluster named by
// BILLING_NODES ("host:7001,host:7001,…"), or, when it is unset, in an in-process meter (which
// only a test or a demo should rely on: it forgets everything when the process exits).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meterbill/meterbill"
)

// The metrics billed and their prices, in US cents as exact decimals.
var prices = []meterbill.Price{
	{
		Metric:      meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1},
		Description: "API calls",
		Currencies:  map[string][]meterbill.Tier{"usd": {{Unit: "0.1"}}}, // $0.001 per call, not unit_amount 10
	},
}

type config struct {
	addr, apiKey, apiURL string
	secrets              []string
	nodes                []string // Unimeter seeds; none means the in-process meter
}

func configFromEnv() (config, error) {
	c := config{addr: os.Getenv("ADDR"), apiKey: os.Getenv("STRIPE_SECRET_KEY"), apiURL: os.Getenv("STRIPE_API_URL")}
	if c.addr == "" {
		c.addr = ":4242"
	}
	for s := range strings.SplitSeq(os.Getenv("STRIPE_WEBHOOK_SECRET"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.secrets = append(c.secrets, s)
		}
	}
	for n := range strings.SplitSeq(os.Getenv("BILLING_NODES"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			c.nodes = append(c.nodes, n)
		}
	}
	if c.apiKey == "" || len(c.secrets) == 0 {
		return c, errors.New("set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET")
	}
	return c, nil
}

// server is the wired app: its routes, the meter, and the recorder to close at shutdown.
type server struct {
	handler http.Handler
	meter   meterbill.Meter
	rec     *meterbill.Recorder
}

// newServer wires meterbill: the meter, the plan, the recorder and a small metered API, Stripe,
// the resolvers and the webhook handler.
func newServer(ctx context.Context, c config, logger *slog.Logger) (*server, error) {
	var meter meterbill.Meter = meterbill.NewMemoryMeter()
	if len(c.nodes) > 0 {
		um, err := meterbill.DialUnimeter(ctx, c.nodes, meterbill.WithLogger(logger))
		if err != nil {
			return nil, err
		}
		meter = um
	}
	plan, err := meterbill.NewPlan(prices...)
	if err != nil {
		return nil, err
	}
	rec, err := meterbill.NewRecorder(ctx, meter, plan.Metrics(), meterbill.WithLogger(logger)) // defines the metrics
	if err != nil {
		return nil, err
	}
	usage := meterbill.NewMiddleware(rec, "api_calls", demoAccount, meterbill.WithLogger(logger))
	stripeOpts := []meterbill.StripeClientOption{meterbill.WithLogger(logger)}
	if c.apiURL != "" {
		stripeOpts = append(stripeOpts, meterbill.WithStripeURL(c.apiURL))
	}
	sc, err := meterbill.NewStripeClient(c.apiKey, stripeOpts...)
	if err != nil {
		return nil, err
	}
	byCustomer, err := meterbill.CustomerMetadataAccount(sc, "meter_account")
	if err != nil {
		return nil, err
	}
	resolver := meterbill.FirstAccount(meterbill.SubscriptionMetadataAccount("meter_account"), byCustomer)
	webhook, err := meterbill.NewHandler(meter, sc, resolver, plan, c.secrets, meterbill.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhook", webhook)
	// The metered API: each successful call counts one api_calls event for the caller.
	mux.Handle("POST /api/calls", usage(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintln(w, `{"called":true}`)
	})))
	mux.HandleFunc("GET /api/usage", func(w http.ResponseWriter, r *http.Request) {
		acct, ok := demoAccount(r)
		if !ok {
			http.Error(w, "send Authorization: Bearer demo_<meter account>", http.StatusUnauthorized)
			return
		}
		m := prices[0].Metric
		u, err := meter.Query(r.Context(), acct, m, m.Bucket(time.Now()))
		if err != nil {
			http.Error(w, "meter unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(u)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
	return &server{handler: mux, meter: meter, rec: rec}, nil
}

// demoAccount stands in for your authentication, for trying the example only: the bearer token
// "demo_42" is meter account 42, so anyone can bill any account. A real app takes the account
// from the caller it authenticated.
func demoAccount(r *http.Request) (uint64, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer demo_")
	if !ok {
		return 0, false
	}
	acct, err := strconv.ParseUint(token, 10, 64)
	return acct, err == nil && acct > 0
}

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(logger); err != nil {
		logger.Error("stripe-webhook stopped", "err", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger) error {
	c, err := configFromEnv()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app, err := newServer(ctx, c, logger)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: c.addr, Handler: app.handler, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("listening", "addr", c.addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Let in-flight webhooks finish (each is bounded by the handler's deadline, 10 s), then
	// deliver the usage still queued.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return errors.Join(srv.Shutdown(shutdownCtx), app.rec.Close(shutdownCtx))
}
