package bench

import (
	"fmt"
	"strings"
)

// markdown renders the whole of docs/BENCHMARKS.md from the results.
func (r *results) markdown() string {
	var b strings.Builder
	mode := "full"
	if r.Params.Quick {
		mode = "quick (`--quick`: fewer runs, shorter loads; figures are indicative)"
	}
	b.WriteString("# Benchmarks\n\nThis file is written by `scripts/bench` (`just bench`); do not edit it by hand. The same\nnumbers are in [bench/results.json](bench/results.json), the charts in [bench/](bench/).\n\n")
	fmt.Fprintf(&b, "- date: %s (took %s)\n- mode: %s\n- command: `%s`\n- machine: %s\n- kernel: %s\n- load average at the start: %s; at the end: %s (the machine may be shared: see the disturbed runs)\n\n",
		r.Date.Format("2006-01-02 15:04 MST"), r.Elapsed, mode, r.Command, r.Machine, r.Kernel, r.LoadStart, r.LoadEnd)
	b.WriteString(r.timingText())
	b.WriteString(r.estimateText())
	b.WriteString("## Systems\n\nEach system runs alone, one after the other, in a lab of network namespaces of its own with the same topology: a client, three LB hosts `lb1..lb3` (priorities 150/100/50, `lb1` the first owner), three stand-in apiservers `cp1..cp3` (real TLS), one bridge, VIP `198.18.8.100:6443`.\n\n")
	for _, s := range r.Systems {
		for _, l := range s.Setup {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	b.WriteString("\n## Targets\n\n| target | want | got | | measured alongside |\n|---|---|---|---|---|\n")
	for _, t := range r.Targets {
		m := "missed"
		if t.Met {
			m = "met"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, m, strings.ReplaceAll(t.Evidence, "|", "/"))
	}
	b.WriteString("\n## Owner failure\n\n![successful connects per 5 ms across an owner link-down](bench/failover.png)\n\n")
	fmt.Fprintf(&b, "Each run: the client (at nice -20, so that waiting for a CPU beside the LB hosts' processes makes no gap of its own) makes a TCP connect to VIP:6443 every %s (%s timeout, overlapping, so the dark time has %s resolution; the column *every 5th connect alone* is what a 5 ms loop saw of the same runs); %s in, `lb1` fails: **link-down** (its cable pulled), **power-off** (its cable pulled and at once every process in its namespace killed; it comes back with no VIP and an empty conntrack table), **kill-9** (SIGKILL to the failover daemon alone: keepalived or epconsole), **graceful-stop** (SIGTERM to it). **Dark** is the longest time without a successful connect; the loop lasts %s (5 s for the runbook, whose VRRPv2 takes over 3 s). Then `lb1` is healed and takes the VIP back. A run is **disturbed** when the machine's CPU steal during it exceeded 20 ms, the client stalled (a gap over 60 ms with no failed connect) or the 1-minute load jumped by half and one; a run whose VIP was not on `lb1` alone before the fault is counted as **lost before** (a result, not an abort). %d runs per system of link-down and power-off, %d of kill-9 and graceful-stop.\n\n",
		failoverEvery, connectTimeout, failoverEvery, pullAfter, fastLoop, r.Params.Runs, r.Params.runs(faultKill))
	b.WriteString(r.loadedText())
	b.WriteString("| system | fault | host | runs | median dark | worst | best | every 5th connect alone: median / worst | failed connects (median) | SYN retransmits (median / worst) | not recovered | disturbed | lost before |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Systems {
		for _, row := range failoverRows(s) {
			b.WriteString(row + "\n")
		}
	}
	b.WriteString("\nEvery run (dark ms / failed connects / SYN retransmits / CPU steal ms; D = disturbed, E = error):\n\n")
	for _, s := range r.Systems {
		for _, m := range faultModes {
			if runs, ok := s.Faults[m]; ok {
				b.WriteString(everyRun(s.Label, m, "quiet", runs))
			}
			if runs, ok := s.FaultsLoaded[m]; ok {
				b.WriteString(everyRun(s.Label, m, "loaded", runs))
			}
		}
	}
	b.WriteString(r.timelineText())
	b.WriteString(r.synText())
	b.WriteString("\n## Connections through an owner power-off\n\n![streams and in-flight requests that survive](bench/survivors.png)\n\n")
	fmt.Fprintf(&b, "**Streams**: long-lived TLS connections, each reading a line every 100 ms from a stand-in; `lb1` is powered off 2 s in. **In-flight**: requests the stand-in answers over 1 s (a first line at once, the rest a second later); `lb1` is powered off 300 ms after every request has its first line. A stream or request survives when every line arrived and the response ended cleanly; one that gets no byte for its line interval plus %s is lost (the client only reads, so a connection that died with the owner tells it nothing). **conntrack** counts the entries for port 6443 on `lb1` just before the power-off and on `lb2` half a second after it (the streams run).\n\n", streamStall)
	b.WriteString("| system | streams survived | longest gap of a survivor | conntrack lb1 before / lb2 after | in-flight answered | first errors |\n|---|---|---|---|---|---|\n")
	for _, s := range r.Systems {
		if s.Streams == nil && s.InFlight == nil {
			continue
		}
		st, inf, gap, ct, errs := "-", "-", "-", "-", []string{}
		if s.Streams != nil {
			st = fmt.Sprintf("%d of %d", s.Streams.Survived, s.Streams.N)
			gap = fmt.Sprintf("%.0f ms", float64(s.Streams.LongestGap)/1e6)
			ct = fmt.Sprintf("%d / %d", s.Streams.EntriesOwner, s.Streams.EntriesSuccessor)
			errs = append(errs, s.Streams.Errors...)
		}
		if s.InFlight != nil {
			inf = fmt.Sprintf("%d of %d", s.InFlight.Survived, s.InFlight.N)
			errs = append(errs, s.InFlight.Errors...)
		}
		if len(errs) > 2 {
			errs = errs[:2]
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", s.Label, st, gap, ct, inf, strings.ReplaceAll(strings.Join(errs, "; "), "|", "/"))
	}
	b.WriteString("\n## Datapath and cost\n\n![new TLS connections per second relative to direct](bench/rates.png)\n\n")
	fmt.Fprintf(&b, "**New TLS connections**: %d clients, each making HTTPS requests on a new connection every time, for %s. **Kept-alive**: %d clients on kept-alive connections for %s, request latency p50/p99. **LB CPU meanwhile**: the CPU time of every process in the LB namespaces during the new-connection load, per node. **Idle**: CPU time and RSS of every process in the LB namespaces over %s with no traffic, per LB node, at 3 and at 5 peers: every system at once, each in a lab of its own, so that all are measured over the same seconds of this shared machine. Client, LBs and stand-ins share this machine's cores, so what a system's processes burn is taken from the others; direct reaches one stand-in (cp1) while the LB systems spread the clients over three, which is why a ratio can exceed 1.\n\n",
		r.Params.LoadClients, r.Params.LoadFor, r.Params.LoadClients, r.Params.LoadFor, r.Params.IdleFor)
	b.WriteString("| system | new TLS conn/s | ratio to direct | failed | LB CPU per node meanwhile | kept-alive req/s | p50 | p99 | idle CPU per node | RSS per node | idle CPU per node, 5 peers | RSS, 5 peers |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var direct float64
	if d := r.system("direct"); d != nil && d.NewConns != nil {
		direct = rate(d.NewConns)
	}
	for _, s := range r.Systems {
		nc, ratio, failed, lcpu, ka, p50, p99, cpu, rss := "-", "-", "-", "-", "-", "-", "-", "-", "-"
		if s.NewConns != nil {
			nc, failed = fmt.Sprintf("%.0f", rate(s.NewConns)), fmt.Sprint(s.NewConns.Failed)
			if s.Idle != nil {
				lcpu = fmt.Sprintf("%.1f %%", s.NewConns.LBCPUPercentPerNode)
			}
			if direct > 0 {
				ratio = fmt.Sprintf("%.2f", rate(s.NewConns)/direct)
			}
		}
		if s.KeptAlive != nil {
			ka, p50, p99 = fmt.Sprintf("%.0f", rate(s.KeptAlive)), fmt.Sprintf("%.2f ms", float64(s.KeptAlive.P50)/1e6), fmt.Sprintf("%.2f ms", float64(s.KeptAlive.P99)/1e6)
		}
		if s.Idle != nil {
			cpu, rss = fmt.Sprintf("%.2f %%", s.Idle.CPUPercentPerNode), fmt.Sprintf("%.1f MB", s.Idle.RSSMBPerNode)
		}
		cpu5, rss5 := "-", "-"
		if s.Idle5 != nil {
			cpu5, rss5 = fmt.Sprintf("%.2f %%", s.Idle5.CPUPercentPerNode), fmt.Sprintf("%.1f MB", s.Idle5.RSSMBPerNode)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Label, nc, ratio, failed, lcpu, ka, p50, p99, cpu, rss, cpu5, rss5)
	}
	b.WriteString(r.bulkText())
	b.WriteString(r.backendText())
	b.WriteString(r.falseText())
	var errs []string
	for _, s := range r.Systems {
		for _, e := range s.Errors {
			errs = append(errs, fmt.Sprintf("- %s: %s", s.Label, firstLine(e)))
		}
	}
	if len(errs) > 0 {
		b.WriteString("\n## Errors during the run\n\n" + strings.Join(errs, "\n") + "\n")
	}
	if r.GoBench != "" {
		b.WriteString("\n## Go benchmarks of the hot functions\n\nThe nft reconcile of package dataplane in a network namespace (nothing to change, and one backend's health flipped), the slot fill of the DNAT flow table (BuildSlots), the owner election (cluster.Elect, 3 and 5 peers):\n\n```\n" + r.GoBench + "\n```\n")
	}
	b.WriteString(r.notMeasured())
	return b.String()
}

func rate(l *loadResult) float64 {
	if l.Elapsed <= 0 {
		return 0
	}
	return float64(l.OK) / l.Elapsed.Seconds()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	if len(l) > 160 {
		l = l[:160] + "…"
	}
	return strings.ReplaceAll(l, "|", "/")
}
