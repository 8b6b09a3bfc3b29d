package cluster

import (
	"fmt"
	"slices"
)

// Succession is what the heartbeat helper may do alone when the owner's
// beats stop: Successor says whether this node is the member the
// election would pick then, with every safety rule of Elect applied to
// the view as it is now with the owner gone, and Epoch is the epoch of
// that claim. The helper claims only if its own tracker still agrees when
// it sees the owner go: the owner gone, a majority of Need of Peers live
// (when Required), every live peer hearing a majority, and no live peer
// still hearing the owner or claiming the VIP (Elect's rules for a
// partition that forms and for an owner hidden from this node).
type Succession struct {
	// Owner is the owner whose loss the plan is for ("" none).
	Owner string
	// Successor: this node claims when Owner's beats stop.
	Successor bool
	// Epoch is the epoch of that claim.
	Epoch uint64
	// Peers, Need and Required are the majority rule (Quorum).
	Peers, Need int
	Required    bool
	// Reason says why this node is or is not the successor.
	Reason string
}

// Successor derives the succession plan of self from the view v and its
// current decision dec (Elect(v, self)). It is pure. It runs Elect on v
// with the owner no longer fresh and every live member's belief in that
// owner withdrawn (what those members' own beat loops say once they stop
// hearing it too: the helper checks that they do before it claims).
func Successor(v View, self string, dec Decision) Succession {
	s := Succession{Owner: dec.Owner, Peers: dec.Quorum.Peers, Need: dec.Quorum.Need, Required: dec.Quorum.Required}
	switch {
	case dec.Hold:
		s.Reason = "this node holds the VIP"
		return s
	case dec.Owner == "":
		s.Reason = "no owner: the daemon's election claims"
		return s
	case dec.Owner == self:
		s.Reason = "this node is the owner"
		return s
	case dec.Conflict():
		s.Reason = "more than one member claims the VIP"
		return s
	}
	om, ok := v.Member(dec.Owner)
	if !ok {
		s.Reason = fmt.Sprintf("owner %s is not in the view", dec.Owner)
		return s
	}
	if om.Meta.Leaving {
		s.Reason = fmt.Sprintf("%s is leaving: its handoff names the successor", om.Name)
		return s
	}
	w := WithoutOwner(v, dec.Owner)
	wd := Elect(w, self)
	if !wd.Hold {
		s.Reason = "without " + dec.Owner + ": " + wd.Reason
		return s
	}
	s.Successor, s.Epoch = true, wd.Epoch
	s.Peers, s.Need, s.Required = wd.Quorum.Peers, wd.Quorum.Need, wd.Quorum.Required
	s.Reason = "without " + dec.Owner + ": " + wd.Reason
	return s
}

// WithoutOwner is v with owner no longer fresh and every member's belief
// in owner withdrawn: the view once every live member's beat loop says it
// no longer hears owner.
func WithoutOwner(v View, owner string) View {
	w := v
	w.Members = slices.Clone(v.Members)
	for i := range w.Members {
		m := &w.Members[i]
		if m.Name == owner {
			m.Fresh, m.NoMajority = false, false
			continue
		}
		if m.Meta.Owner == owner {
			m.Meta.Owner = ""
		}
	}
	return w
}
