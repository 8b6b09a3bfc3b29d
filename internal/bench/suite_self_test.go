package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeResults is a suite run with made-up figures, for the renderers.
func fakeResults() *results {
	tl := make([]int, 200)
	for i := range tl {
		if i < 40 || i > 48 {
			tl[i] = 1
		}
	}
	run := func(d float64, failed int) faultRun {
		return faultRun{Mode: faultLink, DarkMS: d, Failed: failed, Attempts: 800, Recovered: true, Timeline: tl}
	}
	sys := func(name string, dark float64) systemResult {
		return systemResult{Name: name, Label: name, Setup: []string{name + " setup"},
			NewConns: &loadResult{OK: 1000, Elapsed: 5 * time.Second}, KeptAlive: &loadResult{OK: 5000, Elapsed: 5 * time.Second, P50: time.Millisecond, P99: 4 * time.Millisecond},
			Idle:    &costResult{Seconds: 15, CPUPercentPerNode: 1.5, RSSMBPerNode: 30},
			Faults:  map[faultMode][]faultRun{faultLink: {run(dark, 6), run(dark+5, 7)}, faultStop: {run(5, 0)}},
			Streams: &streamsResult{N: 100, Survived: 100}, InFlight: &streamsResult{N: 50, Survived: 49, Errors: []string{"EOF"}},
			FaultsLoaded:   map[faultMode][]faultRun{faultLink: {run(dark+10, 8)}, faultPowerOff: {run(dark+12, 9)}},
			BackendFail:    []backendFailRun{{Fault: backendLinkDown, Backend: "cp3", RateBefore: 200, RateAfter: 150, WorstSecond: 90, FailedAfter: 12, FailingForMS: 2300}},
			Bulk:           &bulkResult{Seconds: 3, Gbps: 4.5, Retransmits: 2},
			Idle5:          &costResult{Seconds: 15, CPUPercentPerNode: 2.5, RSSMBPerNode: 31, Peers: 5},
			FalseFailovers: &soakResult{Seconds: 30, Moves: 0, OwnersAfter: []string{"lb1"}}}
	}
	d := sys("direct", 0)
	d.Faults, d.Streams, d.InFlight, d.Idle = nil, nil, nil, nil
	d.FaultsLoaded, d.BackendFail, d.Idle5, d.FalseFailovers = nil, nil, nil, nil
	d.Bulk = &bulkResult{Seconds: 3, Gbps: 5}
	r := &results{Date: time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC), Params: params(true),
		Systems: []systemResult{d, sys("keepalived-tuned", 40), sys("epconsole", 35)}}
	r.evaluate()
	return r
}

func TestSuiteEvaluate(t *testing.T) {
	r := fakeResults()
	want := map[string]bool{
		"owner link down: dark time": true, "graceful stop of the owner: failed connects": true,
		"streams through an owner power-off": true, "in-flight requests through an owner power-off": false,
		"idle cost at 3 peers": true, "new TLS connections per second": true,
		// epconsole 35/40 ms against tuned keepalived's 40/45 ms: not
		// half, and over 20 ms.
		"owner link-down, quiet host: dark time": false, "owner link-down, loaded host: dark time": false,
		"owner power-off, loaded host: dark time": false,
		"false failovers":                         true, "idle cost at 5 peers": false,
	}
	if len(r.Targets) != len(want) {
		t.Fatalf("targets = %+v, want %d", r.Targets, len(want))
	}
	for _, tg := range r.Targets {
		if w, ok := want[tg.Name]; !ok || w != tg.Met {
			t.Errorf("target %+v: want met=%v", tg, w)
		}
	}
}

func TestFaultRunFill(t *testing.T) {
	// Connects every 5 ms for 1 s, the ones started in 500..540 ms fail.
	var cr connectsResult
	for i := range 200 {
		s := int64(i) * int64(5*time.Millisecond)
		ok := s < int64(500*time.Millisecond) || s >= int64(540*time.Millisecond)
		cr.Attempts = append(cr.Attempts, attempt{Start: s, End: s + int64(time.Millisecond), OK: ok})
	}
	var fr faultRun
	fr.fill(cr, 500*time.Millisecond, time.Second)
	if fr.Failed != 8 || fr.DarkMS != 45 || !fr.Recovered || fr.Stalled {
		t.Errorf("fill = %+v: want 8 failed, 45 ms dark, recovered", fr)
	}
	if n := len(fr.Timeline); n != 140 || fr.Timeline[0] != 1 || fr.Timeline[39] != 1 || fr.Timeline[40] != 0 || fr.Timeline[48] != 1 {
		t.Errorf("timeline (%d bins) = %v", n, fr.Timeline)
	}
	fr.StealMS = 50
	fr.judge()
	if !fr.Disturbed || !strings.Contains(fr.DisturbedWhy, "steal") {
		t.Errorf("judge = %+v: want disturbed by steal", fr)
	}

	// The same dark window, and later the client starts nothing for
	// 100 ms (no connect fails in that gap): the longest gap is a stall.
	var stalled connectsResult
	for _, a := range cr.Attempts {
		if a.Start < int64(800*time.Millisecond) || a.Start >= int64(900*time.Millisecond) {
			stalled.Attempts = append(stalled.Attempts, a)
		}
	}
	fr = faultRun{}
	fr.fill(stalled, 500*time.Millisecond, time.Second)
	fr.judge()
	if fr.Failed != 8 || fr.DarkMS != 105 || !fr.Stalled || !strings.Contains(fr.DisturbedWhy, "client stalled") {
		t.Errorf("fill with a stall = %+v: want 8 failed, 105 ms gap, stalled, disturbed", fr)
	}
	// A connect that failed on the client's host disturbs the run.
	local := connectsResult{Attempts: append([]attempt{{Start: 0, End: 1000, Local: true}}, cr.Attempts[1:]...)}
	fr = faultRun{}
	fr.fill(local, 500*time.Millisecond, time.Second)
	fr.judge()
	if fr.LocalErrors != 1 || !fr.Disturbed || !strings.Contains(fr.DisturbedWhy, "client's host") {
		t.Errorf("fill with a local error = %+v: want 1 local error, disturbed", fr)
	}
	// A 100 ms dark window (connects failing through it) is no stall.
	var dark connectsResult
	for _, a := range cr.Attempts {
		a.OK = a.Start < int64(500*time.Millisecond) || a.Start >= int64(600*time.Millisecond)
		dark.Attempts = append(dark.Attempts, a)
	}
	fr = faultRun{}
	fr.fill(dark, 500*time.Millisecond, time.Second)
	if fr.DarkMS != 105 || fr.Stalled {
		t.Errorf("fill with a 100 ms dark window = %+v: want 105 ms dark, not stalled", fr)
	}
}

// TestFaultRunFill1ms: the 1 ms loop's dark time, and what every fifth
// connect alone (a 5 ms loop) saw of the same window.
func TestFaultRunFill1ms(t *testing.T) {
	var cr connectsResult
	for i := range 1000 {
		s := int64(i) * int64(time.Millisecond)
		ok := s < int64(500*time.Millisecond) || s > int64(512*time.Millisecond)
		cr.Attempts = append(cr.Attempts, attempt{Start: s, End: s + int64(time.Millisecond), OK: ok})
	}
	var fr faultRun
	fr.fill(cr, 500*time.Millisecond, time.Second)
	if fr.Failed != 13 || fr.DarkMS != 14 || fr.Dark5MS != 20 || fr.Stalled {
		t.Errorf("fill = %+v: want 13 failed, 14 ms dark, 20 ms with every fifth connect", fr)
	}
	if fr.Timeline[39] != 5 || fr.Timeline[40] != 0 || fr.Timeline[41] != 0 || fr.Timeline[42] != 2 {
		t.Errorf("timeline around the fault = %v: want 5 before, 0, then 2 in the bin of 513-514 ms", fr.Timeline[38:45])
	}
}

// TestDaemonTraceOnce: a daemon restarted during the suite is a second
// proc writing to the same log; its lines are in the timeline once.
func TestDaemonTraceOnce(t *testing.T) {
	fault := time.Now()
	log := filepath.Join(t.TempDir(), "lb1-epconsole.log")
	line := fmt.Sprintf(`{"time":%q,"msg":"VIP interface","up":false}`+"\n", fault.Add(time.Millisecond).Format(time.RFC3339Nano))
	if err := os.WriteFile(log, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &stack{procs: []*proc{{name: "lb1-epconsole", host: "lb1", logPath: log}, {name: "lb1-epconsole", host: "lb1", logPath: log}}}
	if tr := s.daemonTrace(fault); len(tr) != 1 {
		t.Errorf("daemonTrace = %+v: want the line once", tr)
	}
}

// TestSuiteWrite renders the markdown, results.json and the charts of a
// made-up run: every file is written and not empty.
func TestSuiteWrite(t *testing.T) {
	r := fakeResults()
	root := t.TempDir()
	md := r.markdown()
	for _, w := range []string{"| epconsole | link-down | quiet | 2 | 37.5 ms |", "| epconsole | link-down | loaded | 1 | 45.0 ms |",
		"| in-flight requests through an owner power-off | 50 of 50 answered | 49 answered | missed |  |", "bench/failover.png",
		"| epconsole | link-down (cp3) | 200 | 150 | 90 | 12 | 2.3 s |  |", "| epconsole | 4.50 | 0.90 | 2 |  |", "| epconsole | 30 s | **0** | 0 / 0 | lb1 |",
		"| 2.50 % | 31.0 MB |", "## New connections that pay a SYN retransmit", "## Timelines of runs that missed a target",
		"owner link-down, quiet host: dark time, run 2 (dark 40.0 ms"} {
		if !strings.Contains(md, w) {
			t.Errorf("markdown lacks %q:\n%s", w, md)
		}
	}
	if err := r.write(root, md); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"BENCHMARKS.md", "bench/results.json", "bench/failover.png", "bench/failover.svg", "bench/survivors.png", "bench/rates.svg"} {
		st, err := os.Stat(filepath.Join(root, "docs", f))
		if err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestRerender rewrites BENCHMARKS.md and the charts from the committed
// results.json (the same figures, after a change of the renderers), when
// EPCONSOLE_BENCH_RERENDER names the repository root (scripts/bench
// --rerender).
func TestRerender(t *testing.T) {
	root := os.Getenv("EPCONSOLE_BENCH_RERENDER")
	if root == "" {
		t.Skip("set EPCONSOLE_BENCH_RERENDER to the repository root to rewrite docs/BENCHMARKS.md from docs/bench/results.json")
	}
	b, err := os.ReadFile(filepath.Join(root, "docs", "bench", "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	r.evaluate()
	if err := r.write(root, r.markdown()); err != nil {
		t.Fatal(err)
	}
}
