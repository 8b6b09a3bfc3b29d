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
		return v, v
	}
	hv := s.beater.View()
	d.noteHeartbeat(s, hv)
	nm := s.noMajority.noMajority(hv, heartbeat.MonoNow(), 2*hv.Threshold)
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
