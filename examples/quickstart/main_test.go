package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestQuickstart runs the main job and checks what a reader relies on: it is deterministic, both
// invoices are printed, and each total is the sum of its lines.
func TestQuickstart(t *testing.T) {
	var first, second bytes.Buffer
	if err := run(context.Background(), &first); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), &second); err != nil {
		t.Fatal(err)
	}
	if first.String() != second.String() {
		t.Fatal("two runs printed different output; the quickstart must be deterministic")
	}
	amount := regexp.MustCompile(`\$(\d+)\.(\d\d)\s*$`)
	cents := func(line string) int64 {
		m := amount.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no amount at the end of %q", line)
		}
		d, _ := strconv.ParseInt(m[1], 10, 64)
		c, _ := strconv.ParseInt(m[2], 10, 64)
		return d*100 + c
	}
	invoices := strings.Split(first.String(), "invoice of ")[1:]
	if len(invoices) != len(customers) {
		t.Fatalf("printed %d invoices, want %d:\n%s", len(invoices), len(customers), first.String())
	}
	for _, inv := range invoices {
		var sum int64
		var lines int
		body, _, _ := strings.Cut(inv, "\n\n") // an invoice ends at its blank line
		for _, l := range strings.Split(body, "\n")[2:] {
			if strings.HasPrefix(strings.TrimSpace(l), "Total") {
				if got := cents(l); got != sum {
					t.Errorf("total %d cents, lines add up to %d", got, sum)
				}
				continue
			}
			sum += cents(l)
			lines++
		}
		if lines < 4 || !strings.Contains(inv, "Apr 1 – Apr 30") {
			t.Errorf("invoice has %d lines or no April window:\n%s", lines, inv)
		}
	}
}
