package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/epconsole/epconsole/cluster"
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
	leaseTick := d.newLeaseTicker(s)
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
	d.removeGate(s)
	lctx, cancel := context.WithTimeout(s.run, time.Second)
	defer cancel()
	if err := s.cl.Leave(lctx); err != nil {
		d.log.Warn("leaving the cluster", "err", err)
	}
	d.log.Info("stopped")
}

// removeGate deletes the owner lease's tables (the ARP / NA gate for the
// VIP) once the VIP is off this host: a stopped daemon must not keep the
// host from answering for a VIP that something else puts on it (by hand,
// another VRRP daemon). Only a crash leaves the gate, as designed: then
// the lease runs out and the host stays silent for the VIP.
func (d *Daemon) removeGate(s *state) {
	for _, p := range vipPlaces(s.cfg) {
		if has, err := s.vip.Has(s.run, p.Interface, p.Addr); err != nil || has {
			d.log.Warn("the VIP is still on this host; keeping the owner lease's ARP/NA gate", "vip", p.Addr, "interface", p.Interface, "err", err)
			return
		}
	}
	if err := s.lease.Remove(s.run); err != nil {
		d.log.Warn("removing the owner lease's ARP/NA gate", "err", err, "fix", "epconsole uninstall")
	}
}
