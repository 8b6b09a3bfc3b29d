package status

import (
	"fmt"
	"strings"

	"github.com/epconsole/epconsole/probes"
)

// Codes of the cluster findings (ClusterFindings).
const (
	CodeNoOwner        = "no-vip-owner"
	CodeTwoOwners      = "two-owners"
	CodeQuorumLost     = "election-quorum-lost"
	CodePeerDown       = "peer-down"
	CodeSplitView      = "split-view"
	CodeConfigMismatch = "config-mismatch"
	CodeDrained        = "backend-drained"
	CodeHeartbeatDown  = "heartbeat-not-running"
	CodePanicRouting   = "panic-routing"
)

// HeartbeatSwitchedOff is Election.HeartbeatError when the daemon runs
// without the heartbeat on purpose (--no-heartbeat): no finding.
const HeartbeatSwitchedOff = "heartbeat switched off"

// ClusterFindings judges the cluster part of a daemon's snapshot: no VIP
// owner or two owners (CRITICAL), this node's heartbeat not running
// (CRITICAL), the election's majority lost
// (CRITICAL), a peer down (WARNING), a split view — live peers disagreeing
// whether a backend is in service (WARNING) —, a config digest mismatch
// (WARNING) and a drained backend (WARNING: it takes no new connections
// until undrained). It is a pure function of the snapshot; the findings
// come worst first. A "direct" snapshot has no cluster view: nil.
func ClusterFindings(s Snapshot) []probes.Finding {
	if s.Source != SourceDaemon {
		return nil
	}
	var fs []probes.Finding
	add := func(sev probes.Severity, subject, code, msg string, fixes ...string) {
		f := probes.Finding{Check: probes.CheckCluster, Severity: sev, Subject: subject, Code: code, Message: msg}
		for _, fx := range fixes {
			f.Fixes = append(f.Fixes, probes.Fix{Text: fx})
		}
		fs = append(fs, f)
	}
	var owners, down []string
	for _, p := range s.Peers {
		if p.Live() {
			if p.Owner == p.Name {
				owners = append(owners, p.Name)
			}
			continue
		}
		down = append(down, p.Name)
	}
	e := s.Election
	switch {
	case len(owners) > 1:
		add(probes.Critical, strings.Join(owners, ","), CodeTwoOwners,
			fmt.Sprintf("%s all claim the VIP: clients may reach either host (the higher epoch wins once they hear each other)", strings.Join(owners, " and ")),
			"check that the peers reach each other on the gossip and heartbeat ports (a partition, or a firewall dropping them)")
	case e.Owner == "":
		why := e.Reason
		if why == "" {
			why = "no eligible peer"
		}
		add(probes.Critical, vipList(s), CodeNoOwner, "no peer holds the VIP: the endpoint is dark ("+why+")",
			"see which peers are eligible (epconsole check backends on each LB node: an LB whose own probes see no healthy backend is not eligible)",
			"check the VIP interface is up on the LB nodes")
	}
	if !e.HeartbeatRunning && e.HeartbeatError != "" && e.HeartbeatError != HeartbeatSwitchedOff {
		add(probes.Critical, s.Node, CodeHeartbeatDown,
			fmt.Sprintf("the heartbeat does not run on %s: its peers hear no beats from it and count it as gone (%s)", s.Node, e.HeartbeatError),
			"free the heartbeat port (or set gossip.heartbeat_port to a free port on every peer); the daemon retries on its own within 5 s",
			"journalctl -u epconsole | grep heartbeat")
	}
	if e.QuorumRequired && e.QuorumHave < e.QuorumNeed {
		add(probes.Critical, s.Node, CodeQuorumLost,
			fmt.Sprintf("%s hears %d of %d peers (needs %d): it may not hold or claim the VIP", s.Node, e.QuorumHave, e.QuorumPeers, e.QuorumNeed),
			"bring the down peers back, or check the network between the LB nodes (heartbeat and gossip ports)")
	}
	for _, name := range down {
		state, noBeats := "unknown", false
		for _, p := range s.Peers {
			if p.Name == name {
				state = p.State
				if p.State == "alive" {
					state, noBeats = "alive by gossip but its heartbeats do not arrive", true
				}
			}
		}
		msg := fmt.Sprintf("peer %s is not live (%s): one fewer candidate for the VIP", name, state)
		fix := "on " + name + ": systemctl status epconsole; journalctl -u epconsole"
		switch {
		case !noBeats && keyMismatch(s, name):
			msg += fmt.Sprintf("; its gossip is rejected: not encrypted with a key of %s's gossip key file", s.Node)
			fix = fmt.Sprintf("copy the gossip key file of %s to %s (sha256sum /etc/epconsole/gossip.key on both compares them), then on %s: systemctl reload epconsole", s.Node, name, name)
		case noBeats:
			fix = fmt.Sprintf("let %s's heartbeats reach %s: open UDP gossip.heartbeat_port (default the gossip port + 1) from %s to %s in the firewalls (nft list ruleset; firewall-cmd --list-all); if %s's heartbeat does not run, epconsole check on %s says why", name, s.Node, name, s.Node, name, name)
		}
		add(probes.Warning, name, CodePeerDown, msg, fix)
	}
	if e.PanicRouting {
		where := "this node does not hold the VIP now"
		if e.Owner == s.Node {
			where = "this node holds the VIP: every client connection is sent to a backend nobody checked"
		}
		var names []string
		for _, b := range s.Backends {
			names = append(names, b.Name)
		}
		add(probes.Critical, s.Node, CodePanicRouting,
			fmt.Sprintf("panic routing on %s: no backend passes its probes here, so new connections go to every backend (%s) unprobed; %s",
				s.Node, strings.Join(names, ", "), where),
			"find why the probes fail while the apiservers may be serving: `epconsole check backends` on this node (an expired probe client certificate, a firewall that drops the probes, an overloaded LB)",
			"if the apiservers are down, bring them back: panic routing ends by itself once a backend passes its probes",
			"to refuse connections instead when no backend is healthy: balance { panic_routing = false } on every LB node, then systemctl reload epconsole")
	}
	if len(e.Mismatch) > 0 {
		add(probes.Warning, strings.Join(e.Mismatch, ","), CodeConfigMismatch,
			fmt.Sprintf("config digest differs from the cluster's on %s: they are not chosen as a new owner while a matching peer is eligible", strings.Join(e.Mismatch, ", ")),
			"make config.hcl the same on every LB node, then systemctl reload epconsole on the changed ones")
	}
	for _, b := range s.Backends {
		if sv, ok := s.SplitView(b.Name); ok {
			var out []string
			for _, v := range sv.Out {
				out = append(out, v.Peer+" ("+v.State+")")
			}
			add(probes.Warning, b.Name, CodeSplitView,
				fmt.Sprintf("peers disagree about %s: %s see it down, %s see it up", b.Name, strings.Join(out, ", "), strings.Join(sv.In, ", ")),
				"check the network path from the disagreeing LB nodes to "+b.Address+" (route, firewall, MTU)")
		}
		if b.Drained {
			add(probes.Warning, b.Name, CodeDrained, fmt.Sprintf("%s is drained by an operator: no new connections go to it", b.Name),
				"when its maintenance is done: epconsole undrain "+b.Name)
		}
	}
	SortWorstFirst(fs)
	return fs
}

// ClusterVerdict is the "cluster" area's verdict from ClusterFindings:
// "lb1 owns 198.18.9.10; 3/3 peers live" and the worst severity.
func ClusterVerdict(s Snapshot, fs []probes.Finding) AreaVerdict {
	v := AreaVerdict{Area: string(probes.CheckCluster), Severity: probes.Summarize(fs).Severity}
	live := 0
	var down []string
	for _, p := range s.Peers {
		if p.Live() {
			live++
		} else if p.State == "alive" {
			down = append(down, p.Name+" without heartbeats")
		} else {
			down = append(down, p.Name+" "+p.State)
		}
	}
	parts := []string{}
	if s.Election.Owner != "" {
		parts = append(parts, s.Election.Owner+" owns "+vipList(s))
	} else {
		parts = append(parts, "no owner of "+vipList(s))
	}
	parts = append(parts, fmt.Sprintf("%d/%d peers live", live, len(s.Peers)))
	if len(down) > 0 {
		parts = append(parts, strings.Join(down, ", "))
	}
	v.Summary = strings.Join(parts, "; ")
	return v
}

func vipList(s Snapshot) string {
	var as []string
	for _, v := range s.VIPs {
		as = append(as, v.Address)
	}
	if len(as) == 0 {
		return "the VIP"
	}
	return strings.Join(as, ", ")
}

// Live reports whether this node counts p as live: itself, or alive by
// gossip with fresh heartbeats.
func (p Peer) Live() bool { return p.Self || p.State == "alive" && p.Fresh }

// SplitView is a backend the live peers disagree about: In are the peers
// that see it in service (up, falling), Out the views of those that do not
// (down, rising). A dead peer's or an "unknown" view takes no side.
type SplitView struct {
	Backend string
	In      []string
	Out     []BackendView
}

// SplitView says whether the live peers disagree about the backend named
// backend, and how; false when they agree (or it is not in s).
func (s Snapshot) SplitView(backend string) (SplitView, bool) {
	live := map[string]bool{}
	for _, p := range s.Peers {
		if p.Live() {
			live[p.Name] = true
		}
	}
	for _, b := range s.Backends {
		if b.Name != backend {
			continue
		}
		sv := SplitView{Backend: b.Name}
		for _, v := range b.Views {
			if !live[v.Peer] || v.State == "unknown" {
				continue
			}
			if BackendInService(v.State) {
				sv.In = append(sv.In, v.Peer)
			} else {
				sv.Out = append(sv.Out, v)
			}
		}
		return sv, len(sv.In) > 0 && len(sv.Out) > 0
	}
	return SplitView{}, false
}

// Verdict returns the verdict of area ("backends", "tls", "etcd",
// "cluster", ...); false when the snapshot has none for it.
func (s Snapshot) Verdict(area probes.Check) (AreaVerdict, bool) {
	for _, v := range s.Verdicts {
		if v.Area == string(area) {
			return v, true
		}
	}
	return AreaVerdict{}, false
}

// keyMismatch reports whether the snapshot's recent events (oldest first)
// hold a key mismatch with peer name after its last join.
func keyMismatch(s Snapshot, name string) bool {
	mismatch := false
	for _, e := range s.Events {
		if e.Subject != name {
			continue
		}
		switch EventKind(e.Kind) {
		case EventKeyMismatch:
			mismatch = true
		case EventPeerJoin:
			mismatch = false
		}
	}
	return mismatch
}
