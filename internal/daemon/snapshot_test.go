package daemon

import (
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/status/build"
	"github.com/epconsole/epconsole/probes"
)

// TestBuildSnapshot: the daemon's state (snapshotState's stateInputs) —
// the cluster view, the decision, drains, connections and counters — lands
// in the snapshot the build package makes, with the cluster findings and
// without the direct view's "no daemon".
func TestBuildSnapshot(t *testing.T) {
	cfg := testConfig(t)
	now := time.Date(2026, 11, 24, 22, 0, 0, 0, time.UTC)
	in := build.ReadInputs(cfg)
	up := func(name string) probes.BackendStatus {
		return probes.BackendStatus{Target: probes.Target{Name: name}, Tracker: probes.Tracker{State: probes.StateUp},
			Last: probes.HealthResult{Time: now, Outcome: probes.OutcomePass}, Since: now}
	}
	meta := func(name string, prio int, owner string) cluster.Meta {
		return cluster.Meta{Name: name, Priority: prio, Eligible: true, Owner: owner, Epoch: 3, Digest: cluster.ShortDigest(cfg.Digest()), Version: "v1"}
	}
	view := cluster.View{Self: "lb1", Peers: []string{"lb1", "lb2", "lb3"}, Members: []cluster.Member{
		{Name: "lb1", Configured: true, State: cluster.StateAlive, Fresh: true, Meta: meta("lb1", 150, "lb1")},
		{Name: "lb2", Configured: true, State: cluster.StateAlive, Fresh: true, Meta: meta("lb2", 100, "lb1"),
			Backends: []cluster.BackendView{{Name: "cp1", State: "up"}, {Name: "cp2", State: "down", Reason: "connect: refused"}}},
		{Name: "lb3", Configured: true, State: cluster.StateDead, Fresh: false, Meta: meta("lb3", 90, "lb1")},
	}}
	dec := cluster.Decision{Hold: true, Owner: "lb1", Epoch: 3, Elected: "lb1", Reason: "owner: keeps the VIP",
		Quorum: cluster.Quorum{Peers: 3, Need: 2, Have: 2, Required: true, Possible: true}}
	since := now.Add(-time.Minute)
	x := stateInputs{
		view: view, viewOK: true,
		status: Status{Decision: dec, Holding: true, Eligible: true, Drained: []string{"cp1"},
			Preflight: []probes.Finding{{Check: probes.CheckPreflight, Severity: probes.Warning, Code: "rp-filter-strict", Message: "m", Fixes: []probes.Fix{{Text: "f"}}}}},
		ownerSince: since, conns: map[string]int{"cp2": 7},
		events:   []Event{{Time: now, Kind: EventDrain, Subject: "cp1", Message: "drained"}},
		counters: status.Counters{Failovers: 1, ProbeFailures: map[string]uint64{"connect": 2}},
	}
	res := build.Results{Backends: []probes.BackendStatus{up("cp1"), up("cp2")}, VIPHere: []bool{true}}
	buildSnapshot := func(x stateInputs, now time.Time) status.Snapshot {
		return build.Build(cfg, in, res, build.Meta{Version: "v1", Time: now}, x.daemon())
	}
	s := buildSnapshot(x, now)
	if s.Source != "daemon" || s.Node != "lb1" || len(s.VIPs) != 1 || s.VIPs[0].Owner != "lb1" || !s.VIPs[0].Here || !s.VIPs[0].OwnerSince.Equal(since) {
		t.Fatalf("head/VIPs wrong: source %q node %q vips %+v", s.Source, s.Node, s.VIPs)
	}
	if s.Election.Owner != "lb1" || s.Election.QuorumHave != 2 || s.Election.ConfigDigest == "" {
		t.Errorf("election %+v", s.Election)
	}
	if len(s.Peers) != 3 || !s.Peers[0].Self || s.Peers[2].State != "dead" || s.Peers[1].Priority != 100 {
		t.Errorf("peers %+v", s.Peers)
	}
	cp1, cp2 := s.Backends[0], s.Backends[1]
	if !cp1.Drained || cp2.Drained || cp2.Connections != 7 {
		t.Errorf("drain/connections: %+v %+v", cp1, cp2)
	}
	if len(cp2.Views) != 2 || cp2.Views[0].Peer != "lb1" || cp2.Views[1].Peer != "lb2" || cp2.Views[1].State != "down" {
		t.Errorf("cp2 views %+v, want lb1 up and lb2 down (lb3 publishes none)", cp2.Views)
	}
	codes := map[string]bool{}
	for _, f := range s.Findings {
		codes[f.Code] = true
	}
	for _, c := range []string{status.CodePeerDown, status.CodeSplitView, status.CodeDrained, "rp-filter-strict"} {
		if !codes[c] {
			t.Errorf("finding %s missing: %v", c, codes)
		}
	}
	if codes["no-daemon"] {
		t.Error("a daemon snapshot says there is no daemon")
	}
	var cl *status.AreaVerdict
	for i := range s.Verdicts {
		if s.Verdicts[i].Area == "cluster" {
			if cl != nil {
				t.Fatal("two cluster verdicts")
			}
			cl = &s.Verdicts[i]
		}
	}
	if cl == nil || cl.Severity != probes.Warning {
		t.Errorf("cluster verdict %+v", cl)
	}
	if len(s.Events) != 1 || s.Events[0].Kind != "drain" || s.Counters == nil || s.Counters.Failovers != 1 || s.Counters.ProbeFailures["connect"] != 2 {
		t.Errorf("events %+v counters %+v", s.Events, s.Counters)
	}

	// Moving values alone are no change; a state change is.
	y := x
	later := now.Add(time.Second)
	y.view.Members = append([]cluster.Member(nil), view.Members...)
	y.view.Members[1].LastSeen, y.view.Members[1].RTT = now, time.Millisecond
	if !build.Same(s, buildSnapshot(y, later)) {
		t.Error("a new last-seen time counts as a change")
	}
	y.view.Members[1].Backends = []cluster.BackendView{{Name: "cp1", State: "up"}, {Name: "cp2", State: "up"}}
	if build.Same(s, buildSnapshot(y, later)) {
		t.Error("lb2 seeing cp2 up again is no change")
	}
}
