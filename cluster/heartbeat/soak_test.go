package heartbeat

import (
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// soakEnv sets the duration of TestSoakUnderLoad (e.g. "10s"); without it
// the test is skipped. It belongs to the serial phase of CI: it saturates
// every core.
const soakEnv = "EPCONSOLE_HEARTBEAT_SOAK"

// TestSoakUnderLoad runs three beaters while busy processes (two per core,
// normal priority) saturate the machine, and counts peers declared dead.
// With real-time helpers there must be none; the controls (helpers at
// normal priority, the in-process loop) show what the priority buys.
func TestSoakUnderLoad(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv(soakEnv))
	if err != nil || d <= 0 {
		t.Skipf("set %s=10s to run (saturates every core)", soakEnv)
	}
	if d > 10*time.Minute {
		t.Fatalf("%s=%v: at most 10m", soakEnv, d)
	}
	for s, run := range []struct {
		name       string
		m          mode
		noRealtime bool
		mustHold   bool
	}{
		{"helper-realtime", modes[1], false, true},
		{"helper-normal-priority", modes[1], true, false},
		{"in-process", modes[0], false, false},
	} {
		t.Run(run.name, func(t *testing.T) {
			all := map[string]netip.AddrPort{"a": addrFor(run.m, 10+s, 1), "b": addrFor(run.m, 10+s, 2), "c": addrFor(run.m, 10+s, 3)}
			var nodes []*node
			for _, n := range []string{"a", "b", "c"} {
				cfg := testConfig(t, run.m, n, all, testKey(1))
				cfg.NoRealtime = run.noRealtime
				nodes = append(nodes, startNode(t, cfg))
			}
			for _, n := range nodes {
				n.waitView(5*time.Second, "all alive", allAlive)
			}
			exe, _ := os.Executable()
			var busy []*exec.Cmd
			for range 2 * runtime.NumCPU() {
				cmd := exec.Command(exe)
				cmd.Env = append(os.Environ(), testBusyEnv+"="+d.String())
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				busy = append(busy, cmd)
			}
			t.Cleanup(func() {
				for _, c := range busy {
					c.Process.Kill()
					c.Wait()
				}
			})
			deaths := map[string]int{}
			deadline := time.After(d)
			wasAlive := map[string]bool{}
		watch:
			for {
				for _, n := range nodes {
					v := n.b.View()
					for _, p := range v.Peers {
						key := n.name + "->" + p.Name
						if _, ok := wasAlive[key]; ok && wasAlive[key] && !p.Alive {
							deaths[key]++
						}
						wasAlive[key] = p.Alive
					}
				}
				select {
				case <-deadline:
					break watch
				case <-time.After(2 * time.Millisecond):
				}
			}
			total := 0
			for _, n := range nodes {
				v := n.b.View()
				s := v.Stats
				t.Logf("%s: rt=%v threshold %v/%v ticks=%d late ticks=%d max lateness=%v sent=%d accepted=%d",
					n.name, v.Realtime.InEffect, v.Threshold, v.SlowThreshold, s.Ticks, s.LateTicks, s.MaxLateness, s.Sent, s.Accepted)
			}
			for k, c := range deaths {
				total += c
				t.Logf("%s declared dead %d times", k, c)
			}
			t.Logf("%s under %d busy processes for %v: %d false deaths", run.name, len(busy), d, total)
			if run.mustHold && total > 0 {
				t.Errorf("%d false deaths with real-time helpers", total)
			}
		})
	}
}
