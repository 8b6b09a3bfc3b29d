package build_test

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/status/build"
	"github.com/epconsole/epconsole/probes"
)

// TestSame: time and latency alone are no change; a state is.
func TestSame(t *testing.T) {
	a := status.Snapshot{Generated: time.Unix(1, 0), Backends: []status.Backend{{Name: "cp1", Views: []status.BackendView{{State: "up", Latency: time.Millisecond}}}}}
	b := status.Snapshot{Generated: time.Unix(2, 0), Backends: []status.Backend{{Name: "cp1", Views: []status.BackendView{{State: "up", Latency: 2 * time.Millisecond}}}}}
	c := status.Snapshot{Generated: time.Unix(2, 0), Backends: []status.Backend{{Name: "cp1", Views: []status.BackendView{{State: "down", Latency: 2 * time.Millisecond}}}}}
	if !build.Same(a, b) {
		t.Error("snapshots differing in time and latency only are not the same")
	}
	if build.Same(a, c) {
		t.Error("a backend going down is no change")
	}
	if a.Backends[0].Views[0].Latency != time.Millisecond {
		t.Error("Same modified its argument")
	}
}

// TestBuildEligible: this node counts as eligible only with a serving
// backend and every VIP link up, as the daemon would judge it; a VIP on
// this host is owned by it, one elsewhere by nobody known.
func TestBuildEligible(t *testing.T) {
	cfg := &config.Config{ClusterName: "c", Node: config.Node{Name: "lb1"},
		VIPs:     []config.VIP{{Address: netip.MustParseAddr("198.18.6.100"), Interface: "eth0", Port: 6443}},
		Backends: []config.Backend{{Name: "cp1", Address: netip.MustParseAddr("198.18.6.11"), Port: 6443}}}
	in := build.Inputs{Targets: []probes.Target{{Name: "cp1", Address: netip.MustParseAddrPort("198.18.6.11:6443")}}, Health: probes.HealthOptions{Kind: probes.KindHTTPS}}
	st := func(s probes.State) []probes.BackendStatus {
		return []probes.BackendStatus{{Target: in.Targets[0], Tracker: probes.Tracker{State: s}, Last: probes.HealthResult{Backend: "cp1", Outcome: probes.OutcomePass, Time: time.Unix(1, 0)}}}
	}
	tests := []struct {
		name     string
		backends []probes.BackendStatus
		linkUp   bool
		here     bool
		eligible bool
		owner    string
	}{
		{"up, link up", st(probes.StateUp), true, false, true, ""},
		{"falling still serves", st(probes.StateFalling), true, false, true, ""},
		{"down", st(probes.StateDown), true, false, false, ""},
		{"rising does not serve yet", st(probes.StateRising), true, false, false, ""},
		{"link down", st(probes.StateUp), false, false, false, ""},
		{"VIP here", st(probes.StateUp), true, true, true, "lb1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := build.Build(cfg, in, build.Results{Backends: tt.backends, LinksUp: []bool{tt.linkUp}, VIPHere: []bool{tt.here}}, build.Meta{Time: time.Unix(2, 0)}, nil)
			if s.Peers[0].Eligible != tt.eligible || s.VIPs[0].Owner != tt.owner || s.Election.Owner != tt.owner || s.VIPs[0].Here != tt.here {
				t.Errorf("self %+v VIP %+v election owner %q", s.Peers[0], s.VIPs[0], s.Election.Owner)
			}
			if s.Source != "direct" || s.Verdicts[0].Area != "cluster" || s.Verdicts[0].Severity != probes.Unknown {
				t.Errorf("source %q verdicts %+v", s.Source, s.Verdicts)
			}
		})
	}
}

// testConfig is a node lb1 with peers lb2 and lb3, one VIP and two
// backends.
func testConfig() *config.Config {
	return &config.Config{File: "/etc/epconsole/config.hcl", ClusterName: "c",
		Node:     config.Node{Name: "lb1", Priority: 150},
		Peers:    []config.Peer{{Name: "lb2", Address: netip.MustParseAddrPort("198.18.6.12:7946")}, {Name: "lb3", Address: netip.MustParseAddrPort("198.18.6.13:7946")}},
		VIPs:     []config.VIP{{Address: netip.MustParseAddr("198.18.6.100"), Interface: "eth0", Port: 6443}},
		Backends: []config.Backend{{Name: "cp1", Address: netip.MustParseAddr("198.18.6.21"), Port: 6443}, {Name: "cp2", Address: netip.MustParseAddr("198.18.6.22"), Port: 6443}},
		Gossip:   config.Gossip{HeartbeatInterval: 100 * time.Millisecond, HeartbeatMisses: 3}}
}

func testInputs() build.Inputs {
	return build.Inputs{Targets: []probes.Target{
		{Name: "cp1", Address: netip.MustParseAddrPort("198.18.6.21:6443")},
		{Name: "cp2", Address: netip.MustParseAddrPort("198.18.6.22:6443")},
	}, Health: probes.HealthOptions{Kind: probes.KindHTTPS}, Problems: map[probes.Check][]probes.Finding{}}
}

func backend(name string, st probes.State, out probes.Outcome) probes.BackendStatus {
	return probes.BackendStatus{Target: probes.Target{Name: name}, Tracker: probes.Tracker{State: st},
		Last: probes.HealthResult{Backend: name, Outcome: out, Time: time.Unix(1, 0)}}
}

func member(name string, state cluster.MemberState, fresh bool, owner string, views ...cluster.BackendView) cluster.Member {
	return cluster.Member{Name: name, Configured: true, State: state, Fresh: fresh, Backends: views,
		Meta: cluster.Meta{Name: name, Eligible: true, Owner: owner, Epoch: 4}}
}

func codes(s status.Snapshot) []string {
	var out []string
	for _, f := range s.Findings {
		out = append(out, string(f.Check)+"/"+f.Code)
	}
	return out
}

func verdict(s status.Snapshot, area probes.Check) probes.Severity {
	v, ok := s.Verdict(area)
	if !ok {
		return probes.Severity(-1)
	}
	return v.Severity
}

// TestBuild: probe results, with or without the daemon's state, make the
// one snapshot: the source, the "cluster" verdict (UNKNOWN with a
// no-daemon finding without a daemon, judged from the cluster view with
// one), the owner and the findings worst first.
func TestBuild(t *testing.T) {
	up, down := probes.StateUp, probes.StateDown
	pass, fail := probes.OutcomePass, probes.OutcomeFail
	healthy := []probes.BackendStatus{backend("cp1", up, pass), backend("cp2", up, pass)}
	view := func(ms ...cluster.Member) cluster.View { return cluster.View{Self: "lb1", Members: ms} }
	dec := cluster.Decision{Owner: "lb1", Epoch: 4, Elected: "lb1", Reason: "owner",
		Quorum: cluster.Quorum{Peers: 3, Need: 2, Have: 3, Required: true, Possible: true}}
	allLive := view(member("lb1", cluster.StateAlive, true, "lb1"), member("lb2", cluster.StateAlive, true, "lb1"), member("lb3", cluster.StateAlive, true, "lb1"))
	tests := []struct {
		name    string
		res     build.Results
		meta    build.Meta
		daemon  *build.Daemon
		source  string
		owner   string
		cluster probes.Severity
		codes   []string // findings, worst first
		summary string   // part of the cluster verdict's summary
	}{
		{name: "no daemon, healthy", res: build.Results{Backends: healthy}, source: "direct", cluster: probes.Unknown,
			codes: []string{"cluster/no-daemon"}, summary: "VIP owner and peers not known"},
		{name: "no daemon, VIP here", res: build.Results{Backends: healthy, VIPHere: []bool{true}}, source: "direct", owner: "lb1",
			cluster: probes.Unknown, codes: []string{"cluster/no-daemon"}, summary: "198.18.6.100 on this host"},
		{name: "no daemon, socket named, a backend down", res: build.Results{Backends: []probes.BackendStatus{backend("cp1", up, pass), backend("cp2", down, fail)}},
			meta: build.Meta{Socket: "/run/epconsole/status.sock"}, source: "direct", cluster: probes.Unknown,
			codes: []string{"cluster/no-daemon", "backends/backend-error"}},
		{name: "daemon, healthy cluster", res: build.Results{Backends: healthy, VIPHere: []bool{true}},
			daemon: &build.Daemon{View: allLive, ViewOK: true, Decision: dec, Eligible: true}, source: "daemon", owner: "lb1",
			cluster: probes.OK, summary: "lb1 owns 198.18.6.100; 3/3 peers live"},
		{name: "daemon, startup wait", res: build.Results{Backends: healthy},
			daemon: &build.Daemon{View: allLive, ViewOK: true, Decision: dec, Waiting: true}, source: "daemon", owner: "",
			cluster: probes.Critical, codes: []string{"cluster/no-vip-owner"}},
		{name: "daemon, peer down and split view", res: build.Results{Backends: healthy},
			daemon: &build.Daemon{ViewOK: true, Decision: dec, View: view(member("lb1", cluster.StateAlive, true, "lb1"),
				member("lb2", cluster.StateAlive, true, "lb1", cluster.BackendView{Name: "cp2", State: "down"}),
				member("lb3", cluster.StateDead, false, "lb1"))},
			source: "daemon", owner: "lb1", cluster: probes.Warning, codes: []string{"cluster/peer-down", "cluster/split-view"}},
		{name: "daemon, preflight and drain", res: build.Results{Backends: healthy},
			daemon: &build.Daemon{View: allLive, ViewOK: true, Decision: dec, Drained: []string{"cp1"}, Preflight: []probes.Finding{
				{Check: probes.CheckPreflight, Severity: probes.OK, Code: "ip-forward"},
				{Check: probes.CheckPreflight, Severity: probes.Critical, Code: "ip-forward-off"}}},
			source: "daemon", owner: "lb1", cluster: probes.Warning, codes: []string{"preflight/ip-forward-off", "cluster/backend-drained"}},
		{name: "daemon without a view yet", res: build.Results{Backends: healthy},
			daemon: &build.Daemon{Decision: dec}, source: "daemon", owner: "lb1", cluster: probes.Warning,
			codes: []string{"cluster/peer-down", "cluster/peer-down"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := build.Build(testConfig(), testInputs(), tt.res, tt.meta, tt.daemon)
			if s.Source != tt.source || s.Schema != status.Schema || s.Node != "lb1" || s.Cluster != "c" {
				t.Errorf("head: source %q schema %q node %q cluster %q", s.Source, s.Schema, s.Node, s.Cluster)
			}
			if s.Election.Owner != tt.owner || s.VIPs[0].Owner != tt.owner {
				t.Errorf("owner: election %q VIP %q, want %q", s.Election.Owner, s.VIPs[0].Owner, tt.owner)
			}
			if got := verdict(s, probes.CheckCluster); got != tt.cluster {
				t.Errorf("cluster verdict %s, want %s (%+v)", got, tt.cluster, s.Verdicts)
			}
			n := 0
			for _, v := range s.Verdicts {
				if v.Area == "cluster" {
					n++
					if !strings.Contains(v.Summary, tt.summary) {
						t.Errorf("cluster summary %q lacks %q", v.Summary, tt.summary)
					}
				}
			}
			if n != 1 {
				t.Errorf("%d cluster verdicts, want 1", n)
			}
			if got := codes(s); strings.Join(got, ",") != strings.Join(tt.codes, ",") {
				t.Errorf("findings %v, want %v", got, tt.codes)
			}
			if (s.Counters != nil) != (tt.daemon != nil) {
				t.Errorf("counters %+v with daemon %v", s.Counters, tt.daemon != nil)
			}
			if strings.Contains(tt.meta.Socket, "/") && !strings.Contains(s.Election.Reason, tt.meta.Socket) {
				t.Errorf("reason %q does not name the socket", s.Election.Reason)
			}
			if !slices.IsSortedFunc(s.Findings, func(a, b probes.Finding) int { return b.Severity.Rank() - a.Severity.Rank() }) {
				t.Errorf("findings not worst first: %v", codes(s))
			}
		})
	}
}

// TestBuildAreas: the areas only `check` runs (kubeconfig, preflight) are
// in the snapshot only when their results are; etcd only when configured.
func TestBuildAreas(t *testing.T) {
	in := testInputs()
	s := build.Build(testConfig(), in, build.Results{}, build.Meta{}, nil)
	for _, a := range []probes.Check{probes.CheckEtcd, probes.CheckKubeconfig, probes.CheckPreflight} {
		if _, ok := s.Verdict(a); ok {
			t.Errorf("%s verdict without its results", a)
		}
	}
	in.EtcdConfigured = true
	pf := []probes.Finding{{Check: probes.CheckPreflight, Severity: probes.OK, Code: "ip-forward"}, {Check: probes.CheckPreflight, Severity: probes.Warning, Code: "rp-filter-strict"}}
	kube := &probes.KubeconfigReport{Found: true, Context: "admin@c", Server: "https://198.18.6.100:6443", PointsAt: "vip", CAMatches: true}
	s = build.Build(testConfig(), in, build.Results{Preflight: pf, Kubeconfig: kube}, build.Meta{}, nil)
	if v, _ := s.Verdict(probes.CheckEtcd); v.Severity != probes.Unknown || v.Summary != "not probed yet" {
		t.Errorf("etcd verdict %+v, want UNKNOWN not probed yet", v)
	}
	if v, _ := s.Verdict(probes.CheckPreflight); v.Severity != probes.Warning || v.Summary != "1 of 2 host checks need attention" {
		t.Errorf("preflight verdict %+v", v)
	}
	if v, _ := s.Verdict(probes.CheckKubeconfig); v.Severity != probes.OK || v.Summary != "admin@c -> https://198.18.6.100:6443 (vip), trusts the cluster CA" {
		t.Errorf("kubeconfig verdict %+v", v)
	}
	if got := s.Findings.Of(probes.CheckPreflight); len(got) != 1 || got[0].Code != "rp-filter-strict" {
		t.Errorf("preflight findings %+v, want only the problem", got)
	}
}

// TestSameMovingValues: a peer's last-seen time and round trip, etcd's
// raft counters and the reconcile times are no change; a count is.
func TestSameMovingValues(t *testing.T) {
	a := status.Snapshot{Peers: []status.Peer{{Name: "lb2", LastSeen: time.Unix(1, 0), RTT: time.Millisecond}},
		Etcd:     &status.Etcd{Members: []status.EtcdMember{{Name: "e1", RaftIndex: 1}}},
		Counters: &status.Counters{Reconciles: 1, ReconcileTime: time.Second}}
	b := status.Snapshot{Peers: []status.Peer{{Name: "lb2", LastSeen: time.Unix(2, 0), RTT: 2 * time.Millisecond}},
		Etcd:     &status.Etcd{Members: []status.EtcdMember{{Name: "e1", RaftIndex: 9}}},
		Counters: &status.Counters{Reconciles: 1, ReconcileTime: 2 * time.Second}}
	if !build.Same(a, b) {
		t.Error("moving values alone count as a change")
	}
	b.Counters.Reconciles = 2
	if build.Same(a, b) {
		t.Error("a new reconcile is no change")
	}
}

// TestBuildJSON: a built snapshot's findings are written in the status
// schema's form: "area", the detail in the message, fixes as lines.
func TestBuildJSON(t *testing.T) {
	in := testInputs()
	in.Problems[probes.CheckTLS] = []probes.Finding{{Check: probes.CheckTLS, Severity: probes.Unknown, Code: "ca-unreadable",
		Message: "cannot read tls.ca_file", Detail: "no such file", Fixes: []probes.Fix{{Setup: probes.SetupKubeadm, Text: "use ca.crt"}}}}
	s := build.Build(testConfig(), in, build.Results{}, build.Meta{}, nil)
	b, err := json.Marshal(s.Findings)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"area":"tls","severity":"UNKNOWN","code":"ca-unreadable","message":"cannot read tls.ca_file (no such file)","fixes":["[kubeadm] use ca.crt"]}`
	if !strings.Contains(string(b), want) {
		t.Errorf("findings JSON %s\nlacks %s", b, want)
	}
}

// TestBuildPanicRouting: with panic routing on, a daemon whose probes see
// no backend serving says so (election.panic_routing, a CRITICAL
// panic-routing finding); not with a backend serving, without results yet,
// with panic routing off, or without a daemon.
func TestBuildPanicRouting(t *testing.T) {
	up, down, unknown := probes.StateUp, probes.StateDown, probes.StateUnknown
	pass, fail := probes.OutcomePass, probes.OutcomeFail
	dec := cluster.Decision{Owner: "lb1", Epoch: 4, Elected: "lb1", Reason: "owner", Panic: true,
		Quorum: cluster.Quorum{Peers: 3, Need: 2, Have: 3, Required: true, Possible: true}}
	allDown := []probes.BackendStatus{backend("cp1", down, fail), backend("cp2", down, fail)}
	tests := []struct {
		name     string
		off      bool
		backends []probes.BackendStatus
		daemon   bool
		want     bool
	}{
		{"every backend down", false, allDown, true, true},
		{"one backend up", false, []probes.BackendStatus{backend("cp1", down, fail), backend("cp2", up, pass)}, true, false},
		{"no result yet", false, []probes.BackendStatus{backend("cp1", unknown, ""), backend("cp2", unknown, "")}, true, false},
		{"panic routing off", true, allDown, true, false},
		{"no daemon", false, allDown, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Balance.PanicRouting = !tt.off
			var d *build.Daemon
			if tt.daemon {
				d = &build.Daemon{Decision: dec}
			}
			s := build.Build(cfg, testInputs(), build.Results{Backends: tt.backends}, build.Meta{}, d)
			found := slices.ContainsFunc(s.Findings, func(f probes.Finding) bool {
				return f.Code == status.CodePanicRouting && f.Severity == probes.Critical && strings.Contains(f.Message, "cp1, cp2")
			})
			if s.Election.PanicRouting != tt.want || found != tt.want {
				t.Errorf("panic_routing %v, CRITICAL finding %v, want %v (findings %v)", s.Election.PanicRouting, found, tt.want, codes(s))
			}
			if tt.want && verdict(s, probes.CheckCluster) != probes.Critical {
				t.Errorf("cluster verdict %s, want CRITICAL", verdict(s, probes.CheckCluster))
			}
		})
	}
}
