package daemon

import (
	"slices"
	"strings"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/direct"
	"github.com/epconsole/epconsole/internal/preflight"
	"github.com/epconsole/epconsole/internal/status"
)

// SourceDaemon is the Snapshot.Source of a daemon's snapshot.
const SourceDaemon = "daemon"

// snapInputs is everything a daemon snapshot is made of, gathered by the
// status loop; buildSnapshot turns it into the snapshot without I/O.
type snapInputs struct {
	cfg     *config.Config
	in      direct.Inputs
	res     direct.Results // this node's probes, certificates, etcd, VIPs here
	version string
	now     time.Time
	// view is the cluster view with the heartbeat's liveness laid over it.
	view       cluster.View
	viewOK     bool
	status     Status
	ownerSince time.Time
	conns      map[string]int
	events     []Event
	counters   status.Counters
}

// buildSnapshot makes the daemon's snapshot: the direct snapshot of this
// node's own probes (same findings and wording as `check`), with the
// cluster view laid over it — VIP owner, election, peers, every peer's
// view of every backend, drains, connections — and the preflight and
// cluster findings, events and counters.
func buildSnapshot(x snapInputs) status.Snapshot {
	cfg, st := x.cfg, x.status
	s := direct.Build(cfg, x.in, x.res, direct.Meta{Version: x.version, Time: x.now})
	s.Source = SourceDaemon
	s.Verdicts = slices.DeleteFunc(s.Verdicts, func(v status.AreaVerdict) bool { return v.Area == "cluster" })
	s.Findings = slices.DeleteFunc(s.Findings, func(f status.Finding) bool { return f.Area == "cluster" })

	dec := st.Decision
	owner := dec.Owner
	if st.Waiting {
		owner = ""
	}
	for i := range s.VIPs {
		s.VIPs[i].Owner = owner
		if owner != "" {
			s.VIPs[i].OwnerSince = x.ownerSince.UTC()
		}
	}
	reason := dec.Reason
	if st.Waiting {
		reason = "startup wait: listening to the peers before any claim"
	}
	s.Election = status.Election{
		Owner: owner, Epoch: dec.Epoch, Elected: dec.Elected, Reason: reason,
		QuorumPeers: dec.Quorum.Peers, QuorumNeed: dec.Quorum.Need, QuorumHave: dec.Quorum.Have,
		QuorumRequired: dec.Quorum.Required, QuorumPossible: dec.Quorum.Possible,
		Realtime:          st.HeartbeatRunning && st.HeartbeatRealtime.InEffect,
		HeartbeatInterval: cfg.Gossip.HeartbeatInterval, HeartbeatMisses: cfg.Gossip.HeartbeatMisses,
		ConfigDigest: cluster.ShortDigest(cfg.Digest()), Mismatch: slices.Clone(dec.Mismatch),
	}

	// Peers: every configured member of the view (this node included).
	if x.viewOK {
		s.Peers = s.Peers[:0]
		addrs := map[string]string{cfg.Node.Name: cfg.Node.GossipAdvertise.String()}
		for _, p := range cfg.Peers {
			addrs[p.Name] = p.Address.String()
		}
		for _, m := range x.view.Members {
			if !m.Configured {
				continue
			}
			p := status.Peer{
				Name: m.Name, Address: addrs[m.Name], Self: m.Name == cfg.Node.Name,
				State: m.State.String(), Fresh: m.Fresh, Priority: m.Meta.Priority, Eligible: m.Meta.Eligible,
				Preempt: m.Meta.Preempt, Owner: m.Meta.Owner, Epoch: m.Meta.Epoch, Version: m.Meta.Version,
				Digest: m.Meta.Digest, LastSeen: m.LastSeen.UTC(), RTT: m.RTT,
			}
			if p.Self {
				p.State, p.Fresh, p.LastSeen = "alive", true, x.now.UTC()
				p.Eligible, p.Owner, p.Epoch = st.Eligible, owner, dec.Epoch
				if p.Version == "" {
					p.Version = x.version
				}
			}
			if m.Addr.IsValid() && p.Address == "" {
				p.Address = m.Addr.String()
			}
			s.Peers = append(s.Peers, p)
		}
		slices.SortFunc(s.Peers, func(a, b status.Peer) int { return strings.Compare(a.Name, b.Name) })
	}

	// Backends: this node's view (from the direct build) and every other
	// live-or-not configured member's gossiped view.
	for i := range s.Backends {
		b := &s.Backends[i]
		b.Drained = slices.Contains(st.Drained, b.Name)
		b.Connections = x.conns[b.Name]
		if !x.viewOK {
			continue
		}
		for _, m := range x.view.Members {
			if !m.Configured || m.Name == cfg.Node.Name {
				continue
			}
			for _, bv := range m.Backends {
				if bv.Name == b.Name {
					b.Views = append(b.Views, status.BackendView{Peer: m.Name, State: bv.State, Latency: bv.Latency,
						Reason: bv.Reason, Since: bv.Since.UTC()})
				}
			}
		}
		slices.SortFunc(b.Views, func(a, c status.BackendView) int { return strings.Compare(a.Peer, c.Peer) })
	}

	for _, f := range st.Preflight {
		if f.Severity == status.OK {
			continue
		}
		s.Findings = append(s.Findings, preflightFinding(f))
	}
	cf := status.ClusterFindings(s)
	s.Findings = append(s.Findings, cf...)
	s.Verdicts = append(s.Verdicts, status.ClusterVerdict(s, cf))
	slices.SortStableFunc(s.Findings, func(a, b status.Finding) int { return b.Severity.Rank() - a.Severity.Rank() })

	for _, e := range x.events {
		s.Events = append(s.Events, status.Event{Time: e.Time.UTC(), Kind: string(e.Kind), Subject: e.Subject, Message: e.Message})
	}
	c := x.counters
	c.ProbeFailures = cloneCounts(c.ProbeFailures)
	s.Counters = &c
	return s
}

func preflightFinding(f preflight.Finding) status.Finding {
	sf := status.Finding{Area: "preflight", Severity: f.Severity, Subject: f.Subject, Code: f.Code, Message: f.Message}
	if f.Fix != "" {
		sf.Fixes = []string{f.Fix}
	}
	return sf
}

func cloneCounts(m map[string]uint64) map[string]uint64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sameSnapshot reports whether two snapshots say the same thing, leaving
// out what moves on its own (times, latencies, last-seen and round trips,
// counters of reconciles): a new one is published only when this differs,
// or at least every DefaultRepublish.
func sameSnapshot(a, b status.Snapshot) bool {
	return direct.Same(steadyPeers(a), steadyPeers(b))
}

func steadyPeers(s status.Snapshot) status.Snapshot {
	ps := make([]status.Peer, len(s.Peers))
	for i, p := range s.Peers {
		p.LastSeen, p.RTT = time.Time{}, 0
		ps[i] = p
	}
	s.Peers = ps
	bs := make([]status.Backend, len(s.Backends))
	for i, b := range s.Backends {
		vs := make([]status.BackendView, len(b.Views))
		for j, v := range b.Views {
			v.Latency = 0
			vs[j] = v
		}
		b.Views = vs
		bs[i] = b
	}
	s.Backends = bs
	if s.Counters != nil {
		c := *s.Counters
		c.ReconcileTime, c.LastReconcile = 0, 0
		s.Counters = &c
	}
	return s
}
