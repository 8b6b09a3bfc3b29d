package build

import (
	"reflect"
	"time"

	"github.com/epconsole/epconsole/internal/status"
)

// Same reports whether two snapshots say the same thing: equal but for
// what moves on its own — the time they were taken, probe latencies,
// peers' last-seen times and round trips, etcd's raft term and index and
// database size, and the time spent reconciling. A producer publishes a
// new snapshot only when this differs (or its republish interval passed).
func Same(a, b status.Snapshot) bool {
	return reflect.DeepEqual(steady(a), steady(b))
}

// steady is s without its moving values (a copy: s is not modified).
func steady(s status.Snapshot) status.Snapshot {
	s.Generated = time.Time{}
	ps := make([]status.Peer, len(s.Peers))
	for i, p := range s.Peers {
		p.LastSeen, p.RTT = time.Time{}, 0
		ps[i] = p
	}
	s.Peers = ps
	bs := make([]status.Backend, len(s.Backends))
	for i, b := range s.Backends {
		vs := make([]status.BackendView, len(b.Views))
		for j, v := range b.Views {
			v.Latency = 0
			vs[j] = v
		}
		b.Views = vs
		bs[i] = b
	}
	s.Backends = bs
	if s.Etcd != nil {
		e := *s.Etcd
		e.Members = make([]status.EtcdMember, len(s.Etcd.Members))
		for i, m := range s.Etcd.Members {
			m.RaftTerm, m.RaftIndex, m.DBSize = 0, 0, 0
			e.Members[i] = m
		}
		s.Etcd = &e
	}
	if s.Counters != nil {
		c := *s.Counters
		c.ReconcileTime, c.LastReconcile = 0, 0
		s.Counters = &c
	}
	return s
}
