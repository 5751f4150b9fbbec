package meterbill_test

import (
	"log/slog"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82"

	"github.com/meterbill/meterbill"
)

// TestOptionTypes pins which constructors each option compiles with: an option given to a
// constructor it does not apply to must not compile, so its type must not implement that
// constructor's option type. (A compile error cannot be asserted in a test; the method sets that
// decide it can.)
func TestOptionTypes(t *testing.T) {
	constructors := []struct {
		name string
		typ  reflect.Type
	}{
		{"NewHandler", reflect.TypeFor[meterbill.HandlerOption]()},
		{"NewStripeClient", reflect.TypeFor[meterbill.StripeClientOption]()},
		{"NewStripeClientFrom", reflect.TypeFor[meterbill.StripeClientFromOption]()},
		{"CustomerMetadataAccount", reflect.TypeFor[meterbill.ResolverOption]()},
		{"NewRecorder", reflect.TypeFor[meterbill.RecorderOption]()},
		{"NewMiddleware", reflect.TypeFor[meterbill.MiddlewareOption]()},
		{"DialUnimeter", reflect.TypeFor[meterbill.UnimeterOption]()},
	}
	tests := []struct {
		option any
		name   string
		want   []string
	}{
		{meterbill.WithLogger(slog.Default()), "WithLogger", []string{"NewHandler", "NewStripeClient", "CustomerMetadataAccount", "NewRecorder", "NewMiddleware", "DialUnimeter"}},
		{meterbill.WithObserver(nil), "WithObserver", []string{"NewHandler", "CustomerMetadataAccount", "NewRecorder"}},
		{meterbill.WithDeadline(time.Second), "WithDeadline", []string{"NewHandler"}},
		{meterbill.WithReportHook(nil), "WithReportHook", []string{"NewHandler"}},
		{meterbill.WithStripeURL(""), "WithStripeURL", []string{"NewStripeClient"}},
		{meterbill.WithHTTPClient(http.DefaultClient), "WithHTTPClient", []string{"NewStripeClient"}},
		{meterbill.WithStripeRateLimit(1), "WithStripeRateLimit", []string{"NewStripeClient", "NewStripeClientFrom"}},
		{meterbill.WithStripeAccount("acct_1"), "WithStripeAccount", []string{"NewStripeClient", "NewStripeClientFrom"}},
		{meterbill.WithItemParams(func(*stripe.InvoiceItemCreateParams) {}), "WithItemParams", []string{"NewStripeClient", "NewStripeClientFrom"}},
		{meterbill.WithCache(1, time.Second), "WithCache", []string{"CustomerMetadataAccount"}},
		{meterbill.WithQueueSize(1), "WithQueueSize", []string{"NewRecorder"}},
		{meterbill.WithDeliveryErrorHandler(nil), "WithDeliveryErrorHandler", []string{"NewRecorder"}},
		{meterbill.WithQueueWait(time.Second), "WithQueueWait", []string{"NewMiddleware"}},
		{meterbill.WithCountIf(nil), "WithCountIf", []string{"NewMiddleware"}},
		{meterbill.WithRequestTimeout(time.Second), "WithRequestTimeout", []string{"DialUnimeter"}},
		{meterbill.WithSyncIngest(), "WithSyncIngest", []string{"DialUnimeter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range constructors {
				if reflect.TypeOf(tt.option).Implements(c.typ) {
					got = append(got, c.name)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("constructors %s compiles with (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}
