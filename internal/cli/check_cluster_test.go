package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
)

// clusterSnap is a daemon's snapshot on lb1 of a healthy three-peer cluster.
func clusterSnap() status.Snapshot {
	s := status.Snapshot{Schema: status.Schema, Source: "daemon", Node: "lb1", Cluster: "test-cp",
		VIPs: []status.VIP{{Address: "198.18.6.100", Owner: "lb1", Here: true}}}
	s.Election = status.Election{Owner: "lb1", QuorumPeers: 3, QuorumNeed: 2, QuorumHave: 3, QuorumRequired: true, QuorumPossible: true}
	for _, n := range []string{"lb1", "lb2", "lb3"} {
		s.Peers = append(s.Peers, status.Peer{Name: n, Self: n == "lb1", State: "alive", Fresh: true, Owner: "lb1"})
	}
	b := status.Backend{Name: "cp1", Address: "198.18.6.21:6443"}
	for _, n := range []string{"lb1", "lb2", "lb3"} {
		b.Views = append(b.Views, status.BackendView{Peer: n, State: "up"})
	}
	s.Backends = []status.Backend{b}
	return s
}

// TestCheckCluster serves snapshots on a real status socket and runs the
// cluster part of `check` against it: each cluster fault gives its
// finding and exit code; no daemon falls back and says so.
func TestCheckCluster(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*status.Snapshot)
		code int
		want []string // finding codes
	}{
		{name: "healthy", mod: func(*status.Snapshot) {}, code: 0},
		{name: "peer-down", mod: func(s *status.Snapshot) {
			s.Peers[2].State, s.Peers[2].Fresh = "dead", false
			s.Election.QuorumHave = 2
		}, code: 1, want: []string{status.CodePeerDown}},
		{name: "no-owner", mod: func(s *status.Snapshot) {
			s.Election.Owner, s.VIPs[0].Owner = "", ""
			for i := range s.Peers {
				s.Peers[i].Owner = ""
			}
		}, code: 2, want: []string{status.CodeNoOwner}},
		{name: "two-owners", mod: func(s *status.Snapshot) { s.Peers[1].Owner = "lb2" }, code: 2, want: []string{status.CodeTwoOwners}},
		{name: "split-view", mod: func(s *status.Snapshot) { s.Backends[0].Views[1].State = "down" }, code: 1, want: []string{status.CodeSplitView}},
		{name: "quorum-lost", mod: func(s *status.Snapshot) {
			for i := 1; i < 3; i++ {
				s.Peers[i].State, s.Peers[i].Fresh = "dead", false
			}
			s.Election.QuorumHave = 1
		}, code: 2, want: []string{status.CodeQuorumLost, status.CodePeerDown, status.CodePeerDown}},
		{name: "config-mismatch", mod: func(s *status.Snapshot) { s.Election.Mismatch = []string{"lb2"} }, code: 1, want: []string{status.CodeConfigMismatch}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := clusterSnap()
			tc.mod(&snap)
			sock := filepath.Join(t.TempDir(), "s.sock")
			srv, err := status.NewServer(status.ServerOptions{Socket: sock, Source: status.NewPublisher(snap)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx) }()
			t.Cleanup(func() { cancel(); <-done })

			r := checkReport{Schema: CheckSchema, Cluster: "test-cp", CheckedAt: time.Now()}
			r.Summary = "backends: (not run)"
			addCluster(context.Background(), &config.Config{Status: config.Status{Socket: sock}}, &r)
			if r.ExitCode != tc.code {
				t.Errorf("exit code %d, want %d; findings %+v", r.ExitCode, tc.code, r.Findings)
			}
			var got []string
			for _, f := range r.Findings {
				got = append(got, f.Code)
				if f.Check != checkCluster || len(f.Fixes) == 0 {
					t.Errorf("finding %+v: want check cluster with a fix", f)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("findings %v, want %v", got, tc.want)
			}
			if r.Checks.Cluster == nil || r.Checks.Cluster.Source != "daemon" || !strings.Contains(r.Summary, "(daemon on lb1)") {
				t.Errorf("section %+v summary %q", r.Checks.Cluster, r.Summary)
			}
			var out strings.Builder
			r.write(&out, false)
			golden(t, "cluster-"+tc.name+".txt", strings.ReplaceAll(out.String(), sock, "$SOCKET"))
		})
	}
}

func TestCheckClusterNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	r := checkReport{Schema: CheckSchema, Summary: "backends: 2/2 ready"}
	addCluster(context.Background(), &config.Config{Status: config.Status{Socket: sock}}, &r)
	if r.ExitCode != 0 || r.Status != probes.OK || len(r.Findings) != 0 {
		t.Errorf("no daemon changed the verdict: %+v", r)
	}
	if want := "backends: 2/2 ready; cluster: no daemon at " + sock + ", direct probes only"; r.Summary != want {
		t.Errorf("summary %q, want %q", r.Summary, want)
	}
	if c := r.Checks.Cluster; c == nil || c.Source != "direct" || !c.Skipped {
		t.Errorf("section %+v", c)
	}
}
