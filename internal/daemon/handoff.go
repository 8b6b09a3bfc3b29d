package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/dataplane"
)

// The graceful stop: the VIP handed to a successor, make before break,
// then the cluster left.

// handoff hands the VIP over on a graceful stop, then leaves the cluster.
func (d *Daemon) handoff(s *state) {
	d.record(EventHandoff, s.cfg.Node.Name, fmt.Sprintf("graceful stop: holding the VIP %v, handing it over (at most %s)", s.holding, d.opts.HandoffTimeout))
	s.leaving = true
	// A stop during the startup wait: this process claimed nothing; an
	// address it found (an earlier process's) goes by the election now.
	s.waiting = false
	deadline := time.Now().Add(d.opts.HandoffTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	leaseTick := time.NewTicker(dataplane.DefaultLeaseRenew)
	for s.holding && time.Now().Before(deadline) {
		d.decide(s) // ineligible now: Elect keeps us until the successor's claim is seen
		if !s.holding {
			break
		}
		select {
		case <-tick.C:
		case <-leaseTick.C:
			d.renewLease(s)
		case ev := <-s.eventsCh:
			d.onClusterEvent(ev)
		}
	}
	tick.Stop()
	leaseTick.Stop()
	if s.holding {
		d.log.Warn("no successor claimed the VIP in time; releasing it anyway", "timeout", d.opts.HandoffTimeout)
		d.release(s, "graceful stop: no successor in time")
	}
	d.publish(s, cluster.Decision{Epoch: s.last.Epoch})
	lctx, cancel := context.WithTimeout(s.run, time.Second)
	defer cancel()
	if err := s.cl.Leave(lctx); err != nil {
		d.log.Warn("leaving the cluster", "err", err)
	}
	d.log.Info("stopped")
}
