package status

import (
	"github.com/epconsole/epconsole/probes"
	"slices"
	"testing"
)

// healthyCluster is lb1 (self, owner) with lb2 and lb3, all live, every
// peer seeing cp1 and cp2 up.
func healthyCluster() Snapshot {
	s := Snapshot{Source: "daemon", Node: "lb1", VIPs: []VIP{{Address: "198.18.9.10", Owner: "lb1"}}}
	s.Election = Election{Owner: "lb1", QuorumPeers: 3, QuorumNeed: 2, QuorumHave: 3, QuorumRequired: true, QuorumPossible: true}
	for _, n := range []string{"lb1", "lb2", "lb3"} {
		s.Peers = append(s.Peers, Peer{Name: n, Self: n == "lb1", State: "alive", Fresh: true, Owner: "lb1"})
	}
	for _, b := range []string{"cp1", "cp2"} {
		be := Backend{Name: b, Address: "198.18.9.20:6443"}
		for _, n := range []string{"lb1", "lb2", "lb3"} {
			be.Views = append(be.Views, BackendView{Peer: n, State: "up"})
		}
		s.Backends = append(s.Backends, be)
	}
	return s
}

func TestClusterFindings(t *testing.T) {
	type want struct {
		code    string
		sev     probes.Severity
		subject string
	}
	tests := []struct {
		desc  string
		mod   func(*Snapshot)
		want  []want
		worst probes.Severity
	}{
		{desc: "healthy: nothing", mod: func(*Snapshot) {}, worst: probes.OK},
		{desc: "direct snapshot: no cluster findings", mod: func(s *Snapshot) { s.Source = "direct"; s.Election.Owner = "" }, worst: probes.OK},
		{
			desc: "no owner",
			mod: func(s *Snapshot) {
				s.Election.Owner = ""
				for i := range s.Peers {
					s.Peers[i].Owner = ""
				}
			},
			want: []want{{CodeNoOwner, probes.Critical, "198.18.9.10"}}, worst: probes.Critical,
		},
		{
			desc: "two owners",
			mod:  func(s *Snapshot) { s.Peers[2].Owner = "lb3" },
			want: []want{{CodeTwoOwners, probes.Critical, "lb1,lb3"}}, worst: probes.Critical,
		},
		{
			desc: "peer down (gossip dead)",
			mod:  func(s *Snapshot) { s.Peers[2].State, s.Peers[2].Fresh = "dead", false; s.Election.QuorumHave = 2 },
			want: []want{{CodePeerDown, probes.Warning, "lb3"}}, worst: probes.Warning,
		},
		{
			desc: "peer alive by gossip but without beats is down",
			mod:  func(s *Snapshot) { s.Peers[1].Fresh = false },
			want: []want{{CodePeerDown, probes.Warning, "lb2"}}, worst: probes.Warning,
		},
		{
			desc: "quorum lost",
			mod: func(s *Snapshot) {
				s.Peers[1].State, s.Peers[1].Fresh = "dead", false
				s.Peers[2].State, s.Peers[2].Fresh = "suspect", false
				s.Election.QuorumHave = 1
			},
			want:  []want{{CodeQuorumLost, probes.Critical, "lb1"}, {CodePeerDown, probes.Warning, "lb2"}, {CodePeerDown, probes.Warning, "lb3"}},
			worst: probes.Critical,
		},
		{
			desc: "quorum not required with two peers",
			mod: func(s *Snapshot) {
				s.Peers = s.Peers[:2]
				s.Peers[1].State, s.Peers[1].Fresh = "dead", false
				s.Election = Election{Owner: "lb1", QuorumPeers: 2, QuorumNeed: 2, QuorumHave: 1}
			},
			want: []want{{CodePeerDown, probes.Warning, "lb2"}}, worst: probes.Warning,
		},
		{
			desc: "split view: lb2 sees cp2 down while lb1 and lb3 see it up",
			mod:  func(s *Snapshot) { s.Backends[1].Views[1].State = "down" },
			want: []want{{CodeSplitView, probes.Warning, "cp2"}}, worst: probes.Warning,
		},
		{
			desc: "all peers see cp2 down: no split view",
			mod: func(s *Snapshot) {
				for i := range s.Backends[1].Views {
					s.Backends[1].Views[i].State = "down"
				}
			},
			worst: probes.OK,
		},
		{
			desc: "a dead peer's stale view is no split view",
			mod: func(s *Snapshot) {
				s.Peers[2].State, s.Peers[2].Fresh = "dead", false
				s.Backends[1].Views[2].State = "down"
			},
			want: []want{{CodePeerDown, probes.Warning, "lb3"}}, worst: probes.Warning,
		},
		{
			desc:  "falling counts as in service",
			mod:   func(s *Snapshot) { s.Backends[0].Views[0].State = "falling" },
			worst: probes.OK,
		},
		{
			desc: "config mismatch",
			mod:  func(s *Snapshot) { s.Election.Mismatch = []string{"lb3"} },
			want: []want{{CodeConfigMismatch, probes.Warning, "lb3"}}, worst: probes.Warning,
		},
		{
			desc: "heartbeat not running (busy port)",
			mod: func(s *Snapshot) {
				s.Election.HeartbeatError = "heartbeat: binding UDP 198.18.9.1:7947: address already in use (UDP port 7947 is held by pid 42 (keepalived))"
			},
			want: []want{{CodeHeartbeatDown, probes.Critical, "lb1"}}, worst: probes.Critical,
		},
		{
			desc:  "heartbeat switched off on purpose: no finding",
			mod:   func(s *Snapshot) { s.Election.HeartbeatError = HeartbeatSwitchedOff },
			worst: probes.OK,
		},
		{
			desc: "panic routing: CRITICAL, with its fixes",
			mod:  func(s *Snapshot) { s.Election.PanicRouting = true },
			want: []want{{CodePanicRouting, probes.Critical, "lb1"}}, worst: probes.Critical,
		},
		{
			desc: "drained backend",
			mod:  func(s *Snapshot) { s.Backends[0].Drained = true },
			want: []want{{CodeDrained, probes.Warning, "cp1"}}, worst: probes.Warning,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s := healthyCluster()
			tc.mod(&s)
			fs := ClusterFindings(s)
			var got []want
			for _, f := range fs {
				got = append(got, want{f.Code, f.Severity, f.Subject})
				if f.Message == "" || len(f.Fixes) == 0 {
					t.Errorf("finding %s without message or fix: %+v", f.Code, f)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ClusterFindings = %v, want %v", got, tc.want)
			}
			if v := ClusterVerdict(s, fs); v.Severity != tc.worst || v.Summary == "" {
				t.Errorf("ClusterVerdict = %+v, want severity %s", v, tc.worst)
			}
		})
	}
}

func TestClusterVerdictSummary(t *testing.T) {
	s := healthyCluster()
	s.Peers[2].State, s.Peers[2].Fresh = "dead", false
	v := ClusterVerdict(s, ClusterFindings(s))
	if want := "lb1 owns 198.18.9.10; 2/3 peers live; lb3 dead"; v.Summary != want {
		t.Errorf("summary %q, want %q", v.Summary, want)
	}
}
