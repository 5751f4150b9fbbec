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
// Other settings: ADDR (default :4242) and STRIPE_API_URL (another API base URL, such as a
// stripe-mock). Customers are mapped to meter accounts through the subscription's metadata
// "meter_account", or failing that the customer's. Usage lives in the Unimeter cluster named by
// BILLING_NODES ("host:7001,host:7001,…"), or, when it is unset, in an in-process meter (which
// only a test or a demo should rely on: it forgets everything when the process exits).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
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

// newServer wires meterbill: the meter, the plan, Stripe, the resolvers and the handler.
func newServer(ctx context.Context, c config, logger *slog.Logger) (http.Handler, meterbill.Meter, error) {
	var meter meterbill.Meter = meterbill.NewMemoryMeter()
	if len(c.nodes) > 0 {
		um, err := meterbill.DialUnimeter(ctx, c.nodes, meterbill.WithLogger(logger))
		if err != nil {
			return nil, nil, err
		}
		meter = um
	}
	plan, err := meterbill.NewPlan(prices...)
	if err != nil {
		return nil, nil, err
	}
	if err := meter.Define(ctx, plan.Metrics()...); err != nil {
		return nil, nil, err
	}
	stripeOpts := []meterbill.Option{meterbill.WithLogger(logger)}
	if c.apiURL != "" {
		stripeOpts = append(stripeOpts, meterbill.WithStripeURL(c.apiURL))
	}
	sc, err := meterbill.NewStripeClient(c.apiKey, stripeOpts...)
	if err != nil {
		return nil, nil, err
	}
	byCustomer, err := meterbill.CustomerMetadataAccount(sc, "meter_account")
	if err != nil {
		return nil, nil, err
	}
	resolver := meterbill.FirstAccount(meterbill.SubscriptionMetadataAccount("meter_account"), byCustomer)
	webhook, err := meterbill.NewHandler(meter, sc, resolver, plan, c.secrets, meterbill.WithLogger(logger))
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhook", webhook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
	return mux, meter, nil
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
	handler, _, err := newServer(ctx, c, logger)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: c.addr, Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("listening", "addr", c.addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Let in-flight webhooks finish: each is bounded by the handler's deadline (10 s).
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
