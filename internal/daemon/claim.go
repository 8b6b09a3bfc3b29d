package daemon

// The heartbeat helper's claim, the daemon's side: the succession plan
// handed to the helper on every decision that changes it, the helper's
// claims adopted or undone on the next decision, and the owner lease
// renewed by the helper (short) instead of the daemon (long).

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/dataplane"
)

// EventHelperClaimUndone: the heartbeat helper claimed the VIP and the
// daemon's fuller view disagreed, so it took the address off and dropped
// the lease.
const EventHelperClaimUndone EventKind = "helper-claim-undone"

// helperClaimer is what a beat loop with the claim offers (a
// *heartbeat.Beater; the unit tests' fakes may not).
type helperClaimer interface {
	SetPlan(p heartbeat.ClaimPlan, ack uint64) error
	Claims() []heartbeat.HelperClaim
	HelperLease() bool
}

// claimState is the decision loop's part of the helper's claim.
type claimState struct {
	// beater is the loop started with the claim, for places with lease
	// ttl; another loop (restarted without it) or other places (a reload
	// moved the VIP) switch the helper's part off until the loop restarts.
	beater beatLoop
	places []dataplane.ServiceVIP
	ttl    time.Duration
	// renews: the helper renews the lease (Options.HelperLease).
	renews bool
	// sent is the plan last sent to sentAt with ackSent (sentOK: sent);
	// acked is the highest claim epoch adopted or undone.
	sent    heartbeat.ClaimPlan
	sentAt  beatLoop
	sentOK  bool
	ackSent uint64
	acked   uint64
	// deferred are claims that wait for a report as new as them.
	deferred []heartbeat.HelperClaim
}

// claimReportWait bounds how long a helper's claim waits for the helper's
// report of the same moment (it follows the claim within a beat interval
// or so) before the daemon judges it on the view it has.
const claimReportWait = 100 * time.Millisecond

// claimGate lets the VIP's announcement repeats see the helper's lease
// (they run off the decision loop).
type claimGate struct{ c atomic.Pointer[helperClaimer] }

func (g *claimGate) held() bool {
	if c := g.c.Load(); c != nil {
		return (*c).HelperLease()
	}
	return false
}

// claimConfig is the helper's claim configuration for s's VIPs, nil when
// the claim is switched off.
func (d *Daemon) claimConfig(s *state, hc heartbeat.Config) *heartbeat.ClaimConfig {
	places := vipPlaces(s.cfg)
	if d.opts.NoHelperClaim || len(places) == 0 {
		return nil
	}
	cc := &heartbeat.ClaimConfig{LeaseTTL: dataplane.DefaultLeaseTTL}
	if s.beatLease > 0 {
		cc.LeaseTTL = s.beatLease // the claim opens it; the beats keep it
	}
	if d.opts.HelperLease {
		cc.RenewLease, cc.LeaseTTL = true, heartbeat.HelperLeaseTTL(hc.Interval, hc.Misses)
	}
	for _, p := range places {
		cc.VIPs = append(cc.VIPs, heartbeat.ClaimVIP{Interface: p.Interface, Addr: p.Addr})
	}
	return cc
}

// claimStarted records the beat loop started with cc.
func (d *Daemon) claimStarted(s *state, cc *heartbeat.ClaimConfig) {
	s.claim = claimState{acked: s.claim.acked}
	d.gate.c.Store(nil)
	if cc == nil || s.beater == nil {
		return
	}
	s.claim.beater, s.claim.places, s.claim.ttl, s.claim.renews = s.beater, vipPlaces(s.cfg), cc.LeaseTTL, cc.RenewLease
	if h, ok := claimerOf(s.beater); ok {
		d.gate.c.Store(&h)
	}
}

// helper returns the running beat loop's claim side, if the helper
// claims and renews the lease for the VIPs configured now.
func (d *Daemon) helper(s *state) (helperClaimer, bool) {
	if s.beater == nil || s.claim.beater != s.beater || !samePlaces(s.claim.places, vipPlaces(s.cfg)) {
		return nil, false
	}
	select {
	case <-s.beater.Done():
		return nil, false
	default:
	}
	return claimerOf(s.beater)
}

// claimerOf is b's claim side: b itself, or the loop inside the liveness
// token's keeper (keeper.go), which offers only the beat loop's methods.
func claimerOf(b beatLoop) (helperClaimer, bool) {
	if k, ok := b.(*keptBeat); ok {
		b = k.beatLoop
	}
	h, ok := b.(helperClaimer)
	return h, ok
}

// leaseTTL is the lease length the daemon opens a lease with: one
// detection time when the beats renew it, the helper's short one when the
// helper renews it, else DefaultLeaseTTL.
func (d *Daemon) leaseTTL(s *state) time.Duration {
	if s.beatLease > 0 {
		return s.beatLease
	}
	if d.helperRenews(s) {
		return s.claim.ttl
	}
	return dataplane.DefaultLeaseTTL
}

// helperRenews reports whether the helper renews the lease, so the
// daemon's own renewal stays off.
func (d *Daemon) helperRenews(s *state) bool {
	_, ok := d.helper(s)
	return ok && s.claim.renews
}

// takeHelperClaims adopts or undoes the claims the helper made since the
// last decision; it reports whether anything changed. v is the view
// before any of them.
func (d *Daemon) takeHelperClaims(s *state, v cluster.View) bool {
	h, ok := d.helper(s)
	if !ok {
		if s.beater != nil {
			if c, ok := claimerOf(s.beater); ok {
				for _, hc := range c.Claims() {
					d.undoClaim(s, c, hc, "the helper's claim is switched off for this VIP configuration")
				}
			}
		}
		return false
	}
	changed := false
	claims := append(s.claim.deferred, h.Claims()...)
	s.claim.deferred = nil
	if len(claims) == 0 {
		return false
	}
	// The view as of the helper's latest report (Claims read the pending
	// ones), not the one the decision started with.
	at := s.beater.View().At
	v, _ = d.view(s)
	for _, c := range claims {
		changed = true
		if c.Epoch <= s.claim.acked {
			continue
		}
		if at < c.Verdict && heartbeat.MonoNow().Sub(c.Verdict) < claimReportWait {
			// The helper's report of what it saw at the claim comes after
			// the claim itself: judge the claim on a view that has it.
			s.claim.deferred = append(s.claim.deferred, c)
			continue
		}
		if s.holding {
			// The daemon claimed too (or holds still): nothing to adopt.
			s.claim.acked = c.Epoch
			continue
		}
		if why := claimDisagrees(v, s.cfg.Node.Name, c, s.leaving, s.waiting); why != "" {
			d.undoClaim(s, h, c, why)
			continue
		}
		d.adoptClaim(s, c, v)
	}
	return changed
}

// claimDisagrees says why the daemon's view rejects a helper's claim, or
// "" when it agrees: the owner is not live in the daemon's view either,
// and the election with the owner gone (every belief in it withdrawn, as
// the helper checked the peers' beats) makes this node hold the VIP with
// the claim's epoch.
func claimDisagrees(v cluster.View, self string, c heartbeat.HelperClaim, leaving, waiting bool) string {
	switch {
	case leaving:
		return "this node is leaving"
	case waiting:
		return "this node is in its startup wait"
	}
	if m, ok := v.Member(c.Owner); ok && m.Fresh {
		return fmt.Sprintf("%s is live in the daemon's view", c.Owner)
	}
	dec := cluster.Elect(cluster.WithoutOwner(v, c.Owner), self)
	switch {
	case !dec.Hold:
		return "the election says: " + dec.Reason
	case dec.Epoch != c.Epoch:
		return fmt.Sprintf("the election claims with epoch %d, the helper claimed %d", dec.Epoch, c.Epoch)
	}
	return ""
}

// adoptClaim makes the helper's claim the daemon's: it holds the VIP with
// the claim's epoch, repeats the announcements, and publishes the claim.
func (d *Daemon) adoptClaim(s *state, c heartbeat.HelperClaim, v cluster.View) {
	self := s.cfg.Node.Name
	s.claim.acked = c.Epoch
	reason := "claimed by the heartbeat helper: " + c.Owner + "'s beats stopped"
	d.log.Info("the heartbeat helper claimed the VIP; adopted", "epoch", c.Epoch, "owner_was", c.Owner,
		"trace", c.Trace(), "ok", c.OK(), "adopted_after", heartbeat.MonoNow().Sub(c.Announced).Round(10*time.Microsecond).String())
	s.sync.SetHolding(true)
	places := vipPlaces(s.cfg)
	for _, p := range places {
		// The address is there (or is put there now, if the helper
		// failed); Add repeats the announcement.
		if err := s.vip.Add(s.run, p.Interface, p.Addr); err != nil {
			d.log.Error("adding the VIP", "vip", p.Addr, "interface", p.Interface, "err", err)
			continue
		}
		d.record(EventVIPAcquired, p.Addr.String(), reason)
	}
	if c.LeaseErr {
		if err := s.lease.Renew(s.run, s.claim.ttl); err != nil {
			d.log.Error("renewing the owner lease", "err", err)
		}
	}
	if c.Announced > c.Verdict {
		d.observeClaim(time.Now().Add(-c.Announced.Sub(c.Verdict)))
	}
	s.held = places
	s.holding = true
	dec := cluster.Elect(cluster.WithoutOwner(v, c.Owner), self)
	dec.Reason = reason
	s.last = dec
	d.publish(s, dec)
}

// undoClaim takes a helper's claim back: the helper hears first (it stops
// advertising the claim and renewing the lease), then the address goes
// and the lease is dropped.
func (d *Daemon) undoClaim(s *state, h helperClaimer, c heartbeat.HelperClaim, why string) {
	s.claim.acked = max(s.claim.acked, c.Epoch)
	d.log.Warn("the heartbeat helper claimed the VIP; the daemon's view disagrees; undoing it", "epoch", c.Epoch,
		"owner_was", c.Owner, "why", why, "trace", c.Trace())
	d.sendPlan(s, h, heartbeat.ClaimPlan{})
	if s.holding {
		return // the daemon holds the VIP itself
	}
	for _, p := range vipPlaces(s.cfg) {
		if err := s.vip.Remove(s.run, p.Interface, p.Addr); err != nil {
			d.log.Error("removing the VIP", "vip", p.Addr, "interface", p.Interface, "err", err)
		}
	}
	if err := s.lease.Drop(s.run); err != nil {
		d.log.Warn("dropping the owner lease", "err", err)
	}
	d.record(EventHelperClaimUndone, c.Owner, why)
}

// planClaim sends the helper the succession plan of decision dec on view v
// when it changed.
func (d *Daemon) planClaim(s *state, v cluster.View, dec cluster.Decision) {
	h, ok := d.helper(s)
	if !ok {
		if s.claim.beater != nil {
			d.log.Debug("no succession plan for the heartbeat helper", "same_loop", s.claim.beater == s.beater,
				"same_places", samePlaces(s.claim.places, vipPlaces(s.cfg)))
		}
		return
	}
	var p heartbeat.ClaimPlan
	if !s.leaving && !s.waiting && !s.holding {
		sp := cluster.Successor(v, s.cfg.Node.Name, dec)
		p = heartbeat.ClaimPlan{Owner: sp.Owner, Successor: sp.Successor, Epoch: sp.Epoch, Peers: sp.Peers, Need: sp.Need, Required: sp.Required}
		if !sp.Successor {
			p = heartbeat.ClaimPlan{Owner: sp.Owner}
		}
		if prev := s.claim.sent; !sp.Successor && dec.Owner == "" && s.claim.sentOK && prev.Successor {
			if m, ok := v.Member(prev.Owner); ok && !m.Fresh {
				// The owner just went (the daemon heard it from the
				// helper too): the plan for exactly this stays, for the
				// helper to claim on; its claim is checked on adoption.
				p = prev
			}
		}
	}
	d.sendPlan(s, h, p)
}

// sendPlan sends p with the claims acknowledged so far, unless the loop
// has it already.
func (d *Daemon) sendPlan(s *state, h helperClaimer, p heartbeat.ClaimPlan) {
	if s.claim.sentOK && s.claim.sentAt == s.beater && s.claim.sent == p && s.claim.acked == s.claim.ackSent {
		return
	}
	d.log.Debug("succession plan for the heartbeat helper", "owner", p.Owner, "successor", p.Successor, "epoch", p.Epoch, "ack", s.claim.acked)
	if err := h.SetPlan(p, s.claim.acked); err != nil {
		d.log.Warn("sending the succession plan to the heartbeat helper", "err", err)
		s.claim.sentOK = false
		return
	}
	s.claim.sent, s.claim.sentAt, s.claim.sentOK, s.claim.ackSent = p, s.beater, true, s.claim.acked
}

// beforeRelease tells the helper, before the address goes and the lease
// is dropped, that this node no longer holds the VIP: it stops renewing
// the lease and advertising any claim of its own.
func (d *Daemon) beforeRelease(s *state) {
	h, ok := d.helper(s)
	if !ok {
		return
	}
	a := heartbeat.Advert{Owner: s.last.Owner, Epoch: s.last.Epoch}
	if a.Owner == s.cfg.Node.Name {
		a.Owner = ""
	}
	if s.leaving {
		a.Flags |= heartbeat.FlagLeaving
	}
	if err := s.beater.Refresh(a); err != nil {
		d.log.Warn("telling the heartbeat helper to stop renewing the lease", "err", err)
	}
	d.sendPlan(s, h, heartbeat.ClaimPlan{})
}

var _ helperClaimer = (*heartbeat.Beater)(nil)
