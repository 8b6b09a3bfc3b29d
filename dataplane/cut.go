package dataplane

import (
	"net/netip"
	"slices"
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
