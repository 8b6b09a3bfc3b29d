package daemon

import (
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
)

// The status accessors: what the status API reads while Run runs.

// Status is the daemon's own part of the status: what it decided and why.
type Status struct {
	Node         string    `json:"node"`
	Version      string    `json:"version"`
	Started      time.Time `json:"started"`
	ConfigPath   string    `json:"config_path"`
	ConfigDigest string    `json:"config_digest"`
	// Waiting: still in the startup wait (listening before any claim).
	Waiting bool `json:"waiting"`
	// Holding: the VIP address is on this host.
	Holding     bool `json:"holding"`
	Eligible    bool `json:"eligible"`
	InterfaceUp bool `json:"interface_up"`
	// Decision is the latest election result.
	Decision cluster.Decision `json:"decision"`
	// Healthy and Drain are the sets programmed into the dataplane.
	Healthy map[string]bool `json:"healthy"`
	Drain   map[string]bool `json:"drain"`
	// Heartbeat says whether the beat loop runs and at which priority.
	HeartbeatRunning  bool               `json:"heartbeat_running"`
	HeartbeatError    string             `json:"heartbeat_error,omitempty"`
	HeartbeatRealtime heartbeat.Realtime `json:"heartbeat_realtime"`
	// HeartbeatFailedStarts counts failed starts of the beat loop in a
	// row (a busy port); the daemon retries, waiting up to 5 s.
	HeartbeatFailedStarts int `json:"heartbeat_failed_starts,omitempty"`
	// LastReload is when SIGHUP was last handled; LastReloadError why it
	// was rejected ("" if accepted).
	LastReload      time.Time `json:"last_reload,omitzero"`
	LastReloadError string    `json:"last_reload_error,omitempty"`
	// Preflight are the host checks made at start.
	Preflight []probes.Finding `json:"preflight,omitempty"`
	// Faults are the components that did not take a change and are
	// being retried (faults.go), one finding each.
	Faults []probes.Finding `json:"faults,omitempty"`
	// Drained is the cluster-wide operator drain set (sorted) and its
	// generation; HandoffTo the peer an operator's handoff goes to.
	Drained   []string `json:"drained,omitempty"`
	DrainGen  uint64   `json:"drain_generation,omitempty"`
	HandoffTo string   `json:"handoff_to,omitempty"`
}

// Status returns the daemon's latest status (zero before Run started).
func (d *Daemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

// ClusterView returns the cluster view with the heartbeat's liveness laid
// over it, as the election sees it; false when Run is not running.
func (d *Daemon) ClusterView() (cluster.View, bool) {
	d.mu.Lock()
	if d.st == nil {
		d.mu.Unlock()
		return cluster.View{}, false
	}
	cl, name, beater := d.st.cl, d.st.cfg.Node.Name, d.st.beater
	d.mu.Unlock()
	v := cl.View()
	if beater != nil {
		v = v.WithLiveness(liveness(beater.View(), name, nil))
	}
	return v, true
}

// Probes returns the local probe monitor's snapshot; nil when Run is not
// running.
func (d *Daemon) Probes() []probes.BackendStatus {
	d.mu.Lock()
	var mon prober
	if d.st != nil {
		mon = d.st.mon
	}
	d.mu.Unlock()
	if mon == nil {
		return nil
	}
	return mon.Snapshot()
}

// Heartbeat returns the beat loop's view; false when it does not run.
func (d *Daemon) Heartbeat() (heartbeat.View, bool) {
	d.mu.Lock()
	var b beatLoop
	if d.st != nil {
		b = d.st.beater
	}
	d.mu.Unlock()
	if b == nil {
		return heartbeat.View{}, false
	}
	return b.View(), true
}

// updateStatus copies the loop's state into the status (under the lock,
// which also guards the component pointers the accessors read).
func (d *Daemon) updateStatus(s *state) {
	d.notePanic(s)
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &d.status
	st.Node, st.Version, st.Started, st.ConfigPath = s.cfg.Node.Name, d.opts.Version, s.started, d.opts.ConfigPath
	if d.digestOf != s.cfg { // the digest hashes the whole config: once per config
		d.digestOf, d.digest = s.cfg, cluster.ShortDigest(s.cfg.Digest())
	}
	st.ConfigDigest = d.digest
	st.Waiting, st.Holding, st.Eligible, st.InterfaceUp = s.waiting, s.holding, s.eligible, s.ifaceUp
	st.Decision, st.Healthy, st.Drain = s.last, s.programmed, s.drained
	st.Drained, st.DrainGen, st.HandoffTo = s.opDrain.Backends, s.opDrain.Generation, s.handoffTo
	if owner := s.last.Owner; !s.waiting && owner != d.lastOwner {
		if owner != "" {
			d.counters.add(func(c *status.Counters) { c.Failovers++ })
		}
		d.lastOwner, d.ownerSince = owner, time.Now()
	}
	st.HeartbeatRunning, st.HeartbeatError = s.beater != nil && s.beatErr == nil, ""
	if s.beatErr != nil {
		st.HeartbeatError = s.beatErr.Error()
	}
	if s.beater != nil {
		st.HeartbeatRealtime = s.beater.Realtime()
	}
	st.HeartbeatFailedStarts = s.beatRetry.failures
	// The producer's own tick shows everything within DefaultStatusTick;
	// a poke makes a change show at once, so poke on a change only (not
	// on every timed wake-up of the decision loop, which changes nothing
	// while idle).
	if n := d.events.Total(); n != d.shownEvents || !sameStatus(st, &d.shown) {
		d.shown, d.shownEvents = *st, n
		d.shown.Faults = slices.Clone(st.Faults) // changed in place (faults.go)
		d.pokeStatus()
	}
}

// sameStatus reports whether a and b show the same. The fields the loop
// sets often are compared one by one (a reflect.DeepEqual of the whole
// status 40 times a second showed in the profile); the findings, set
// rarely, as a whole (Preflight, set once, by identity).
func sameStatus(a, b *Status) bool {
	return a.Node == b.Node && a.Version == b.Version && a.Started.Equal(b.Started) && a.ConfigPath == b.ConfigPath &&
		a.ConfigDigest == b.ConfigDigest && a.Waiting == b.Waiting && a.Holding == b.Holding && a.Eligible == b.Eligible &&
		a.InterfaceUp == b.InterfaceUp && sameDecision(&a.Decision, &b.Decision) &&
		maps.Equal(a.Healthy, b.Healthy) && maps.Equal(a.Drain, b.Drain) &&
		a.HeartbeatRunning == b.HeartbeatRunning && a.HeartbeatError == b.HeartbeatError &&
		a.HeartbeatRealtime == b.HeartbeatRealtime && a.HeartbeatFailedStarts == b.HeartbeatFailedStarts &&
		a.LastReload.Equal(b.LastReload) && a.LastReloadError == b.LastReloadError &&
		len(a.Preflight) == len(b.Preflight) && (len(a.Preflight) == 0 || &a.Preflight[0] == &b.Preflight[0]) &&
		(len(a.Faults) == 0 && len(b.Faults) == 0 || reflect.DeepEqual(a.Faults, b.Faults)) &&
		slices.Equal(a.Drained, b.Drained) && a.DrainGen == b.DrainGen && a.HandoffTo == b.HandoffTo
}

// sameDecision reports whether two decisions say the same.
func sameDecision(a, b *cluster.Decision) bool {
	return a.Hold == b.Hold && a.Owner == b.Owner && a.Epoch == b.Epoch && a.Elected == b.Elected &&
		a.Reason == b.Reason && a.Quorum == b.Quorum && a.Digest == b.Digest && a.Panic == b.Panic &&
		slices.Equal(a.Mismatch, b.Mismatch) && slices.Equal(a.Claims, b.Claims)
}

// Events returns the event log, oldest first.
func (d *Daemon) Events() []Event { return d.events.Events() }
