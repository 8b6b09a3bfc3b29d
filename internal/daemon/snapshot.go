package daemon

import (
	"slices"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/status/build"
)

// SourceDaemon is the Snapshot.Source of a daemon's snapshot.
const SourceDaemon = status.SourceDaemon

// stateInputs is what the daemon knows for one snapshot, read from its
// accessors and running totals by snapshotState.
type stateInputs struct {
	status     Status
	view       cluster.View
	viewOK     bool
	events     []Event
	conns      map[string]int
	counters   status.Counters
	ownerSince time.Time
	beat       heartbeat.View
	beatOK     bool
}

// snapshotState gathers the daemon's part of a snapshot for the status
// producer; the pure build package makes the snapshot of it.
func (d *Daemon) snapshotState() *build.Daemon {
	x := stateInputs{status: d.Status(), events: d.Events(), counters: d.counters.get()}
	d.addSyncCounters(&x.counters)
	x.view, x.viewOK = d.ClusterView()
	x.beat, x.beatOK = d.Heartbeat()
	d.connMu.Lock()
	x.conns = d.conns
	d.connMu.Unlock()
	d.mu.Lock()
	x.ownerSince = d.ownerSince
	d.mu.Unlock()
	return x.daemon()
}

// daemon is x as the build package takes it.
func (x stateInputs) daemon() *build.Daemon {
	st := x.status
	bd := &build.Daemon{
		View: x.view, ViewOK: x.viewOK, Decision: st.Decision, Waiting: st.Waiting, Eligible: st.Eligible,
		Realtime:         st.HeartbeatRunning && st.HeartbeatRealtime.InEffect,
		HeartbeatRunning: st.HeartbeatRunning, HeartbeatError: st.HeartbeatError,
		Drained: st.Drained, Preflight: append(slices.Clone(st.Preflight), st.Faults...), OwnerSince: x.ownerSince, Conns: x.conns, Counters: x.counters,
	}
	bd.Counters.HeartbeatFailedStarts = uint64(st.HeartbeatFailedStarts)
	if x.beatOK {
		bd.Counters.HeartbeatNonPeer, bd.Counters.HeartbeatOtherCluster = x.beat.Stats.NonPeer, x.beat.Stats.OtherCluster
	}
	for _, e := range x.events {
		bd.Events = append(bd.Events, status.Event{Time: e.Time, Kind: string(e.Kind), Subject: e.Subject, Message: e.Message})
	}
	return bd
}
