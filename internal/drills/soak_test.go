package drills

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
)

// The soak and the idle cost run on their own segment of the address
// space (198.18.100.0/24–198.18.109.0/24 is theirs).
var (
	soakNet4 = netip.MustParsePrefix("198.18.100.0/24")
	soakNet6 = netip.MustParsePrefix("fd00:198:18:100::/64")
	idleNet4 = netip.MustParsePrefix("198.18.101.0/24")
	idleNet6 = netip.MustParsePrefix("fd00:198:18:101::/64")
)

// soakEnv sets how long TestRealTrafficSoak runs (default 20s; `just
// soak` runs 90s; at most 10m).
const soakEnv = "EPCONSOLE_DRILL_SOAK"

// soakHeartbeatEnv replaces the default heartbeat for the feature-off
// control: "INTERVAL/MISSES", e.g. "1ms/2" (a 2 ms threshold, which must
// flap under this load).
const soakHeartbeatEnv = "EPCONSOLE_DRILL_SOAK_HEARTBEAT"

// soakLoadEnv adds a background load for the whole soak: N busy loops
// (normal priority, plain processes outside the LB namespaces, each
// bounded by timeout(1) to the soak's length plus a minute and killed at
// its end), e.g. 8 (four per core on two cores: a load average near 10).
const soakLoadEnv = "EPCONSOLE_DRILL_SOAK_LOAD"

// soakStreams is the number of long-lived streams through the VIP.
const soakStreams = 20

// TestRealTrafficSoak: a 3-peer cluster with the default heartbeat
// (5 ms x 4) under real traffic through the VIP and no fault at all — 20
// long-lived streams (a line every 100 ms, as watches carry events), a
// request every 0.5 s (as a steady stream of creates) and a connect loop
// every 5 ms — for EPCONSOLE_DRILL_SOAK: no VIP acquire or release after
// the start, no stream lost, no request failed. It prints each node's
// worst beat-loop lateness and longest gap between two beats of a peer.
func TestRealTrafficSoak(t *testing.T) {
	d := 20 * time.Second
	if v := os.Getenv(soakEnv); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 || d > 10*time.Minute {
			t.Fatalf("%s=%q: want a duration up to 10m", soakEnv, v)
		}
	}
	o := clusterOpts{net4: soakNet4, net6: soakNet6}
	if v := os.Getenv(soakHeartbeatEnv); v != "" {
		interval, misses, ok := strings.Cut(v, "/")
		if _, err := time.ParseDuration(interval); err != nil || !ok {
			t.Fatalf("%s=%q: want INTERVAL/MISSES, e.g. 1ms/2", soakHeartbeatEnv, v)
		}
		o.tweak = func(_ *cluster, _, hcl string) string {
			return strings.Replace(hcl, "gossip {\n", fmt.Sprintf("gossip {\n  heartbeat_interval = %q\n  heartbeat_misses = %s\n", interval, misses), 1)
		}
		t.Logf("control: heartbeat %s x %s instead of the default", interval, misses)
	}
	loops := 0
	if v := os.Getenv(soakLoadEnv); v != "" {
		var err error
		if loops, err = strconv.Atoi(v); err != nil || loops < 0 || loops > 64 {
			t.Fatalf("%s=%q: want 0 to 64 busy loops", soakLoadEnv, v)
		}
	}
	c, owner := newClusterWith(t, "hbk", d+90*time.Second, o)
	c.keepLogs()
	var load *backgroundLoad
	if loops > 0 {
		load = startBackgroundLoad(t, loops, d+time.Minute)
		t.Logf("background load: %d busy loops for the soak (load average now %s)", loops, loadAvg())
	}
	before := map[string]int{}
	for name, dp := range c.daemons {
		before[name] = countEvents(dp, "vip-acquired") + countEvents(dp, "vip-released")
	}
	target := netip.AddrPortFrom(c.vip, servicePort)
	every := 100 * time.Millisecond
	var streams []*netlab.Stream
	for i := 0; i < soakStreams; i++ {
		st, err := c.client.StartStream(c.ctx, netlab.StreamOpts{
			Target: target, Lines: int((d+10*time.Second)/every) + 1, Every: every, KeepAlive: time.Second,
			Timeout: d + 60*time.Second,
		})
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		streams = append(streams, st)
	}
	helpers := map[string]int{}
	delay0 := map[string]time.Duration{}
	for _, h := range c.lbs {
		if kids := childrenOf(c.daemons[h.Name()].cmd.Process.Pid); len(kids) == 1 {
			helpers[h.Name()] = kids[0]
			delay0[h.Name()] = runDelay(kids[0])
		}
	}
	cpu0 := cpuTimes(t)
	start := time.Now()
	creates, err := c.client.StartClient(c.ctx, netlab.ClientOpts{
		Target: target, Count: int(d / (500 * time.Millisecond)), Interval: 500 * time.Millisecond,
		RequestTimeout: 3 * time.Second, Timeout: d + 5*time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	connects, err := c.client.StartTCPConnect(c.ctx, netlab.TCPConnectOpts{Target: target, Duration: d, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("owner %s; %d streams, a request every 0.5 s and a connect every 5 ms through the VIP for %s", owner, len(streams), d)
	for time.Since(start) < d {
		if o := c.owners(); len(o) != 1 {
			t.Errorf("owners %v after %s", o, time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	cr, err := creates.Wait(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := connects.Wait(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	cpu1 := cpuTimes(t)
	el := time.Since(start).Seconds()
	if load != nil {
		load.stop()
		t.Logf("background load: %d busy loops; load average at the end %s, %.1f runnable tasks on average", loops, loadAvg(), load.runnable())
	}
	total := 0.0
	for i := range cpu1 {
		total += float64(cpu1[i] - cpu0[i])
	}
	pct := func(i int) float64 { return 100 * float64(cpu1[i]-cpu0[i]) / total }
	t.Logf("CPU over the soak (/proc/stat): user %.1f %%, system %.1f %%, softirq %.1f %%, steal %.1f %%, idle %.1f %%",
		pct(0)+pct(1), pct(2), pct(6), pct(7), pct(3))
	moves := 0
	for _, h := range c.lbs {
		if pid, ok := helpers[h.Name()]; ok {
			t.Logf("%s: heartbeat helper %d waited %s on a run queue during the soak (%.2f ms/s; schedstat run_delay, all threads)",
				h.Name(), pid, (runDelay(pid) - delay0[h.Name()]).Round(time.Microsecond),
				float64(runDelay(pid)-delay0[h.Name()])/1e6/el)
		}
		dp := c.daemons[h.Name()]
		n := countEvents(dp, "vip-acquired") + countEvents(dp, "vip-released") - before[h.Name()]
		moves += n
		w := worstBeats(dp)
		t.Logf("%s: %d VIP acquire/release events; heartbeat loop lateness max %s, beat gap max %s (%d late ticks of %d; last new worst %s after the soak's start)",
			h.Name(), n, w.Lateness, w.Gap, w.LateTicks, w.Ticks, w.At.Sub(start).Round(time.Millisecond))
	}
	lost := 0
	for i, st := range streams {
		st.Stop()
		res, err := st.Wait(c.ctx)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if res.End != netlab.StreamStopped && res.End != netlab.StreamComplete {
			lost++
			t.Errorf("stream %d (backend %s) lost: %s %s after %d lines", i, st.Backend, res.End, res.Err, res.Lines)
		}
	}
	t.Logf("requests: %d of %d OK; connects: %d attempts, %d failed, longest gap %s; streams lost: %d of %d",
		cr.OK, cr.Attempts, tr.Attempts, tr.Failures, tr.LongestGap, lost, len(streams))
	if moves != 0 {
		t.Errorf("%d VIP acquire/release events during the soak with no fault, want 0", moves)
	}
	if cr.Failed != 0 {
		t.Errorf("%d of %d requests failed: %v", cr.Failed, cr.Attempts, cr.Errors)
	}
}

// beatWorst is a daemon's last "heartbeat new worst" figures.
type beatWorst struct {
	Lateness, Gap    time.Duration
	LateTicks, Ticks uint64
	At               time.Time // when the daemon logged the last new worst
}

// worstBeats reads the daemon's last "heartbeat new worst" debug line.
func worstBeats(d *daemonProc) beatWorst {
	var w beatWorst
	for _, l := range logLines(d) {
		if !strings.Contains(l, `"msg":"heartbeat new worst"`) {
			continue
		}
		var e struct {
			Time      time.Time     `json:"time"`
			Lateness  time.Duration `json:"loop_max_lateness"`
			Gap       time.Duration `json:"max_beat_gap"`
			LateTicks uint64        `json:"late_ticks"`
			Ticks     uint64        `json:"ticks"`
		}
		if json.Unmarshal([]byte(l), &e) == nil {
			w = beatWorst{e.Lateness, e.Gap, e.LateTicks, e.Ticks, e.Time}
		}
	}
	return w
}

// runDelay is the time pid's threads waited on a run queue
// (/proc/PID/task/*/schedstat, second field).
func runDelay(pid int) time.Duration {
	var sum time.Duration
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if fs := strings.Fields(string(b)); len(fs) >= 2 {
			n, _ := strconv.ParseInt(fs[1], 10, 64)
			sum += time.Duration(n)
		}
	}
	return sum
}

// cpuTimes reads the machine's CPU times from /proc/stat: user, nice,
// system, idle, iowait, irq, softirq, steal.
func cpuTimes(t *testing.T) [8]uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var out [8]uint64
	for i := range out {
		if i+1 < len(f) {
			out[i], _ = strconv.ParseUint(f[i+1], 10, 64)
		}
	}
	return out
}

// idleEnv enables TestIdleCost.
const idleEnv = "EPCONSOLE_BENCH_IDLE"

// TestIdleCost measures what an idle 3-peer cluster (EPCONSOLE_BENCH_IDLE_PEERS:
// 3 to 5) costs each node: it waits 10 s after the start, then samples
// /proc/PID/stat of every daemon and its heartbeat helper over 30 s
// (EPCONSOLE_BENCH_IDLE_FOR) and prints the share of one core each used,
// with the helper's context switches per second. A measurement, not an
// assertion of a figure: it fails only when it cannot measure.
func TestIdleCost(t *testing.T) {
	if os.Getenv(idleEnv) == "" {
		t.Skipf("set %s=1 to measure the idle cost of a 3-peer cluster (40 s)", idleEnv)
	}
	window := 30 * time.Second
	if v := os.Getenv(idleEnv + "_FOR"); v != "" {
		var err error
		if window, err = time.ParseDuration(v); err != nil || window <= 0 || window > 10*time.Minute {
			t.Fatalf("%s_FOR=%q: want a duration up to 10m", idleEnv, v)
		}
	}
	peers := 3
	if v := os.Getenv(idleEnv + "_PEERS"); v != "" {
		var err error
		if peers, err = strconv.Atoi(v); err != nil || peers < 3 || peers > 5 {
			t.Fatalf("%s_PEERS=%q: want 3, 4 or 5", idleEnv, v)
		}
	}
	c, _ := newClusterWith(t, "hbki", window+90*time.Second, clusterOpts{net4: idleNet4, net6: idleNet6, peers: peers})
	time.Sleep(10 * time.Second)
	type proc struct {
		node, role string
		pid        int
		cpu0       uint64
		csw0       [2]uint64
	}
	var procs []*proc
	for _, h := range c.lbs {
		pid := c.daemons[h.Name()].cmd.Process.Pid
		helpers := childrenOf(pid)
		if len(helpers) != 1 {
			t.Fatalf("%s: daemon %d has children %v, want one heartbeat helper", h.Name(), pid, helpers)
		}
		procs = append(procs, &proc{node: h.Name(), role: "daemon", pid: pid}, &proc{node: h.Name(), role: "helper", pid: helpers[0]})
	}
	load0, _ := os.ReadFile("/proc/loadavg")
	t0 := time.Now()
	for _, p := range procs {
		p.cpu0 = cpuTicks(t, p.pid)
		p.csw0 = ctxSwitches(t, p.pid)
	}
	time.Sleep(window)
	el := time.Since(t0).Seconds()
	load1, _ := os.ReadFile("/proc/loadavg")
	node := map[string]float64{}
	for _, p := range procs {
		pct := 100 * float64(cpuTicks(t, p.pid)-p.cpu0) / clockTicks / el
		node[p.node] += pct
		csw := ctxSwitches(t, p.pid)
		t.Logf("%s %s (pid %d): %.2f %% of a core; %.0f voluntary, %.0f involuntary context switches/s",
			p.node, p.role, p.pid, pct, float64(csw[0]-p.csw0[0])/el, float64(csw[1]-p.csw0[1])/el)
	}
	for _, h := range c.lbs {
		t.Logf("%s: daemon + helper %.2f %% of one core (idle, %d peers, %s)", h.Name(), node[h.Name()], peers, window)
	}
	t.Logf("load average before %s, after %s", bytes.TrimSpace(load0), bytes.TrimSpace(load1))
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on
// every Linux architecture this runs on).
const clockTicks = 100

// cpuTicks returns utime+stime of pid and all its threads, in clock ticks.
func cpuTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseUint(f[11], 10, 64) // field 14, utime
	s, _ := strconv.ParseUint(f[12], 10, 64) // field 15, stime
	return u + s
}

// ctxSwitches returns the voluntary and involuntary context switches of
// pid's threads, summed.
func ctxSwitches(t *testing.T, pid int) [2]uint64 {
	t.Helper()
	var out [2]uint64
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			switch k {
			case "voluntary_ctxt_switches":
				out[0] += n
			case "nonvoluntary_ctxt_switches":
				out[1] += n
			}
		}
	}
	return out
}

// childrenOf lists the child processes of pid (all its threads').
func childrenOf(pid int) []int {
	var out []int
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}
