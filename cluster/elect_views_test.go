package cluster

import (
	"slices"
	"strings"
	"testing"
)

// mod changes a test member.
type mod func(*Member)

// node is a configured, fresh, eligible member with digest "d1".
func node(name string, prio int, mods ...mod) Member {
	m := Member{
		Name: name, Configured: true, State: StateAlive, Fresh: true,
		Meta: Meta{Name: name, Priority: prio, Eligible: true, Digest: "d1"},
	}
	for _, f := range mods {
		f(&m)
	}
	return m
}

// unread is a fresh member whose metadata was not read (the beats reach
// this node before the gossip state does); holding > 0: its beats say it
// holds the VIP with that epoch (what View.WithLiveness lays over it).
func unread(name string, holding uint64) Member {
	m := Member{Name: name, Configured: true, State: StateAlive, Fresh: true}
	if holding > 0 {
		m.Meta.Owner, m.Meta.Epoch = name, holding
	}
	return m
}

func dead(m *Member)    { m.Fresh, m.State = false, StateDead }
func inelig(m *Member)  { m.Meta.Eligible = false }
func preempt(m *Member) { m.Meta.Preempt = true }

// noMajority: the member's beats say it hears no majority.
func noMajority(m *Member) { m.NoMajority = true }

// claims makes the member claim the VIP with epoch e.
func claims(e uint64) mod { return func(m *Member) { m.Meta.Owner, m.Meta.Epoch = m.Name, e } }

// believes makes the member believe owner holds the VIP with epoch e.
func believes(owner string, e uint64) mod {
	return func(m *Member) { m.Meta.Owner, m.Meta.Epoch = owner, e }
}

func digest(d string) mod { return func(m *Member) { m.Meta.Digest = d } }

// view makes a view whose configured peers are exactly the members.
func view(ms ...Member) View {
	v := View{Members: ms}
	for _, m := range ms {
		v.Peers = append(v.Peers, m.Name)
	}
	slices.Sort(v.Peers)
	return v
}

// withPeers sets the configured peers explicitly.
func withPeers(v View, peers ...string) View {
	v.Peers = peers
	return v
}

// electCase is one row of an Elect table: the view, the member deciding,
// and the decision it must reach.
type electCase struct {
	desc    string
	view    View
	self    string
	hold    bool
	owner   string
	epoch   uint64
	elected string
	panic   bool   // Decision.Panic
	reason  string // substring of Decision.Reason
	check   func(t *testing.T, d Decision)
}

// runElect runs Elect for every case and compares the decision with it.
func runElect(t *testing.T, tests []electCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			d := Elect(tt.view, tt.self)
			if d.Hold != tt.hold || d.Owner != tt.owner || d.Epoch != tt.epoch || d.Elected != tt.elected || d.Panic != tt.panic {
				t.Errorf("Elect(%s) = hold %v owner %q epoch %d elected %q panic %v, want hold %v owner %q epoch %d elected %q panic %v\nreason: %s",
					tt.self, d.Hold, d.Owner, d.Epoch, d.Elected, d.Panic, tt.hold, tt.owner, tt.epoch, tt.elected, tt.panic, d.Reason)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", d.Reason, tt.reason)
			}
			if d.Reason == "" {
				t.Error("empty reason")
			}
			if tt.check != nil {
				tt.check(t, d)
			}
		})
	}
}
