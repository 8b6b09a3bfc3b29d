package heartbeat

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/epconsole/epconsole/dataplane"
	"golang.org/x/sys/unix"
)

// claimState is the beat loop's part of the claim (cfg nil: off).
type claimState struct {
	cfg *ClaimConfig
	// ttl is the lease length of each renewal; renewEvery how often the
	// lease is renewed while held: every tick (a renewal costs about 10 µs,
	// and a lease renewed on every beat lapses only if a tick comes more
	// than ttl less an interval late).
	ttl, renewEvery time.Duration
	renewer         *dataplane.LeaseRenewer
	vip             *dataplane.VIP
	log             *slog.Logger

	plan     planMsg
	havePlan bool
	// claimed: the helper claimed with epoch and the daemon has not
	// acknowledged yet; epoch is the last claim's epoch (0 none).
	claimed bool
	epoch   uint64
	// notice is the claim record to send; pending: not sent yet.
	notice  [claimSize]byte
	pending bool
	// lastRenew is when the lease was last renewed (0: not held by this
	// loop); lapsedUntil holds a lapsed lease shut until then.
	lastRenew, lapsedUntil Mono
	others                 []claimPeer
	// ann are the announcers opened at start, by VIP (nil: opened at
	// the claim); adders the pre-built address additions (nil: the claim
	// uses VIP.AddAddress).
	ann    []*dataplane.Announcer
	adders []*dataplane.AddrAdder
	// withheld is why the helper last did not claim with the owner gone.
	withheld string
	// hadMajority: the tracker heard a majority since the loop started.
	hadMajority bool
	// renewals and renewErrors count the lease renewals of renewLease.
	renewals, renewErrors uint64
}

// lapseHold is how long, in lease lengths, a lease that ran out before
// the loop renewed it (the helper was paused or starved longer than the
// lease) stays shut before the loop opens a new one, if this node still
// holds the VIP then and no peer claims it: time for the beats that queued
// meanwhile to be read, a successor's claim among them.
const lapseHold = 2

// initClaim prepares the claim: the lease renewal's socket and batch, the
// VIP's netlink access. The loop runs in the daemon's network namespace.
func (l *loop) initClaim() error {
	cc := l.cfg.Claim
	if cc == nil || len(cc.VIPs) == 0 {
		return nil
	}
	c := &l.claim
	c.cfg = cc
	c.ttl = cc.LeaseTTL
	if c.ttl <= 0 {
		c.ttl = HelperLeaseTTL(l.cfg.Interval, l.cfg.Misses)
	}
	c.renewEvery = l.cfg.Interval
	addrs := make([]netip.Addr, 0, len(cc.VIPs))
	for _, v := range cc.VIPs {
		addrs = append(addrs, v.Addr)
	}
	var err error
	if c.renewer, err = dataplane.NewLeaseRenewer(addrs, c.ttl); err != nil {
		return fmt.Errorf("heartbeat: the claim's lease renewal: %w", err)
	}
	c.log = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", "heartbeat-helper", "node", l.cfg.Self)
	if c.vip, err = dataplane.NewVIP(dataplane.WithLogger(c.log)); err != nil {
		c.renewer.Close()
		return fmt.Errorf("heartbeat: the claim's VIP access: %w", err)
	}
	c.others = make([]claimPeer, 0, len(l.cfg.Peers))
	// The IPv4 announcements' sockets are opened now (CAP_NET_RAW is
	// there now as later): the claim then only sends.
	c.ann = make([]*dataplane.Announcer, len(cc.VIPs))
	for i, v := range cc.VIPs {
		if v.Addr.Unmap().Is4() {
			c.ann[i], _ = c.vip.OpenAnnouncer(v.Interface, v.Addr)
		}
	}
	// So is the address's netlink socket and message: the claim then
	// sends one RTM_NEWADDR (dataplane.AddrAdder).
	c.adders = make([]*dataplane.AddrAdder, len(cc.VIPs))
	for i, v := range cc.VIPs {
		var err error
		if c.adders[i], err = c.vip.OpenAddrAdder(v.Interface, v.Addr); err != nil {
			c.log.Warn("the claim adds the VIP through a new netlink handle", "vip", v.Addr, "interface", v.Interface, "err", err)
		}
	}
	return nil
}

func (l *loop) closeClaim() {
	if c := &l.claim; c.renewer != nil {
		for _, a := range c.ann {
			a.Close()
		}
		for _, a := range c.adders {
			a.Close()
		}
		c.renewer.Close()
		c.vip.Close()
	}
}

// readPlan takes the daemon's succession plan and its acknowledgement of
// the helper's claims.
func (l *loop) readPlan(b []byte) {
	var p planMsg
	if !p.decode(b) {
		return
	}
	c := &l.claim
	if c.claimed && p.ack >= c.epoch {
		c.claimed = false // the daemon adopted the claim or undid it
	}
	if c.log != nil && (p.successor != c.plan.successor || p.owner != c.plan.owner || p.epoch != c.plan.epoch || !c.havePlan) {
		c.log.Info("succession plan", "successor", p.successor, "owner", p.owner.String(), "epoch", p.epoch,
			"need", p.need, "of", p.peers, "ack", p.ack)
	}
	c.plan, c.havePlan = p, true
}

// claimTick runs at every tick, before the beats go out: it claims the
// VIP when claimVerdict allows, and renews the lease while this node
// holds the VIP and beats.
func (l *loop) claimTick(now Mono, beating, majority bool) {
	c := &l.claim
	if c.cfg == nil {
		return
	}
	l.maybeClaim(now, beating)
	if c.pending {
		l.sendClaim()
	}
	if c.cfg.RenewLease {
		l.renewLease(now, beating && (c.claimed || l.token.flags&FlagHolding != 0), majority)
	}
}

// claimInput gathers claimVerdict's input from the tracker.
func (l *loop) claimInput(now Mono, beating bool) (claimInput, int) {
	c := &l.claim
	in := claimInput{plan: c.plan, havePlan: c.havePlan, beating: beating,
		holding: l.token.flags&FlagHolding != 0, claimed: c.claimed, lastEpoch: c.epoch}
	oi := -1
	if c.havePlan && c.plan.owner != 0 {
		oi = l.tr.indexOf(c.plan.owner)
	}
	c.others = c.others[:0]
	for i := range l.tr.peers {
		p := &l.tr.peers[i]
		cp := claimPeer{alive: l.tr.alive(i, now), seen: p.Seen, flags: p.Flags, owner: p.Owner, epoch: p.Epoch}
		if i == oi {
			in.owner, in.ownerKnown = cp, true
			continue
		}
		c.others = append(c.others, cp)
	}
	in.others = c.others
	return in, oi
}

// maybeClaim claims the VIP if claimVerdict allows: lease, address,
// announcement, then the record for the daemon.
func (l *loop) maybeClaim(now Mono, beating bool) {
	c := &l.claim
	if c.cfg.NoClaim || !c.havePlan || !c.plan.successor {
		return
	}
	in, oi := l.claimInput(now, beating)
	ok, why := claimVerdict(in)
	if !ok {
		if why == whyPeerHearsOwner && in.ownerKnown && !in.owner.alive {
			l.awaitOwnerNews(now, oi)
		}
		// Why the successor does not claim although the owner is gone
		// here, logged when it changes (not at beat rate).
		if in.ownerKnown && !in.owner.alive && !c.claimed && why != c.withheld {
			c.withheld = why
			c.log.Info("the owner is gone here; the helper does not claim", "why", why, "epoch", c.plan.epoch)
		}
		return
	}
	c.withheld = ""
	m := claimMsg{owner: c.plan.owner, epoch: c.plan.epoch, lastBeat: l.tr.peers[oi].LastBeat, verdict: now}
	c.claimed, c.epoch = true, c.plan.epoch
	// The lease first: the host answers ARP / NDP for the VIP only while
	// it runs, and the unsolicited NA passes the lease's gate.
	c.lastRenew, c.lapsedUntil = 0, 0
	if err := c.renewer.Renew(); err != nil {
		m.leaseErr = true
		c.log.Error("claim: renewing the owner lease", "err", err)
	} else {
		c.lastRenew = now
	}
	m.lease = l.now()
	ctx := context.Background()
	for i, v := range c.cfg.VIPs {
		if c.adders[i] != nil && c.adders[i].Add() == nil {
			continue
		}
		if err := c.vip.AddAddress(ctx, v.Interface, v.Addr); err != nil {
			m.addressErr = true
			c.log.Error("claim: adding the VIP", "vip", v.Addr, "interface", v.Interface, "err", err)
		}
	}
	m.address = l.now()
	for i, v := range c.cfg.VIPs {
		if c.ann[i] != nil && c.ann[i].Send() == nil {
			continue
		}
		if err := c.vip.Announce(ctx, v.Interface, v.Addr); err != nil {
			m.announceErr = true
			c.log.Error("claim: announcing the VIP", "vip", v.Addr, "interface", v.Interface, "err", err)
		}
	}
	m.announced = l.now()
	m.encode(&c.notice)
	c.pending = true
}

// sendClaim sends the claim record to the daemon (again at the next tick
// if the socket is full).
func (l *loop) sendClaim() {
	c := &l.claim
	if err := unix.Sendto(l.ctl, c.notice[:], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, nil); err == nil {
		c.pending = false
	}
}

// renewLease keeps the lease running while holding, every renewEvery. A
// lease that ran out before its renewal is not reopened on the spot: for
// lapseHold lease lengths the host stays silent for the VIP, and after
// that only while no live peer claims the VIP (the daemon releases the
// VIP meanwhile if its election says so). With three or more peers, a
// holder that loses the majority it had drops the lease at once: a
// successor on the other side claims one detection time after the
// partition, the daemon's release comes a decision later.
func (l *loop) renewLease(now Mono, holding, majority bool) {
	c := &l.claim
	if majority {
		c.hadMajority = true
	}
	if !holding {
		c.lastRenew, c.lapsedUntil = 0, 0
		return
	}
	if c.lastRenew != 0 && now.Sub(c.lastRenew) > c.ttl {
		c.lastRenew = 0
		c.lapsedUntil = now.Add(lapseHold * c.ttl)
		c.log.Warn("the owner lease ran out before the helper renewed it (paused or starved); the host stays silent for the VIP for a while",
			"ttl", c.ttl, "hold", lapseHold*c.ttl)
		return
	}
	if !majority && c.hadMajority && len(l.cfg.Peers)+1 >= 3 {
		if c.lastRenew != 0 {
			c.lastRenew = 0
			c.lapsedUntil = now.Add(lapseHold * c.ttl)
			if err := c.renewer.Drop(); err != nil {
				c.log.Error("dropping the owner lease on the loss of the majority", "err", err)
			}
		}
		return
	}
	if c.lapsedUntil != 0 {
		if now < c.lapsedUntil || l.otherHolder(now) {
			return
		}
		c.lapsedUntil = 0
	}
	if c.lastRenew != 0 && now.Sub(c.lastRenew) < c.renewEvery/2 { // ticks come late by a little
		return
	}
	if err := c.renewer.Renew(); err != nil {
		c.renewErrors++
		if c.renewErrors&(c.renewErrors-1) == 0 { // 1, 2, 4, ...: not at beat rate
			c.log.Error("renewing the owner lease", "err", err, "errors", c.renewErrors)
		}
		return
	}
	c.renewals++
	c.lastRenew = now
}

// otherHolder reports whether a live peer says it holds the VIP.
func (l *loop) otherHolder(now Mono) bool {
	return l.liveHolder(now, 0)
}

// liveHolder reports whether a live peer says it holds the VIP with an
// epoch of at least minEpoch.
func (l *loop) liveHolder(now Mono, minEpoch uint64) bool {
	for i := range l.tr.peers {
		p := &l.tr.peers[i]
		if p.Flags&FlagHolding != 0 && p.Epoch >= minEpoch && l.tr.alive(i, now) {
			return true
		}
	}
	return false
}

// leaseHeld reports whether the lease this loop renews runs now.
func (l *loop) leaseHeld(now Mono) bool {
	c := &l.claim
	return c.cfg != nil && c.cfg.RenewLease && c.lastRenew != 0 && now.Sub(c.lastRenew) <= c.ttl
}

// claimAdvert sets what the beat says about the claim: the helper's own
// claim until the daemon answers it, and FlagOwnerGone when the owner the
// beat names is not alive here.
func (l *loop) claimAdvert(now Mono) {
	c := &l.claim
	if c.claimed {
		l.beat.Owner, l.beat.Epoch = l.beat.Sender, c.epoch
		l.beat.Flags |= FlagHolding
		return
	}
	if o := l.beat.Owner; o != 0 && o != l.beat.Sender {
		if i := l.tr.indexOf(o); i >= 0 && !l.tr.alive(i, now) {
			l.beat.Flags |= FlagOwnerGone
		}
	}
}
