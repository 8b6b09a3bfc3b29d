package bench

import (
	"fmt"
	"slices"
	"strings"
)

// The sections of BENCHMARKS.md added after the first ones: the loaded
// mode's runs, the SYN retransmits, backend failure, false failovers,
// bulk throughput, one run's timeline.

// loadedText describes the loaded mode.
func (r *results) loadedText() string {
	return fmt.Sprintf("The **loaded** rows run the same faults (%s) with %d shell busy loops beside the whole lab (the machine has 2 cores: a load average of about %d on top of the bench's own), %d runs per system and fault; a load jump does not mark a loaded run disturbed, CPU steal and client stalls still do.\n\n",
		joinModes(loadedModes), r.Params.LoadedLoops, r.Params.LoadedLoops, r.Params.LoadedRuns)
}

func joinModes(ms []faultMode) string {
	var s []string
	for _, m := range ms {
		s = append(s, string(m))
	}
	return strings.Join(s, ", ")
}

// synText is the section on connections that pay a SYN retransmit.
func (r *results) synText() string {
	var b strings.Builder
	b.WriteString("\n## New connections that pay a SYN retransmit\n\n")
	fmt.Fprintf(&b, "Beside the %s loop, every failover run opens a new connection every %s the way a client with default settings does (a %s timeout, the kernel's SYN retransmits). A connection whose first SYN lands in the dark window gets no answer, and the kernel sends the SYN again only after **1 s** (`TCP_TIMEOUT_INIT`), however fast the VIP moves: those connections take a second or more (counted: ≥ %s). The column above gives the median and the worst run per system and fault.\n\n",
		failoverEvery, slowEvery, slowTimeout, synRetransmitAfter)
	b.WriteString("What a client can do (see docs/daemon.md, \"What a client sees during a failover\"): dial with a short connect timeout (e.g. 100–200 ms, a few times the dark time) and try again at once, so a lost SYN costs the timeout, not a second; `net.ipv4.tcp_syn_retries` only bounds the retries, it does not shorten the first 1 s wait. kubectl and client-go dial with Go's default 30 s timeout, so a connection they open in the dark window waits the second out; the requests on a connection already open (a watch, a kept-alive request) do not pay it (epconsole keeps those connections through the move: see the streams below).\n")
	return b.String()
}

// backendText renders the backend failure section.
func (r *results) backendText() string {
	var rows []string
	for _, s := range r.Systems {
		for _, bf := range s.BackendFail {
			e := ""
			if bf.Err != "" {
				e = firstLine(bf.Err)
			}
			rows = append(rows, fmt.Sprintf("| %s | %s (%s) | %.0f | %.0f | %d | %d | %.1f s | %s |", s.Label, bf.Fault, bf.Backend, bf.RateBefore, bf.RateAfter, bf.WorstSecond, bf.FailedAfter, bf.FailingForMS/1000, e))
		}
	}
	if len(rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Backend failure under load\n\n")
	fmt.Fprintf(&b, "%d clients make HTTPS requests through the VIP, each on a new TLS connection (2 s timeout); %s in, one backend fails: **link-down** (cp3's cable pulled; plugged back after the run, then, with HAProxy, one check interval and until every LB's HAProxy has it UP by its log (at most %s in all), %s without HAProxy) or **process-killed** (the stand-in on cp2 killed). The rate before (from 0.5 s in) and in the next %s, the worst second of those, the requests that failed in them (a client tries again 10 ms after a failure, so a refused connection counts many times where a timeout counts once), and how long after the fault requests still failed. The keepalived + nft DNAT rival has no backend health checks (its nft tables are written once), so it keeps sending a third of the new connections to the dead backend.\n\n",
		r.Params.LoadClients, backendBefore, backendSettle, backendSettleProbe, backendAfter)
	b.WriteString("| system | backend failure | req/s before | req/s next 10 s | worst second (ok) | failed next 10 s | failing for | error |\n|---|---|---|---|---|---|---|---|\n")
	b.WriteString(strings.Join(rows, "\n") + "\n")
	return b.String()
}

// falseText renders the false-failover section.
func (r *results) falseText() string {
	var rows []string
	for _, s := range r.Systems {
		f := s.FalseFailovers
		if f == nil {
			continue
		}
		rows = append(rows, fmt.Sprintf("| %s | %.0f s | **%d** | %d / %d | %s | %.2f → %.2f | %.0f ms | %s |", s.Label, f.Seconds, f.Moves, f.Adds, f.Removes,
			strings.Join(f.OwnersAfter, ", "), f.LoadStart, f.LoadEnd, f.StealMS, firstLine(f.Err)))
	}
	if len(rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## False failovers\n\n")
	fmt.Fprintf(&b, "Every system with a VIP runs at the same time, each in a lab of its own (3 LBs), for %s with no fault but two shell busy loops saturating both cores and 1 %% random loss in and out of every LB host (nft `numgen random mod 100`, the loss drill's rules). A **move** is the VIP added on an LB other than the one that had it last (netlink address events of every LB, from `lb1` on); adds / removes count every address event.\n\n",
		r.Params.SoakFor)
	b.WriteString("| system | soak | VIP moves | adds / removes | owner after | load | CPU steal | error |\n|---|---|---|---|---|---|---|---|\n")
	b.WriteString(strings.Join(rows, "\n") + "\n")
	return b.String()
}

// bulkText renders the bulk throughput section.
func (r *results) bulkText() string {
	var direct float64
	if d := r.system("direct"); d != nil && d.Bulk != nil {
		direct = d.Bulk.Gbps
	}
	var rows []string
	for _, s := range r.Systems {
		if s.Bulk == nil {
			continue
		}
		ratio := "-"
		if direct > 0 && s.Bulk.Err == "" {
			ratio = fmt.Sprintf("%.2f", s.Bulk.Gbps/direct)
		}
		rows = append(rows, fmt.Sprintf("| %s | %.2f | %s | %d | %s |", s.Label, s.Bulk.Gbps, ratio, s.Bulk.Retransmits, firstLine(s.Bulk.Err)))
	}
	if len(rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Bulk throughput\n\n")
	fmt.Fprintf(&b, "`iperf3 -c VIP -p 6443 -t %.0f` from the client, one TCP stream, to an iperf3 server on cp1 (the stand-ins on cp2 and cp3 stopped, so every system sends to cp1; on cp1 an nft redirect hands the datapath's connections to 6443 to iperf3 while the LBs' health probes still reach the stand-in). Gbit/s received; direct is the client to cp1 with the same redirect. All of it crosses veth pairs and one bridge on this machine's 2 cores, so the ratio says what each LB datapath costs, not what a NIC would carry.\n\n",
		r.Params.BulkFor.Seconds())
	b.WriteString("| system | Gbit/s | ratio to direct | TCP retransmits | error |\n|---|---|---|---|---|\n")
	b.WriteString(strings.Join(rows, "\n") + "\n")
	return b.String()
}

// timelineText prints one run's timeline for each dark-time target
// missed: epconsole's worst run of that fault and host.
func (r *results) timelineText() string {
	ep := r.system("epconsole")
	if ep == nil {
		return ""
	}
	var b strings.Builder
	for _, t := range r.Targets {
		if t.Met || !strings.HasPrefix(t.Name, "owner ") || t.mode == "" {
			continue
		}
		runs := ep.Faults[t.mode]
		if t.loaded {
			runs = ep.FaultsLoaded[t.mode]
		}
		worst := -1
		for i, fr := range runs {
			if fr.Err == "" && (worst < 0 || fr.DarkMS > runs[worst].DarkMS) {
				worst = i
			}
		}
		if worst < 0 {
			continue
		}
		fr := runs[worst]
		if b.Len() == 0 {
			b.WriteString("\n## Timelines of runs that missed a target\n\nepconsole's worst run of each missed dark-time target: the fault, what the daemons logged (when their logs carry it: the last beat seen, the verdict, the claim, the ARP), the VIP added on another LB (netlink event) and the first successful connect after the dark window; milliseconds from the fault.\n")
		}
		fmt.Fprintf(&b, "\n%s, run %d (dark %.1f ms, %d failed connects):\n\n", t.Name, worst+1, fr.DarkMS, fr.Failed)
		for _, e := range runTimeline(fr) {
			fmt.Fprintf(&b, "- %+.1f ms %s: %s\n", e.AtMS, e.Host, strings.ReplaceAll(e.What, "|", "/"))
		}
	}
	return b.String()
}

// failoverRows renders one system's rows of the failover table: the
// quiet runs of every fault, then the loaded ones.
func failoverRows(s systemResult) []string {
	var out []string
	row := func(host string, m faultMode, runs []faultRun) {
		st := summarizeFaults(runs)
		at5 := "–"
		if st.Worst5MS > 0 {
			at5 = fmt.Sprintf("%.1f / %.1f ms", st.Median5MS, st.Worst5MS)
		}
		out = append(out, fmt.Sprintf("| %s | %s | %s | %d | %.1f ms | %.1f ms | %.1f ms | %s | %d | %d / %d | %d | %d | %d |",
			s.Label, m, host, st.Runs, st.MedianMS, st.WorstMS, st.BestMS, at5, st.MedianFailed, st.MedianRetransmits, st.WorstRetransmits, st.Unrecovered, st.Disturbed, st.Lost))
	}
	for _, m := range faultModes {
		if runs, ok := s.Faults[m]; ok {
			row("quiet", m, runs)
		}
		if runs, ok := s.FaultsLoaded[m]; ok {
			row("loaded", m, runs)
		}
	}
	return out
}

// everyRun renders the per-run list of one system and fault.
func everyRun(label string, m faultMode, host string, runs []faultRun) string {
	var parts []string
	for _, fr := range runs {
		p := fmt.Sprintf("%.1f/%d/%d/%.0f", fr.DarkMS, fr.Failed, fr.SYNRetransmits, fr.StealMS)
		if fr.Disturbed {
			p += " D(" + fr.DisturbedWhy + ")"
		}
		if fr.Err != "" {
			p += " E(" + firstLine(fr.Err) + ")"
		}
		parts = append(parts, p)
	}
	return fmt.Sprintf("- %s, %s, %s: %s\n", label, m, host, strings.Join(parts, "; "))
}

// notMeasured lists what the run did not measure.
func (r *results) notMeasured() string {
	if len(r.Params.Sections) == 0 {
		return ""
	}
	var left []string
	for _, n := range sectionNames {
		if !slices.Contains(r.Params.Sections, n) {
			left = append(left, n)
		}
	}
	return "\n## Not measured in this run\n\nThis run was limited to the sections " + strings.Join(r.Params.Sections, ", ") + "; not run: " + strings.Join(left, ", ") + ".\n"
}

// timingText lists how long each section took in this run.
func (r *results) timingText() string {
	if len(r.SectionSeconds) == 0 {
		return ""
	}
	var parts []string
	for _, n := range append([]string{"setup"}, sectionNames...) {
		if v, ok := r.SectionSeconds[n]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f s", n, v))
		}
	}
	return "Time per section, all systems (setup: building and starting the labs): " + strings.Join(parts, ", ") + ".\n\n"
}
