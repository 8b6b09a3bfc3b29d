package daemon

import (
	"fmt"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/probes"
)

// The pure half of the daemon: what to ask of the dataplane, the cluster and
// the election, from the config, the probes and the heartbeat. No I/O here.

// health folds a probe snapshot into the healthy set (Up and Falling are
// serving; the probes' state machine decides when a 401/403 counts), the
// drain set, the backend views to gossip, and whether every backend has had
// its first result. A backend out of rotation drains (no new flows, its
// established ones kept) unless the state machine says it is dead: it
// refused the connection, its host is unreachable, or it has failed
// without an answer for longer than health's dead-after bound. Slow is not
// dead: a timed-out backend drains. Only a dead backend's flows are cut.
func health(snap []probes.BackendStatus) (healthy, drain map[string]bool, views []cluster.BackendView, settled bool) {
	healthy = make(map[string]bool, len(snap))
	drain = make(map[string]bool, len(snap))
	settled = true
	for _, s := range snap {
		name := s.Target.Name
		if s.Tracker.State == probes.StateUnknown {
			settled = false
		}
		healthy[name] = s.Tracker.Serving()
		if !healthy[name] && s.Tracker.State != probes.StateUnknown && !s.Tracker.Dead {
			drain[name] = true
		}
		reason := s.Last.Error
		if reason == "" && s.Last.Outcome != "" {
			reason = string(s.Last.Outcome)
		}
		if s.Tracker.Cause == probes.CauseTimeout && !s.Tracker.Dead {
			reason = "slow: " + reason // slow is not dead: it drains
		}
		views = append(views, cluster.BackendView{
			Name: name, State: s.Tracker.State.String(), Latency: s.Last.Latency,
			Reason: reason, Since: s.Since,
		})
	}
	return healthy, drain, views, settled
}

// countHealthy counts the true entries of a healthy set.
func countHealthy(healthy map[string]bool) int {
	n := 0
	for _, ok := range healthy {
		if ok {
			n++
		}
	}
	return n
}

// sameSet reports whether two healthy sets hold the same true entries.
func sameSet(a, b map[string]bool) bool {
	if countHealthy(a) != countHealthy(b) {
		return false
	}
	for k, v := range a {
		if v && !b[k] {
			return false
		}
	}
	return true
}

// majorityWatch remembers since when each peer's beats say it hears no
// majority (cluster.Member.NoMajority).
type majorityWatch map[string]heartbeat.Mono

// noMajority returns the fresh peers whose beats say they hear no
// majority, for at most holdOff since that was first seen: long enough
// for a partition that is forming to reach this node too (its own
// majority then goes stale), short enough that a peer with a partial view
// cannot hold an election back. It updates w.
func (w majorityWatch) noMajority(hv heartbeat.View, now heartbeat.Mono, holdOff time.Duration) map[string]bool {
	out := map[string]bool{}
	for _, p := range hv.Peers {
		if !p.Alive || hv.Stale || p.Flags&heartbeat.FlagMajority != 0 {
			delete(w, p.Name)
			continue
		}
		since, ok := w[p.Name]
		if !ok {
			w[p.Name], since = now, now
		}
		if now.Sub(since) <= holdOff {
			out[p.Name] = true
		}
	}
	return out
}

// liveness turns the heartbeat's picture into Elect's liveness input.
// A stale picture (the beat loop stuck or gone) makes every peer and this
// node itself not fresh: without beats it must not hold the VIP.
// noMajority (nil: none) marks the peers that say they hear no majority.
func liveness(hv heartbeat.View, self string, noMajority map[string]bool) map[string]cluster.Liveness {
	live := make(map[string]cluster.Liveness, len(hv.Peers)+1)
	for _, p := range hv.Peers {
		fresh := p.Alive && !hv.Stale
		if !fresh && !hv.Stale && p.Seen && p.Flags&heartbeat.FlagRestarting != 0 && heartbeat.MonoNow().Sub(p.LastBeat) < RestartGrace {
			// The peer announced a restart of its beat loop (a reload):
			// its beats pause for a helper start; it stays live meanwhile.
			fresh = true
		}
		l := cluster.Liveness{Fresh: fresh, NoMajority: fresh && noMajority[p.Name], Leaving: fresh && p.Flags&heartbeat.FlagLeaving != 0}
		if fresh && p.Seen {
			l.HasOwner, l.Owner, l.Epoch = true, p.Owner, p.Epoch
		}
		live[p.Name] = l
	}
	if hv.Stale {
		live[self] = cluster.Liveness{Fresh: false}
	}
	return live
}

// restartNeeded says which changes of a reload the running daemon cannot
// apply (the node's identity, its gossip sockets, the status API's
// listeners and who may use the status socket), or "".
func restartNeeded(old, cur *config.Config) string {
	switch {
	case old.Node.Name != cur.Node.Name:
		return "node.name changed"
	case old.Node.GossipBind != cur.Node.GossipBind:
		return "node.gossip_bind changed"
	case old.Node.GossipAdvertise != cur.Node.GossipAdvertise:
		return "node.gossip_advertise changed"
	case old.Status.SocketGroup != cur.Status.SocketGroup, old.Status.OperatorGroup != cur.Status.OperatorGroup:
		return "status.socket_group or status.operator_group changed"
	case old.Status.Socket != cur.Status.Socket:
		// The status API serves on the socket it opened at start.
		return fmt.Sprintf("status.socket changed (%q to %q)", old.Status.Socket, cur.Status.Socket)
	case old.Status.MetricsListen != cur.Status.MetricsListen:
		return fmt.Sprintf("status.metrics_listen changed (%q to %q)", old.Status.MetricsListen, cur.Status.MetricsListen)
	}
	return ""
}
