package daemon

import (
	"slices"
	"time"

	"github.com/epconsole/epconsole/probes"
)

// Faults: a component that did not take a change (the datapath's nftables
// update, a probe monitor's restart) is retried with backoff until it
// does, and reported meanwhile as a finding in the status.

// Backoff bounds of the retries.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// Fault codes (status findings).
const (
	FaultDatapath = "datapath-not-programmed"
	FaultProbes   = "probes-not-restarted"
)

// retry is a failed step waiting to be tried again.
type retry struct {
	pending  bool
	at       time.Time
	backoff  time.Duration
	failures int // since the last success
}

// failed notes a failure at now and schedules the next try.
func (r *retry) failed(now time.Time) {
	r.pending = true
	r.failures++
	r.backoff = min(max(2*r.backoff, retryMin), retryMax)
	r.at = now.Add(r.backoff)
}

// due reports whether a retry is pending and its time has come.
func (r *retry) due(now time.Time) bool { return r.pending && !now.Before(r.at) }

// setFault adds or replaces the finding with f's code.
func (d *Daemon) setFault(f probes.Finding) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status.Faults = slices.DeleteFunc(d.status.Faults, func(g probes.Finding) bool { return g.Code == f.Code })
	d.status.Faults = append(d.status.Faults, f)
}

// clearFault removes the finding with code.
func (d *Daemon) clearFault(code string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status.Faults = slices.DeleteFunc(d.status.Faults, func(g probes.Finding) bool { return g.Code == code })
}

// retryFaults tries again what is due (the decision loop's tick).
func (d *Daemon) retryFaults(s *state) {
	now := time.Now()
	if s.dpRetry.due(now) {
		d.log.Info("programming the datapath again", "failures", s.dpRetry.failures)
		d.reconcile(s, s.dpWantHealthy, s.dpWantDrain, true)
	}
	if s.monRetry.due(now) {
		d.log.Info("restarting the probes again", "failures", s.monRetry.failures)
		d.restartMonitor(s)
	}
}
