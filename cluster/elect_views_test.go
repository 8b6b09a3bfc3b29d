package cluster

import (
	"slices"
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
