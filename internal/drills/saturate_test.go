package drills

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// saturateEnv enables TestSaturatedNoFailover and sets how long both cores
// stay saturated ("10s" for CI's serial phase, "5m" for a soak). It is off
// by default: saturating the cores under a parallel `go test ./...` would
// disturb other packages' timing tests.
const saturateEnv = "EPCONSOLE_DRILL_SATURATE"

// saturateLoopsEnv sets how many busy loops saturate the cores (default:
// one per core; keepalived's figure was measured with 16).
const saturateLoopsEnv = "EPCONSOLE_DRILL_SATURATE_LOOPS"

// TestSaturatedNoFailover: every core busy with bounded busy loops (normal
// priority, as a loaded host would be): the heartbeat (SCHED_FIFO helper)
// keeps the owner alive, so the VIP never moves.
func TestSaturatedNoFailover(t *testing.T) {
	v := os.Getenv(saturateEnv)
	if v == "" {
		t.Skipf("set %s=10s (or 5m) to saturate the cores; off by default", saturateEnv)
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 10*time.Minute {
		t.Fatalf("%s=%q: want a duration up to 10m", saturateEnv, v)
	}
	c, owner := newCluster(t, "clz", d+60*time.Second)
	before := map[string]int{}
	for name, dp := range c.daemons {
		before[name] = countEvents(dp, "vip-acquired") + countEvents(dp, "vip-released")
	}
	ctx, cancel := context.WithTimeout(c.ctx, d)
	defer cancel()
	n := busyLoops(t, ctx)
	t.Logf("%d busy loops for %s; owner %s", n, d, owner)
	for ctx.Err() == nil {
		if o := c.owners(); len(o) != 1 || o[0] != owner {
			t.Fatalf("owners %v while saturated, want only %s", o, owner)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for name, dp := range c.daemons {
		if after := countEvents(dp, "vip-acquired") + countEvents(dp, "vip-released"); after != before[name] {
			t.Errorf("%s: %d VIP moves while the cores were saturated, want 0", name, after-before[name])
		}
	}
}

// busyLoops starts bounded busy loops (normal priority, ending with ctx):
// one per core, or EPCONSOLE_DRILL_SATURATE_LOOPS of them. It returns how
// many.
func busyLoops(t *testing.T, ctx context.Context) int {
	t.Helper()
	n := runtime.NumCPU()
	if v := os.Getenv(saturateLoopsEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 64 {
			t.Fatalf("%s=%q: want 1 to 64 busy loops", saturateLoopsEnv, v)
		}
	}
	for i := 0; i < n; i++ {
		cmd := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = cmd.Wait() }()
	}
	return n
}
