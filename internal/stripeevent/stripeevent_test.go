package stripeevent

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stripe/stripe-go/v82/webhook"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name      string
		payload   string
		wantEvent Event
		wantInv   Invoice
		wantErr   bool
	}{
		{
			name:      "invoice with a customer id and subscription metadata",
			payload:   `{"id":"evt_1","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1","currency":"USD","status":"draft","period_start":10,"period_end":20,"parent":{"type":"subscription_details","subscription_details":{"metadata":{"meter_account":"42"}}}}}}`,
			wantEvent: Event{ID: "evt_1", Type: "invoice.created"},
			wantInv:   Invoice{ID: "in_1", Customer: "cus_1", Currency: "usd", Status: "draft", PeriodStart: 10, PeriodEnd: 20, SubscriptionMetadata: map[string]string{"meter_account": "42"}},
		},
		{
			name:      "expanded customer, no parent",
			payload:   `{"id":"evt_2","type":"invoice.created","data":{"object":{"id":"in_2","object":"invoice","customer":{"id":"cus_2","object":"customer"},"currency":"jpy","status":"open","period_start":5,"period_end":5,"parent":null}}}`,
			wantEvent: Event{ID: "evt_2", Type: "invoice.created"},
			wantInv:   Invoice{ID: "in_2", Customer: "cus_2", Currency: "jpy", Status: "open", PeriodStart: 5, PeriodEnd: 5},
		},
		{name: "other types decode only the envelope", payload: `{"id":"evt_3","type":"charge.succeeded","data":{"object":{"object":"charge"}}}`, wantEvent: Event{ID: "evt_3", Type: "charge.succeeded"}},
		{name: "truncated", payload: `{"id":"evt_1","type":"invoice.created","data":{"obj`, wantErr: true},
		{name: "no id", payload: `{"type":"invoice.created"}`, wantErr: true},
		{name: "not an invoice", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"ch_1","object":"charge"}}}`, wantErr: true},
		{name: "no customer", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","status":"draft"}}}`, wantErr: true},
		{name: "no period", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"c","currency":"usd","status":"draft"}}}`, wantErr: true},
		{name: "reversed period", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"c","currency":"usd","status":"draft","period_start":20,"period_end":10}}}`, wantErr: true},
		{name: "no currency", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"c","status":"draft","period_start":10,"period_end":20}}}`, wantErr: true},
		{name: "unknown currency shape", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"c","currency":"us$","status":"draft","period_start":10,"period_end":20}}}`, wantErr: true},
		{name: "string period", payload: `{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"c","status":"draft","period_start":"yesterday"}}}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, inv, err := Decode([]byte(tt.payload))
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrMalformed)) {
				t.Fatalf("Decode error = %v, want error %v wrapping ErrMalformed", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff([]any{tt.wantEvent, tt.wantInv}, []any{ev, inv}); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	now := time.Now().Truncate(time.Second) // headers carry whole seconds
	body := []byte(`{"id":"evt_1"}`)
	header := func(at time.Time, secret string) string {
		return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
	}
	// v1 is a valid signature of body at at, under whsec_a.
	v1 := func(at time.Time) string {
		return "v1=" + hex.EncodeToString(webhook.ComputeSignature(at, body, "whsec_a"))
	}
	unix := func(at time.Time) string { return strconv.FormatInt(at.Unix(), 10) }
	future := now.Add(time.Hour)
	tests := []struct {
		name    string
		header  string
		secrets []string
		wantOK  bool
		wantErr error // when set, the error Verify must wrap
	}{
		{name: "current secret", header: header(now, "whsec_a"), secrets: []string{"whsec_a"}, wantOK: true},
		{name: "second of two secrets", header: header(now, "whsec_b"), secrets: []string{"whsec_a", "whsec_b"}, wantOK: true},
		{name: "no matching secret", header: header(now, "whsec_c"), secrets: []string{"whsec_a", "whsec_b"}, wantErr: webhook.ErrNoValidSignature},
		{name: "stale", header: header(now.Add(-301*time.Second), "whsec_a"), secrets: []string{"whsec_a"}, wantErr: webhook.ErrTooOld},
		{name: "at the tolerance's edge, in the past", header: header(now.Add(-300*time.Second), "whsec_a"), secrets: []string{"whsec_a"}, wantOK: true},
		{name: "future", header: header(now.Add(301*time.Second), "whsec_a"), secrets: []string{"whsec_a"}, wantErr: ErrFuture},
		{name: "slightly ahead is tolerated", header: header(now.Add(30*time.Second), "whsec_a"), secrets: []string{"whsec_a"}, wantOK: true},
		{name: "empty header", header: "", secrets: []string{"whsec_a"}, wantErr: webhook.ErrNotSigned},
		{name: "garbage header", header: "t=abc,v1=zz", secrets: []string{"whsec_a"}, wantErr: webhook.ErrInvalidHeader},
		{name: "no secrets", header: header(now, "whsec_a")},
		{
			// stripe-go reads " t=" as an unknown part and checks the HMAC over the first t; a
			// parser that trims spaces would see a fresh time.
			name:    "future signature with a fresh t written as an ignored part",
			header:  "t=" + unix(future) + "," + v1(future) + ", t=" + unix(now),
			secrets: []string{"whsec_a"}, wantErr: ErrFuture,
		},
		{
			name:    "future signature followed by a second, fresh t",
			header:  "t=" + unix(future) + "," + v1(future) + "," + v1(now) + ",t=" + unix(now),
			secrets: []string{"whsec_a"}, wantErr: ErrTimestamps,
		},
		{
			name:    "fresh signature with a second t",
			header:  "t=" + unix(now) + "," + v1(now) + ",t=" + unix(now),
			secrets: []string{"whsec_a"}, wantErr: ErrTimestamps,
		},
		{name: "no t", header: v1(now), secrets: []string{"whsec_a"}, wantErr: ErrTimestamps},
		{name: "only \" t\"", header: " t=" + unix(now) + "," + v1(now), secrets: []string{"whsec_a"}, wantErr: ErrTimestamps},
		{name: "no v1", header: "t=" + unix(now) + ",v0=00", secrets: []string{"whsec_a"}, wantErr: webhook.ErrNoValidSignature},
		{name: "unknown parts are ignored, as by stripe-go", header: "t=" + unix(now) + ",v0=zz," + v1(now) + ",x=y", secrets: []string{"whsec_a"}, wantOK: true},
		{name: "a part with two =", header: "t=" + unix(now) + "," + v1(now) + ",a=b=c", secrets: []string{"whsec_a"}, wantErr: webhook.ErrInvalidHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(body, tt.header, tt.secrets, 300*time.Second, now)
			if (err == nil) != tt.wantOK {
				t.Errorf("Verify = %v, want ok %v", err, tt.wantOK)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify = %v, want an error wrapping %v", err, tt.wantErr)
			}
		})
	}
}

// TestCheckHeaderAgreesWithVerify: CheckHeader, which reads no body, refuses whatever Verify
// refuses for its header alone, and passes every header that verifies.
func TestCheckHeaderAgreesWithVerify(t *testing.T) {
	now := time.Unix(1_776_427_200, 0)
	body := []byte(`{"id":"evt_1"}`)
	sig := func(at time.Time) string {
		return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_a", Timestamp: at}).Header
	}
	tests := []struct {
		name    string
		header  string
		wantErr error
	}{
		{name: "fresh", header: sig(now)},
		{name: "missing", header: "", wantErr: webhook.ErrNotSigned},
		{name: "stale", header: sig(now.Add(-time.Hour)), wantErr: webhook.ErrTooOld},
		{name: "future", header: sig(now.Add(time.Hour)), wantErr: ErrFuture},
		{name: "malformed", header: "garbage", wantErr: webhook.ErrInvalidHeader},
		{name: "two t", header: sig(now) + ",t=1", wantErr: ErrTimestamps},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckHeader(tt.header, 300*time.Second, now)
			if diff := cmp.Diff(tt.wantErr, err, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("CheckHeader error mismatch (-want +got):\n%s", diff)
			}
			if verr := Verify(body, tt.header, []string{"whsec_a"}, 300*time.Second, now); (verr == nil) != (tt.wantErr == nil) {
				t.Errorf("Verify = %v, CheckHeader = %v: they disagree", verr, err)
			}
		})
	}
}

// FuzzDecode: no panic on any body, and whatever decodes as invoice.created has the fields the
// handler relies on.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1","currency":"usd","status":"draft","period_start":10,"period_end":20}}}`))
	f.Add([]byte(`{"id":"e","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":{"id":"c"},"currency":"eur","status":"draft","period_start":1,"period_end":2,"parent":{"subscription_details":{"metadata":{"k":"v"}}}}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Add([]byte(`{"id":"evt_2","type":"customer.subscription.deleted","data":{"object":{"id":"sub_1","object":"subscription","customer":"cus_1","status":"canceled","currency":"usd","start_date":5,"ended_at":30,"items":{"data":[{"current_period_start":10,"current_period_end":40}]}}}}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, inv, err := Decode(payload)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" {
			t.Fatalf("accepted an event without id or type: %+v", ev)
		}
		if ev.Type == "invoice.created" && (inv.ID == "" || inv.Customer == "" || inv.Status == "" || len(inv.Currency) != 3 || inv.PeriodStart <= 0 || inv.PeriodEnd < inv.PeriodStart) {
			t.Fatalf("accepted an unusable invoice: %+v", inv)
		}
		if s := ev.Subscription; ev.Type == SubscriptionDeleted && (s == nil || s.ID == "" || s.Customer == "" || s.EndedAt <= 0 || len(s.Currency) != 3 || s.CurrentPeriodStart <= 0 || s.CurrentPeriodStart > s.EndedAt || s.CurrentPeriodEnd < s.CurrentPeriodStart) {
			t.Fatalf("accepted an unusable subscription: %+v", s)
		}
		if _, err := json.Marshal(inv); err != nil {
			t.Fatal(fmt.Errorf("decoded invoice does not re-encode: %w", err))
		}
	})
}

// FuzzVerify: no panic on any header, nothing unsigned passes, and a header that carries valid
// signatures, laid out as the fuzzer likes (extra t parts, " t=" parts stripe-go ignores, any
// order, the fuzzed header mixed in), is accepted only if the signed time is within the
// tolerance: the same header without the signatures of times outside it is accepted too. A
// plain header (one t and its signatures) signed within the tolerance is always accepted.
func FuzzVerify(f *testing.F) {
	f.Add("t=1,v1=00", []byte("x"), int64(0), int64(0), uint16(0))
	f.Add("", []byte(""), int64(0), int64(0), uint16(0))
	f.Add("t=99999999999999999999,v1=,v0=a", []byte("{}"), int64(0), int64(0), uint16(0))
	// The attack: t=<now+3600>,v1=<its signature>, t=<now>.
	f.Add("", []byte(`{"id":"evt_1"}`), int64(3600), int64(0), uint16(layoutOtherT|layoutOtherSpace))
	f.Add("", []byte(`{"id":"evt_1"}`), int64(3600), int64(0), uint16(layoutOtherT|layoutOtherSigned))
	f.Add("", []byte(`{"id":"evt_1"}`), int64(-301), int64(0), uint16(layoutOtherT|layoutOtherFirst|layoutOtherSigned))
	f.Add("v0=ab", []byte(`{}`), int64(299), int64(-5), uint16(layoutFuzzPart|layoutSignedSpace|layoutOtherT))
	f.Add(" t=1776427200", []byte(`{}`), int64(7200), int64(0), uint16(layoutFuzzPart|layoutOtherSigned|layoutSigFirst|layoutV0))
	const tolerance = 300 * time.Second
	now := time.Unix(1_776_427_200, 0)
	within := func(at time.Time) bool { return now.Sub(at) <= tolerance && at.Sub(now) <= tolerance }
	all := func(time.Time) bool { return true }
	f.Fuzz(func(t *testing.T, header string, payload []byte, signedOff, otherOff int64, layout uint16) {
		if Verify(payload, header, []string{"whsec_fuzz"}, tolerance, time.Now()) == nil {
			t.Fatalf("an arbitrary header verified: %q", header)
		}
		// Offsets in seconds from now, kept far from overflow; a few land within the tolerance.
		signedOff %= 1 << 40
		otherOff %= 1 << 40
		signedAt, otherAt := now.Add(time.Duration(signedOff)*time.Second), now.Add(time.Duration(otherOff)*time.Second)
		secrets := []string{"whsec_other", "whsec_fuzz"}
		built := signedLayout(payload, header, signedAt, otherAt, layout, all)
		err := Verify(payload, built, secrets, tolerance, now)
		if err == nil {
			if fresh := signedLayout(payload, header, signedAt, otherAt, layout, within); Verify(payload, fresh, secrets, tolerance, now) != nil {
				t.Fatalf("accepted %q on the signature of a time not within %v of %d (signed at %d and %d)", built, tolerance, now.Unix(), signedAt.Unix(), otherAt.Unix())
			}
		}
		if err != nil && layout&layoutPlain == 0 && within(signedAt) {
			t.Fatalf("refused %q, signed %d s from now: %v", built, signedOff, err)
		}
	})
}

// Bits of FuzzVerify's layout.
const (
	layoutSignedSpace = 1 << iota // write the signed t as " t=", which stripe-go ignores
	layoutOtherT                  // add a second timestamp part
	layoutOtherSpace              // write it as " t="
	layoutOtherFirst              // put it before the signed one
	layoutOtherSigned             // add a valid signature for the second timestamp too
	layoutFuzzPart                // add the fuzzed header as a part
	layoutFuzzFirst               // put it first
	layoutSigFirst                // put the signatures before the timestamps
	layoutV0                      // add a v0 part

	// layoutPlain is set when the layout is anything but one t and its signatures.
	layoutPlain = layoutSignedSpace | layoutOtherT | layoutFuzzPart
)

// signedLayout builds a header from the layout bits: a t part for signed and a signature (under
// whsec_fuzz) of payload at it; a t part for other and its signature, if the bits ask; the
// fuzzed header as one more part, if they ask. Signatures of times keep refuses are left out.
func signedLayout(payload []byte, fuzzed string, signed, other time.Time, layout uint16, keep func(time.Time) bool) string {
	tpart := func(at time.Time, space bool) string {
		p := "t=" + strconv.FormatInt(at.Unix(), 10)
		if space {
			p = " " + p
		}
		return p
	}
	var sigs []string
	sig := func(at time.Time) {
		if keep(at) {
			sigs = append(sigs, "v1="+hex.EncodeToString(webhook.ComputeSignature(at, payload, "whsec_fuzz")))
		}
	}
	ts := []string{tpart(signed, layout&layoutSignedSpace != 0)}
	sig(signed)
	if layout&layoutOtherT != 0 {
		p := tpart(other, layout&layoutOtherSpace != 0)
		if layout&layoutOtherFirst != 0 {
			ts = append([]string{p}, ts...)
		} else {
			ts = append(ts, p)
		}
	}
	if layout&layoutOtherSigned != 0 {
		sig(other)
	}
	if layout&layoutV0 != 0 {
		sigs = append(sigs, "v0=00")
	}
	parts := slices.Concat(ts, sigs)
	if layout&layoutSigFirst != 0 {
		parts = slices.Concat(sigs, ts)
	}
	if layout&layoutFuzzPart != 0 {
		if layout&layoutFuzzFirst != 0 {
			parts = append([]string{fuzzed}, parts...)
		} else {
			parts = append(parts, fuzzed)
		}
	}
	return strings.Join(parts, ",")
}

func TestDecodeSubscriptionDeleted(t *testing.T) {
	event := func(sub string) []byte {
		return []byte(`{"id":"evt_9","type":"customer.subscription.deleted","data":{"object":` + sub + `}}`)
	}
	tests := []struct {
		name    string
		payload []byte
		want    *Subscription
		wantErr bool
	}{
		{
			name:    "basil: the period on the items",
			payload: event(`{"id":"sub_1","object":"subscription","customer":"cus_1","status":"canceled","currency":"USD","metadata":{"meter_account":"42"},"start_date":100,"trial_end":null,"ended_at":900,"canceled_at":900,"items":{"object":"list","data":[{"current_period_start":500,"current_period_end":1000}]}}`),
			want:    &Subscription{ID: "sub_1", Customer: "cus_1", Status: "canceled", Currency: "usd", Metadata: map[string]string{"meter_account": "42"}, StartDate: 100, EndedAt: 900, CurrentPeriodStart: 500, CurrentPeriodEnd: 1000},
		},
		{
			name:    "an older version: the period on the subscription; expanded customer, a trial, canceled_at without ended_at",
			payload: event(`{"id":"sub_2","object":"subscription","customer":{"id":"cus_2","object":"customer"},"status":"canceled","currency":"eur","start_date":100,"trial_end":200,"canceled_at":800,"current_period_start":700,"current_period_end":1700,"items":{"data":[]}}`),
			want:    &Subscription{ID: "sub_2", Customer: "cus_2", Status: "canceled", Currency: "eur", StartDate: 100, TrialEnd: 200, EndedAt: 800, CurrentPeriodStart: 700, CurrentPeriodEnd: 1700},
		},
		{name: "not ended", payload: event(`{"id":"sub_3","object":"subscription","customer":"cus_1","currency":"usd"}`), wantErr: true},
		{name: "no current period", payload: event(`{"id":"sub_3","object":"subscription","customer":"cus_1","currency":"usd","ended_at":5}`), wantErr: true},
		{name: "no customer", payload: event(`{"id":"sub_3","object":"subscription","currency":"usd","ended_at":5}`), wantErr: true},
		{name: "no currency", payload: event(`{"id":"sub_3","object":"subscription","customer":"cus_1","ended_at":5}`), wantErr: true},
		{name: "not a subscription", payload: event(`{"id":"in_1","object":"invoice","customer":"cus_1","currency":"usd","ended_at":5}`), wantErr: true},
		{name: "period after the end", payload: event(`{"id":"sub_3","object":"subscription","customer":"cus_1","currency":"usd","ended_at":5,"items":{"data":[{"current_period_start":9}]}}`), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, _, err := Decode(tt.payload)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Decode = %+v, %v; want ErrMalformed", ev.Subscription, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ev.Subscription); diff != "" {
				t.Errorf("subscription (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeInvoicePriceIDs(t *testing.T) {
	payload := []byte(`{"id":"evt_1","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1","currency":"usd","status":"draft","period_start":10,"period_end":20,
		"lines":{"object":"list","data":[
			{"object":"line_item","pricing":{"type":"price_details","price_details":{"price":"price_pro","product":"prod_1"}}},
			{"object":"line_item","pricing":{"type":"price_details","price_details":{"price":"price_pro","product":"prod_1"}}},
			{"object":"line_item","price":{"id":"price_legacy"}},
			{"object":"line_item","pricing":null}]}}}}`)
	_, inv, err := Decode(payload)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"price_pro", "price_legacy"}, inv.PriceIDs); diff != "" {
		t.Errorf("price ids (-want +got):\n%s", diff)
	}
}
