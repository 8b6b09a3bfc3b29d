package daemon

import (
	"fmt"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
)

// The election's input: the cluster view with the heartbeat's liveness
// laid over it.

// view is the cluster view with the heartbeat's liveness laid over it, and
// the gossip view under it.
func (d *Daemon) view(s *state) (live, gossip cluster.View) {
	v := s.cl.View()
	if s.beater == nil {
		s.wake.view = suspectChanges(v)
		return v, v
	}
	hv := s.beater.View()
	if s.beatBridgeUntil != 0 {
		if now := heartbeat.MonoNow(); now < s.beatBridgeUntil {
			hv = bridged(hv, s.beatBridge)
		} else {
			s.beatBridge, s.beatBridgeUntil = heartbeat.View{}, 0
		}
	}
	d.noteHeartbeat(s, hv)
	s.othersHold = othersHolding(hv)
	now := heartbeat.MonoNow()
	nm := s.noMajority.noMajority(hv, now, 2*hv.Threshold)
	s.wake.view = beatViewChanges(s, hv, now, time.Now(), 2*hv.Threshold)
	if s.waiting {
		s.wake.view = earliest(s.wake.view, suspectChanges(v)) // StartupWaitOver reads the gossip view
	}
	return v.WithLiveness(liveness(hv, s.cfg.Node.Name, nm)), v
}

// noteHeartbeat logs the heartbeat's verdict whenever it changes (who is
// fresh, beating, majority), with the beat loop's counters and each
// peer's last beat age: what tells a peer that stopped sending from a
// loop that was held up, or from beats the kernel delivered late.
func (d *Daemon) noteHeartbeat(s *state, hv heartbeat.View) {
	var fresh, missing []string
	for _, p := range hv.Peers {
		if p.Alive {
			fresh = append(fresh, p.Name)
		} else {
			missing = append(missing, p.Name)
		}
	}
	key := fmt.Sprintf("%v|%v|%v|%v|%v", hv.Stale, hv.Beating, hv.Majority, fresh, missing)
	if key == s.beatKey {
		return
	}
	first := s.beatKey == ""
	s.beatKey = key
	if first && len(missing) == 0 {
		return
	}
	now := heartbeat.MonoNow()
	ages := make(map[string]string, len(hv.Peers))
	for _, p := range hv.Peers {
		if p.Seen {
			ages[p.Name] = now.Sub(p.LastBeat).Round(100 * time.Microsecond).String()
		}
	}
	st := hv.Stats
	d.log.Info("heartbeat verdict", "fresh", fresh, "missing", missing, "majority", hv.Majority, "beating", hv.Beating,
		"stale", hv.Stale, "last_beat_age", ages, "report_age", now.Sub(hv.At).Round(100*time.Microsecond).String(),
		"loop_max_lateness", st.MaxLateness.String(), "loop_late_ticks", st.LateTicks, "sent", st.Sent,
		"send_errors", st.SendErrors, "received", st.Received, "accepted", st.Accepted, "reports_dropped", st.ReportsDropped,
		"non_peer", st.NonPeer, "other_cluster", st.OtherCluster)
}

// bridged is a restarted beat loop's view cur with its predecessor's last
// view prev laid under it: this node is live and a peer alive if either
// says so (the new loop has not reported, or not heard that peer, yet).
func bridged(cur, prev heartbeat.View) heartbeat.View {
	out := cur
	if cur.Stale {
		out.Stale, out.At = false, prev.At
		out.Beating, out.Majority = prev.Beating, prev.Majority
	}
	out.Majority = out.Majority || prev.Majority
	if out.Threshold == 0 {
		out.Threshold, out.SlowThreshold = prev.Threshold, prev.SlowThreshold
	}
	out.Peers = make([]heartbeat.PeerView, 0, len(prev.Peers))
	for _, p := range prev.Peers {
		if c, ok := cur.Peer(p.Name); ok && (c.Alive || !p.Alive) {
			p = c
		}
		out.Peers = append(out.Peers, p)
	}
	for _, c := range cur.Peers {
		if _, ok := prev.Peer(c.Name); !ok {
			out.Peers = append(out.Peers, c)
		}
	}
	return out
}
