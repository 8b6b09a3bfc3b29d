package cluster

// What the cluster reports: its counters (Stats) and its view of the members (View).

import (
	"slices"
	"strings"
	"time"
)

// Stats returns the cluster's counters.
func (c *Cluster) Stats() Stats {
	return Stats{
		EventsDropped:   c.eventsDropped.Load(),
		KeyMismatches:   c.keyMismatches.Load(),
		DecodeErrors:    c.decodeErrors.Load(),
		MembersRejected: c.rejected.Load(),
		StateIgnored:    c.ignored.Load(),
	}
}

// View returns a snapshot of the cluster: this node, every configured peer
// (StateUnknown if never heard from) and every other member memberlist
// told about, each with its metadata, backend views, state and last
// contact. Member.Fresh is true for alive members and this node; the
// daemon overlays the heartbeat's verdict with WithLiveness.
func (c *Cluster) View() View {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	v := View{Self: c.cfg.Name, Taken: now, Peers: []string{c.cfg.Name}, PanicRouting: c.panicRouting.Load()}
	names := map[string]bool{c.cfg.Name: true}
	for _, p := range c.peers {
		v.Peers = append(v.Peers, p.Name)
		names[p.Name] = true
	}
	slices.Sort(v.Peers)
	for n := range c.members {
		names[n] = true
	}
	suspectAfter := c.timers.SuspectAfter
	if suspectAfter <= 0 {
		suspectAfter = 4 * c.timers.ProbeInterval * time.Duration(max(1, c.numAliveLocked()-1))
	}
	v.SuspectAfter = suspectAfter
	for n := range names {
		m := Member{Name: n, Configured: slices.Contains(v.Peers, n)}
		switch r := c.members[n]; {
		case n == c.cfg.Name:
			m.Addr, m.State, m.Fresh, m.Meta, m.LastSeen = c.cfg.Advertise, StateAlive, true, c.local, now
		case r != nil:
			m.Addr, m.State, m.StateSince = r.addr, r.state, r.stateSince
			m.Meta, m.MetaErr, m.LastSeen, m.RTT = r.meta, r.metaErr, r.lastSeen, r.rtt
			if m.State == StateAlive && now.Sub(r.lastSeen) > suspectAfter {
				m.State = StateSuspect
			}
			m.Fresh = m.State == StateAlive
			m.Meta.Drained, m.Meta.DrainGen = "", 0
			if m.Configured {
				m.Meta.Drained, m.Meta.DrainGen = c.drainOfLocked(n)
			}
		default:
			if i := slices.IndexFunc(c.peers, func(p Peer) bool { return p.Name == n }); i >= 0 {
				m.Addr = c.peers[i].Addr
			}
		}
		for _, r := range c.backends[n] {
			if !r.w.Gone {
				m.Backends = append(m.Backends, r.w.view())
			}
		}
		slices.SortFunc(m.Backends, func(a, b BackendView) int { return strings.Compare(a.Name, b.Name) })
		v.Members = append(v.Members, m)
	}
	slices.SortFunc(v.Members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return v
}

// numAlive counts alive members including this node (for the broadcast
// queue's retransmit limit).
func (c *Cluster) numAlive() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.numAliveLocked()
}

func (c *Cluster) numAliveLocked() int {
	n := 1
	for name, r := range c.members {
		if name != c.cfg.Name && r.state == StateAlive {
			n++
		}
	}
	return n
}
