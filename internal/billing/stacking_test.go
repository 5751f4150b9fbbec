package billing

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestCatchUpStackedOnARunNeverAlsoAdjustsIt: March's renewal never arrived; a manual invoice
// billed March 1-14 (560); 100 arrived late for March 5. April's renewal catches March up on
// top of the manual part, pricing the month's 1340 now (2140) less the 560 billed (920): 1220.
// That already bills the late 100, so no adjustment of the manual run may be planned with it.
// (Both were planned once: the late usage billed twice, 200 cents too much.)
func TestCatchUpStackedOnARunNeverAlsoAdjustsIt(t *testing.T) {
	april := Invoice{ID: "in_apr", Subscription: "sub_a", Start: day(4, 1), End: day(5, 1), Renewal: true}
	w := &world{usage: map[string]map[time.Time]int64{"storage": daily(day(3, 1), day(5, 1), 40)}, start: day(3, 1)}
	w.usage["storage"][day(3, 5)] += 100
	entries := manualMarch()
	got, _, err := Plan(april, []Metric{storage}, entries, w, 60*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []act{
		{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Tier: 2, Qty: "440", Amount: 880, CatchUp: true, Offset: "560"},
		{Metric: "storage", From: "2026-03-01", To: "2026-04-01", Tier: 3, Qty: "340", Amount: 340, CatchUp: true, Offset: "560"},
		{Metric: "storage", From: "2026-04-01", To: "2026-05-01", Tier: 1, Qty: "100", Amount: 0},
		{Metric: "storage", From: "2026-04-01", To: "2026-05-01", Tier: 2, Qty: "900", Amount: 1800},
		{Metric: "storage", From: "2026-04-01", To: "2026-05-01", Tier: 3, Qty: "200", Amount: 200},
	}
	sort.Slice(want, func(i, j int) bool { return fmt.Sprint(want[i]) < fmt.Sprint(want[j]) })
	if diff := cmp.Diff(want, project(got)); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}
