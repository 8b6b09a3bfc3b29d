package bench

// Self-checks of the sections added to the suite (backend failure, bulk,
// false failovers, the loaded mode, SYN retransmits, timelines): their
// pure parts on made-up input, so that a broken section fails CI without
// a lab or timings.

import (
	"context"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBackendFailFill(t *testing.T) {
	// 100 ms bins over 13.5 s: 20 ok a bin before the fault at 3 s, then
	// 2 s of 10 ok and 5 failed, then 20 ok again (the fault time comes
	// from the run, not from backendBefore).
	bins := make([]loadBin, 136)
	for i := range bins {
		switch {
		case i < 30:
			bins[i] = loadBin{OK: 20}
		case i < 50:
			bins[i] = loadBin{OK: 10, Failed: 5}
		default:
			bins[i] = loadBin{OK: 20}
		}
	}
	var r backendFailRun
	r.fill(loadResult{Bins: bins}, 3*time.Second)
	if r.RateBefore != 200 || r.FailedBefore != 0 {
		t.Errorf("before: %.1f req/s, %d failed; want 200, 0", r.RateBefore, r.FailedBefore)
	}
	// 20 bins of 10 + 80 bins of 20 in the 10 s after: 1800 / 10 s.
	if r.RateAfter != 180 || r.FailedAfter != 100 || r.WorstSecond != 100 || r.FailingForMS != 2000 {
		t.Errorf("after: %.1f req/s, %d failed, worst second %d, failing for %.0f ms; want 180, 100, 100, 2000", r.RateAfter, r.FailedAfter, r.WorstSecond, r.FailingForMS)
	}
}

func TestCountMoves(t *testing.T) {
	ev := []vipEvent{
		{AtMS: 1, Host: "lb1", Added: true},  // lb1 again: no move
		{AtMS: 5, Host: "lb2", Added: true},  // a move
		{AtMS: 6, Host: "lb1", Added: false}, // lb1 lets go
		{AtMS: 9, Host: "lb1", Added: true},  // back: a move
	}
	if m, a, r := countMoves("lb1", ev); m != 2 || a != 3 || r != 1 {
		t.Errorf("countMoves = %d moves, %d adds, %d removes; want 2, 3, 1", m, a, r)
	}
	if m, _, _ := countMoves("lb1", nil); m != 0 {
		t.Errorf("no events: %d moves", m)
	}
}

func TestParseIperf(t *testing.T) {
	ok := `{"start":{},"intervals":[],"end":{"sum_sent":{"seconds":3,"bytes":1,"bits_per_second":4.1e9,"retransmits":7},"sum_received":{"seconds":3.01,"bytes":1,"bits_per_second":4e9}}}`
	r, err := parseIperf([]byte(ok))
	if err != nil || r.Gbps != 4 || r.Retransmits != 7 || r.Seconds != 3.01 {
		t.Errorf("parseIperf = %+v, %v; want 4 Gbit/s, 7 retransmits", r, err)
	}
	for _, bad := range []string{`{"error":"unable to connect to server: Connection refused"}`, `{"end":{}}`, `not json`} {
		if _, err := parseIperf([]byte(bad)); err == nil {
			t.Errorf("parseIperf(%s): no error", bad)
		}
	}
}

func TestTraceLine(t *testing.T) {
	fault := time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		line string
		want string // "" = not in the timeline
	}{
		{`{"time":"2026-12-04T22:00:00.021Z","level":"INFO","msg":"heartbeat verdict","missing":["lb1"]}`, "heartbeat verdict (missing=[lb1])"},
		{`{"time":"2026-12-04T22:00:00.025Z","kind":"vip-acquired","msg":"VIP 198.18.8.100 added","epoch":3}`, "vip-acquired: VIP 198.18.8.100 added (epoch=3)"},
		{`{"time":"2026-12-04T22:00:00.030Z","msg":"probe ok","backend":"cp1"}`, ""}, // not a timeline word
		{`{"time":"2026-12-04T21:59:58.000Z","msg":"heartbeat verdict"}`, ""},        // before the window
		{`{"time":"2026-12-04T22:00:05.000Z","msg":"heartbeat verdict"}`, ""},        // after it
		{`heartbeat verdict at some time`, ""},                                       // not JSON
		{`{"msg":"heartbeat verdict"}`, ""},                                          // no time
	} {
		e, ok := traceLine([]byte(tc.line), "lb2", fault)
		if (tc.want != "") != ok || (ok && e.What != tc.want) {
			t.Errorf("traceLine(%s) = %+v, %v; want %q", tc.line, e, ok, tc.want)
		}
	}
	fr := faultRun{Mode: faultLink, TakeoverMS: 24, Timeline: []int{1, 1, 1}, Trace: []traceEvent{{AtMS: 21, Host: "lb2", What: "heartbeat verdict"}}}
	fr.Timeline = make([]int, 100)
	for i := range fr.Timeline {
		if i < 40 || i >= 46 {
			fr.Timeline[i] = 1
		}
	}
	tl := runTimeline(fr)
	var whats []string
	for _, e := range tl {
		whats = append(whats, e.What)
	}
	if len(tl) != 4 || tl[0].AtMS != 0 || tl[1].AtMS != 21 || tl[2].AtMS != 24 || tl[3].AtMS != 30 {
		t.Errorf("runTimeline = %+v (%v); want fault, verdict, address, first connect at 0, 21, 24, 30 ms", tl, whats)
	}
}

func TestParseOnly(t *testing.T) {
	names := []string{"direct", "epconsole"}
	sel, err := parseOnly("epconsole,bulk,false-failovers", names)
	if err != nil || !slices.Equal(sel.systems, []string{"epconsole"}) || !sel.section(secBulk) || sel.section(secFailover) || sel.system("direct") {
		t.Errorf("parseOnly = %+v, %v", sel, err)
	}
	if sel, _ := parseOnly("", names); !sel.system("direct") || !sel.section(secLoaded) {
		t.Errorf("empty --only must keep everything: %+v", sel)
	}
	if _, err := parseOnly("epconsole,nonsense", names); err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Errorf("unknown name: %v", err)
	}
}

// TestConnectsSlowLoop runs the connect probe with its second loop
// against a listener on the loopback: both loops make their attempts,
// and none pays a retransmit.
func TestConnectsSlowLoop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	cr := probeConnects(context.Background(), connectsArgs{Target: ln.Addr().String(), Every: 5 * time.Millisecond, Timeout: 20 * time.Millisecond,
		Duration: 200 * time.Millisecond, SlowEvery: 20 * time.Millisecond, SlowTimeout: time.Second})
	if len(cr.Attempts) < 30 || len(cr.Slow) < 5 {
		t.Fatalf("%d attempts, %d slow ones; want about 40 and 10", len(cr.Attempts), len(cr.Slow))
	}
	var fr faultRun
	fr.fill(cr, 100*time.Millisecond, 200*time.Millisecond)
	if fr.SlowConnects != len(cr.Slow) || fr.SYNRetransmits != 0 {
		t.Errorf("fill: %d slow connects, %d retransmits; want %d, 0", fr.SlowConnects, fr.SYNRetransmits, len(cr.Slow))
	}
	cr.Slow[0].End = cr.Slow[0].Start + int64(1100*time.Millisecond)
	fr = faultRun{}
	fr.fill(cr, 100*time.Millisecond, 200*time.Millisecond)
	if fr.SYNRetransmits != 1 {
		t.Errorf("a 1.1 s connect: %d retransmits counted, want 1", fr.SYNRetransmits)
	}
}

// TestBulkRedirectRules has nft check the bulk section's redirect in a
// network namespace of its own (root and nft needed; skipped without).
func TestBulkRedirectRules(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (nft -c in a new network namespace)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft is not installed")
	}
	cmd := exec.Command("unshare", "-n", "nft", "-c", "-f", "-")
	cmd.Stdin = strings.NewReader(redirectRules([]string{"198.18.8.2", "198.18.8.100"}))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("nft -c rejected the redirect: %v\n%s", err, out)
	}
}

func TestLbPriority(t *testing.T) {
	var three, five []int
	for i := range 3 {
		three = append(three, lbPriority(i, 3))
	}
	for i := range 5 {
		five = append(five, lbPriority(i, 5))
	}
	if !slices.Equal(three, lbPriorities) || !slices.Equal(five, []int{150, 125, 100, 75, 50}) {
		t.Errorf("priorities %v and %v", three, five)
	}
}

func TestCostOver(t *testing.T) {
	t0 := map[int]procTicks{1: {ticks: 100}, 2: {ticks: 50}}
	// pid 3 started meanwhile: its ticks are not counted.
	t1 := map[int]procTicks{1: {ticks: 130, rssKB: 10240}, 2: {ticks: 60, rssKB: 20480}, 3: {ticks: 500, rssKB: 1024}}
	c := costOver(t0, t1, 10*time.Second, 5)
	// 40 ticks of 10 ms in 10 s = 4 % of a core, over 5 nodes.
	if c.CPUPercentPerNode != 0.8 || c.RSSMBPerNode != 6.2 || c.Processes != 3 || c.Peers != 5 {
		t.Errorf("costOver = %+v; want 0.8 %% and 6.2 MB per node, 3 processes, 5 peers", c)
	}
}

func TestProxyServerState(t *testing.T) {
	down := "[WARNING]  (22676) : Server kube-apiservers/cp3 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\". 2 active and 0 backup servers left.\n"
	up := "[WARNING]  (22676) : Server kube-apiservers/cp3 is UP, reason: Layer4 check passed, check duration: 0ms. 3 active and 0 backup servers online.\n"
	for _, tc := range []struct {
		name, log, backend, want string
	}{
		{"nothing logged: up", proxyStartMark + "\n", "cp3", "UP"},
		{"down", proxyStartMark + "\n" + down, "cp3", "DOWN"},
		{"down then up", proxyStartMark + "\n" + down + up, "cp3", "UP"},
		{"another backend", proxyStartMark + "\n" + down, "cp2", "UP"},
		{"an earlier process's state does not count", proxyStartMark + "\n" + down + proxyStartMark + "\n", "cp3", "UP"},
	} {
		if got := proxyServerState(tc.log, tc.backend); got != tc.want {
			t.Errorf("%s: proxyServerState = %q, want %q", tc.name, got, tc.want)
		}
	}
}
