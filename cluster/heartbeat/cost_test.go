package heartbeat

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// costEnv enables TestHelperIdleCost: set it to how long each cluster
// size is measured ("10s").
const costEnv = "EPCONSOLE_BENCH_HEARTBEAT_COST"

// TestHelperIdleCost measures the beat helper alone, idle (no fault, the
// token refreshed every 100 ms as the daemon's keeper does), in clusters of
// 3 and 5 real helpers on loopback: each helper's CPU time as a share of
// one core (from /proc/PID/task/*/schedstat) and its context switches a
// second. It asserts nothing about the figures (they depend on the host);
// it fails only when a helper does not run.
func TestHelperIdleCost(t *testing.T) {
	v := os.Getenv(costEnv)
	if v == "" {
		t.Skipf("set %s=10s to measure the helper's idle cost", costEnv)
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 2*time.Minute {
		t.Fatalf("%s=%q: want a duration up to 2m", costEnv, v)
	}
	for i, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d-peers", size), func(t *testing.T) {
			m := modes[1]
			all := map[string]netip.AddrPort{}
			for k := 0; k < size; k++ {
				all[fmt.Sprintf("n%d", k)] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 8, byte(1 + k)}), uint16(17990+i))
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var bts []*Beater
			for _, self := range sortedNames(all) {
				cfg := testConfig(t, m, self, all, testKey(1))
				cfg.Logger = nil
				b, err := Start(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				bts = append(bts, b)
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				tk := time.NewTicker(100 * time.Millisecond)
				defer tk.Stop()
				for {
					for _, b := range bts {
						b.Refresh(Advert{})
					}
					select {
					case <-stop:
						return
					case <-tk.C:
					}
				}
			}()
			time.Sleep(time.Second) // steady state
			cpu0, sw0 := make([]time.Duration, size), make([]int64, size)
			for k, b := range bts {
				cpu0[k], sw0[k] = procCost(t, b.HelperPID())
			}
			t0 := time.Now()
			time.Sleep(d)
			el := time.Since(t0)
			var shares []string
			for k, b := range bts {
				cpu, sw := procCost(t, b.HelperPID())
				if !b.View().Beating {
					t.Errorf("helper %d not beating", k)
				}
				shares = append(shares, fmt.Sprintf("%.2f%% (%.0f switches/s)", 100*float64(cpu-cpu0[k])/float64(el), float64(sw-sw0[k])/el.Seconds()))
			}
			close(stop)
			<-done
			load, _ := os.ReadFile("/proc/loadavg")
			t.Logf("%d peers, %v, load %s: helper CPU per node (share of a core): %s", size, el.Round(time.Millisecond),
				strings.TrimSpace(string(load)), strings.Join(shares, ", "))
		})
	}
}

// procCost sums the CPU time and context switches of every thread of pid.
func procCost(t *testing.T, pid int) (time.Duration, int64) {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	var cpu time.Duration
	var sw int64
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(task, "schedstat"))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			cpu += time.Duration(ns)
		}
		st, err := os.ReadFile(filepath.Join(task, "status"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				sw += n
			}
			if v, ok := strings.CutPrefix(l, "nonvoluntary_ctxt_switches:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				sw += n
			}
		}
	}
	return cpu, sw
}
