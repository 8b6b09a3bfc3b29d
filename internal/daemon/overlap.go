package daemon

import (
	"github.com/epconsole/epconsole/cluster/heartbeat"
)

// A claim overlaps its predecessor: the new owner adds the VIP and
// announces it while the old one still holds it until it hears the claim
// (make before break), and a neighbour that asks for the VIP in that
// window hears both. One that takes the old owner's answer last keeps its
// MAC: the old owner goes on forwarding for the VIP after it let go (every
// node has the datapath rules) and TCP keeps confirming the entry, so the
// traffic silently runs through a node that no longer holds the VIP, and
// that node's failure would cut it off until the entries expire. So the
// holder announces the VIP once more when the last other live peer whose
// beats said it held the VIP stops saying so.

// othersHolding reports whether a live peer's beats say it holds the VIP.
func othersHolding(hv heartbeat.View) bool {
	if hv.Stale {
		return false
	}
	for _, p := range hv.Peers {
		if p.Alive && p.Flags&heartbeat.FlagHolding != 0 {
			return true
		}
	}
	return false
}

// announceAfterOverlap announces the VIP again when this node holds it
// and the others that held it beside it (others, from the beats) have let
// go since the last decision.
func (d *Daemon) announceAfterOverlap(s *state, others bool) {
	had := s.othersHeld
	s.othersHeld = others
	if !had || others || !s.holding || s.waiting || s.leaving {
		return
	}
	for _, p := range s.held {
		if err := s.vip.Add(s.run, p.Interface, p.Addr); err != nil {
			d.log.Warn("announcing the VIP again", "vip", p.Addr, "interface", p.Interface, "err", err)
			continue
		}
		d.log.Info("the VIP's previous holder let go of it; announced it again", "vip", p.Addr, "interface", p.Interface)
	}
}
