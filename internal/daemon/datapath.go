package daemon

import (
	"errors"
	"fmt"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
)

// The datapath: the probes' healthy and drain sets (with the operator's
// drains) programmed into the dataplane, and gossiped to the peers.

// onProbes applies the monitor's snapshot: dataplane, gossip, eligibility.
func (d *Daemon) onProbes(s *state) {
	healthy, drain, views, settled := health(s.mon.Snapshot())
	// A backend without a result yet (a restarted monitor after a reload)
	// keeps what is programmed.
	for _, v := range views {
		if v.State == probes.StateUnknown.String() {
			healthy[v.Name], drain[v.Name] = s.programmed[v.Name], s.drained[v.Name]
		}
	}
	if err := s.cl.SetBackends(views); err != nil && !errors.Is(err, cluster.ErrShutdown) {
		d.log.Warn("publishing backend views", "err", err)
	}
	// The first program waits until every backend had its first probe
	// (or a bound passed): reconciling with an empty healthy set would
	// cut the flows an earlier process left forwarding.
	if !s.reconciled && !settled && time.Since(s.started) < 2*s.cfg.Health.Timeout+time.Second {
		return
	}
	for _, v := range views {
		was, now := s.programmed[v.Name], healthy[v.Name]
		switch {
		case s.reconciled && was == now:
		case now:
			d.record(EventBackendUp, v.Name, v.State+": "+v.Reason)
		case s.reconciled || v.State != probes.StateUnknown.String():
			how := "dead"
			if drain[v.Name] {
				how = "draining"
			}
			d.record(EventBackendDown, v.Name, v.State+" ("+how+"): "+v.Reason)
		}
	}
	d.reconcile(s, healthy, drain, false)
}

func (d *Daemon) reconcile(s *state, healthy, drain map[string]bool, force bool) {
	operator := drainMap(s.opDrain, s.cfg)
	drain = withDrained(drain, operator)
	if s.reconciled && !force && sameSet(healthy, s.programmed) && sameSet(drain, s.drained) {
		return
	}
	t0 := time.Now()
	res, err := s.dp.Reconcile(s.run, desired(s.cfg, healthy, drain, operator))
	took := time.Since(t0)
	d.counters.add(func(c *status.Counters) {
		c.Reconciles++
		c.ReconcileTime += took
		c.LastReconcile = took
		c.ReconcileLatency.Observe(took)
		if err != nil {
			c.ReconcileErrors++
		}
	})
	if err != nil {
		s.dpRetry.failed(time.Now())
		s.dpWantHealthy, s.dpWantDrain = healthy, drain
		d.log.Error("programming the datapath; retrying", "err", err, "failures", s.dpRetry.failures, "retry_in", s.dpRetry.backoff)
		d.setFault(probes.Finding{Check: probes.CheckCluster, Severity: probes.Critical, Code: FaultDatapath,
			Message: fmt.Sprintf("the forwarding rules (nftables) could not be updated: %d failures, retrying every %s at most", s.dpRetry.failures, retryMax),
			Detail:  err.Error(),
			Fixes:   []probes.Fix{{Text: "see the daemon's log (`journalctl -u epconsole`) for the nftables error; `nft list ruleset` shows what is programmed"}}})
		return
	}
	if s.dpRetry.failures > 0 {
		d.log.Info("datapath programmed after failures", "failures", s.dpRetry.failures)
		d.clearFault(FaultDatapath)
	}
	s.dpRetry = retry{}
	s.reconciled = true
	s.programmed, s.drained = healthy, drain
	for _, f := range res.Families {
		d.log.Info("datapath", "family", f.Family, "vip", f.VIP, "action", string(f.Action),
			"slots", f.SlotsPerBackend, "cut", f.Cut, "flows_deleted", f.FlowsDeleted, "committed", res.Committed)
	}
}

// observeClaim counts, in the claim-latency histogram, how long a VIP
// claim that started at t0 took (lease renewed, addresses added).
func (d *Daemon) observeClaim(t0 time.Time) {
	took := time.Since(t0)
	d.counters.add(func(c *status.Counters) { c.ClaimLatency.Observe(took) })
}
