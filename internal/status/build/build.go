// Package build is epconsole's one status pipeline's pure part: it turns
// one round of probe results — and, on a node running the daemon, the
// daemon's cluster view and decisions — into the one status.Snapshot that
// the socket, the metrics, the TUI and `epconsole check` all read.
//
// Build touches neither the kernel nor the network: the caller gathers
// Results (and Daemon); ReadInputs reads the files config.hcl names (CA,
// client certificates) once per config. Findings and verdicts come from
// the probes package's functions and carry its Finding and Severity; the
// summaries word each area the same way everywhere. Same tells a snapshot
// that says something new from one that only moved in time.
package build

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
)

// CodeNoDaemon is the finding of a snapshot made without a daemon.
const CodeNoDaemon = "no-daemon"

// Results are one round of probe results, the input of Build.
type Results struct {
	// Backends are the monitor's states, in target order (a backend with
	// no probe yet has a zero Last).
	Backends []probes.BackendStatus
	// Certs and CertFindings are the certificate check's result (nil
	// before the first run).
	Certs        []probes.CertReport
	CertFindings []probes.Finding
	// Etcd is the etcd check's report (nil when not configured or its
	// credentials are unreadable, or not run yet).
	Etcd *probes.EtcdReport
	// VIPHere says, per VIP in config order, whether its address is on this
	// host's interface.
	VIPHere []bool
	// LinksUp says, per VIP, whether its interface is up here (read only
	// without a daemon, to judge this node's eligibility).
	LinksUp []bool
	// Kubeconfig is the kubeconfig check's report (`check` only; nil: the
	// area is left out).
	Kubeconfig *probes.KubeconfigReport
	// Preflight are the host checks run now (`check preflight` only; nil:
	// the area is left out). A daemon's preflight at start is
	// Daemon.Preflight.
	Preflight []probes.Finding
}

// Meta is what a snapshot says about its maker.
type Meta struct {
	// Version is this program's version.
	Version string
	// Socket is the daemon's status socket that did not answer (for the
	// message saying so; without a daemon only).
	Socket string
	// Time is when the snapshot is taken.
	Time time.Time
}

// Daemon is what the node's daemon knows beyond its own probes: the
// cluster view, its decision, drains, connections, events and counters.
// A snapshot built without one (nil) is a "direct" view.
type Daemon struct {
	// View is the cluster view with the heartbeat's liveness laid over it;
	// ViewOK is false when the daemon has none (not running).
	View   cluster.View
	ViewOK bool
	// Decision is the latest election result; Waiting: still in the
	// startup wait (no owner is claimed yet).
	Decision cluster.Decision
	Waiting  bool
	// Eligible is this node's own eligibility as the daemon judged it.
	Eligible bool
	// Realtime: the heartbeat runs at real-time priority.
	Realtime bool
	// HeartbeatRunning: the beat loop runs; HeartbeatError says why not.
	HeartbeatRunning bool
	HeartbeatError   string
	// Drained is the operator drain set.
	Drained []string
	// Preflight are the host checks made at start.
	Preflight []probes.Finding
	// OwnerSince is when the VIP owner last changed.
	OwnerSince time.Time
	// Conns counts the connections per backend (conntrack).
	Conns    map[string]int
	Events   []status.Event
	Counters status.Counters
}

// Build makes the snapshot of one round of results: the daemon's (Source
// "daemon", with the cluster view and the cluster findings) when d is not
// nil, else the direct view (Source "direct"), whose "cluster" verdict is
// UNKNOWN with a "no-daemon" finding. It is a pure function.
func Build(cfg *config.Config, in Inputs, res Results, m Meta, d *Daemon) status.Snapshot {
	s := status.Snapshot{
		Schema: status.Schema, Generated: m.Time.UTC(), Source: status.SourceDirect,
		Cluster: cfg.ClusterName, Node: cfg.Node.Name, Version: m.Version,
		VIPs: []status.VIP{}, Peers: []status.Peer{}, Backends: []status.Backend{},
		Certificates: []status.Certificate{}, Verdicts: []status.AreaVerdict{},
		Findings: status.Findings{}, Events: []status.Event{},
	}
	if d != nil {
		s.Source = status.SourceDaemon
	}
	here := vips(&s, cfg, res)
	if d == nil {
		directView(&s, cfg, res, m, here)
	} else {
		daemonView(&s, cfg, res, m, d)
	}
	backends(&s, cfg, in, res, d)
	fs := areas(&s, in, res)
	if d != nil {
		for _, f := range d.Preflight {
			if f.Severity != probes.OK {
				fs = append(fs, f)
			}
		}
	}
	s.Findings = append(s.Findings, probes.Problems(fs)...)
	if d != nil {
		cf := status.ClusterFindings(s)
		s.Findings = append(s.Findings, cf...)
		s.Verdicts = append(s.Verdicts, status.ClusterVerdict(s, cf))
		for _, e := range d.Events {
			s.Events = append(s.Events, status.Event{Time: e.Time.UTC(), Kind: e.Kind, Subject: e.Subject, Message: e.Message})
		}
		c := d.Counters
		c.ProbeFailures = cloneCounts(c.ProbeFailures)
		s.Counters = &c
	}
	status.SortWorstFirst(s.Findings)
	cleanText(&s)
	return s
}

// vips lists the VIPs, each marked Here when its address is on this host,
// and returns those addresses.
func vips(s *status.Snapshot, cfg *config.Config, res Results) []string {
	var here []string
	for i, v := range cfg.VIPs {
		sv := status.VIP{Address: v.Address.String(), Interface: v.Interface, Port: v.Port}
		if i < len(res.VIPHere) && res.VIPHere[i] {
			sv.Here = true
			here = append(here, sv.Address)
		}
		s.VIPs = append(s.VIPs, sv)
	}
	return here
}

// directView fills what a node without a daemon can say of the cluster: a
// VIP on this host is owned by it, the peers are names only, and the
// "cluster" verdict says the view is missing.
func directView(s *status.Snapshot, cfg *config.Config, res Results, m Meta, here []string) {
	owner := ""
	if len(here) > 0 {
		// The kernel shows it here: this node holds it.
		owner = cfg.Node.Name
	}
	for i := range s.VIPs {
		if s.VIPs[i].Here {
			s.VIPs[i].Owner = owner
		}
	}
	noDaemon := "no daemon"
	if m.Socket != "" {
		noDaemon = "no daemon at " + m.Socket
	}
	s.Election = status.Election{Owner: owner, QuorumPeers: len(cfg.Peers) + 1, Reason: "direct view: " + noDaemon + "; read-only"}
	s.Peers = configPeers(cfg, res, m)

	summary := "no daemon: VIP owner and peers not known (direct view)"
	if len(here) > 0 {
		summary = "no daemon: " + strings.Join(here, ", ") + " on this host; peers not known"
	}
	s.Verdicts = append(s.Verdicts, status.AreaVerdict{Area: string(probes.CheckCluster), Severity: probes.Unknown, Summary: summary})
	s.Findings = append(s.Findings, probes.Finding{Check: probes.CheckCluster, Severity: probes.Unknown, Code: CodeNoDaemon,
		Message: "no epconsole daemon answers on the status socket: this is a direct view of this host's probes, without the cluster",
		Fixes:   []probes.Fix{{Text: "start the daemon on this node (systemctl start epconsole, or epconsole --daemon -c " + cfg.File + ")"}}})
}

// configPeers are this node and its configured peers, states unknown. This
// node is eligible as the daemon would judge it from its own view: a
// serving backend and every VIP's link up.
func configPeers(cfg *config.Config, res Results, m Meta) []status.Peer {
	eligible := len(res.LinksUp) == len(cfg.VIPs) && !slices.Contains(res.LinksUp, false) &&
		slices.ContainsFunc(res.Backends, func(b probes.BackendStatus) bool { return b.Tracker.Serving() })
	ps := []status.Peer{{Name: cfg.Node.Name, Address: cfg.Node.GossipAdvertise.String(), Self: true,
		State: "unknown", Priority: cfg.Node.Priority, Preempt: cfg.Node.Preempt, Eligible: eligible, Version: m.Version}}
	for _, p := range cfg.Peers {
		ps = append(ps, status.Peer{Name: p.Name, Address: p.Address.String(), State: "unknown"})
	}
	slices.SortFunc(ps, func(a, b status.Peer) int { return strings.Compare(a.Name, b.Name) })
	return ps
}

// daemonView lays the daemon's decision and cluster view over s: VIP
// owner, election, and every configured member as a peer.
func daemonView(s *status.Snapshot, cfg *config.Config, res Results, m Meta, d *Daemon) {
	dec := d.Decision
	owner, reason := dec.Owner, dec.Reason
	if d.Waiting {
		owner, reason = "", "startup wait: listening to the peers before any claim"
	}
	for i := range s.VIPs {
		s.VIPs[i].Owner = owner
		if owner != "" {
			s.VIPs[i].OwnerSince = d.OwnerSince.UTC()
		}
	}
	s.Election = status.Election{
		Owner: owner, Epoch: dec.Epoch, Elected: dec.Elected, Reason: reason,
		QuorumPeers: dec.Quorum.Peers, QuorumNeed: dec.Quorum.Need, QuorumHave: dec.Quorum.Have,
		QuorumRequired: dec.Quorum.Required, QuorumPossible: dec.Quorum.Possible,
		Realtime: d.Realtime, HeartbeatRunning: d.HeartbeatRunning, HeartbeatError: d.HeartbeatError,
		HeartbeatInterval: cfg.Gossip.HeartbeatInterval, HeartbeatMisses: cfg.Gossip.HeartbeatMisses,
		ConfigDigest: cluster.ShortDigest(cfg.Digest()), Mismatch: slices.Clone(dec.Mismatch),
		PanicRouting: panicRouting(cfg, res),
	}
	if !d.ViewOK {
		s.Peers = configPeers(cfg, res, m)
		return
	}
	addrs := map[string]string{cfg.Node.Name: cfg.Node.GossipAdvertise.String()}
	for _, p := range cfg.Peers {
		addrs[p.Name] = p.Address.String()
	}
	for _, mb := range d.View.Members {
		if !mb.Configured {
			continue
		}
		p := status.Peer{
			Name: mb.Name, Address: addrs[mb.Name], Self: mb.Name == cfg.Node.Name,
			State: mb.State.String(), Fresh: mb.Fresh, Priority: mb.Meta.Priority, Eligible: mb.Meta.Eligible,
			Preempt: mb.Meta.Preempt, Owner: mb.Meta.Owner, Epoch: mb.Meta.Epoch, Version: mb.Meta.Version,
			Digest: mb.Meta.Digest, LastSeen: mb.LastSeen.UTC(), RTT: mb.RTT,
		}
		if p.Self {
			p.State, p.Fresh, p.LastSeen = "alive", true, m.Time.UTC()
			p.Eligible, p.Owner, p.Epoch = d.Eligible, owner, dec.Epoch
			if p.Version == "" {
				p.Version = m.Version
			}
		}
		if mb.Addr.IsValid() && p.Address == "" {
			p.Address = mb.Addr.String()
		}
		s.Peers = append(s.Peers, p)
	}
	slices.SortFunc(s.Peers, func(a, b status.Peer) int { return strings.Compare(a.Name, b.Name) })
}

// panicRouting reports whether the daemon forwards in panic, as the
// probes say: panic routing is on and, of the backends probed, none is
// serving (a daemon whose probes have no result yet does not count).
func panicRouting(cfg *config.Config, res Results) bool {
	if !cfg.Balance.PanicRouting || len(res.Backends) == 0 {
		return false
	}
	probed := false
	for _, b := range res.Backends {
		if b.Tracker.Serving() {
			return false
		}
		probed = probed || b.Tracker.State != probes.StateUnknown
	}
	return probed
}

// backends lists the backends in config order with this node's view and,
// with a daemon, every other configured member's gossiped view, drains and
// connection counts.
func backends(s *status.Snapshot, cfg *config.Config, in Inputs, res Results, d *Daemon) {
	for i, t := range in.Targets {
		b := status.Backend{Name: t.Name, Address: t.Address.String()}
		if i < len(res.Backends) {
			bs := res.Backends[i]
			why := reason(bs.Last)
			if c := bs.Tracker.Condition(); c != bs.Tracker.State.String() {
				why = strings.TrimSuffix(c+": "+why, ": ") // "falling (slow): http: context deadline exceeded"
			}
			b.Views = []status.BackendView{{Peer: cfg.Node.Name, State: bs.Tracker.State.String(), Latency: bs.Last.Latency,
				Reason: why, Since: bs.Since}}
		}
		if d != nil {
			b.Drained = slices.Contains(d.Drained, b.Name)
			b.Connections = d.Conns[b.Name]
			if d.ViewOK {
				b.Views = append(b.Views, peerViews(d.View, cfg.Node.Name, b.Name)...)
				slices.SortFunc(b.Views, func(a, c status.BackendView) int { return strings.Compare(a.Peer, c.Peer) })
			}
		}
		s.Backends = append(s.Backends, b)
	}
}

// peerViews are the other configured members' views of backend.
func peerViews(v cluster.View, self, backend string) []status.BackendView {
	var out []status.BackendView
	for _, m := range v.Members {
		if !m.Configured || m.Name == self {
			continue
		}
		for _, bv := range m.Backends {
			if bv.Name == backend {
				out = append(out, status.BackendView{Peer: m.Name, State: bv.State, Latency: bv.Latency, Reason: bv.Reason, Since: bv.Since.UTC()})
			}
		}
	}
	return out
}

// areas judges this node's probe areas — backends, tls, etcd (when
// configured), and kubeconfig and preflight when run — adding their
// verdicts and certificates and etcd to s, and returns their findings in
// area order.
func areas(s *status.Snapshot, in Inputs, res Results) []probes.Finding {
	var fs []probes.Finding
	add := func(area probes.Check, sev probes.Severity, summary string, found []probes.Finding) {
		fs = append(fs, found...)
		s.Verdicts = append(s.Verdicts, status.AreaVerdict{Area: string(area), Severity: sev, Summary: summary})
	}

	var last []probes.HealthResult
	for _, bs := range res.Backends {
		if !bs.Last.Time.IsZero() {
			last = append(last, bs.Last)
		}
	}
	bf := append(slices.Clone(in.Problems[probes.CheckBackends]), probes.JudgeBackends(last)...)
	add(probes.CheckBackends, probes.Summarize(bf).Severity, BackendsSummary(in.Health.Kind, last), bf)

	tf := append(slices.Clone(in.Problems[probes.CheckTLS]), res.CertFindings...)
	for _, c := range res.Certs {
		s.Certificates = append(s.Certificates, certificate(in, c))
	}
	add(probes.CheckTLS, probes.Summarize(tf).Severity, TLSSummary(res.Certs, res.CertFindings, in.CAFileSet), tf)

	switch {
	case !in.EtcdConfigured:
	case res.Etcd == nil:
		ef := in.Problems[probes.CheckEtcd]
		summary := "not probed yet"
		if len(ef) > 0 {
			summary = "credentials unreadable"
		}
		add(probes.CheckEtcd, probes.Worst(probes.Summarize(ef).Severity, probes.Unknown), summary, ef)
	default:
		s.Etcd = etcd(*res.Etcd)
		add(probes.CheckEtcd, probes.Summarize(res.Etcd.Findings).Severity, EtcdSummary(*res.Etcd), res.Etcd.Findings)
	}

	if k := res.Kubeconfig; k != nil {
		add(probes.CheckKubeconfig, probes.Summarize(k.Findings).Severity, KubeconfigSummary(*k, len(in.ClusterCA) > 0), k.Findings)
	}
	if res.Preflight != nil {
		add(probes.CheckPreflight, probes.Summarize(res.Preflight).Severity, PreflightSummary(res.Preflight), res.Preflight)
	}
	return fs
}

// reason says why a probe failed, or what it learnt ("" when it passed).
func reason(r probes.HealthResult) string {
	switch {
	case r.Time.IsZero():
		return "not probed yet"
	case r.Outcome == probes.OutcomePass:
		return ""
	case r.Outcome == probes.OutcomeReadinessUnknown:
		return fmt.Sprintf("readiness unknown: /readyz answered %d", r.StatusCode)
	case len(r.FailingChecks) > 0:
		return fmt.Sprintf("/readyz %d, failing: %s", r.StatusCode, strings.Join(r.FailingChecks, ", "))
	case r.Error != "":
		return string(r.Stage) + ": " + r.Error
	case r.StatusCode != 0:
		return fmt.Sprintf("/readyz answered %d", r.StatusCode)
	}
	return string(r.Outcome)
}

// certificate is the status model's view of a certificate report, with a
// ✔/✘ per expected SAN: each VIP, each endpoint DNS name, each extra SAN
// and the backend's own address.
func certificate(in Inputs, c probes.CertReport) status.Certificate {
	sc := status.Certificate{Backend: c.Backend, Subject: c.Subject, Issuer: c.Issuer, NotAfter: c.NotAfter,
		DaysLeft: c.DaysLeft, ChainOK: c.ChainVerified, SANs: []status.SANCheck{}, Error: c.Error}
	if c.Error != "" {
		return sc
	}
	var want []string
	for _, v := range in.Certs.VIPs {
		want = append(want, v.String())
	}
	want = append(want, in.Certs.DNSNames...)
	want = append(want, in.Certs.ExtraSANs...)
	if a := c.Address.Addr(); a.IsValid() {
		want = append(want, a.Unmap().String())
	}
	seen := map[string]bool{}
	for _, n := range want {
		if seen[n] {
			continue
		}
		seen[n] = true
		missing := slices.Contains(c.MissingIPs, n) || slices.Contains(c.MissingDNSNames, n)
		sc.SANs = append(sc.SANs, status.SANCheck{Name: n, Present: !missing})
	}
	return sc
}

// etcd is the status model's view of an etcd report.
func etcd(r probes.EtcdReport) *status.Etcd {
	e := &status.Etcd{Members: []status.EtcdMember{}, Quorum: r.Verdict.Quorum, Healthy: r.Verdict.Healthy,
		Tolerance: r.Verdict.Tolerance, Leader: r.Verdict.Leader, Severity: r.Verdict.Severity}
	for _, m := range r.Members {
		e.Members = append(e.Members, status.EtcdMember{Name: m.Name, ID: m.ID, Endpoint: m.Endpoint, Leader: m.IsLeader,
			Healthy: m.Healthy(), RaftTerm: m.RaftTerm, RaftIndex: m.RaftIndex, DBSize: m.DBSize, Version: m.Version, Error: m.Error})
	}
	for _, a := range r.Alarms {
		who := a.Member
		if who == "" {
			who = a.MemberID
		}
		e.Alarms = append(e.Alarms, a.Alarm+" on "+who)
	}
	return e
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
