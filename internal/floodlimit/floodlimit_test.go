package floodlimit

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)} }

// A flood of 3,000 sources (10 of them twice) within a minute: 5
// reported, the rest in one summary; the limiter holds a bounded number
// of sources and forgets them when the window ends.
func TestFloodSummarised(t *testing.T) {
	clk := newClock()
	l := New(time.Minute, 5, 1000, clk.now)
	reported := 0
	for i := range 3000 {
		src := fmt.Sprintf("198.18.%d.%d", i/250, i%250)
		if i >= 2990 {
			src = fmt.Sprintf("198.18.0.%d", i-2990) // repeats
		}
		if l.Allow("key-mismatch", src) {
			reported++
		}
		clk.add(10 * time.Millisecond)
	}
	if reported != 5 {
		t.Errorf("reported %d one by one, want 5", reported)
	}
	if _, n := l.Size(); n > 1000 {
		t.Errorf("holds %d sources, want at most 1000", n)
	}
	if s := l.Flush(); len(s) != 0 {
		t.Errorf("summary before the window ended: %+v", s)
	}
	clk.add(31 * time.Second)
	sums := l.Flush()
	if len(sums) != 1 {
		t.Fatalf("summaries %+v, want 1", sums)
	}
	s := sums[0]
	if s.Total != 3000 || s.Suppressed != 2995 || s.Sources != 1000 || !s.SourcesCapped {
		t.Errorf("summary %+v", s)
	}
	got := s.Describe("rejected packets")
	if got != "3,000 rejected packets from at least 1,000 sources in the last minute (2,995 not reported one by one)" {
		t.Errorf("describe: %q", got)
	}
	if k, n := l.Size(); k != 0 || n != 0 {
		t.Errorf("after the window: %d kinds, %d sources held", k, n)
	}
	// The next occurrence starts a fresh window and is reported.
	if !l.Allow("key-mismatch", "198.18.0.1") {
		t.Error("first occurrence of a new window not reported")
	}
}

// A flood of any length yields about one summary per window per kind.
func TestLongFloodBounded(t *testing.T) {
	clk := newClock()
	l := New(time.Minute, 3, 0, clk.now)
	reported, summaries := 0, 0
	for i := range 100_000 { // 10 minutes at 10,000/min
		if l.Allow("gossip", fmt.Sprint(i)) {
			reported++
		}
		clk.add(6 * time.Millisecond)
		if i%1000 == 0 {
			summaries += len(l.Flush())
		}
	}
	summaries += len(l.Flush())
	if reported > 3*11 || summaries > 11 {
		t.Errorf("10 minutes of flood: %d reported, %d summaries; want at most 33 and 11", reported, summaries)
	}
	if summaries < 9 {
		t.Errorf("only %d summaries in 10 minutes", summaries)
	}
}

// Kinds are independent: a flood of one does not silence another, and a
// quiet kind produces no summary.
func TestKindsIndependent(t *testing.T) {
	clk := newClock()
	l := New(time.Minute, 2, 0, clk.now)
	for i := range 500 {
		l.Allow("flood", fmt.Sprint(i))
	}
	if !l.Allow("key-mismatch:lb2", "127.0.0.2") {
		t.Error("a peer's first report silenced by another kind's flood")
	}
	if l.Allow("key-mismatch:lb2", "127.0.0.2") {
		t.Error("the same source reported twice in one window")
	}
	clk.add(time.Minute)
	sums := l.Flush()
	var kinds []string
	for _, s := range sums {
		kinds = append(kinds, s.Kind)
	}
	if strings.Join(kinds, " ") != "flood key-mismatch:lb2" && strings.Join(kinds, " ") != "key-mismatch:lb2 flood" {
		t.Errorf("summaries of %v", kinds)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
