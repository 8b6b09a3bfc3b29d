package status

import (
	"strings"
	"testing"
)

// TestPeerDownSays: a peer that is not live gets a message and fix for
// why, when the snapshot knows: its gossip rejected for the key (the
// key-mismatch event names it), or alive by gossip without heartbeats
// (the heartbeat port); otherwise the generic look at its daemon.
func TestPeerDownSays(t *testing.T) {
	tests := []struct {
		desc          string
		mod           func(s *Snapshot)
		msgPart, fix  string
		notMsg, notFx string
	}{
		{desc: "key mismatch", mod: func(s *Snapshot) {
			s.Peers[2].State, s.Peers[2].Fresh = "unknown", false
			s.Events = append(s.Events, Event{Kind: "gossip-key-mismatch", Subject: "lb3", Message: "198.18.9.13:7946 gossip with peer lb3 rejected"})
		}, msgPart: "its gossip is rejected: not encrypted with a key of lb1's gossip key file", fix: "copy the gossip key file of lb1 to lb3"},
		{desc: "a key mismatch with another peer says nothing of lb3", mod: func(s *Snapshot) {
			s.Peers[2].State, s.Peers[2].Fresh = "dead", false
			s.Events = append(s.Events, Event{Kind: "gossip-key-mismatch", Subject: "lb2"})
		}, msgPart: "peer lb3 is not live (dead)", fix: "on lb3: systemctl status epconsole", notMsg: "rejected"},
		{desc: "a key mismatch before the peer joined is over", mod: func(s *Snapshot) {
			s.Peers[2].State, s.Peers[2].Fresh = "dead", false
			s.Events = append(s.Events, Event{Kind: string(EventKeyMismatch), Subject: "lb3"}, Event{Kind: string(EventPeerJoin), Subject: "lb3"})
		}, msgPart: "peer lb3 is not live (dead)", fix: "on lb3: systemctl status epconsole", notMsg: "rejected"},
		{desc: "no heartbeats, after an old key mismatch", mod: func(s *Snapshot) {
			s.Peers[2].Fresh = false
			s.Events = append(s.Events, Event{Kind: string(EventKeyMismatch), Subject: "lb3"})
		}, msgPart: "alive by gossip but its heartbeats do not arrive", fix: "open UDP gossip.heartbeat_port", notMsg: "rejected"},
		{desc: "no heartbeats", mod: func(s *Snapshot) { s.Peers[2].Fresh = false },
			msgPart: "alive by gossip but its heartbeats do not arrive", fix: "open UDP gossip.heartbeat_port (default the gossip port + 1) from lb3 to lb1", notFx: "systemctl status"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s := healthyCluster()
			tc.mod(&s)
			var found bool
			for _, f := range ClusterFindings(s) {
				if f.Code != CodePeerDown || f.Subject != "lb3" {
					continue
				}
				found = true
				fix := f.Fixes[0].Text
				if !strings.Contains(f.Message, tc.msgPart) || !strings.Contains(fix, tc.fix) {
					t.Errorf("message %q, fix %q; want %q and %q", f.Message, fix, tc.msgPart, tc.fix)
				}
				if (tc.notMsg != "" && strings.Contains(f.Message, tc.notMsg)) || (tc.notFx != "" && strings.Contains(fix, tc.notFx)) {
					t.Errorf("message %q, fix %q: should not say %q / %q", f.Message, fix, tc.notMsg, tc.notFx)
				}
			}
			if !found {
				t.Fatal("no peer-down finding for lb3")
			}
		})
	}
}
