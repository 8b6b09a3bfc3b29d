package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// lbNode is one LB host as the generated configs see it.
type lbNode struct {
	Name     string
	Addr     netip.Addr
	Priority int
}

// vrrpParams is one LB's keepalived setup.
type vrrpParams struct {
	Self      lbNode
	Peers     []lbNode // the other LBs (unicast peers)
	Interface string
	VIP       netip.Addr
	RouterID  int
	// AdvertInt is keepalived's advert_int as written in the config
	// ("0.01": 10 ms, only valid with VRRPv3).
	AdvertInt string
	// Master makes the node start in state MASTER (the highest priority,
	// as in the classic runbook); the others start as BACKUP.
	Master bool
	// VRRPv2 keeps keepalived's default protocol version (with the
	// runbook's PASS authentication) instead of VRRPv3.
	VRRPv2 bool
	// Global are extra global_defs lines, Blocks extra top-level blocks
	// (vrrp_script) and Extra extra lines of the instance (track_script,
	// notify_*).
	Global, Blocks, Extra []string
}

// keepalivedConf is the keepalived.conf of one LB: the classic runbook's instance
// (unicast peers, MASTER/BACKUP by priority, preempt by default) tuned to
// VRRPv3 with a 10 ms advert interval. VRRPv3 has no authentication, so
// the seed's PASS block is left out.
func keepalivedConf(p vrrpParams) string {
	var b strings.Builder
	state := "BACKUP"
	if p.Master {
		state = "MASTER"
	}
	fmt.Fprintf(&b, "global_defs {\n  router_id bn-%s\n", p.Self.Name)
	if !p.VRRPv2 {
		b.WriteString("  vrrp_version 3\n")
	}
	for _, l := range p.Global {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	b.WriteString("}\n\n")
	for _, l := range p.Blocks {
		fmt.Fprintf(&b, "%s\n\n", l)
	}
	fmt.Fprintf(&b, "vrrp_instance bench {\n")
	fmt.Fprintf(&b, "  state %s\n  interface %s\n  virtual_router_id %d\n  priority %d\n  advert_int %s\n",
		state, p.Interface, p.RouterID, p.Self.Priority, p.AdvertInt)
	fmt.Fprintf(&b, "  unicast_src_ip %s\n  unicast_peer {\n", p.Self.Addr)
	for _, peer := range p.Peers {
		fmt.Fprintf(&b, "    %s\n", peer.Addr)
	}
	b.WriteString("  }\n")
	if p.VRRPv2 {
		b.WriteString("  authentication {\n    auth_type PASS\n    auth_pass bench\n  }\n")
	}
	for _, l := range p.Extra {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	fmt.Fprintf(&b, "  virtual_ipaddress {\n    %s/%d dev %s\n  }\n}\n", p.VIP, p.VIP.BitLen(), p.Interface)
	return b.String()
}

// haproxyConf is the classic runbook's HAProxy: a `mode tcp` frontend bound to
// VIP:port (needs net.ipv4.ip_nonlocal_bind=1 on the peers that do not own
// the VIP) and a round-robin backend with TCP checks. It runs in the
// foreground (-db), as root, without chroot.
func haproxyConf(vip netip.Addr, port uint16, backends map[string]netip.AddrPort) string {
	var b strings.Builder
	b.WriteString("global\n  maxconn 4096\n\n")
	b.WriteString("defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n\n")
	fmt.Fprintf(&b, "frontend monitor\n  mode http\n  bind 127.0.0.1:%d\n  monitor-uri /healthz\n\n", haproxyMonitorPort)
	fmt.Fprintf(&b, "frontend kubernetes-api\n  mode tcp\n  bind %s\n  default_backend kube-apiservers\n\n", netip.AddrPortFrom(vip, port))
	b.WriteString("backend kube-apiservers\n  mode tcp\n  balance roundrobin\n  option tcp-check\n  default-server inter 3s fall 3 rise 2\n")
	names := make([]string, 0, len(backends))
	for n := range backends {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  server %s %s check\n", n, backends[n])
	}
	return b.String()
}

// haproxyMonitorPort is HAProxy's own health endpoint on the loopback, for
// keepalived's track_script.
const haproxyMonitorPort = 8404

// conntrackdConf is one LB's conntrackd.conf: FTFW over multicast on the
// LB link (the conntrack-tools example for primary-backup), files under
// dir named after the LB, TCP only, local addresses ignored.
func conntrackdConf(self lbNode, iface, dir string) string {
	var b strings.Builder
	b.WriteString("Sync {\n  Mode FTFW {\n  }\n  Multicast {\n    IPv4_address 225.0.0.50\n    Group 3780\n")
	fmt.Fprintf(&b, "    IPv4_interface %s\n    Interface %s\n", self.Addr, iface)
	b.WriteString("    SndSocketBuffer 1249280\n    RcvSocketBuffer 1249280\n    Checksum on\n  }\n}\n")
	b.WriteString("General {\n  HashSize 32768\n  HashLimit 131072\n  Syslog off\n")
	fmt.Fprintf(&b, "  LogFile %s/%s-conntrackd.log\n  LockFile %s/%s-conntrackd.lock\n  UNIX {\n    Path %s/%s-conntrackd.ctl\n  }\n",
		dir, self.Name, dir, self.Name, dir, self.Name)
	b.WriteString("  NetlinkBufferSize 2097152\n  NetlinkBufferSizeMaxGrowth 8388608\n")
	b.WriteString("  Filter From Userspace {\n    Protocol Accept {\n      TCP\n    }\n    Address Ignore {\n      IPv4_address 127.0.0.1\n")
	fmt.Fprintf(&b, "      IPv4_address %s\n    }\n  }\n}\n", self.Addr)
	return b.String()
}

// conntrackdNotify is keepalived's notify script for conntrackd, the
// conntrack-tools primary-backup.sh: on becoming primary commit the
// external cache, flush the caches, resync from the kernel and send a
// bulk update; on becoming backup shorten the kernel timers and ask the
// primary for a resync.
func conntrackdNotify(conf string) string {
	return fmt.Sprintf(`#!/bin/sh
C=%q
case "$1" in
primary)
  conntrackd -C "$C" -c
  conntrackd -C "$C" -f
  conntrackd -C "$C" -R
  conntrackd -C "$C" -B
  ;;
backup)
  conntrackd -C "$C" -t
  conntrackd -C "$C" -n
  ;;
esac
exit 0
`, conf)
}

// epconsoleParams is one LB's epconsole config.
type epconsoleParams struct {
	Self      lbNode
	Peers     []lbNode
	Interface string
	VIP       netip.Addr
	Port      uint16
	Backends  map[string]netip.Addr
	KeyFile   string
	CAFile    string
	StateDir  string
	Socket    string
}

// epconsoleConf is the config.hcl of one LB. The heartbeat keeps its
// defaults (5 ms, 4 misses); preempt is on so that the first owner takes
// the VIP back after a heal, as keepalived does by default, and every run
// moves the VIP from the same LB to the same successor.
func epconsoleConf(p epconsoleParams) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster_name = \"bench\"\nstate_dir = %q\n", p.StateDir)
	fmt.Fprintf(&b, "vip %q {\n  interface = %q\n  port = %d\n}\n", p.VIP, p.Interface, p.Port)
	fmt.Fprintf(&b, "node {\n  name = %q\n  gossip_bind = \"%s:7946\"\n  priority = %d\n  preempt = true\n}\n", p.Self.Name, p.Self.Addr, p.Self.Priority)
	for _, peer := range p.Peers {
		fmt.Fprintf(&b, "peer %q {\n  address = \"%s:7946\"\n}\n", peer.Name, peer.Addr)
	}
	fmt.Fprintf(&b, "gossip {\n  key_file = %q\n}\n", p.KeyFile)
	names := make([]string, 0, len(p.Backends))
	for n := range p.Backends {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "backend %q {\n  address = %q\n  port = %d\n}\n", n, p.Backends[n], p.Port)
	}
	b.WriteString("health {\n  interval = \"500ms\"\n  fast_interval = \"100ms\"\n  timeout = \"400ms\"\n}\n")
	fmt.Fprintf(&b, "tls {\n  ca_file = %q\n}\n", p.CAFile)
	fmt.Fprintf(&b, "status {\n  socket = %q\n  metrics_listen = \"\"\n}\n", p.Socket)
	return b.String()
}

// runResult is one link-down run of one side.
type runResult struct {
	// Dark is the client's longest time without a successful connect.
	Dark time.Duration
	// Takeover is the time from the pull until the VIP address was added
	// on another LB (a netlink address event; zero: not seen).
	Takeover time.Duration
	// Failures of Attempts connects failed.
	Failures, Attempts int
	// NewOwner is the LB holding the VIP after the pull.
	NewOwner string
	// Recovered: a connect succeeded after the last failed one.
	Recovered bool
	// Stalled: no connect failed at all and yet the longest gap was more
	// than three connect timeouts: the client (or the whole machine) was
	// not running, the VIP was not what was dark.
	Stalled bool
}

// stats are the figures of one side's runs.
type stats struct {
	Runs                int
	Median, Worst, Best time.Duration
	// TakeoverMedian and TakeoverWorst summarize runResult.Takeover.
	TakeoverMedian, TakeoverWorst time.Duration
	MedianFailures                int
	Unrecovered                   int
	// Stalls counts the stalled runs; WorstUnstalled is the worst dark
	// time of the others.
	Stalls         int
	WorstUnstalled time.Duration
}

// summarize computes the median (the mean of the two middle runs for an
// even count), worst and best dark time of runs.
func summarize(runs []runResult) stats {
	s := stats{Runs: len(runs)}
	if len(runs) == 0 {
		return s
	}
	darks := make([]time.Duration, len(runs))
	takes := make([]time.Duration, len(runs))
	fails := make([]int, len(runs))
	for i, r := range runs {
		darks[i], takes[i], fails[i] = r.Dark, r.Takeover, r.Failures
		if !r.Recovered {
			s.Unrecovered++
		}
		if r.Stalled {
			s.Stalls++
		} else {
			s.WorstUnstalled = max(s.WorstUnstalled, r.Dark)
		}
	}
	s.Median, s.Best, s.Worst = median(darks)
	s.TakeoverMedian, _, s.TakeoverWorst = median(takes)
	slices.Sort(fails)
	if n := len(fails); n%2 == 1 {
		s.MedianFailures = fails[n/2]
	} else {
		s.MedianFailures = (fails[n/2-1] + fails[n/2]) / 2
	}
	return s
}

// median sorts ds (not empty) and returns its median (the mean of the two
// middle values for an even count), minimum and maximum.
func median(ds []time.Duration) (med, lo, hi time.Duration) {
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		med = ds[n/2]
	} else {
		med = (ds[n/2-1] + ds[n/2]) / 2
	}
	return med, ds[0], ds[n-1]
}

// ms formats d in milliseconds with one decimal.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// side is the results of one contender.
type side struct {
	Name string
	Runs []runResult
}

// report is one benchmark run, rendered into docs/BENCHMARKS.md.
type report struct {
	Date    time.Time
	Machine string // nproc, CPU model, kernel
	Setup   []string
	Sides   []side
}

// markdown renders the report: a context list, the side-by-side table and
// every run's dark time.
func (r report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s.\n\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Machine)
	for _, s := range r.Setup {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	b.WriteString("\n| side | runs | median dark | worst dark | best dark | failed connects (median) | not recovered | client stalls | worst dark without stalled runs | VIP on the successor after (median / worst) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sd := range r.Sides {
		st := summarize(sd.Runs)
		fmt.Fprintf(&b, "| %s | %d | %s ms | %s ms | %s ms | %d | %d | %d | %s ms | %s / %s ms |\n",
			sd.Name, st.Runs, ms(st.Median), ms(st.Worst), ms(st.Best), st.MedianFailures, st.Unrecovered, st.Stalls, ms(st.WorstUnstalled),
			ms(st.TakeoverMedian), ms(st.TakeoverWorst))
	}
	b.WriteString("\nEach run's dark time (ms), in run order:\n\n")
	for _, sd := range r.Sides {
		parts := make([]string, len(sd.Runs))
		for i, run := range sd.Runs {
			parts[i] = ms(run.Dark)
			if !run.Recovered {
				parts[i] += " (not recovered)"
			}
			if run.Stalled {
				parts[i] += " (client stalled: no connect failed in a long gap)"
			}
		}
		fmt.Fprintf(&b, "- %s: %s\n", sd.Name, strings.Join(parts, ", "))
	}
	return b.String()
}

// The markers around the generated section of docs/BENCHMARKS.md.
const (
	sectionBegin = "<!-- bench:failover:begin -->"
	sectionEnd   = "<!-- bench:failover:end -->"
)

// replaceSection replaces what lies between the begin and end markers of
// doc with body (markers kept, each on its own line).
func replaceSection(doc, body string) (string, error) {
	i := strings.Index(doc, sectionBegin)
	j := strings.Index(doc, sectionEnd)
	switch {
	case i < 0 || j < 0:
		return "", fmt.Errorf("markers %q and %q not found", sectionBegin, sectionEnd)
	case j < i:
		return "", errors.New("end marker before begin marker")
	case strings.Count(doc, sectionBegin) > 1 || strings.Count(doc, sectionEnd) > 1:
		return "", errors.New("markers appear more than once")
	}
	return doc[:i+len(sectionBegin)] + "\n" + strings.TrimSpace(body) + "\n" + doc[j:], nil
}
