package daemon

// Ownership of the VIP: the election's decision carried out (the VIP
// address and the owner lease) and published (metadata and beats).

import (
	"errors"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/dataplane"
)

// decide runs the election and carries its decision out.
func (d *Daemon) decide(s *state) {
	defer d.updateStatus(s)
	eligible := !s.leaving && s.ifaceUp && countHealthy(s.programmed) > 0 && s.reconciled
	if eligible != s.eligible {
		s.eligible = eligible
		d.log.Info("eligibility", "eligible", eligible, "healthy_backends", countHealthy(s.programmed), "interface_up", s.ifaceUp)
	}
	d.publish(s, s.last) // eligibility into the metadata before deciding
	v, gv := d.view(s)
	if d.takeHelperClaims(s, v) {
		v, gv = d.view(s)
	}
	d.syncDrain(s, v)
	d.checkHandoff(s)
	dec := cluster.Elect(v, s.cfg.Node.Name)
	if !dec.Hold && dec.Owner != s.last.Owner && !s.waiting {
		// Our own published belief (the old owner) is part of the view;
		// once it is corrected, decide again rather than a tick later.
		s.last.Owner, s.last.Epoch = dec.Owner, dec.Epoch
		d.publish(s, s.last)
		v, gv = d.view(s)
		dec = cluster.Elect(v, s.cfg.Node.Name)
	}
	if s.waiting {
		if !cluster.StartupWaitOver(time.Since(s.started), d.opts.StartupWait, v, gv) {
			// Learn the owner before claiming: publish only what we hear,
			// and no epoch of a claim we do not make.
			dec = cluster.StartupDecision(dec, v, s.cfg.Node.Name)
			s.last = dec
			d.publish(s, dec)
			return
		}
		s.waiting = false
		d.log.Info("startup wait over", "after", time.Since(s.started).Round(time.Millisecond), "view_complete", cluster.ViewComplete(v, gv))
		s.last = cluster.Decision{Reason: "startup wait"} // log the first real decision
	}
	// Logged whenever what it says changes, the reason included: losing
	// the majority may change nothing else (a follower that already had
	// no owner to follow) and must still show.
	if dec.Owner != s.last.Owner || dec.Reason != s.last.Reason || dec.Hold != s.last.Hold || dec.Elected != s.last.Elected || dec.Epoch != s.last.Epoch {
		d.log.Info("decision", "hold", dec.Hold, "owner", dec.Owner, "epoch", dec.Epoch, "elected", dec.Elected,
			"reason", dec.Reason, "quorum", dec.Quorum.String(), "mismatch", dec.Mismatch)
	}
	s.last = dec
	d.apply(s, dec)
	d.announceAfterOverlap(s, s.othersHold)
	d.publish(s, dec)
	d.planClaim(s, v, dec)
}

// publish puts the decision's owner belief into the metadata and the beats.
func (d *Daemon) publish(s *state, dec cluster.Decision) {
	handoffTo := ""
	switch {
	case s.holding && s.leaving && dec.Elected != s.cfg.Node.Name:
		// A graceful stop: name the successor, so that every peer elects
		// that one and no other counts this node toward its majority.
		handoffTo = dec.Elected
	case s.holding:
		handoffTo = s.handoffTo
	}
	err := s.cl.SetLocal(cluster.Local{
		Priority: s.cfg.Node.Priority, Eligible: s.eligible, Preempt: s.cfg.Node.Preempt,
		Owner: dec.Owner, Epoch: dec.Epoch, Digest: s.digest(),
		HandoffTo: handoffTo, Drained: s.opDrain.key(), DrainGen: s.opDrain.Generation,
	})
	if err != nil && !errors.Is(err, cluster.ErrShutdown) {
		d.log.Warn("publishing metadata", "err", err)
	}
	if s.beater != nil {
		a := heartbeat.Advert{Owner: dec.Owner, Epoch: dec.Epoch}
		if s.holding && !s.waiting {
			a.Flags |= heartbeat.FlagHolding
		}
		if s.leaving {
			a.Flags |= heartbeat.FlagLeaving
		}
		if err := s.beater.Refresh(a); err != nil && s.beatErr == nil {
			s.beatErr = err
			d.log.Error("heartbeat stopped", "err", err, "loop_err", s.beater.Err())
		}
	}
}

// apply moves the VIP address and the lease as dec says.
func (d *Daemon) apply(s *state, dec cluster.Decision) {
	switch {
	case dec.Hold && !s.holding:
		d.acquire(s, dec.Reason)
	case dec.Hold && s.holding:
		switch {
		case !samePlaces(s.held, vipPlaces(s.cfg)): // changed by a reload
			d.release(s, "VIP configuration changed")
			d.acquire(s, dec.Reason)
		case s.adopted:
			// The address an earlier process left, kept through the
			// startup wait without answering for it: the election keeps
			// it here, so announce it. Its neighbours learnt the MAC of
			// the peer that held the VIP meanwhile and keep it while that
			// peer forwards their traffic (TCP confirms the entry).
			d.acquire(s, "kept the address an earlier process left: "+dec.Reason)
		}
	case !dec.Hold && s.holding:
		d.release(s, dec.Reason)
	}
}

// samePlaces compares where the VIPs live (address and interface; a port
// change alone does not move the VIP).
func samePlaces(a, b []dataplane.ServiceVIP) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Addr != b[i].Addr || a[i].Interface != b[i].Interface {
			return false
		}
	}
	return true
}

func (d *Daemon) acquire(s *state, reason string) {
	defer d.observeClaim(time.Now())
	// Lease first: the announcements and ARP replies need it.
	if err := s.lease.Renew(s.run, d.leaseTTL(s)); err != nil {
		d.log.Error("renewing the owner lease", "err", err)
	}
	s.sync.SetHolding(true)
	places := vipPlaces(s.cfg)
	for _, p := range places {
		if err := s.vip.Add(s.run, p.Interface, p.Addr); err != nil {
			d.log.Error("adding the VIP", "vip", p.Addr, "interface", p.Interface, "err", err)
			continue
		}
		d.record(EventVIPAcquired, p.Addr.String(), reason)
	}
	s.held = places
	s.holding = true
	s.adopted = false
}

func (d *Daemon) release(s *state, reason string) {
	d.beforeRelease(s)
	for _, p := range s.held {
		if err := s.vip.Remove(s.run, p.Interface, p.Addr); err != nil {
			d.log.Error("removing the VIP", "vip", p.Addr, "interface", p.Interface, "err", err)
			continue
		}
		d.record(EventVIPReleased, p.Addr.String(), reason)
	}
	if err := s.lease.Drop(s.run); err != nil {
		d.log.Warn("dropping the owner lease", "err", err)
	}
	s.held = nil
	s.holding = false
	s.adopted = false
	s.sync.SetHolding(false)
}

// renewLease keeps the kernel-side lease alive while holding. Without a
// majority (or beats) the decision releases the VIP, so the lease follows.
//
// A lease that ran out before its renewal (this process was paused, as a
// VM can be, or starved for longer than the lease, which is longer than
// the heartbeat's detection time) is not reopened on the spot: while the
// host was silent a successor has most likely claimed the VIP, and
// reopening would make this host answer ARP / NDP for it beside the
// successor. Nor right after the first decision: beats that queued in the
// helper's socket during the pause read as fresh while it drains them,
// and the oldest ones still show this node as the owner. So the election
// runs on every renewal while the gate stays shut, and only an owner still
// holding lapseGrace after the lapse was noticed opens a new lease.
//
// During the startup wait an address an earlier process left (adopt) is
// held but not answered for: the gate stays shut until the election says
// this node owns the VIP, or the host would answer ARP beside the owner
// the peers elected while this daemon was gone.
func (d *Daemon) renewLease(s *state) {
	if !s.holding || s.waiting || d.helperRenews(s) || s.beatLease > 0 {
		return
	}
	err := s.lease.Renew(s.run, dataplane.DefaultLeaseTTL)
	var lapse *dataplane.LapsedError
	if errors.As(err, &lapse) {
		if lapse.First {
			d.log.Warn("the owner lease ran out before this process renewed it (paused or starved); keeping this host silent for the VIP while deciding again",
				"err", err, "grace", lapseGrace)
		}
		d.decide(s)
		if !s.holding || time.Since(lapse.Noticed) < lapseGrace {
			return
		}
		d.log.Info("still the VIP owner after the lease lapsed; opening a new lease", "after", time.Since(lapse.Noticed).Round(time.Millisecond))
		if err = s.lease.Drop(s.run); err == nil {
			err = s.lease.Renew(s.run, dataplane.DefaultLeaseTTL)
		}
	}
	if err != nil {
		d.log.Warn("renewing the owner lease", "err", err)
	}
}

// lapseGrace is how long an owner whose lease lapsed keeps its host silent
// for the VIP before it opens a new lease, if it still holds the VIP by
// then: long enough for its heartbeat helper's first report after the
// pause (the helper reads every beat that queued meanwhile at its first
// wake-up and judges each by when the kernel received it, so that report
// already has the peers' newest claims; the daemon counts a report older
// than three report intervals as stale), short next to the second a
// client waits before asking again for an unanswered ARP request.
const lapseGrace = 100 * time.Millisecond
