package cluster

import "time"

// The startup wait: Elect cannot tell whether its view is complete, so a
// node that has just started listens before it claims the VIP. These
// rules are pure, next to Elect; the daemon applies them.

// ViewComplete reports whether every configured peer is heard (fresh in
// live, with metadata in gossip) and past its own start: its gossiped
// metadata says eligible, or claims the VIP. The view then holds every
// claim there is, and peers starting together agree on the election
// instead of each claiming while the others still settle. live is the
// view with the heartbeat's liveness laid over it, gossip the view under
// it: the gossiped metadata is read, not the beats' owner belief laid
// over it. A claim travels in beats within milliseconds, its eligibility
// with gossip only later, and a claim whose eligibility is not yet
// visible looks like an ineligible owner to be replaced.
func ViewComplete(live, gossip View) bool {
	for _, name := range live.Peers {
		m, ok := live.Member(name)
		g, gok := gossip.Member(name)
		if !ok || !gok || !m.Fresh || g.Meta.Name == "" || !(g.Meta.Eligible || g.Meta.Claims()) {
			return false
		}
	}
	return true
}

// HighestOtherEpoch is the highest epoch another member than v.Self
// publishes (0 if none).
func HighestOtherEpoch(v View) uint64 {
	var e uint64
	for _, m := range v.Members {
		if m.Name != v.Self && m.Meta.Epoch > e {
			e = m.Meta.Epoch
		}
	}
	return e
}

// StartupWaitOver reports whether a node that started elapsed ago and
// listens for at most wait may end its startup wait: the wait is over,
// or the view is complete (ViewComplete).
func StartupWaitOver(elapsed, wait time.Duration, live, gossip View) bool {
	return elapsed >= wait || ViewComplete(live, gossip)
}

// StartupDecision is what a node still in its startup wait publishes
// instead of dec, Elect's decision on live: it holds nothing, and it
// learns the owner before claiming. It publishes only what it hears: an
// owner it hears claim keeps dec's Owner and Epoch; a claim of its own
// (dec.Hold, or itself as owner) becomes no owner with the highest epoch
// another member publishes, so that it publishes no epoch of a claim it
// does not make.
func StartupDecision(dec Decision, live View, self string) Decision {
	if dec.Hold || dec.Owner == self {
		dec.Owner, dec.Epoch = "", HighestOtherEpoch(live)
	}
	dec.Hold = false
	return dec
}
