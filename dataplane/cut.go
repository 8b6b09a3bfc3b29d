package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// backendState is what the desired state says about one backend.
type backendState int

const (
	// stateDead: out of the slot map, and its established flows are cut
	// (neither healthy nor draining, or no longer configured).
	stateDead backendState = iota
	// stateServing: in the slot map (healthy and not draining).
	stateServing
	// stateDraining: out of the slot map, its established flows kept
	// (unready by probe, or drained by the operator).
	stateDraining
)

func (s backendState) String() string {
	switch s {
	case stateServing:
		return "serving"
	case stateDraining:
		return "draining"
	}
	return "dead"
}

// stateOf classifies a backend by name: draining wins over healthy, so a
// drained backend is never cut, whatever its probes say.
func stateOf(name string, healthy, drain map[string]bool) backendState {
	switch {
	case drain[name]:
		return stateDraining
	case healthy[name]:
		return stateServing
	}
	return stateDead
}

// backendStates maps the address (port filled in) of every configured
// backend of plans to its state. An address that is not in the map is no
// longer configured, which counts as dead.
func backendStates(plans [2]familyPlan, healthy, drain map[string]bool) map[netip.AddrPort]backendState {
	m := map[netip.AddrPort]backendState{}
	for _, p := range plans {
		for _, b := range p.backends {
			m[b.Addr] = stateOf(b.Name, healthy, drain)
		}
	}
	return m
}

// flowKey names the established flows of one backend through one service
// (VIP:port): the conntrack entries with that original destination and
// that reply source.
type flowKey struct {
	service, backend netip.AddrPort
}

func (k flowKey) String() string { return k.backend.String() + " via " + k.service.String() }

func (k flowKey) compare(o flowKey) int {
	if c := k.service.Compare(o.service); c != 0 {
		return c
	}
	return k.backend.Compare(o.backend)
}

// cutDecision decides, on each Reconcile, whose established flows to cut,
// without looking at the conntrack table. A backend can get flows through
// a service only while it holds slots there, so it is enough to remember
// which keys may still have flows:
//
//   - may: the keys remembered from earlier Reconciles (after a restart:
//     the keys a survey of the conntrack table found);
//   - mapped: the keys whose backend held slots before this Reconcile or
//     holds them after it (it may have got flows meanwhile);
//   - states: the state of each configured backend; an address absent
//     from it is no longer configured and counts as dead.
//
// Every remembered or mapped key whose backend is dead is cut, and then
// forgotten: no new flow can reach it while it holds no slot, so later
// Reconciles cost nothing until it is mapped again. Keys of serving and
// draining backends are kept, so a drained backend that dies later is cut
// then. The caller puts back the keys whose cut failed. cut is sorted.
func cutDecision(may map[flowKey]bool, mapped []flowKey, states map[netip.AddrPort]backendState) (cut []flowKey, keep map[flowKey]bool) {
	keep = make(map[flowKey]bool, len(may)+len(mapped))
	seen := make(map[flowKey]bool, len(may)+len(mapped))
	consider := func(k flowKey) {
		if seen[k] {
			return
		}
		seen[k] = true
		if st, ok := states[k.backend]; ok && st != stateDead {
			keep[k] = true
			return
		}
		cut = append(cut, k)
	}
	for k, v := range may {
		if v {
			consider(k)
		}
	}
	for _, k := range mapped {
		consider(k)
	}
	slices.SortFunc(cut, flowKey.compare)
	return cut, keep
}

// CutPlanner decides whose flows to cut for a caller that programs the
// forwarding rules with the built-in cut switched off
// (WithConntrackFlush(false)) and carries the cuts out elsewhere, off its
// decision path (the daemon's cut worker, with Conntrack.CutBackend). It
// makes cutDecision's choice from the desired states alone: a backend can
// get flows through a service only while it is serving there, so the keys
// that may hold flows are every key that was serving since its last cut,
// plus what a survey of the conntrack table found (Learn). It is safe for
// concurrent use.
type CutPlanner struct {
	mu  sync.Mutex
	may map[flowKey]bool
	// states are the backends' states of the latest Plan (nil before).
	states   map[netip.AddrPort]backendState
	services []netip.AddrPort
}

// CutPlan is what one desired state calls for.
type CutPlan struct {
	// Cut lists the dead backends that may still hold flows, sorted: cut
	// them now. Each is forgotten until it serves again; call Restore
	// for a cut that failed or was cancelled.
	Cut []BackendCut
	// Live lists the backend addresses that are serving or draining: a
	// pending cut of one of them is stale (it came back) and is dropped.
	Live []netip.AddrPort
	// Services are the VIP:port pairs of want (for a survey).
	Services []netip.AddrPort
}

// Plan records want and returns the cuts it calls for.
func (p *CutPlanner) Plan(want Desired) (CutPlan, error) {
	plans, err := plan(want)
	if err != nil {
		return CutPlan{}, fmt.Errorf("desired state: %w", err)
	}
	states := backendStates(plans, want.Healthy, want.Drain)
	var out CutPlan
	var serving []flowKey
	for _, fp := range plans {
		if !fp.vip.IsValid() {
			continue
		}
		svc := netip.AddrPortFrom(fp.vip, fp.port)
		out.Services = append(out.Services, svc)
		for _, b := range fp.backends {
			if states[b.Addr] == stateServing {
				serving = append(serving, flowKey{svc, b.Addr})
			}
		}
	}
	for a, st := range states {
		if st != stateDead {
			out.Live = append(out.Live, a)
		}
	}
	slices.SortFunc(out.Live, netip.AddrPort.Compare)
	p.mu.Lock()
	defer p.mu.Unlock()
	cut, keep := cutDecision(p.may, serving, states)
	p.may, p.states, p.services = keep, states, out.Services
	for _, k := range cut {
		out.Cut = append(out.Cut, BackendCut{Service: k.service, Backend: k.backend})
	}
	return out, nil
}

// Learn adds what a survey found (backends holding flows) and returns
// those that are dead by the latest Plan: cut them now. The others are
// remembered, and cut when they die. Before the first Plan everything is
// remembered.
func (p *CutPlanner) Learn(found []BackendCut) []BackendCut {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.may == nil {
		p.may = map[flowKey]bool{}
	}
	var cut []BackendCut
	for _, c := range found {
		if p.states != nil {
			if st, ok := p.states[c.Backend]; !ok || st == stateDead {
				cut = append(cut, c)
				continue
			}
		}
		p.may[c.key()] = true
	}
	return cut
}

// Restore remembers c again (its cut failed or was cancelled): the next
// Plan that finds its backend dead cuts it.
func (p *CutPlanner) Restore(c BackendCut) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.may == nil {
		p.may = map[flowKey]bool{}
	}
	p.may[c.key()] = true
}

// Dead reports whether backend is dead by the latest Plan (false before
// the first Plan: nothing is known yet).
func (p *CutPlanner) Dead(backend netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.states == nil {
		return false
	}
	st, ok := p.states[backend]
	return !ok || st == stateDead
}

// Services returns the VIP:port pairs of the latest Plan.
func (p *CutPlanner) Services() []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.services)
}
