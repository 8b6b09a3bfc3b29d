package direct

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
)

// Name is the Snapshot.Source of a direct snapshot.
const Name = "direct"

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
	// credentials are unreadable).
	Etcd *probes.EtcdReport
	// VIPHere says, per VIP in config order, whether its address is on this
	// host's interface.
	VIPHere []bool
	// LinksUp says, per VIP, whether its interface is up here.
	LinksUp []bool
}

// Meta is what a snapshot says about its maker.
type Meta struct {
	// Version is this program's version.
	Version string
	// Socket is the daemon's status socket that did not answer (for the
	// message saying so).
	Socket string
	// Time is when the snapshot is taken.
	Time time.Time
}

// Build makes the direct snapshot of one round of results. It is a pure
// function: findings and verdicts come from the same probes functions and
// wording as `epconsole check`, plus a "cluster" verdict that says the
// cluster view is missing.
func Build(cfg *config.Config, in Inputs, res Results, m Meta) status.Snapshot {
	s := status.Snapshot{
		Schema: status.Schema, Generated: m.Time.UTC(), Source: Name,
		Cluster: cfg.ClusterName, Node: cfg.Node.Name, Version: m.Version,
		VIPs: []status.VIP{}, Peers: []status.Peer{}, Backends: []status.Backend{},
		Certificates: []status.Certificate{}, Verdicts: []status.AreaVerdict{},
		Findings: []status.Finding{}, Events: []status.Event{},
	}
	var here []string
	for i, v := range cfg.VIPs {
		sv := status.VIP{Address: v.Address.String(), Interface: v.Interface, Port: v.Port}
		if i < len(res.VIPHere) && res.VIPHere[i] {
			// The kernel shows it here: this node holds it.
			sv.Here, sv.Owner = true, cfg.Node.Name
			here = append(here, sv.Address)
		}
		s.VIPs = append(s.VIPs, sv)
	}
	noDaemon := "no daemon"
	if m.Socket != "" {
		noDaemon = "no daemon at " + m.Socket
	}
	s.Election = status.Election{
		Owner:       ownerIfHere(cfg, here),
		QuorumPeers: len(cfg.Peers) + 1,
		Reason:      "direct view: " + noDaemon + "; read-only",
	}
	// Eligible as the daemon would judge this node from its own view: a
	// serving backend and every VIP's link up.
	eligible := len(res.LinksUp) == len(cfg.VIPs) && !slices.Contains(res.LinksUp, false) &&
		slices.ContainsFunc(res.Backends, func(b probes.BackendStatus) bool { return b.Tracker.Serving() })
	s.Peers = append(s.Peers, status.Peer{Name: cfg.Node.Name, Address: cfg.Node.GossipAdvertise.String(), Self: true,
		State: "unknown", Priority: cfg.Node.Priority, Preempt: cfg.Node.Preempt, Eligible: eligible, Version: m.Version})
	for _, p := range cfg.Peers {
		s.Peers = append(s.Peers, status.Peer{Name: p.Name, Address: p.Address.String(), State: "unknown"})
	}
	slices.SortFunc(s.Peers, func(a, b status.Peer) int { return strings.Compare(a.Name, b.Name) })

	var fs []probes.Finding
	add := func(area string, sev probes.Severity, summary string, found []probes.Finding) {
		fs = append(fs, found...)
		s.Verdicts = append(s.Verdicts, status.AreaVerdict{Area: area, Severity: severity(sev), Summary: summary})
	}

	cluster := "no daemon: VIP owner and peers not known (direct view)"
	if len(here) > 0 {
		cluster = "no daemon: " + strings.Join(here, ", ") + " on this host; peers not known"
	}
	s.Verdicts = append(s.Verdicts, status.AreaVerdict{Area: "cluster", Severity: status.Unknown, Summary: cluster})
	s.Findings = append(s.Findings, status.Finding{Area: "cluster", Severity: status.Unknown, Code: "no-daemon",
		Message: "no epconsole daemon answers on the status socket: this is a direct view of this host's probes, without the cluster",
		Fixes:   []string{"start the daemon on this node (systemctl start epconsole, or epconsole --daemon -c " + cfg.File + ")"}})

	// Backends: the monitor's state per backend, judged like `check`.
	var last []probes.HealthResult
	for i, t := range in.Targets {
		b := status.Backend{Name: t.Name, Address: t.Address.String()}
		if i < len(res.Backends) {
			bs := res.Backends[i]
			b.Views = []status.BackendView{{Peer: cfg.Node.Name, State: bs.Tracker.State.String(), Latency: bs.Last.Latency,
				Reason: reason(bs.Last), Since: bs.Since}}
			if !bs.Last.Time.IsZero() {
				last = append(last, bs.Last)
			}
		}
		s.Backends = append(s.Backends, b)
	}
	bf := append(slices.Clone(in.Problems[probes.CheckBackends]), probes.JudgeBackends(last)...)
	add("backends", probes.Summarize(bf).Severity, BackendsSummary(in.Health.Kind, last), bf)

	// Certificates.
	tf := append(slices.Clone(in.Problems[probes.CheckTLS]), res.CertFindings...)
	for _, c := range res.Certs {
		s.Certificates = append(s.Certificates, certificate(in, c))
	}
	add("tls", probes.Summarize(tf).Severity, TLSSummary(res.Certs, res.CertFindings, in.CAFileSet), tf)

	// etcd.
	switch {
	case !in.EtcdConfigured:
	case res.Etcd == nil:
		ef := in.Problems[probes.CheckEtcd]
		summary := "not probed yet"
		if len(ef) > 0 {
			summary = "credentials unreadable"
		}
		add("etcd", probes.Worst(probes.Summarize(ef).Severity, probes.Unknown), summary, ef)
	default:
		s.Etcd = etcd(*res.Etcd)
		add("etcd", probes.Summarize(res.Etcd.Findings).Severity, EtcdSummary(*res.Etcd), res.Etcd.Findings)
	}

	for _, f := range probes.Problems(fs) {
		s.Findings = append(s.Findings, finding(f))
	}
	slices.SortStableFunc(s.Findings, func(a, b status.Finding) int { return b.Severity.Rank() - a.Severity.Rank() })
	return s
}

func ownerIfHere(cfg *config.Config, here []string) string {
	if len(here) > 0 {
		return cfg.Node.Name
	}
	return ""
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

// certificate maps a certificate report, with a ✔/✘ per expected SAN: each
// VIP, each endpoint DNS name, each extra SAN and the backend's own address.
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

func etcd(r probes.EtcdReport) *status.Etcd {
	e := &status.Etcd{Members: []status.EtcdMember{}, Quorum: r.Verdict.Quorum, Healthy: r.Verdict.Healthy,
		Tolerance: r.Verdict.Tolerance, Leader: r.Verdict.Leader, Severity: severity(r.Verdict.Severity)}
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

// finding maps a probe finding; a fix for one setup reads "[kubeadm] ...".
func finding(f probes.Finding) status.Finding {
	sf := status.Finding{Area: string(f.Check), Severity: severity(f.Severity), Subject: f.Subject, Code: f.Code, Message: f.Message}
	if f.Detail != "" {
		sf.Message += " (" + f.Detail + ")"
	}
	for _, fx := range f.Fixes {
		t := fx.Text
		if fx.Setup != probes.SetupAny {
			t = "[" + string(fx.Setup) + "] " + t
		}
		sf.Fixes = append(sf.Fixes, t)
	}
	return sf
}

func severity(s probes.Severity) status.Severity {
	switch s {
	case probes.OK:
		return status.OK
	case probes.Warning:
		return status.Warning
	case probes.Critical:
		return status.Critical
	}
	return status.Unknown
}
