package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// The suite's environment (scripts/bench sets it).
const (
	// suiteEnv must be set for BenchmarkSuite to run at all.
	suiteEnv = "EPCONSOLE_BENCH_SUITE"
	// quickEnv selects the quick mode (2 runs per fault, short loads).
	quickEnv = "EPCONSOLE_BENCH_QUICK"
	// outEnv names the repository root: docs/BENCHMARKS.md,
	// docs/bench/results.json and the charts are written under it.
	outEnv = "EPCONSOLE_BENCH_OUT"
	// cmdEnv is the command line to print in the results.
	cmdEnv = "EPCONSOLE_BENCH_CMD"
	// onlyEnv, a comma-separated list of system names, runs only those.
	onlyEnv = "EPCONSOLE_BENCH_SYSTEMS"
	// goBenchEnv names a file with the Go benchmarks' output to include.
	goBenchEnv = "EPCONSOLE_BENCH_GOBENCH"
)

// suiteParams are the bounds of one suite run.
type suiteParams struct {
	Quick       bool          `json:"quick"`
	Runs        int           `json:"runs_per_fault"`
	LoadClients int           `json:"load_clients"`
	LoadFor     time.Duration `json:"load_duration"`
	IdleFor     time.Duration `json:"idle_duration"`
	Streams     int           `json:"streams"`
	StreamFor   time.Duration `json:"stream_duration"`
	InFlight    int           `json:"in_flight"`
	// OtherRuns is the runs of kill-9 and graceful-stop on a quiet host
	// (Runs those of link-down and power-off, the faults with targets).
	OtherRuns int `json:"runs_kill_and_stop"`
	// LoadedRuns is the runs per fault of the loaded mode, LoadedLoops
	// its busy loops.
	LoadedRuns  int `json:"loaded_runs_per_fault"`
	LoadedLoops int `json:"loaded_busy_loops"`
	// SoakFor is the false-failover soak, BulkFor the iperf3 transfer.
	SoakFor time.Duration `json:"soak_duration"`
	BulkFor time.Duration `json:"bulk_duration"`
	// Sections are the sections that ran (all when empty).
	Sections []string `json:"sections,omitempty"`
}

func params(quick bool) suiteParams {
	if quick {
		return suiteParams{Quick: true, Runs: 2, OtherRuns: 1, LoadClients: 16, LoadFor: 4 * time.Second, IdleFor: 15 * time.Second, Streams: 100, StreamFor: 6 * time.Second, InFlight: 50,
			LoadedRuns: 1, LoadedLoops: 6, SoakFor: 30 * time.Second, BulkFor: 3 * time.Second}
	}
	return suiteParams{Runs: 10, OtherRuns: 10, LoadClients: 16, LoadFor: 20 * time.Second, IdleFor: 60 * time.Second, Streams: 100, StreamFor: 10 * time.Second, InFlight: 50,
		LoadedRuns: 10, LoadedLoops: 6, SoakFor: 5 * time.Minute, BulkFor: 10 * time.Second}
}

// runs is the number of quiet runs of mode.
func (p suiteParams) runs(mode faultMode) int {
	if slices.Contains(loadedModes, mode) || p.OtherRuns == 0 {
		return p.Runs
	}
	return p.OtherRuns
}

// BenchmarkSuite runs every system of systems() through every workload,
// one system after the other, each in a lab of its own with the same
// topology, and writes the results (see scripts/bench).
func BenchmarkSuite(b *testing.B) {
	if os.Getenv(suiteEnv) == "" {
		b.Skipf("set %s=1 to run the suite (root, network namespaces; scripts/bench does it)", suiteEnv)
	}
	if b.N != 1 {
		b.Fatalf("b.N = %d: run the suite once (-benchtime 1x)", b.N)
	}
	p := params(os.Getenv(quickEnv) != "")
	ctx, cancel := context.WithTimeout(context.Background(), 44*time.Minute)
	defer cancel()
	bin := testenv.Binary(b)
	res := &results{Date: time.Now().UTC(), Machine: machine(), Kernel: kernel(), LoadStart: loadavg(), Params: p,
		Command: os.Getenv(cmdEnv), StealStartMS: stealMS()}
	all := systems(bin)
	var names []string
	for _, sys := range all {
		names = append(names, sys.Name)
	}
	sel, err := parseOnly(os.Getenv(onlyEnv), names)
	if err != nil {
		b.Fatal(err)
	}
	res.Params.Sections = sel.sections
	var chosen []system
	for _, sys := range all {
		if !sel.system(sys.Name) {
			continue
		}
		chosen = append(chosen, sys)
		if !sel.anyFor(sys) {
			continue
		}
		b.Run(sys.Name, func(b *testing.B) {
			t0 := time.Now()
			sr := runSystem(b, ctx, sys, p, sel)
			res.Systems = append(res.Systems, sr)
			took := time.Since(t0)
			for sec, v := range sr.SectionSeconds {
				res.addSeconds(sec, time.Duration(v*float64(time.Second)))
				took -= time.Duration(v * float64(time.Second))
			}
			res.addSeconds("setup", took)
			b.Logf("%s took %s, load %s", sys.Name, time.Since(t0).Round(time.Second), loadavg())
		})
	}
	runSideBySide(b, ctx, chosen, p, sel, res)
	res.LoadEnd = loadavg()
	res.Elapsed = time.Since(res.Date).Round(time.Second).String()
	if f := os.Getenv(goBenchEnv); f != "" {
		if g, err := os.ReadFile(f); err == nil {
			res.GoBench = strings.TrimSpace(string(g))
		}
	}
	res.evaluate()
	md := res.markdown()
	fmt.Println(md)
	if root := os.Getenv(outEnv); root != "" {
		if err := res.write(root, md); err != nil {
			b.Fatal(err)
		}
		b.Logf("results written under %s", root)
	}
}

// runSystem builds the system's lab and runs the workloads; a failure of
// one workload is recorded and the others still run.
func runSystem(b *testing.B, ctx context.Context, sys system, p suiteParams, sel selection) systemResult {
	r := systemResult{Name: sys.Name, Label: sys.Label}
	s := newStack(b, ctx, sys.Prefix)
	if err := s.startSystem(sys); err != nil {
		r.Errors = append(r.Errors, "start: "+err.Error())
		return r
	}
	r.Setup = sys.desc(s)
	target := netip.AddrPortFrom(s.vip, servicePort)
	if !sys.VIP {
		target = netip.AddrPortFrom(s.lab.Host("cp1").IPv4(), servicePort)
	}
	note := func(what string, err error) {
		if err != nil {
			r.Errors = append(r.Errors, what+": "+err.Error())
			b.Logf("%s %s: %v", sys.Name, what, err)
		}
	}
	var err error
	section := func(name string, run func()) {
		if !sel.section(name) {
			return
		}
		t0 := time.Now()
		run()
		took := time.Since(t0)
		if r.SectionSeconds == nil {
			r.SectionSeconds = map[string]float64{}
		}
		r.SectionSeconds[name] += took.Round(100 * time.Millisecond).Seconds()
		b.Logf("%s %s took %s, load %s", sys.Name, name, took.Round(100*time.Millisecond), loadavg())
	}
	section(secRates, func() {
		r.NewConns, err = s.runLoad(target, p, true)
		note("new TLS connections", err)
		r.KeptAlive, err = s.runLoad(target, p, false)
		note("kept-alive requests", err)
	})
	if sys.VIP {
		section(secFailover, func() {
			r.Faults = map[faultMode][]faultRun{}
			for _, mode := range faultModes {
				for i := range p.runs(mode) {
					r.Faults[mode] = append(r.Faults[mode], s.logRun(sys, mode, i, s.failoverRun(sys, mode, false)))
				}
			}
		})
		section(secLoaded, func() {
			r.FaultsLoaded, err = s.loadedFailovers(sys, p)
			note("loaded mode", err)
		})
		section(secStreams, func() {
			r.Streams, err = s.streamsRun(target, p.Streams, int(p.StreamFor/(100*time.Millisecond)), 100*time.Millisecond, 2*time.Second)
			note("streams", err)
			r.InFlight, err = s.streamsRun(target, p.InFlight, 2, time.Second, 300*time.Millisecond)
			note("in-flight", err)
		})
		section(secBackend, func() {
			r.BackendFail = s.backendFailures(sys, target, p)
			for _, bf := range r.BackendFail {
				b.Logf("%s backend %s (%s): %.0f req/s before, %.0f req/s in the next 10 s (worst second %d), %d failed after, %d before %s",
					sys.Name, bf.Fault, bf.Backend, bf.RateBefore, bf.RateAfter, bf.WorstSecond, bf.FailedAfter, bf.FailedBefore, bf.Err)
			}
		})
	}
	section(secBulk, func() {
		r.Bulk = s.bulk(sys, target, p.BulkFor)
		b.Logf("%s bulk: %.2f Gbit/s, %d retransmits, %d tries %s", sys.Name, r.Bulk.Gbps, r.Bulk.Retransmits, r.Bulk.Tries, r.Bulk.Err)
	})
	return r
}

// logRun logs one failover run and returns it.
func (s *stack) logRun(sys system, mode faultMode, i int, fr faultRun) faultRun {
	kind := "quiet"
	if fr.Loaded {
		kind = "loaded"
	}
	added := "not within 3 s"
	if fr.TakeoverMS > 0 {
		added = fmt.Sprintf("after %.1f ms", fr.TakeoverMS)
	}
	s.b.Logf("%s %s %s run %d: dark %.1f ms, %d of %d connects failed, %d of %d slow connects paid a SYN retransmit, VIP added on another LB %s, lb1 the owner again %.1f s after the heal, steal %.0f ms, load %.2f -> %.2f, disturbed %v %s %s",
		sys.Name, kind, mode, i+1, fr.DarkMS, fr.Failed, fr.Attempts, fr.SYNRetransmits, fr.SlowConnects, added, fr.SettleMS/1000, fr.StealMS, fr.LoadStart, fr.LoadEnd, fr.Disturbed, fr.DisturbedWhy, fr.Err)
	if os.Getenv(traceEnv) != "" {
		for _, e := range runTimeline(fr) {
			s.b.Logf("  %+8.1f ms %s: %s", e.AtMS, e.Host, e.What)
		}
		if n := int(timelineBefore / binWidth); len(fr.Timeline) > n {
			s.b.Logf("  successful connects per 5 ms from the fault: %v", fr.Timeline[n:min(len(fr.Timeline), n+60)])
		}
	}
	return fr
}

// traceEnv, set, logs every failover run's timeline (the daemons' lines,
// the address added, the client's successes per 5 ms) beside its figures.
const traceEnv = "EPCONSOLE_BENCH_TRACE"

// failoverRun is one owner failure under the connect loop.
func (s *stack) failoverRun(sys system, mode faultMode, loaded bool) faultRun {
	fr := faultRun{Mode: mode, LoadStart: load1(), Loaded: loaded}
	if err := s.waitOwner(firstOwner, 300*time.Millisecond, 30*time.Second); err != nil {
		fr.LostBefore, fr.Err = true, "before the fault: "+err.Error()
		return fr
	}
	steal0 := stealMS()
	job, err := s.startProbe(s.ctx, "connects", connectsArgs{Target: netip.AddrPortFrom(s.vip, servicePort).String(),
		Every: failoverEvery, Timeout: connectTimeout, Duration: sys.Loop, SlowEvery: slowEvery, SlowTimeout: slowTimeout})
	if err != nil {
		fr.Err = err.Error()
		return fr
	}
	time.Sleep(pullAfter)
	watch, werr := s.watchTakeover()
	faultAt := time.Now()
	ferr := s.fault(mode)
	if os.Getenv(traceEnv) != "" {
		s.b.Logf("  %s %s: fault at %s", sys.Name, mode, faultAt.Format("15:04:05.000000"))
	}
	if werr == nil {
		fr.TakeoverMS = float64(watch.wait(faultAt, 3*time.Second)) / 1e6
	}
	var cr connectsResult
	err = job.result(sys.Loop+15*time.Second, &cr)
	fr.Trace = s.daemonTrace(faultAt)
	herr := s.heal(mode)
	fr.StealMS = stealMS() - steal0
	fr.LoadEnd = load1()
	switch {
	case ferr != nil:
		fr.Err = "fault: " + ferr.Error()
	case err != nil:
		fr.Err = "client: " + err.Error()
	case herr != nil:
		fr.Err = "heal: " + herr.Error()
	}
	if err == nil {
		fr.fill(cr, time.Duration(faultAt.UnixNano()-cr.StartUnixNano), sys.Loop)
	}
	fr.judge()
	// Settled: lb1 alone holds the VIP again (the next run checks 300 ms
	// more before its fault).
	settle := time.Now()
	if err := s.waitOwner(firstOwner, 500*time.Millisecond, 40*time.Second); err != nil && fr.Err == "" {
		fr.Err = "after the heal: " + err.Error()
	}
	fr.SettleMS = float64(time.Since(settle)) / 1e6
	return fr
}

// streamStall, on top of a stream's line interval, is how long it may go
// without a byte before it counts as lost. The client only reads, so a
// connection that died with the old owner sends it nothing: without this
// bound it would wait out the whole timeout (15 s after the last line).
// A survivor's longest gap seen so far is the line interval plus at most
// 200 ms (one retransmit); a TCP retransmit backing off through a 3 s dark
// window comes within 3.2 s.
const streamStall = 5 * time.Second

// streamsRun opens n streams of lines lines (one every every) through
// target, powers the owner off after the given delay once every stream
// has its first line, and reports how they ended.
func (s *stack) streamsRun(target netip.AddrPort, n, lines int, every, after time.Duration) (*streamsResult, error) {
	if err := s.waitOwner(firstOwner, 300*time.Millisecond, 30*time.Second); err != nil {
		return nil, fmt.Errorf("before the fault: %w", err)
	}
	timeout := time.Duration(lines)*every + 15*time.Second
	stall := every + streamStall
	job, err := s.startProbe(s.ctx, "streams", streamsArgs{Target: target.String(), CAFile: s.lab.CAFile(), N: n, Lines: lines, Every: every, Timeout: timeout, Stall: stall})
	if err != nil {
		return nil, err
	}
	if l, err := job.next(30 * time.Second); err != nil || l != "ready" {
		return nil, fmt.Errorf("streams not ready: %q %v", l, err)
	}
	time.Sleep(after)
	before := s.conntrackCount(s.lbs[0])
	ferr := s.fault(faultPowerOff)
	time.Sleep(500 * time.Millisecond)
	successor := s.conntrackCount(s.lbs[1])
	var out []streamOutcome
	err = job.result(timeout+10*time.Second, &out)
	herr := s.heal(faultPowerOff)
	if err != nil {
		return nil, err
	}
	if ferr != nil {
		return nil, ferr
	}
	if herr != nil {
		return nil, herr
	}
	r := &streamsResult{N: n, Lines: lines, Every: every, Stall: stall, EntriesOwner: before, EntriesSuccessor: successor}
	for _, o := range out {
		if o.Complete {
			r.Survived++
			r.LongestGap = max(r.LongestGap, o.LongestGap)
		} else if len(r.Errors) < 3 {
			r.Errors = append(r.Errors, o.Err)
		}
	}
	return r, s.waitOwner(firstOwner, time.Second, 40*time.Second)
}

// conntrackCount counts h's established conntrack entries for the
// service port (-1: conntrack failed).
func (s *stack) conntrackCount(h *netlab.Host) int {
	out, err := h.Command(s.ctx, "conntrack", "-L", "-p", "tcp", "--orig-port-dst", strconv.Itoa(servicePort), "--state", "ESTABLISHED").Output()
	if err != nil {
		return -1
	}
	return strings.Count(string(out), "\n")
}

// runLoad runs the load probe against target.
func (s *stack) runLoad(target netip.AddrPort, p suiteParams, newConns bool) (*loadResult, error) {
	job, err := s.startProbe(s.ctx, "load", loadArgs{Target: target.String(), CAFile: s.lab.CAFile(), Clients: p.LoadClients, Duration: p.LoadFor, New: newConns})
	if err != nil {
		return nil, err
	}
	t0 := s.lbTicks()
	c0, w0 := readCPUStat(), time.Now()
	cp0 := s.hostTicks(netlab.RoleBackend)
	var r loadResult
	if err := job.result(p.LoadFor+30*time.Second, &r); err != nil {
		return nil, err
	}
	c1, el := readCPUStat(), time.Since(w0)
	if len(t0) > 0 {
		r.LBCPUPercentPerNode = cpuPercent(t0, s.lbTicks(), r.Elapsed) / float64(len(s.lbs))
	}
	if c1.total > c0.total {
		r.MachineIdlePercent = float64(c1.idle-c0.idle) / float64(c1.total-c0.total) * 100
	}
	r.StandinsCPUPercent = cpuPercent(cp0, s.hostTicks(netlab.RoleBackend), el)
	return &r, nil
}

// costOver is the cost of the processes of t1 over d (from t0), per node
// of peers.
func costOver(t0, t1 map[int]procTicks, d time.Duration, peers int) *costResult {
	var rss int64
	for _, t := range t1 {
		rss += t.rssKB
	}
	n := float64(peers)
	return &costResult{Seconds: d.Seconds(), CPUPercentPerNode: cpuPercent(t0, t1, d) / n, RSSMBPerNode: float64(rss) / 1024 / n, Processes: len(t1), Peers: peers}
}

// cpuPercent is the CPU time the processes of t0 still in t1 used over d,
// in % of one core (clock ticks of 10 ms).
func cpuPercent(t0, t1 map[int]procTicks, d time.Duration) float64 {
	var ticks int64
	for pid, t := range t1 {
		if t0v, ok := t0[pid]; ok {
			ticks += t.ticks - t0v.ticks
		}
	}
	return float64(ticks) / 100 / d.Seconds() * 100
}

type procTicks struct{ ticks, rssKB int64 }

// lbTicks reads utime+stime (clock ticks) and VmRSS of every process in
// the LBs' namespaces.
func (s *stack) lbTicks() map[int]procTicks { return ticksOf(s.lbs) }

// hostTicks is lbTicks for the lab's hosts of role.
func (s *stack) hostTicks(role netlab.Role) map[int]procTicks {
	return ticksOf(s.lab.HostsByRole(role))
}

// ticksOf reads utime+stime (clock ticks) and VmRSS of every process in
// the namespaces of hosts.
func ticksOf(hosts []*netlab.Host) map[int]procTicks {
	out := map[int]procTicks{}
	for _, h := range hosts {
		for _, pid := range nsPIDs(h) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue
			}
			i := strings.LastIndexByte(string(b), ')')
			f := strings.Fields(string(b[i+1:]))
			if len(f) < 13 {
				continue
			}
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			pt := procTicks{ticks: ut + st}
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for _, l := range strings.Split(string(st), "\n") {
					if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
						pt.rssKB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
					}
				}
			}
			out[pid] = pt
		}
	}
	return out
}

// stealMS reads the machine's CPU steal time so far from /proc/stat.
func stealMS() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	l, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(l)
	if len(f) < 9 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[8], 64)
	return v * 10 // USER_HZ is 100
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func load1() float64 {
	v, _ := strconv.ParseFloat(strings.Fields(loadavg() + " 0")[0], 64)
	return v
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return "Linux " + strings.TrimSpace(string(b))
}
