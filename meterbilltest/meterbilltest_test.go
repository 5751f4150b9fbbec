package meterbilltest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/meterbilltest"
)

// TestKit drives meterbill's handler with the kit alone, as a user's test would: the events
// built here are accepted and acted on, a wrong secret is refused, and the fake cluster meters.
func TestKit(t *testing.T) {
	ctx := context.Background()
	const secret = "whsec_test_0123456789abcdef"
	calls := meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}
	plan, err := meterbill.NewPlan(meterbill.Price{Metric: calls, Description: "API calls", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := meterbilltest.StartCluster(meterbilltest.ClusterOptions{Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cluster.Close() }()
	meter, err := meterbill.DialUnimeter(ctx, cluster.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = meter.Close() }()
	if err := meter.Define(ctx, calls); err != nil {
		t.Fatal(err)
	}
	april := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	if _, err := meter.Ingest(ctx, []meterbill.Event{{Account: 7, Metric: calls.Code, Value: meterbill.Units(1), Time: april.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}

	stripe := meterbilltest.NewStripe()
	defer stripe.Close()
	stripe.AddCustomer("cus_7", nil)
	sub := meterbilltest.Subscription{ID: "sub_7", Customer: "cus_7", StartDate: april.AddDate(0, -2, 0).Unix(), Metadata: map[string]string{"meter_account": "7"}}
	stripe.AddSubscription(sub)
	sc, err := meterbill.NewStripeClient("sk_test_kit", meterbill.WithStripeURL(stripe.URL))
	if err != nil {
		t.Fatal(err)
	}
	handler, err := meterbill.NewHandler(meter, sc, meterbill.SubscriptionMetadataAccount("meter_account"), plan, []string{secret})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	defer srv.Close()

	tests := []struct {
		name       string
		payload    []byte
		secret     string
		wantStatus int
		wantBody   string
	}{
		{name: "signed with another secret", payload: meterbilltest.SubscriptionDeleted(sub, "usd", april.AddDate(0, 0, 20), april, april.AddDate(0, 1, 0)),
			secret: "whsec_other_0123456789", wantStatus: http.StatusBadRequest},
		{name: "subscription ended on April 21: a final invoice", payload: meterbilltest.SubscriptionDeleted(sub, "usd", april.AddDate(0, 0, 20), april, april.AddDate(0, 1, 0)),
			secret: secret, wantStatus: http.StatusOK, wantBody: `{"outcome":"billed",`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.DefaultClient.Do(meterbilltest.NewWebhookRequest(srv.URL, tt.payload, tt.secret))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.HasPrefix(string(body), tt.wantBody) {
				t.Errorf("answer %d %q, want %d %q…", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	items := stripe.Items("cus_7")
	if len(items) != 1 || items[0].Amount != 1 || items[0].Invoice == "" {
		t.Errorf("Stripe holds %+v, want April's one call (1 ¢) on the final invoice", items)
	}
}
