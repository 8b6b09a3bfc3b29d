package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The timeline of a failover run: successful connects (by start) per
// binWidth, from timelineBefore before the fault.
const (
	binWidth = 5 * time.Millisecond
	// failoverEvery is how often the failover runs' client starts a
	// connect: every millisecond, so the dark time is measured to about a
	// millisecond (a 5 ms loop added up to 5 ms to every system's figure).
	failoverEvery  = time.Millisecond
	timelineBefore = 200 * time.Millisecond
)

// results is one suite run: what results.json holds and BENCHMARKS.md shows.
type results struct {
	Date         time.Time      `json:"date"`
	Elapsed      string         `json:"elapsed"`
	Command      string         `json:"command"`
	Machine      string         `json:"machine"`
	Kernel       string         `json:"kernel"`
	LoadStart    string         `json:"load_start"`
	LoadEnd      string         `json:"load_end"`
	StealStartMS float64        `json:"steal_start_ms"`
	Params       suiteParams    `json:"params"`
	Systems      []systemResult `json:"systems"`
	Targets      []target       `json:"targets"`
	GoBench      string         `json:"go_bench,omitempty"`
	// SectionSeconds is how long each section took, over all systems
	// (with the labs' set-up: "setup").
	SectionSeconds map[string]float64 `json:"section_seconds,omitempty"`
}

// addSeconds adds d to section's time.
func (r *results) addSeconds(section string, d time.Duration) {
	if r.SectionSeconds == nil {
		r.SectionSeconds = map[string]float64{}
	}
	r.SectionSeconds[section] += d.Round(100 * time.Millisecond).Seconds()
}

// systemResult is one system's figures.
type systemResult struct {
	Name      string                   `json:"name"`
	Label     string                   `json:"label"`
	Setup     []string                 `json:"setup"`
	NewConns  *loadResult              `json:"new_tls_connections,omitempty"`
	KeptAlive *loadResult              `json:"kept_alive_requests,omitempty"`
	Idle      *costResult              `json:"idle,omitempty"`
	Faults    map[faultMode][]faultRun `json:"faults,omitempty"`
	Streams   *streamsResult           `json:"streams,omitempty"`
	InFlight  *streamsResult           `json:"in_flight,omitempty"`
	// FaultsLoaded are the owner failures of the loaded mode.
	FaultsLoaded   map[faultMode][]faultRun `json:"faults_loaded,omitempty"`
	BackendFail    []backendFailRun         `json:"backend_failure,omitempty"`
	Bulk           *bulkResult              `json:"bulk,omitempty"`
	Idle5          *costResult              `json:"idle_5_peers,omitempty"`
	FalseFailovers *soakResult              `json:"false_failovers,omitempty"`
	Errors         []string                 `json:"errors,omitempty"`
	// SectionSeconds is how long each section took in this system's lab.
	SectionSeconds map[string]float64 `json:"section_seconds,omitempty"`
}

// faultRun is one owner failure under the connect loop.
type faultRun struct {
	Mode   faultMode `json:"mode"`
	DarkMS float64   `json:"dark_ms"`
	// LocalErrors of the failed connects failed on the client's host
	// before a SYN left (no ephemeral port): the run is disturbed.
	LocalErrors int `json:"client_local_errors,omitempty"`
	// Dark5MS is the dark time of every fifth connect alone: what a
	// 5 ms loop (the bench's loop before the 1 ms one) would have seen.
	Dark5MS      float64 `json:"dark_ms_5ms_loop,omitempty"`
	Failed       int     `json:"failed_connects"`
	Attempts     int     `json:"attempts"`
	Recovered    bool    `json:"recovered"`
	Stalled      bool    `json:"client_stalled"`
	StealMS      float64 `json:"steal_ms"`
	LoadStart    float64 `json:"load1_start"`
	LoadEnd      float64 `json:"load1_end"`
	Disturbed    bool    `json:"disturbed"`
	DisturbedWhy string  `json:"disturbed_why,omitempty"`
	LostBefore   bool    `json:"vip_lost_before_fault"`
	Err          string  `json:"err,omitempty"`
	// Timeline counts successful connects per 5 ms (by the time they
	// started; up to 5 of the 1 ms loop) from 200 ms before the fault.
	Timeline []int `json:"timeline"`
	// Loaded: the run had busy loops beside it (the loaded mode).
	Loaded bool `json:"loaded,omitempty"`
	// SlowConnects new connections were made with a client's default
	// connect behaviour (a 3 s timeout, the kernel's SYN retransmits)
	// beside the 5 ms loop; SYNRetransmits of them took a second or
	// more: their first SYN landed in the dark window.
	SlowConnects   int `json:"slow_connects,omitempty"`
	SYNRetransmits int `json:"syn_retransmits"`
	// TakeoverMS is when the VIP was added on another LB, from the
	// fault (netlink address events; 0: not seen).
	TakeoverMS float64 `json:"takeover_ms,omitempty"`
	// SettleMS is how long after the heal lb1 took to be the VIP's only
	// owner again (for 500 ms): the time between runs.
	SettleMS float64 `json:"settle_ms,omitempty"`
	// Trace is what the daemons logged around the fault (epconsole).
	Trace []traceEvent `json:"trace,omitempty"`
}

// streamsResult is the streams (or in-flight requests) through a power-off.
type streamsResult struct {
	N     int           `json:"n"`
	Lines int           `json:"lines"`
	Every time.Duration `json:"every"`
	// Stall is how long a stream could go without a byte before it
	// counted as lost (0: until the run's timeout).
	Stall      time.Duration `json:"stall_limit,omitempty"`
	Survived   int           `json:"survived"`
	LongestGap time.Duration `json:"longest_gap_of_survivors"`
	Errors     []string      `json:"first_errors,omitempty"`
	// EntriesOwner and EntriesSuccessor count the conntrack entries for
	// the service port on lb1 just before the power-off and on lb2 half a
	// second after it (-1: not read).
	EntriesOwner     int `json:"conntrack_entries_owner_before"`
	EntriesSuccessor int `json:"conntrack_entries_successor_after"`
}

// costResult is the idle cost of one system, per LB node.
type costResult struct {
	Seconds           float64 `json:"seconds"`
	CPUPercentPerNode float64 `json:"cpu_percent_of_one_core_per_node"`
	RSSMBPerNode      float64 `json:"rss_mb_per_node"`
	Processes         int     `json:"processes"`
	// Peers is the number of LB nodes (3 when not set).
	Peers int `json:"peers,omitempty"`
}

// target is one claim checked against the figures.
type target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
	// Evidence is what the run measured next to it that bears on it.
	Evidence string `json:"evidence,omitempty"`
	// mode and loaded name the failover runs a dark-time target is about.
	mode   faultMode
	loaded bool
}

// fill computes the run's figures from the loop's attempts; faultAt and
// loop count from the loop's start.
func (fr *faultRun) fill(cr connectsResult, faultAt, loop time.Duration) {
	fr.Attempts = len(cr.Attempts)
	var ends, starts, failStarts []int64
	var lastFail int64 = -1
	for _, a := range cr.Attempts {
		if a.OK {
			ends = append(ends, a.End)
			starts = append(starts, a.Start)
		} else {
			fr.Failed++
			lastFail = max(lastFail, a.Start)
			failStarts = append(failStarts, a.Start)
			if a.Local {
				fr.LocalErrors++
			}
		}
	}
	slices.Sort(ends)
	gap, gapFrom := longestGap(ends, loop)
	fr.DarkMS = float64(gap) / 1e6
	var ends5 []int64
	for i, a := range cr.Attempts { // in the order they were started
		if a.OK && i%int(binWidth/failoverEvery) == 0 {
			ends5 = append(ends5, a.End)
		}
	}
	slices.Sort(ends5)
	gap5, _ := longestGap(ends5, loop)
	fr.Dark5MS = float64(gap5) / 1e6
	fr.Recovered = len(ends) > 0 && ends[len(ends)-1] > lastFail
	// A long gap in which no connect failed is the client not trying (its
	// process not scheduled), not the VIP dark: connects start on a fixed
	// schedule and one started into a dark VIP fails after its timeout. A
	// connect started up to a timeout before the gap's first instant may
	// belong to it (it was under way when the last one succeeded).
	failedIn := slices.ContainsFunc(failStarts, func(st int64) bool {
		return st >= gapFrom-int64(connectTimeout) && st < gapFrom+gap
	})
	fr.Stalled = !failedIn && time.Duration(gap) > 3*connectTimeout
	fr.SlowConnects = len(cr.Slow)
	for _, a := range cr.Slow {
		if time.Duration(a.End-a.Start) >= synRetransmitAfter {
			fr.SYNRetransmits++
		}
	}
	n := int((loop - faultAt + timelineBefore) / binWidth)
	if n <= 0 {
		return
	}
	fr.Timeline = make([]int, n)
	// By start: attempts start on a fixed schedule (failoverEvery), so a
	// bin holds binWidth/failoverEvery when every connect started in it
	// succeeded and 0 when all failed (by completion the client's jitter
	// would put low and high counts side by side).
	for _, st := range starts {
		off := time.Duration(st) - faultAt + timelineBefore
		if i := int(off / binWidth); off >= 0 && i < n {
			fr.Timeline[i]++
		}
	}
}

// longestGap is the longest time between two successive ends (sorted),
// from the loop's start to its end, and where it began.
func longestGap(ends []int64, loop time.Duration) (gap, from int64) {
	prev := int64(0)
	for _, e := range append(ends, int64(loop)) {
		if e-prev > gap {
			gap, from = e-prev, prev
		}
		prev = e
	}
	return gap, from
}

// judge marks the run disturbed: CPU steal, a client stall, a load jump.
func (fr *faultRun) judge() {
	var why []string
	if fr.StealMS > 20 {
		why = append(why, fmt.Sprintf("CPU steal %.0f ms", fr.StealMS))
	}
	if fr.Stalled {
		why = append(why, "client stalled")
	}
	if fr.LocalErrors > 0 {
		why = append(why, fmt.Sprintf("%d connects failed on the client's host", fr.LocalErrors))
	}
	// In the loaded mode the load climbs on purpose.
	if !fr.Loaded && fr.LoadEnd > fr.LoadStart*1.5+1 {
		why = append(why, fmt.Sprintf("load jumped %.2f -> %.2f", fr.LoadStart, fr.LoadEnd))
	}
	fr.Disturbed = len(why) > 0
	fr.DisturbedWhy = strings.Join(why, ", ")
}

// faultStats summarizes the usable runs (no error) of one mode.
type faultStats struct {
	Runs, Usable, Disturbed, Lost, Unrecovered int
	MedianMS, WorstMS, BestMS                  float64
	// Median5MS and Worst5MS are those of Dark5MS (0: not measured).
	Median5MS, Worst5MS float64
	MedianFailed        int
	// MedianRetransmits and WorstRetransmits summarize SYNRetransmits.
	MedianRetransmits, WorstRetransmits int
}

// medianOf is the median of sorted values (the mean of the middle two of an even count).
func medianOf(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 0 {
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return sorted[n/2]
}

func summarizeFaults(runs []faultRun) faultStats {
	st := faultStats{Runs: len(runs)}
	var darks, darks5 []float64
	var fails, retx []int
	for _, r := range runs {
		if r.LostBefore {
			st.Lost++
		}
		if r.Err != "" && r.Attempts == 0 {
			continue
		}
		if r.Disturbed {
			st.Disturbed++
		}
		if !r.Recovered {
			st.Unrecovered++
		}
		darks = append(darks, r.DarkMS)
		if r.Dark5MS > 0 {
			darks5 = append(darks5, r.Dark5MS)
		}
		fails = append(fails, r.Failed)
		retx = append(retx, r.SYNRetransmits)
	}
	st.Usable = len(darks)
	if len(darks) == 0 {
		return st
	}
	slices.Sort(darks)
	slices.Sort(fails)
	st.MedianMS, st.BestMS, st.WorstMS = medianOf(darks), darks[0], darks[len(darks)-1]
	if len(darks5) > 0 {
		slices.Sort(darks5)
		st.Median5MS, st.Worst5MS = medianOf(darks5), darks5[len(darks5)-1]
	}
	st.MedianFailed = fails[len(fails)/2]
	slices.Sort(retx)
	st.MedianRetransmits, st.WorstRetransmits = retx[len(retx)/2], retx[len(retx)-1]
	return st
}

func (r *results) system(name string) *systemResult {
	for i := range r.Systems {
		if r.Systems[i].Name == name {
			return &r.Systems[i]
		}
	}
	return nil
}

// systemFor returns sys's result, added when the run has none yet.
func (r *results) systemFor(sys system) *systemResult {
	if sr := r.system(sys.Name); sr != nil {
		return sr
	}
	r.Systems = append(r.Systems, systemResult{Name: sys.Name, Label: sys.Label})
	return &r.Systems[len(r.Systems)-1]
}

// evaluate checks the README's claims and the targets.
func (r *results) evaluate() {
	ep, tuned, direct := r.system("epconsole"), r.system("keepalived-tuned"), r.system("direct")
	if ep == nil {
		return
	}
	r.Targets = nil
	add := func(name, want, got string, met bool) {
		r.Targets = append(r.Targets, target{Name: name, Want: want, Got: got, Met: met})
	}
	evidence := func(e string) { r.Targets[len(r.Targets)-1].Evidence = e }
	ctd := r.system("keepalived-nft-conntrackd")
	if tuned != nil && ep.Faults != nil && tuned.Faults != nil {
		e, k := summarizeFaults(ep.Faults[faultLink]), summarizeFaults(tuned.Faults[faultLink])
		add("owner link down: dark time", "epconsole's median ≤ tuned keepalived's",
			fmt.Sprintf("%.1f ms vs %.1f ms", e.MedianMS, k.MedianMS), e.Usable > 0 && k.Usable > 0 && e.MedianMS <= k.MedianMS)
	}
	if ep.Faults != nil {
		st := summarizeFaults(ep.Faults[faultStop])
		worst := 0
		for _, fr := range ep.Faults[faultStop] {
			worst = max(worst, fr.Failed)
		}
		add("graceful stop of the owner: failed connects", "0 in every run", fmt.Sprintf("worst run %d (of %d runs)", worst, st.Usable), st.Usable > 0 && worst == 0)
		if ctd != nil && ctd.Faults != nil {
			c := summarizeFaults(ctd.Faults[faultStop])
			evidence(fmt.Sprintf("disturbed runs %d of %d; keepalived + nft DNAT + conntrackd: %d failed (median), %.1f ms dark (median)", st.Disturbed, st.Runs, c.MedianFailed, c.MedianMS))
		}
	}
	if ep.Streams != nil {
		add("streams through an owner power-off", fmt.Sprintf("%d of %d survive", ep.Streams.N, ep.Streams.N), fmt.Sprintf("%d survive", ep.Streams.Survived), ep.Streams.Survived == ep.Streams.N)
		e := fmt.Sprintf("established conntrack entries for port 6443: %d on lb1 before, %d on lb2 0.5 s after", ep.Streams.EntriesOwner, ep.Streams.EntriesSuccessor)
		if ctd != nil && ctd.Streams != nil {
			e += fmt.Sprintf("; conntrackd rival: %d / %d, %d survive", ctd.Streams.EntriesOwner, ctd.Streams.EntriesSuccessor, ctd.Streams.Survived)
		}
		if len(ep.Streams.Errors) > 0 {
			e += "; first error: " + firstLine(ep.Streams.Errors[0])
		}
		evidence(e)
	}
	if ep.InFlight != nil {
		add("in-flight requests through an owner power-off", fmt.Sprintf("%d of %d answered", ep.InFlight.N, ep.InFlight.N), fmt.Sprintf("%d answered", ep.InFlight.Survived), ep.InFlight.Survived == ep.InFlight.N)
	}
	if ep.Idle != nil {
		add("idle cost at 3 peers", "< 2 % of one core per node (daemon + heartbeat helper)", fmt.Sprintf("%.2f %%", ep.Idle.CPUPercentPerNode), ep.Idle.CPUPercentPerNode < 2)
		if tuned != nil && tuned.Idle != nil {
			evidence(fmt.Sprintf("%d processes on the 3 LBs, %.1f MB RSS per node; tuned keepalived + HAProxy: %.2f %% (keepalived sends 100 adverts/s)", ep.Idle.Processes, ep.Idle.RSSMBPerNode, tuned.Idle.CPUPercentPerNode))
		}
	}
	r.evaluateMore(ep, tuned)
	if direct != nil && direct.NewConns != nil && ep.NewConns != nil && direct.NewConns.OK > 0 {
		ratio := float64(ep.NewConns.OK) / float64(direct.NewConns.OK)
		add("new TLS connections per second", "≥ 0.9 × direct", fmt.Sprintf("%.2f × direct", ratio), ratio >= 0.9)
		e := fmt.Sprintf("CPU of the LBs' processes during the load, per node: epconsole %.1f %%", ep.NewConns.LBCPUPercentPerNode)
		for _, o := range []*systemResult{tuned, ctd} {
			if o != nil && o.NewConns != nil {
				e += fmt.Sprintf(", %s %.1f %% (%.2f × direct)", o.Label, o.NewConns.LBCPUPercentPerNode, float64(o.NewConns.OK)/float64(direct.NewConns.OK))
			}
		}
		evidence(e + "; client, LBs and stand-ins share the machine's cores" + cpuBoundText(direct.NewConns, ep.NewConns))
	}
}

// write writes BENCHMARKS.md, results.json and the charts under root.
func (r *results) write(root, md string) error {
	dir := filepath.Join(root, "docs", "bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := r.charts(dir); err != nil {
		return fmt.Errorf("charts: %w", err)
	}
	return os.WriteFile(filepath.Join(root, "docs", "BENCHMARKS.md"), []byte(md), 0o644)
}

// darkTargetMS is the worst dark time the failover targets allow.
const darkTargetMS = 20

// evaluateMore checks the failover targets on a quiet and a busy host,
// the false failovers and the idle cost at 5 peers.
// at5ms says what every fifth connect alone (a 5 ms loop) saw, for
// epconsole (e) and tuned keepalived (k).
func at5ms(e, k faultStats) string {
	if e.Worst5MS == 0 {
		return ""
	}
	out := fmt.Sprintf("; with every fifth connect alone (a 5 ms loop): worst %.1f ms, median %.1f ms", e.Worst5MS, e.Median5MS)
	if k.Median5MS > 0 {
		out += fmt.Sprintf(" against tuned keepalived's %.1f ms", k.Median5MS)
	}
	return out
}

func (r *results) evaluateMore(ep, tuned *systemResult) {
	for _, loaded := range []bool{false, true} {
		host, faults, tf := "quiet", ep.Faults, (map[faultMode][]faultRun)(nil)
		if tuned != nil {
			tf = tuned.Faults
		}
		if loaded {
			host, faults = "loaded", ep.FaultsLoaded
			if tuned != nil {
				tf = tuned.FaultsLoaded
			}
		}
		for _, m := range loadedModes {
			runs, ok := faults[m]
			if !ok {
				continue
			}
			e := summarizeFaults(runs)
			k := summarizeFaults(tf[m])
			want := fmt.Sprintf("worst ≤ %d ms, median ≤ half of tuned keepalived's", darkTargetMS)
			got := fmt.Sprintf("worst %.1f ms, median %.1f ms", e.WorstMS, e.MedianMS)
			met := e.Usable > 0 && e.WorstMS <= darkTargetMS
			if k.Usable > 0 {
				got += fmt.Sprintf(" (tuned keepalived %.1f ms: half is %.1f ms)", k.MedianMS, k.MedianMS/2)
				met = met && e.MedianMS <= k.MedianMS/2
			} else {
				got += " (no tuned keepalived runs)"
				met = false
			}
			r.Targets = append(r.Targets, target{Name: fmt.Sprintf("owner %s, %s host: dark time", m, host), Want: want, Got: got, Met: met,
				Evidence: fmt.Sprintf("usable runs %d, disturbed %d, lost before %d; SYN retransmits median %d%s", e.Usable, e.Disturbed, e.Lost, e.MedianRetransmits, at5ms(e, k)),
				mode:     m, loaded: loaded})
		}
	}
	if f := ep.FalseFailovers; f != nil {
		t := target{Name: "false failovers", Want: fmt.Sprintf("0 VIP moves in %.0f s with both cores saturated and 1 %% loss", f.Seconds),
			Got: fmt.Sprintf("%d moves", f.Moves), Met: f.Err == "" && f.Moves == 0}
		var others []string
		for _, s := range r.Systems {
			if s.Name != ep.Name && s.FalseFailovers != nil {
				others = append(others, fmt.Sprintf("%s %d", s.Label, s.FalseFailovers.Moves))
			}
		}
		t.Evidence = fmt.Sprintf("load %.2f → %.2f", f.LoadStart, f.LoadEnd)
		if len(others) > 0 {
			t.Evidence += "; the others at the same time: " + strings.Join(others, ", ")
		}
		if f.Err != "" {
			t.Evidence += "; error: " + firstLine(f.Err)
		}
		r.Targets = append(r.Targets, t)
	}
	if c := ep.Idle5; c != nil {
		t := target{Name: "idle cost at 5 peers", Want: "< 2 % of one core per node (daemon + heartbeat helper)",
			Got: fmt.Sprintf("%.2f %%", c.CPUPercentPerNode), Met: c.CPUPercentPerNode < 2}
		if tuned != nil && tuned.Idle5 != nil {
			t.Evidence = fmt.Sprintf("tuned keepalived + HAProxy at 5 peers: %.2f %%", tuned.Idle5.CPUPercentPerNode)
		}
		r.Targets = append(r.Targets, t)
	}
}

// cpuBoundText says how busy the machine was during the direct and
// epconsole new-connection loads, and where its CPU went.
func cpuBoundText(direct, ep *loadResult) string {
	if direct.MachineIdlePercent == 0 && ep.MachineIdlePercent == 0 {
		return ""
	}
	client := func(l *loadResult) string {
		if l.ClientCPUPercent == 0 {
			return "" // not measured (runs before the client counted itself)
		}
		return fmt.Sprintf("client %.0f %%, ", l.ClientCPUPercent)
	}
	return fmt.Sprintf(" (the machine %.0f %% idle during direct's load, %sstand-ins %.0f %% of a core; %.0f %% idle during epconsole's, %sstand-ins %.0f %%, LB processes %.1f %% per node: the load is bound by the machine's CPU, so the LBs' CPU is taken from the client and the stand-ins; `BenchmarkTLSProfile` in internal/bench splits it further)",
		direct.MachineIdlePercent, client(direct), direct.StandinsCPUPercent, ep.MachineIdlePercent, client(ep), ep.StandinsCPUPercent, ep.LBCPUPercentPerNode)
}
