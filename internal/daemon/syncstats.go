package daemon

import (
	"github.com/epconsole/epconsole/internal/connsync"
	"github.com/epconsole/epconsole/internal/status"
)

// syncStatser is a connection sync that reports its totals;
// *connsync.Sync is one.
type syncStatser interface {
	Stats() connsync.Stats
}

// ConnSync returns the connection sync's totals and streams (false when
// the sync is off or not started).
func (d *Daemon) ConnSync() (connsync.Stats, bool) {
	d.mu.Lock()
	var cs connSyncer
	if d.st != nil {
		cs = d.st.sync
	}
	d.mu.Unlock()
	st, ok := cs.(syncStatser)
	if !ok {
		return connsync.Stats{}, false
	}
	return st.Stats(), true
}

// addSyncCounters adds the connection sync's totals to c.
func (d *Daemon) addSyncCounters(c *status.Counters) {
	st, ok := d.ConnSync()
	if !ok {
		return
	}
	c.SyncLag, c.SyncApplied, c.SyncBatchesSent, c.SyncWireBytes = st.Lag, st.Applied, st.Sent, st.WireBytes
	c.SyncResyncs, c.SyncGapRepairs, c.SyncDropped = st.Resyncs, st.GapRepairs, st.Dropped
	for _, p := range st.Peers {
		c.SyncPeers = append(c.SyncPeers, status.SyncPeer{Peer: p.Name, Connected: p.Connected, Queue: p.Pending + p.Unacked})
	}
}
