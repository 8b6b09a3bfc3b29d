package daemon

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/internal/status"
)

// Event kinds of the operator's actions (a handoff is EventHandoff).
const (
	EventDrain   = status.EventDrain
	EventUndrain = status.EventUndrain
)

// withDrained is the dataplane's drain set: the probes' drains (backends
// that answer but are not ready) and the operator's.
func withDrained(probeDrain, operator map[string]bool) map[string]bool {
	if len(operator) == 0 {
		return probeDrain
	}
	out := make(map[string]bool, len(probeDrain)+len(operator))
	for k, v := range probeDrain {
		out[k] = v
	}
	for k, v := range operator {
		if v {
			out[k] = true
		}
	}
	return out
}

// onAction carries out an operator's action in the decision loop; the
// decision that follows publishes it.
func (d *Daemon) onAction(s *state, a action) error {
	switch a.kind {
	case actDrain, actUndrain:
		return d.setDrain(s, a.name, a.kind == actDrain)
	case actHandoff:
		return d.startHandoff(s, a.name)
	}
	return fmt.Errorf("unknown action %d", a.kind)
}

func backendNames(s *state) []string {
	var names []string
	for _, b := range s.cfg.Backends {
		names = append(names, b.Name)
	}
	return names
}

// setDrain drains or undrains a backend cluster-wide: a new generation of
// the drain set, persisted, programmed here and gossiped to every peer.
func (d *Daemon) setDrain(s *state, backend string, drain bool) error {
	if !slices.Contains(backendNames(s), backend) {
		return status.NotFoundf("no backend %q in %s: the backends are %s", backend, d.opts.ConfigPath, strings.Join(backendNames(s), ", "))
	}
	if s.opDrain.Has(backend) == drain {
		return nil // already so: nothing to change, no new generation
	}
	v, _ := d.view(s)
	next := s.opDrain.with(backend, drain, maxDrainGen(s.opDrain, v))
	if err := saveDrain(s.cfg.StateDir, next); err != nil {
		return fmt.Errorf("%s not changed: it could not be kept in state_dir %s (it would be lost on a restart): %w", backend, s.cfg.StateDir, err)
	}
	s.opDrain = next
	kind, what := EventDrain, "drained by the operator: no new connections, established ones kept"
	if !drain {
		kind, what = EventUndrain, "undrained by the operator: takes new connections again when healthy"
	}
	d.record(kind, backend, fmt.Sprintf("%s (cluster-wide, generation %d)", what, next.Generation))
	d.onProbes(s)
	return nil
}

// syncDrain adopts a newer drain set a peer publishes.
func (d *Daemon) syncDrain(s *state, v cluster.View) {
	next := adoptDrain(s.opDrain, v)
	if next.Generation == s.opDrain.Generation && next.key() == s.opDrain.key() {
		return
	}
	old := s.opDrain
	s.opDrain = next
	if err := saveDrain(s.cfg.StateDir, next); err != nil {
		d.log.Error("drain set adopted from the cluster but not kept in state_dir", "err", err)
	}
	for _, b := range next.Backends {
		if !old.Has(b) {
			d.record(EventDrain, b, fmt.Sprintf("drained cluster-wide by an operator on a peer (generation %d)", next.Generation))
		}
	}
	for _, b := range old.Backends {
		if !next.Has(b) {
			d.record(EventUndrain, b, fmt.Sprintf("undrained cluster-wide by an operator on a peer (generation %d)", next.Generation))
		}
	}
	d.onProbes(s)
}

// startHandoff asks the election to move the VIP to peer: this node, the
// owner, publishes HandoffTo; peer claims; this node releases once the
// claim is seen (make before break). It refuses rather than forwards when
// this node is not the owner: the operator asks the owner.
func (d *Daemon) startHandoff(s *state, peer string) error {
	self := s.cfg.Node.Name
	known := peer == self
	var names []string
	for _, p := range s.cfg.Peers {
		names = append(names, p.Name)
		known = known || p.Name == peer
	}
	switch {
	case !known:
		return status.NotFoundf("no peer %q in %s: the peers are %s", peer, d.opts.ConfigPath, strings.Join(names, ", "))
	case peer == self && s.holding:
		return nil // already there
	case peer == self:
		return status.Conflictf("%s is this node and it does not hold the VIP: ask the owner (%s) to hand it here", self, orNone(s.last.Owner))
	case s.waiting:
		return status.Conflictf("%s is still in its startup wait: try again in a moment", self)
	case !s.holding:
		return status.Conflictf("this node (%s) does not hold the VIP, %s does: run the handoff on %s", self, orNone(s.last.Owner), orNone(s.last.Owner))
	}
	v, _ := d.view(s)
	m, ok := v.Member(peer)
	switch {
	case !ok || !m.Fresh:
		return status.Conflictf("peer %s is not live (no fresh heartbeats): it cannot take the VIP", peer)
	case m.Meta.Leaving:
		return status.Conflictf("peer %s is leaving the cluster", peer)
	case !m.Meta.Eligible:
		return status.Conflictf("peer %s is not eligible (its own probes see no healthy backend, or its VIP interface is down)", peer)
	}
	s.handoffTo, s.handoffAt = peer, time.Now()
	d.record(EventHandoff, peer, fmt.Sprintf("operator: handing the VIP from %s to %s (make before break, at most %s)", self, peer, d.opts.HandoffTimeout))
	return nil
}

// checkHandoff ends an operator's handoff: done once this node no longer
// holds the VIP, abandoned after HandoffTimeout.
func (d *Daemon) checkHandoff(s *state) {
	switch {
	case s.handoffTo == "":
	case !s.holding:
		s.handoffTo = ""
	case time.Since(s.handoffAt) > d.opts.HandoffTimeout:
		d.record(EventHandoff, s.handoffTo, fmt.Sprintf("operator's handoff to %s abandoned: no claim seen within %s; %s keeps the VIP", s.handoffTo, d.opts.HandoffTimeout, s.cfg.Node.Name))
		s.handoffTo = ""
	}
}

func orNone(s string) string {
	if s == "" {
		return "no peer"
	}
	return s
}
