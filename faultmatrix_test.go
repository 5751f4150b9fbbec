package meterbill_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterbill/meterbill"
	"github.com/meterbill/meterbill/internal/ledger"
	"github.com/meterbill/meterbill/internal/stripefake"
	"github.com/meterbill/meterbill/internal/unimetertest"
)

// TestFaultMatrix is issue 7's fault matrix: every row drives one failure through the whole
// pipeline (Recorder → Meter → webhook Handler → Stripe) and then checks the same end state:
//
//   - every event recorded is in the meter exactly once (rows that record through a Recorder);
//   - each invoice holds exactly the lines the plan prices from the meter's usage of the buckets
//     it bills (count, quantity per line, amount per line), nothing missing, nothing twice;
//   - read back through the ledger metadata (internal/ledger.Decode), every bucket of every metric
//     is billed by exactly one run of lines, or by none outside the invoices' windows, and the
//     tiers of a run add up to the quantity it was priced at;
//   - the last delivery of every invoice.created is answered 200.
//
// The plan is billPlan: a per-unit sub-cent price ($0.001 a request) and a graduated three-tier
// storage price. Each row logs its figures.
func TestFaultMatrix(t *testing.T) {
	chaosEvents := 50_000
	if testing.Short() {
		chaosEvents = 10_000
	}
	rows := []faultRow{
		{
			name:   "meter unavailable for a while during 100k recorded events",
			events: 100_000,
			bills:  matrixMarchBills(42, 43, 44, 45),
			run:    runMeterOutage,
		},
		{
			name:   "meter node killed and restarted mid-stream (3-node cluster)",
			events: chaosEvents,
			bills:  matrixMarchBills(42, 43, 44, 45),
			run:    runNodeRestart,
		},
		{
			name:  "Stripe answers 429, then 500, then times out on create, then recovers",
			bills: matrixMarchBills(42),
			run:   runStripeFaults,
		},
		{
			name:  "the same invoice.created 20 times concurrently, and again 3 days later with keys expired",
			bills: matrixMarchBills(42),
			run:   runConcurrentRedeliveries,
		},
		{
			name:          "process killed between two lines, a fresh process handles the redelivery",
			bills:         matrixMarchBills(42),
			minDeliveries: 2,
			run:           runKilledProcess,
		},
		{
			name: "a manual invoice overlapping two renewals",
			bills: []matrixBill{
				{invoice: "in_feb_42", account: 42, metric: requests, from: date(2026, 2, 1), to: date(2026, 3, 1)},
				{invoice: "in_feb_42", account: 42, metric: gbDays, from: date(2026, 2, 1), to: date(2026, 3, 1)},
				// (Feb 20 09:00, Mar 20 14:37]: February's request bucket and the days Feb 20–28
				// end inside it but were billed by the renewal; the days Mar 1–19 were not.
				{invoice: "in_manual_42", account: 42, metric: gbDays, from: date(2026, 3, 1), to: date(2026, 3, 20)},
				{invoice: "in_mar_42", account: 42, metric: requests, from: date(2026, 3, 1), to: date(2026, 4, 1)},
				// The renewal prices the rest of March on top of what the manual invoice billed:
				// its run covers the month and takes the manual invoice's over.
				{invoice: "in_mar_42", account: 42, metric: gbDays, from: date(2026, 3, 1), to: date(2026, 4, 1), on: date(2026, 3, 20)},
			},
			run: runManualBetweenRenewals,
		},
		{
			name:  "two replicas handle the same invoice at once",
			bills: matrixMarchBills(42),
			run:   runTwoReplicas,
		},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			b := newBridge(t, billPlan)
			got := row.run(t, b, row)
			meter := got.meter
			if meter == nil {
				meter = b.meter
			}
			var fig matrixFigures
			fig.recorded = row.events
			if row.events > 0 {
				fig.stats = got.stats
				checkAllDelivered(t, meter, row.events, got.stats, got.recorded)
			}
			fig.deliveries, fig.failedDeliveries = got.deliveries, got.failedDeliveries
			if got.deliveries < row.minDeliveries {
				t.Errorf("%d webhook deliveries, want at least %d (a 500 must make Stripe redeliver)", got.deliveries, row.minDeliveries)
			}
			for inv, status := range got.lastStatus {
				if status != http.StatusOK {
					t.Errorf("invoice %s: last delivery answered %d, want 200", inv, status)
				}
			}
			b.checkBills(t, meter, row.bills, &fig)
			fig.stripeRequests = b.stripe.CountRequests("", "/v1/")
			fig.creates = b.stripe.CountRequests(http.MethodPost, "/v1/invoiceitems")
			fig.createStatuses = matrixCreateStatuses(b.stripe)
			t.Logf("figures: %s", fig)
			if got.extra != "" {
				t.Logf("scenario: %s", got.extra)
			}
		})
	}
}

// faultRow is one scenario of the matrix.
type faultRow struct {
	name string
	// events is how many usage events the row records through a Recorder; 0 means the usage is
	// ingested into the meter directly, before the faults.
	events int
	// bills are the buckets each invoice must bill: the expected lines are the plan's pricing of
	// the meter's usage over each, and every bucket outside them must stay unbilled.
	bills []matrixBill
	// minDeliveries is how many webhook deliveries the scenario needs at least.
	minDeliveries int
	// run drives the scenario.
	run func(t *testing.T, b *bridge, row faultRow) matrixResult
}

// matrixBill is the span of buckets of one metric an invoice bills, as one priced run.
type matrixBill struct {
	invoice  string
	account  uint64
	metric   meterbill.Metric
	from, to time.Time
	// on, when set, is the end of an earlier bill [from, on) of the same period that this one is
	// priced on top of: its lines are the price of [from, to) less the price of [from, on).
	on time.Time
}

// matrixMarchBills is what a March renewal bills for each account: March's requests and its 31 days
// of storage.
func matrixMarchBills(accounts ...uint64) []matrixBill {
	var out []matrixBill
	for _, a := range accounts {
		for _, m := range []meterbill.Metric{requests, gbDays} {
			out = append(out, matrixBill{invoice: fmt.Sprintf("in_mar_%d", a), account: a, metric: m, from: date(2026, 3, 1), to: date(2026, 4, 1)})
		}
	}
	return out
}

// matrixResult is what a scenario reports for the common checks.
type matrixResult struct {
	meter            meterbill.Meter // the meter billed from; nil means the bridge's
	stats            meterbill.RecorderStats
	recorded         map[matrixKey]meterbill.Value // what the row recorded, per account and metric
	deliveries       int                           // webhook deliveries made
	failedDeliveries int                           // of those, answered other than 200
	lastStatus       map[string]int                // the last delivery's status, per invoice
	extra            string                        // row-specific figures
}

type matrixKey struct {
	account uint64
	metric  string
}

// matrixFigures are what every row logs.
type matrixFigures struct {
	recorded                     int
	stats                        meterbill.RecorderStats
	deliveries, failedDeliveries int
	stripeRequests, creates      int
	createStatuses               map[int]int
	lines                        int
	quantity                     map[string]meterbill.Value // per metric, over every line
	amount                       int64                      // minor units, over every line
}

func (f matrixFigures) String() string {
	var qty []string
	for _, m := range []string{requests.Code, gbDays.Code} {
		qty = append(qty, m+"="+f.quantity[m].String())
	}
	s := ""
	if f.recorded > 0 {
		s = fmt.Sprintf("events recorded=%d delivered=%d duplicates=%d retried=%d failed=%d; ",
			f.recorded, f.stats.Delivered, f.stats.Duplicates, f.stats.Retried, f.stats.Failed)
	}
	return s + fmt.Sprintf("webhook deliveries=%d (non-200 %d); stripe requests=%d, creates=%d answered %v; lines=%d quantity %s amount=%d",
		f.deliveries, f.failedDeliveries, f.stripeRequests, f.creates, f.createStatuses, f.lines, strings.Join(qty, " "), f.amount)
}

// matrixCreateStatuses counts the fake's answers to invoice item creates by status.
func matrixCreateStatuses(s *stripefake.Server) map[int]int {
	out := map[int]int{}
	for _, r := range s.Requests() {
		if r.Method == http.MethodPost && r.Path == "/v1/invoiceitems" {
			out[r.Status]++
		}
	}
	return out
}

// checkAllDelivered asserts that the recorder delivered every event once and that the meter holds
// exactly what was recorded.
func checkAllDelivered(t *testing.T, m meterbill.Meter, events int, st meterbill.RecorderStats, recorded map[matrixKey]meterbill.Value) {
	t.Helper()
	if st.Enqueued != uint64(events) || st.Delivered != uint64(events) || st.Failed != 0 || st.Rejected != 0 || st.QueueDepth != 0 {
		t.Errorf("recorder stats %+v: want all %d events enqueued and delivered, none failed", st, events)
	}
	for k, want := range recorded {
		metric := requests
		if k.metric == gbDays.Code {
			metric = gbDays
		}
		u, err := m.Query(context.Background(), k.account, metric, meterbill.Period{Start: date(2026, 3, 1), End: date(2026, 4, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if u.Value != want {
			t.Errorf("meter holds %s of %s for account %d, recorded %s", u.Value, k.metric, k.account, want)
		}
	}
}

// ledgerLine is one invoice line as the ledger metadata records it.
type ledgerLine struct {
	Invoice, Metric string
	From, To        string
	Tier            int
	Quantity        string // the line's quantity
	Amount          int64
}

// checkBills compares the customers' Stripe items with the plan's pricing of the meter's usage
// over each bill, and checks every bucket's coverage through the ledger metadata.
func (b *bridge) checkBills(t *testing.T, m meterbill.Meter, bills []matrixBill, fig *matrixFigures) {
	t.Helper()
	ctx := context.Background()
	plan, err := meterbill.NewPlan(billPlan...)
	if err != nil {
		t.Fatal(err)
	}
	var want []ledgerLine
	accounts := map[uint64]bool{}
	for _, bl := range bills {
		accounts[bl.account] = true
		u, err := m.Query(ctx, bl.account, bl.metric, meterbill.Period{Start: bl.from, End: bl.to})
		if err != nil {
			t.Fatal(err)
		}
		lines, err := plan.Price(ctx, "usd", u)
		if err != nil {
			t.Fatal(err)
		}
		if !bl.on.IsZero() {
			u, err := m.Query(ctx, bl.account, bl.metric, meterbill.Period{Start: bl.from, End: bl.on})
			if err != nil {
				t.Fatal(err)
			}
			was, err := plan.Price(ctx, "usd", u)
			if err != nil {
				t.Fatal(err)
			}
			lines = tierGains(t, lines, was)
		}
		for _, l := range lines {
			want = append(want, ledgerLine{Invoice: bl.invoice, Metric: bl.metric.Code, From: bl.from.Format(time.RFC3339), To: bl.to.Format(time.RFC3339),
				Tier: l.Tier, Quantity: l.Quantity.String(), Amount: l.Amount})
		}
	}
	fig.quantity = map[string]meterbill.Value{}
	var got []ledgerLine
	entries := map[matrixKey][]ledger.Entry{}
	for acct := range accounts {
		for _, it := range b.stripe.Items(matrixCustomer(acct)) {
			e, ours, err := ledger.Decode(it.Metadata)
			if err != nil || !ours {
				t.Fatalf("item %s: ledger metadata unreadable (ours %v): %v", it.ID, ours, err)
			}
			if e.Invoice != it.Invoice && it.Invoice != "" {
				t.Errorf("item %s is on invoice %s but records invoice %s", it.ID, it.Invoice, e.Invoice)
			}
			got = append(got, ledgerLine{Invoice: e.Invoice, Metric: e.Metric, From: e.From.Format(time.RFC3339), To: e.To.Format(time.RFC3339),
				Tier: e.Tier, Quantity: e.LineQty, Amount: it.Amount})
			entries[matrixKey{e.Account, e.Metric}] = append(entries[matrixKey{e.Account, e.Metric}], e)
			fig.lines++
			fig.amount += it.Amount
			fig.quantity[e.Metric], _ = fig.quantity[e.Metric].Add(mustValue(t, e.LineQty))
		}
	}
	sortLedgerLines(want)
	sortLedgerLines(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("invoice lines differ from the plan's pricing of the meter's usage (-want +got):\n%s", diff)
	}

	// Per-bucket coverage: each bucket of every billed metric is covered by exactly one run (a
	// set of lines priced together), and only buckets inside a bill are.
	for acct := range accounts {
		for _, metric := range []meterbill.Metric{requests, gbDays} {
			type run struct {
				invoice, from, to string
				runs              string
			}
			groups := map[run][]ledger.Entry{}
			for _, e := range entries[matrixKey{acct, metric.Code}] {
				r := run{e.Invoice, e.From.Format(time.RFC3339), e.To.Format(time.RFC3339), fmt.Sprint(e.Runs)}
				groups[r] = append(groups[r], e)
			}
			for r, es := range groups {
				tiers := map[int]bool{}
				var sum meterbill.Value
				for _, e := range es {
					if tiers[e.Tier] {
						t.Errorf("account %d %s run %v: tier %d billed twice", acct, metric.Code, r, e.Tier)
					}
					tiers[e.Tier] = true
					if e.Quantity != es[0].Quantity {
						t.Errorf("account %d %s run %v: lines priced at %s and %s", acct, metric.Code, r, es[0].Quantity, e.Quantity)
					}
					sum, _ = sum.Add(mustValue(t, e.LineQty))
				}
				priced := mustValue(t, es[0].Quantity)
				if es[0].Base != "" { // priced on top of what its period billed before
					priced = mustValue(t, subtract(t, es[0].Quantity, es[0].Base))
				}
				if sum != priced {
					t.Errorf("account %d %s run %v: tiers add up to %s, run priced at %s", acct, metric.Code, r, sum, priced)
				}
			}
			// A run priced on top of others of its period covers them too, and takes them over.
			for r, es := range groups {
				for o, other := range groups {
					if o != r && coversAll(other[0].Covered(), es[0].Covered()) {
						delete(groups, r)
						break
					}
				}
			}
			for start := date(2026, 1, 1); start.Before(date(2026, 5, 1)); {
				bucket := metric.Bucket(start)
				want := 0
				for _, bl := range bills {
					takenOver := slices.ContainsFunc(bills, func(o matrixBill) bool {
						return o.account == bl.account && o.metric == bl.metric && !o.on.IsZero() && o.from.Equal(bl.from) && o.on.Equal(bl.to)
					})
					if bl.account == acct && bl.metric == metric && !takenOver && !bucket.Start.Before(bl.from) && !bl.to.Before(bucket.End) {
						want++
					}
				}
				n := 0
				for _, es := range groups {
					for _, c := range es[0].Covered() {
						if c[0] <= bucket.Start.UnixNano() && bucket.End.UnixNano() <= c[1] {
							n++
						}
					}
				}
				if n != want {
					t.Errorf("account %d %s bucket %s billed %d times, want %d", acct, metric.Code, bucket, n, want)
				}
				start = bucket.End
			}
		}
	}
}

func sortLedgerLines(ls []ledgerLine) {
	sort.Slice(ls, func(i, j int) bool { return fmt.Sprint(ls[i]) < fmt.Sprint(ls[j]) })
}

func matrixCustomer(account uint64) string { return fmt.Sprintf("cus_%d", account) }

// ---------------------------------------------------------------------------------------------
// Processes and deliveries

// stripeClient is a production Stripe client pointed at the fake.
func (b *bridge) stripeClient(t testing.TB, opts ...meterbill.StripeClientOption) *meterbill.StripeAPI {
	t.Helper()
	sc, err := meterbill.NewStripeClient("sk_test_fake", append([]meterbill.StripeClientOption{meterbill.WithStripeURL(b.stripe.URL), meterbill.WithStripeRateLimit(-1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// newProcess starts one instance of the app: a Handler of its own over meter and sc (a fresh
// production client when nil), sharing nothing with the others but the meter and Stripe. It
// resolves accounts from the subscription's metadata, else from the customer's.
func (b *bridge) newProcess(t testing.TB, meter meterbill.Meter, sc meterbill.StripeClient, opts ...meterbill.HandlerOption) *meterbill.Handler {
	t.Helper()
	if sc == nil {
		sc = b.stripeClient(t)
	}
	plan, err := meterbill.NewPlan(billPlan...)
	if err != nil {
		t.Fatal(err)
	}
	byCustomer, err := meterbill.CustomerMetadataAccount(sc, "meter_account")
	if err != nil {
		t.Fatal(err)
	}
	resolver := meterbill.FirstAccount(meterbill.SubscriptionMetadataAccount("meter_account"), byCustomer)
	opts = append([]meterbill.HandlerOption{
		meterbill.WithRetryBackoff(time.Millisecond, 5*time.Millisecond),
		meterbill.WithReportHook(func(r *meterbill.Report) { b.mu.Lock(); b.reports = append(b.reports, r); b.mu.Unlock() }),
	}, opts...)
	h, err := meterbill.NewHandler(meter, sc, resolver, plan, []string{secret}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// renewal adds a draft subscription invoice of the account's customer, who carries the account
// in its metadata too.
func (b *bridge) renewal(id string, account uint64, start, end time.Time) stripefake.Invoice {
	inv := b.invoice(id, matrixCustomer(account), account, "draft", start, end)
	b.stripe.AddCustomer(inv.Customer, map[string]string{"meter_account": fmt.Sprint(account)})
	return inv
}

// postInvoiceCreated delivers a freshly signed invoice.created for inv to h, as Stripe does on each attempt.
func postInvoiceCreated(t testing.TB, h http.Handler, inv stripefake.Invoice) int {
	t.Helper()
	payload := invoiceEvent(t, "2025-08-27.basil", inv.ID, inv.Customer, "draft", time.Unix(inv.PeriodStart, 0), time.Unix(inv.PeriodEnd, 0), inv.SubscriptionMetadata)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, signed(t, payload, time.Now(), secret))
	return w.Code
}

// webhookDeliveries counts webhook deliveries and remembers each invoice's last answer.
type webhookDeliveries struct {
	mu   sync.Mutex
	res  *matrixResult
	stop int // redeliveries stop after this many attempts per invoice
}

func (d *webhookDeliveries) post(t testing.TB, h http.Handler, inv stripefake.Invoice) int {
	t.Helper()
	status := postInvoiceCreated(t, h, inv)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.res.deliveries++
	if status != http.StatusOK {
		d.res.failedDeliveries++
	}
	if d.res.lastStatus == nil {
		d.res.lastStatus = map[string]int{}
	}
	d.res.lastStatus[inv.ID] = status
	return status
}

// untilOK delivers inv until it is answered 200, as Stripe redelivers after a 500 (for up to
// three days), and returns the attempts made.
func (d *webhookDeliveries) untilOK(t testing.TB, h http.Handler, inv stripefake.Invoice) int {
	t.Helper()
	limit := d.stop
	if limit == 0 {
		limit = 8
	}
	for attempt := 1; ; attempt++ {
		if d.post(t, h, inv) == http.StatusOK || attempt == limit {
			return attempt
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Recorded usage (rows 1 and 2)

// matrixEvent is the i-th event of a recording spread over accounts 42–45 and March: four in
// five are requests, one in five a storage reading of 0.250123 GB, each with its own timestamp.
func matrixEvent(i int) meterbill.Event {
	acct := uint64(42 + i%4)
	j := i / 4
	e := meterbill.Event{Account: acct, Metric: requests.Code, Value: meterbill.Units(1),
		Time: date(2026, 3, 1).Add(time.Duration(j)*100*time.Second + time.Duration(i%4))}
	if j%5 == 0 {
		e.Metric, e.Value = gbDays.Code, meterbill.Micros(250_123)
	}
	return e
}

// recordMatrixEvents records events [from, to) through rec from four goroutines and adds them to sum.
func recordMatrixEvents(t *testing.T, rec *meterbill.Recorder, from, to int, sum map[matrixKey]meterbill.Value) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := from + g; i < to; i += 4 {
				if err := rec.Record(context.Background(), matrixEvent(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := from; i < to; i++ {
		e := matrixEvent(i)
		k := matrixKey{e.Account, e.Metric}
		sum[k], _ = sum[k].Add(e.Value)
	}
}

// waitRecorder polls the recorder until cond holds, failing after a few seconds.
func waitRecorder(t *testing.T, rec *meterbill.Recorder, what string, cond func(meterbill.RecorderStats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(rec.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (stats %+v)", what, rec.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// billMarch bills every account's March renewal through a fresh process over meter.
func (b *bridge) billMarch(t *testing.T, meter meterbill.Meter, res *matrixResult, accounts ...uint64) {
	t.Helper()
	h := b.newProcess(t, meter, nil)
	d := &webhookDeliveries{res: res}
	for _, a := range accounts {
		d.untilOK(t, h, b.renewal(fmt.Sprintf("in_mar_%d", a), a, date(2026, 3, 1), date(2026, 4, 1)))
	}
}

// outageMeter is a meter that goes down on demand: while down, every other call fails before
// reaching the meter, and the others are applied but their answer is lost, the case only the
// meter's dedup can make safe.
type outageMeter struct {
	meterbill.Meter
	down   atomic.Bool
	calls  atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	lost   map[string]bool // events applied under a lost answer
}

func (m *outageMeter) Ingest(ctx context.Context, events []meterbill.Event) (meterbill.IngestResult, error) {
	m.calls.Add(1)
	if !m.down.Load() {
		return m.Meter.Ingest(ctx, events)
	}
	if m.failed.Add(1)%2 == 0 {
		if _, err := m.Meter.Ingest(ctx, events); err == nil {
			m.mu.Lock()
			for _, e := range events {
				m.lost[fmt.Sprint(e.Account, e.Metric, e.Time.UnixNano(), e.Value)] = true
			}
			m.mu.Unlock()
		}
	}
	return meterbill.IngestResult{}, errMeterDown
}

// runMeterOutage: the meter goes down after 30k of 100k events and stays down, the recorder
// retrying, while 40k more are recorded; it comes back for the last 30k.
func runMeterOutage(t *testing.T, b *bridge, row faultRow) matrixResult {
	om := &outageMeter{Meter: b.meter, lost: map[string]bool{}}
	rec, err := meterbill.NewRecorder(context.Background(), om, []meterbill.Metric{requests, gbDays},
		meterbill.WithFlushInterval(2*time.Millisecond), meterbill.WithRetryBackoff(time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	res := matrixResult{recorded: map[matrixKey]meterbill.Value{}}
	n := row.events
	recordMatrixEvents(t, rec, 0, n*3/10, res.recorded)
	om.down.Store(true)
	downAt := time.Now()
	recordMatrixEvents(t, rec, n*3/10, n*7/10, res.recorded)
	waitRecorder(t, rec, "retries during the outage", func(st meterbill.RecorderStats) bool { return st.Retried >= 10 })
	if d := 100*time.Millisecond - time.Since(downAt); d > 0 {
		time.Sleep(d) // down for 100 ms at least
	}
	om.down.Store(false)
	outage := time.Since(downAt)
	recordMatrixEvents(t, rec, n*7/10, n, res.recorded)
	if err := rec.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	res.stats = rec.Stats()
	om.mu.Lock()
	lost := len(om.lost)
	om.mu.Unlock()
	if om.failed.Load() < 2 || res.stats.Retried != uint64(om.failed.Load()) {
		t.Errorf("%d calls failed during the outage, the recorder retried %d", om.failed.Load(), res.stats.Retried)
	}
	if res.stats.Duplicates != uint64(lost) {
		t.Errorf("the meter saw %d duplicates, want the %d events applied under a lost answer", res.stats.Duplicates, lost)
	}
	res.extra = fmt.Sprintf("meter down %s: %d of %d ingest calls failed, %d events applied under a lost answer and recognised as duplicates on retry",
		outage.Round(time.Millisecond), om.failed.Load(), om.calls.Load(), lost)
	b.billMarch(t, b.meter, &res, 42, 43, 44, 45)
	return res
}

// runNodeRestart: the recorder sends through DialUnimeter to a 3-node cluster. Node 1 (leader
// of account 43's partition) is killed a third of the way through and stays down, the recorder
// retrying, while the second third is recorded; it is restarted, and then killed and restarted
// every 25 ms while the last third is recorded and the queue drains.
func runNodeRestart(t *testing.T, b *bridge, row faultRow) matrixResult {
	c := startFake(t, unimetertest.Options{Nodes: 3})
	m := dialFake(t, c)
	rec, err := meterbill.NewRecorder(context.Background(), m, []meterbill.Metric{requests, gbDays},
		meterbill.WithFlushInterval(2*time.Millisecond), meterbill.WithBatchSize(250), meterbill.WithRetryBackoff(time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	res := matrixResult{meter: m, recorded: map[matrixKey]meterbill.Value{}}
	n := row.events
	const node = 1 // leads partitions p % 3 == 1: account 43
	recordMatrixEvents(t, rec, 0, n/3, res.recorded)
	waitRecorder(t, rec, "deliveries under way", func(st meterbill.RecorderStats) bool { return st.Delivered >= uint64(n/6) })
	c.Kill(node)
	recordMatrixEvents(t, rec, n/3, n*2/3, res.recorded)
	waitRecorder(t, rec, "retries while the node is down", func(st meterbill.RecorderStats) bool { return st.Retried >= 3 })
	if err := c.Restart(node); err != nil {
		t.Fatal(err)
	}
	retriedFirst := rec.Stats().Retried
	// Then crashes between requests while events keep coming and the queue drains.
	stop := make(chan struct{})
	var chaos sync.WaitGroup
	var kills, killsWithQueue atomic.Int64
	chaos.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(25 * time.Millisecond):
			}
			if rec.Stats().QueueDepth > 0 {
				killsWithQueue.Add(1)
			}
			c.Kill(node)
			kills.Add(1)
			time.Sleep(10 * time.Millisecond)
			if err := c.Restart(node); err != nil {
				t.Error(err)
				return
			}
		}
	})
	recordMatrixEvents(t, rec, n*2/3, n, res.recorded)
	err = rec.Close(context.Background())
	close(stop)
	chaos.Wait()
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	res.stats = rec.Stats()
	if retriedFirst == 0 {
		t.Error("no batch was retried while the node was down: the restart happened outside the stream")
	}
	st := c.Stats(node)
	res.extra = fmt.Sprintf("node %d down for the middle third (%d retries), then %d more kills and restarts (%d with events queued); node %d stored %d events, recognised %d duplicates",
		node, retriedFirst, kills.Load(), killsWithQueue.Load(), node, st.Stored, st.Duplicates)
	b.billMarch(t, m, &res, 42, 43, 44, 45)
	return res
}

// ---------------------------------------------------------------------------------------------
// Stripe faults (rows 3 to 7), over usage ingested directly: 100 requests a day and a 40 GB
// reading a day, from January to April.

func seedMatrixUsage(t *testing.T, b *bridge) {
	t.Helper()
	b.record(t, 42, date(2026, 1, 1), date(2026, 5, 1), 100, "40")
}

// runStripeFaults: the creates meet three 429s, two 500s, a timeout before Stripe did the work
// and a timeout after it did. The handler retries all of them within one delivery's deadline
// (a timed-out create under the same idempotency key, which Stripe replays if it landed), so the
// first delivery already answers 200 with every line created once.
func runStripeFaults(t *testing.T, b *bridge, _ faultRow) matrixResult {
	seedMatrixUsage(t, b)
	inv := b.renewal("in_mar_42", 42, date(2026, 3, 1), date(2026, 4, 1))
	const timeout = 250 * time.Millisecond
	hc := &http.Client{Timeout: timeout}
	h := b.newProcess(t, b.meter, b.stripeClient(t, meterbill.WithHTTPClient(hc)))
	create := func(f stripefake.Fault) stripefake.Fault {
		f.Method, f.Path = http.MethodPost, "/v1/invoiceitems"
		return f
	}
	b.stripe.Inject(create(stripefake.Fault{Status: 429, Times: 3}))
	b.stripe.Inject(create(stripefake.Fault{Status: 500, Times: 2}))
	b.stripe.Inject(create(stripefake.Fault{Status: 504, Delay: 3 * timeout})) // no answer in time, nothing done
	b.stripe.Inject(create(stripefake.Fault{Delay: 3 * timeout}))              // done, but no answer in time
	var res matrixResult
	d := &webhookDeliveries{res: &res}
	attempts := d.untilOK(t, h, inv)
	if attempts != 1 {
		t.Errorf("the webhook answered 200 at delivery %d, want 1: the faults fit in one delivery's retries", attempts)
	}
	res.extra = fmt.Sprintf("webhook answered 200 at delivery %d; outcomes %v; failures %q", attempts, b.reportOutcomes(), b.reportFailures())
	return res
}

// runConcurrentRedeliveries: 20 concurrent deliveries of one invoice.created while the first
// creates are held in flight; then, three days later (every idempotency key expired), 20 more.
func runConcurrentRedeliveries(t *testing.T, b *bridge, _ faultRow) matrixResult {
	seedMatrixUsage(t, b)
	inv := b.renewal("in_mar_42", 42, date(2026, 3, 1), date(2026, 4, 1))
	// Stripe delivers to the endpoint, and a load balancer spreads the deliveries over four
	// instances of the app: within one, deliveries of a customer are serialised; across them,
	// they race on Stripe's idempotency keys.
	procs := []*meterbill.Handler{b.newProcess(t, b.meter, nil), b.newProcess(t, b.meter, nil), b.newProcess(t, b.meter, nil), b.newProcess(t, b.meter, nil)}
	var res matrixResult
	d := &webhookDeliveries{res: &res}
	burst := func() {
		b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Delay: 50 * time.Millisecond, Times: 4})
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				if s := d.post(t, procs[i%len(procs)], inv); s != http.StatusOK {
					t.Errorf("a concurrent delivery answered %d", s)
				}
			})
		}
		wg.Wait()
	}
	burst()
	first := b.reportOutcomes()
	b.stripe.Advance(72 * time.Hour) // every idempotency key is forgotten
	b.mu.Lock()
	b.reports = nil
	b.mu.Unlock()
	burst()
	later := b.reportOutcomes()
	if later[meterbill.OutcomeAlreadyBilled] != 20 {
		t.Errorf("after 3 days: outcomes %v, want 20 already_billed", later)
	}
	res.extra = fmt.Sprintf("first burst outcomes %v; 3 days later %v", first, later)
	return res
}

// errProcessKilled is what a killed process's Stripe calls return: the process is gone.
var errProcessKilled = errors.New("process killed")

// killAfterCreates lets a process make creates creates, the last of which Stripe carries out but
// whose answer dies with the process; every call after it fails.
type killAfterCreates struct {
	meterbill.StripeClient
	creates int
	n       atomic.Int64
}

func (k *killAfterCreates) CreateInvoiceItem(ctx context.Context, item meterbill.InvoiceItem, key string) (meterbill.InvoiceItem, error) {
	n := k.n.Add(1)
	if n > int64(k.creates) {
		return meterbill.InvoiceItem{}, errProcessKilled
	}
	it, err := k.StripeClient.CreateInvoiceItem(ctx, item, key)
	if n == int64(k.creates) {
		return meterbill.InvoiceItem{}, errProcessKilled
	}
	return it, err
}

func (k *killAfterCreates) InvoiceItems(ctx context.Context, customer string, since time.Time) ([]meterbill.InvoiceItem, error) {
	if k.n.Load() >= int64(k.creates) {
		return nil, errProcessKilled
	}
	return k.StripeClient.InvoiceItems(ctx, customer, since)
}

// runKilledProcess: the process dies after Stripe created the invoice's second line (the
// first storage tier), before it learnt so; a fresh process handles Stripe's redelivery.
func runKilledProcess(t *testing.T, b *bridge, _ faultRow) matrixResult {
	seedMatrixUsage(t, b)
	inv := b.renewal("in_mar_42", 42, date(2026, 3, 1), date(2026, 4, 1))
	var res matrixResult
	d := &webhookDeliveries{res: &res}
	dying := b.newProcess(t, b.meter, &killAfterCreates{StripeClient: b.stripeClient(t), creates: 2})
	if s := d.post(t, dying, inv); s == http.StatusOK {
		t.Fatalf("the killed process answered %d", s)
	}
	if n := len(b.stripe.Items(inv.Customer)); n != 2 {
		t.Fatalf("%d lines exist after the kill, want 2", n)
	}
	fresh := b.newProcess(t, b.meter, nil)
	attempts := d.untilOK(t, fresh, inv)
	rep := b.lastReport()
	if rep.Outcome != meterbill.OutcomeBilled || len(rep.Created) != 2 || rep.Existing != 2 {
		t.Errorf("fresh process: outcome %q, created %d, existing %d; want billed, 2 created, 2 existing", rep.Outcome, len(rep.Created), rep.Existing)
	}
	res.extra = fmt.Sprintf("killed after 2 creates; the fresh process created %d lines and found %d in %d delivery", len(rep.Created), rep.Existing, attempts)
	return res
}

// runManualBetweenRenewals: February's renewal, then a manual invoice (no subscription, the
// account from the customer's metadata) whose period overlaps both renewals, then March's.
func runManualBetweenRenewals(t *testing.T, b *bridge, _ faultRow) matrixResult {
	seedMatrixUsage(t, b)
	h := b.newProcess(t, b.meter, nil)
	var res matrixResult
	d := &webhookDeliveries{res: &res}
	feb := b.renewal("in_feb_42", 42, date(2026, 2, 1), date(2026, 3, 1))
	d.untilOK(t, h, feb)
	manual := b.renewal("in_manual_42", 42, at(2026, 2, 20, 9, 0), at(2026, 3, 20, 14, 37))
	manual.BillingReason, manual.Subscription, manual.SubscriptionMetadata = "manual", "", nil
	b.stripe.AddInvoice(manual)
	d.untilOK(t, h, manual)
	manualRep := b.lastReport()
	if manualRep.Account != 42 || manualRep.Existing == 0 {
		t.Errorf("manual invoice: account %d, %d existing lines; want 42 and February's lines found", manualRep.Account, manualRep.Existing)
	}
	mar := b.renewal("in_mar_42", 42, date(2026, 3, 1), date(2026, 4, 1))
	d.untilOK(t, h, mar)
	// A redelivery of each finds everything billed.
	for _, inv := range []stripefake.Invoice{feb, manual, mar} {
		d.post(t, h, inv)
		if o := b.lastReport().Outcome; o != meterbill.OutcomeAlreadyBilled {
			t.Errorf("redelivery of %s: %q, want already_billed", inv.ID, o)
		}
	}
	res.extra = fmt.Sprintf("lines per invoice %v", b.linesPerInvoice(matrixCustomer(42)))
	return res
}

// runTwoReplicas: two instances of the app each receive the invoice's event at the same
// moment (a redelivery racing the original), their first creates held in flight.
func runTwoReplicas(t *testing.T, b *bridge, _ faultRow) matrixResult {
	seedMatrixUsage(t, b)
	inv := b.renewal("in_mar_42", 42, date(2026, 3, 1), date(2026, 4, 1))
	replicas := []*meterbill.Handler{b.newProcess(t, b.meter, nil), b.newProcess(t, b.meter, nil)}
	var res matrixResult
	d := &webhookDeliveries{res: &res}
	b.stripe.Inject(stripefake.Fault{Method: http.MethodPost, Path: "/v1/invoiceitems", Delay: 30 * time.Millisecond, Times: 2})
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, h := range replicas {
		wg.Go(func() {
			<-start
			d.untilOK(t, h, inv)
		})
	}
	close(start)
	wg.Wait()
	res.extra = fmt.Sprintf("outcomes %v", b.reportOutcomes())
	return res
}

// reportOutcomes counts the reports' outcomes so far.
func (b *bridge) reportOutcomes() map[meterbill.Outcome]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[meterbill.Outcome]int{}
	for _, r := range b.reports {
		out[r.Outcome]++
	}
	return out
}

// reportFailures lists the errors of the failed reports so far.
func (b *bridge) reportFailures() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, r := range b.reports {
		if r.Err != nil {
			out = append(out, r.Err.Error())
		}
	}
	return out
}

func (b *bridge) linesPerInvoice(customer string) map[string]int {
	out := map[string]int{}
	for _, it := range b.stripe.Items(customer) {
		out[it.Invoice]++
	}
	return out
}

// tierGains is what each tier gained from was to now, zero gains left out: the lines of a bill
// priced on top of another.
func tierGains(t *testing.T, now, was []meterbill.Line) []meterbill.Line {
	t.Helper()
	before := map[int]meterbill.Line{}
	for _, l := range was {
		before[l.Tier] = l
	}
	var out []meterbill.Line
	for _, l := range now {
		w := before[l.Tier]
		l.Quantity = mustValue(t, subtract(t, l.Quantity.String(), w.Quantity.String()))
		l.Amount -= w.Amount
		if l.Amount != 0 || !l.Quantity.IsZero() {
			out = append(out, l)
		}
	}
	return out
}

// subtract returns a-b for decimal strings with up to six places, b <= a.
func subtract(t *testing.T, a, b string) string {
	t.Helper()
	x, y := mustValue(t, a), mustValue(t, b)
	xm, _ := x.Micros64()
	ym, _ := y.Micros64()
	if ym > xm {
		t.Fatalf("subtract %s - %s", a, b)
	}
	d := xm - ym
	return fmt.Sprintf("%d.%06d", d/1e6, d%1e6)
}

// coversAll reports whether outer's ranges contain each of inner's, and are not the same.
func coversAll(outer, inner [][2]int64) bool {
	if fmt.Sprint(outer) == fmt.Sprint(inner) {
		return false
	}
	for _, in := range inner {
		ok := false
		for _, out := range outer {
			ok = ok || (out[0] <= in[0] && in[1] <= out[1])
		}
		if !ok {
			return false
		}
	}
	return true
}
