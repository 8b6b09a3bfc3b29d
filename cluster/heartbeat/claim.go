package heartbeat

import (
	"fmt"
	"net/netip"
	"time"
)

// The claim where the verdict is made. The daemon hands its beat loop,
// whenever its election changes, a succession plan (SetPlan): the owner,
// whether this node is the one that claims when the owner's beats stop,
// the epoch of that claim and the majority rule. When the helper's own
// tracker sees the owner's beats stop and this node is the successor, the
// helper claims by itself, in the process that detects: it renews the
// owner lease (a pre-built nft netlink batch), adds the VIP address, sends
// one gratuitous ARP / unsolicited NA, beats as the owner with the plan's
// epoch, and tells the daemon (a HelperClaim), which adopts the claim or
// undoes it (Beater.AckClaim) on its next decision. While this node holds
// the VIP and ClaimConfig.RenewLease is on, the helper also renews the
// lease on every beat, so the lease can be short: an owner whose beats
// stop falls silent for the VIP about one detection time after its last
// beat.

// ClaimVIP is one VIP address and the interface it goes on.
type ClaimVIP struct {
	Interface string     `json:"interface"`
	Addr      netip.Addr `json:"addr"`
}

// ClaimConfig switches the helper's claim and lease on (Config.Claim).
type ClaimConfig struct {
	// VIPs are where the VIP addresses go (at most one per family, as the
	// owner lease takes).
	VIPs []ClaimVIP `json:"vips"`
	// LeaseTTL is the owner lease's length on the claim's renewal and, with
	// RenewLease, on each renewal by the helper (0: HelperLeaseTTL for the
	// beat interval and misses).
	LeaseTTL time.Duration `json:"lease_ttl"`
	// RenewLease makes the helper renew the lease on every beat while
	// this node holds the VIP (the daemon then does not). Off by default:
	// a renewal waits for the network namespace's nftables commit lock,
	// which the daemon's own ruleset commits hold for milliseconds, and
	// the beats wait with it (docs/daemon.md).
	RenewLease bool `json:"renew_lease,omitempty"`
	// NoClaim keeps the helper from claiming.
	NoClaim bool `json:"no_claim,omitempty"`
}

// HelperLeaseTTL is the lease length the helper renews with: twice the
// detection time (interval × misses), at least 10 ms. An owner whose
// helper stops beating (paused, crashed, starved) stops answering ARP for
// the VIP at most this long after its last beat, about one detection time
// after its successor claimed.
func HelperLeaseTTL(interval time.Duration, misses int) time.Duration {
	return max(2*DetectionTime(interval, misses), 10*time.Millisecond)
}

// ClaimPlan is the daemon's succession plan for its helper
// (cluster.Successor carried across the control socket).
type ClaimPlan struct {
	// Owner is the VIP owner now ("" none).
	Owner string
	// Successor: this node claims when Owner's beats stop.
	Successor bool
	// Epoch is the epoch to claim with.
	Epoch uint64
	// Peers, Need and Required are the majority rule.
	Peers, Need int
	Required    bool
}

// HelperClaim is the helper's report of a claim it made: the timeline,
// read on CLOCK_MONOTONIC (Mono), and what failed.
type HelperClaim struct {
	// Owner is the owner whose beats stopped; Epoch the claim's epoch.
	Owner string
	Epoch uint64
	// LastBeat is when the owner's last beat arrived; Verdict when the
	// helper decided to claim; Lease, Address and Announced when the lease
	// renewal, the address and the announcement were done.
	LastBeat, Verdict, Lease, Address, Announced Mono
	// LeaseErr, AddressErr, AnnounceErr: that step failed (the helper's
	// standard error says why).
	LeaseErr, AddressErr, AnnounceErr bool
}

// OK reports whether every step of the claim succeeded.
func (c HelperClaim) OK() bool { return !c.LeaseErr && !c.AddressErr && !c.AnnounceErr }

// Trace is the claim's timeline relative to the owner's last beat, for
// logs and benches.
func (c HelperClaim) Trace() string {
	rel := func(m Mono) string {
		if m == 0 || c.LastBeat == 0 {
			return "-"
		}
		return m.Sub(c.LastBeat).Round(10 * time.Microsecond).String()
	}
	return fmt.Sprintf("last beat of %s +0, verdict +%s, lease +%s, address +%s, announced +%s",
		c.Owner, rel(c.Verdict), rel(c.Lease), rel(c.Address), rel(c.Announced))
}

// claimPeer is what the helper's tracker says about one peer, for
// claimVerdict.
type claimPeer struct {
	alive, seen bool
	flags       Flags
	owner       NodeID
	epoch       uint64
}

// claimInput is everything claimVerdict decides on.
type claimInput struct {
	plan     planMsg
	havePlan bool
	// beating: the daemon's token is fresh.
	beating bool
	// holding: the daemon's token says this node holds the VIP; claimed:
	// the helper claimed and the daemon has not answered yet.
	holding, claimed bool
	// lastEpoch is the epoch of the helper's last claim (0 none).
	lastEpoch uint64
	// owner is the plan's owner as the tracker sees it (ownerKnown: a
	// configured peer); others every other peer.
	owner      claimPeer
	ownerKnown bool
	others     []claimPeer
}

// whyPeerHearsOwner is claimVerdict's answer while a live peer still
// hears the owner: its own verdict is usually on its way (schedule.go).
const whyPeerHearsOwner = "a peer still hears the owner"

// claimVerdict decides whether the helper may claim the VIP now, and why
// not. It is pure: the rules of cluster.Elect that the helper can check
// from its own tracker, on top of the daemon's plan.
func claimVerdict(in claimInput) (bool, string) {
	p := in.plan
	switch {
	case !in.havePlan || !p.successor || p.owner == 0:
		return false, "not the successor"
	case !in.beating:
		return false, "the daemon's token is not fresh"
	case in.holding || in.claimed:
		return false, "already holds the VIP"
	case p.epoch <= in.lastEpoch:
		return false, "this epoch was claimed before"
	case !in.ownerKnown:
		return false, "the owner is not a configured peer"
	case in.owner.alive:
		return false, "the owner is alive"
	case !in.owner.seen:
		return false, "the owner's beats were never heard"
	case in.owner.flags&(FlagLeaving|FlagRestarting) != 0:
		return false, "the owner is leaving or restarting its beat loop"
	}
	live := 1 // this node
	for _, o := range in.others {
		if !o.alive {
			continue
		}
		switch {
		case o.flags&FlagHolding != 0:
			return false, "another peer holds the VIP"
		case o.epoch > p.epoch || (o.epoch == p.epoch && o.owner != 0):
			return false, "a peer knows a claim as strong as the plan's"
		case o.owner == p.owner && o.flags&FlagOwnerGone == 0:
			return false, whyPeerHearsOwner
		case p.required && o.flags&FlagMajority == 0:
			return false, "a peer hears no majority"
		}
		if o.flags&FlagLeaving == 0 {
			live++
		}
	}
	if p.required && live < p.need {
		return false, fmt.Sprintf("no majority: %d live of %d, %d needed", live, p.peers, p.need)
	}
	return true, "the owner's beats stopped"
}
