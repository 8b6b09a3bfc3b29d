package connsync

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/testenv"
)

// TestSyncBench (EPCONSOLE_BENCH_SYNC=1; EPCONSOLE_BENCH_SYNC_FLOWS,
// _RATE and _SECONDS change the workload from 50,000 flows, 2,000 new
// and 2,000 closed a second, 60 s): an owner and two peers, each in its
// own namespace with epconsole's rules, on real clusters over loopback.
// The owner's table is filled, then churned (entries created and
// deleted in its table: one conntrack event each, where a real flow makes
// several), and the peers follow over the sync stream. It reports the
// lag on the peers (p50, p99, max), the wire bytes per second, the CPU
// of the whole process (owner, two peers and the load generator)
// against a control run of the same load without the sync, and how long
// a peer that restarts with an empty table takes to hold every flow.
func TestSyncBench(t *testing.T) {
	if os.Getenv("EPCONSOLE_BENCH_SYNC") != "1" {
		t.Skip("EPCONSOLE_BENCH_SYNC=1 runs the sync bench")
	}
	testenv.NeedNetns(t)
	flows, rate, secs := envInt("EPCONSOLE_BENCH_SYNC_FLOWS", 50000), envInt("EPCONSOLE_BENCH_SYNC_RATE", 2000), envInt("EPCONSOLE_BENCH_SYNC_SECONDS", 60)
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("workload: %d flows, %d new and %d closed a second for %d s; %s; load average at start: %s", flows, rate, rate, secs, time.Now().UTC().Format(time.RFC3339), load)
	var control time.Duration
	t.Run("control-no-sync", func(t *testing.T) {
		control = benchRun(t, flows, rate, secs, false)
	})
	t.Run("sync", func(t *testing.T) {
		cpu := benchRun(t, flows, rate, secs, true)
		t.Logf("process CPU during churn: %.1f %% of a core with the sync (owner + 2 peers + generator), %.1f %% without (generator only): the sync costs %.1f %% of a core at %d changes a second",
			pct(cpu, secs), pct(control, secs), pct(cpu-control, secs), 2*rate)
	})
}

func pct(d time.Duration, secs int) float64 { return 100 * d.Seconds() / float64(secs) }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRun runs one bench and returns the process CPU time of the churn.
func benchRun(t *testing.T, flows, rate, secs int, withSync bool) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+5*time.Minute)
	t.Cleanup(cancel)
	nodes := startSyncNodes(t, ctx, 3)
	owner := nodes[0]
	var syncs []*Sync
	lags := &lagSeries{t0: time.Now()}
	if withSync {
		for _, n := range nodes {
			s := n.start(t, ctx)
			t.Cleanup(s.Close)
			syncs = append(syncs, s)
		}
		for _, s := range syncs[1:] {
			fn := lags.add
			s.lagSink.Store(&fn)
		}
		syncs[0].SetHolding(true)
	}
	start := time.Now()
	owner.create(t, ctx, 0, flows)
	if withSync {
		for _, p := range nodes[1:] {
			waitUntil(t, 5*time.Minute, fmt.Sprintf("%s holds the %d flows", p.name, flows), func() bool { return p.entries(t) >= flows })
		}
		t.Logf("fill: %d flows created on the owner and held by both peers in %v", flows, time.Since(start).Round(time.Millisecond))
		lags.reset()
	}

	// Churn: every 10 ms, rate/100 new flows and as many of the oldest closed.
	ap, err := owner.ct.NewSyncApplier()
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	var wire0 uint64
	if withSync {
		wire0 = syncs[0].Stats().WireBytes
	}
	stopProfile := churnProfile(t, withSync)
	cpu0, t0 := cpuTime(), time.Now()
	next, oldest := flows, 0
	step := max(rate/100, 1)
	tick := time.NewTicker(10 * time.Millisecond)
	for time.Since(t0) < time.Duration(secs)*time.Second {
		<-tick.C
		for range step {
			e := benchEntry(next)
			e.ReplySrc = streamBackend
			if err := ap.Apply(ctx, e); err != nil {
				t.Fatal(err)
			}
			next++
			old := benchEntry(oldest)
			old.Op = dataplane.SyncDelete
			if err := ap.Apply(ctx, old); err != nil {
				t.Fatal(err)
			}
			oldest++
		}
	}
	tick.Stop()
	cpu := cpuTime() - cpu0
	stopProfile()
	elapsed := time.Since(t0)
	t.Logf("churn: %d created and %d closed in %v (%.0f a second each); process CPU %v", next-flows, oldest, elapsed.Round(time.Millisecond), float64(oldest)/elapsed.Seconds(), cpu.Round(time.Millisecond))
	if !withSync {
		return cpu
	}
	want := owner.entries(t)
	for _, p := range nodes[1:] {
		waitUntil(t, time.Minute, p.name+" follows the churn", func() bool { return p.entries(t) == want })
	}
	if got, n := nodes[1].count(t, ctx), owner.count(t, ctx); got != n {
		t.Logf("NOTE: %s has %d entries to the VIP, the owner %d (dumps)", nodes[1].name, got, n)
	}
	os := syncs[0].Stats()
	t.Logf("wire: %.0f bytes a second to 2 peers (%d batches in all)", float64(os.WireBytes-wire0)/elapsed.Seconds(), os.Sent)
	if sl := lags.sorted(); len(sl) > 0 {
		n := len(sl)
		t.Logf("lag on the peers over %d entries: p50 %v, p99 %v, max %v", n, sl[n/2], sl[n*99/100], sl[n-1])
		if p99 := sl[n*99/100]; p99 > 50*time.Millisecond {
			t.Logf("MISSED: lag p99 %v is above the 50 ms target", p99)
		}
	}
	lags.chart(t, lagTitle(flows, rate))
	for _, s := range syncs[1:] {
		if d := s.Stats().Dropped; len(d) > 0 {
			t.Errorf("a peer dropped %v", d)
		}
	}

	// Join: the last peer restarts with an empty table.
	joiner := nodes[2]
	syncs[2].Close()
	if _, err := joiner.ct.DeleteBackendFlows(ctx, streamVIP, streamBackend); err != nil {
		t.Fatal(err)
	}
	if n := joiner.entries(t); n != 0 {
		t.Fatalf("the joining peer still has %d entries", n)
	}
	j0 := time.Now()
	sj := joiner.start(t, ctx)
	t.Cleanup(sj.Close)
	waitUntil(t, 2*time.Minute, "the restarted peer holds every flow", func() bool { return joiner.entries(t) == want })
	join := time.Since(j0)
	if got := joiner.count(t, ctx); got != want {
		t.Errorf("the restarted peer has %d entries to the VIP, want %d", got, want)
	}
	t.Logf("join: a peer restarted with an empty table holds all %d flows after %v", want, join.Round(time.Millisecond))
	if join > 2*time.Second {
		t.Logf("MISSED: join %v is above the 2 s target", join.Round(time.Millisecond))
	}
	return cpu
}

// churnProfile starts a CPU profile of the churn when
// EPCONSOLE_BENCH_SYNC_PROFILE names a file (the sync run only): the
// sync's goroutines carry their node's name as the label "connsync", so
// `go tool pprof -tags FILE` splits the cost between the owner (syn1)
// and the peers.
func churnProfile(t *testing.T, withSync bool) func() {
	path := os.Getenv("EPCONSOLE_BENCH_SYNC_PROFILE")
	if path == "" || !withSync {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		t.Logf("no churn profile: %v", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		t.Logf("churn profile: %s (go tool pprof -tags %s)", path, path)
	}
}
