package daemon

import (
	"slices"
	"strings"
	"testing"
)

// TestPanicRouting: with no healthy backend here, panic routing forwards
// to every backend and lets a live member hold the VIP, says so with an
// event, and ends when a backend is healthy again; off, the old rule:
// nothing forwarded, no claim. The rig's node is lb1 (priority 100) with
// peers lb2 and lb3 (priority 50).
func TestPanicRouting(t *testing.T) {
	tests := []struct {
		name         string
		panicRouting bool
		peers        []peerSpec
		hold         bool // the rig's node holds the VIP before
		wantHold     bool
		wantElected  string
		wantCalls    []string
		wantDP       string // the reconcile's log line
		wantEvent    bool
	}{
		{
			name: "nobody eligible, no owner: every backend, and the best live member claims", panicRouting: true,
			peers:    []peerSpec{{"lb2", 50, true, false, "", 3}, {"lb3", 50, true, false, "", 3}},
			wantHold: true, wantElected: "lb1", wantCalls: acquireCalls,
			wantDP: "dp.Reconcile healthy=[cp1 cp2] drain=[]", wantEvent: true,
		},
		{
			name: "panic routing off: nothing forwarded, no claim (the old rule)", panicRouting: false,
			peers:    []peerSpec{{"lb2", 50, true, false, "", 3}, {"lb3", 50, true, false, "", 3}},
			wantHold: false, wantElected: "",
			wantDP: "dp.Reconcile healthy=[] drain=[cp1 cp2]",
		},
		{
			name: "nobody eligible, this node owns: it keeps the VIP", panicRouting: true,
			peers: []peerSpec{{"lb2", 50, true, false, "lb1", 3}, {"lb3", 50, true, false, "lb1", 3}},
			hold:  true, wantHold: true, wantElected: "lb1",
			wantDP: "dp.Reconcile healthy=[cp1 cp2] drain=[]", wantEvent: true,
		},
		{
			name: "a peer with a healthy backend is preferred: it is elected, this node forwards in panic meanwhile", panicRouting: true,
			peers:    []peerSpec{{"lb2", 50, true, true, "", 3}, {"lb3", 50, true, false, "", 3}},
			wantHold: false, wantElected: "lb2",
			wantDP: "dp.Reconcile healthy=[cp1 cp2] drain=[]", wantEvent: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Options{})
			r.eligible()
			r.s.cfg.Balance.PanicRouting = tc.panicRouting
			r.cl.SetPanicRouting(tc.panicRouting)
			for _, p := range tc.peers {
				r.cl.peer(p.name, p.priority, p.fresh, p.eligible, p.owner, p.epoch)
			}
			if tc.hold {
				r.hold(3)
			}
			// Every probe fails (not dead: the backends drain).
			r.d.reconcile(r.s, map[string]bool{"cp1": false, "cp2": false}, map[string]bool{"cp1": true, "cp2": true}, true)
			r.d.decide(r.s)
			calls := r.log.get()
			if !slices.Contains(calls, tc.wantDP) {
				t.Errorf("calls %q, want %q", calls, tc.wantDP)
			}
			if r.s.eligible {
				t.Error("eligible with no healthy backend: a member in panic must not count as eligible")
			}
			if r.s.holding != tc.wantHold || r.s.last.Elected != tc.wantElected || r.s.last.Panic != (tc.panicRouting && tc.wantElected == "lb1") {
				t.Errorf("holding %v elected %q panic %v, want %v %q (decision %+v)", r.s.holding, r.s.last.Elected, r.s.last.Panic, tc.wantHold, tc.wantElected, r.s.last)
			}
			if got := actionsOf(calls); !slices.Equal(got, tc.wantCalls) {
				t.Errorf("VIP calls %q, want %q", got, tc.wantCalls)
			}
			ev := r.events(EventPanicRouting)
			if (len(ev) == 1) != tc.wantEvent || len(ev) > 1 {
				t.Fatalf("panic-routing events %q, want one: %v", ev, tc.wantEvent)
			}
			if tc.wantEvent && !strings.Contains(ev[0], "cp1, cp2") {
				t.Errorf("event %q does not name the backends", ev[0])
			}
			// Once: deciding again records nothing new.
			r.d.decide(r.s)
			if n := len(r.events(EventPanicRouting)); n != len(ev) {
				t.Errorf("%d panic-routing events after deciding again, want %d", n, len(ev))
			}
			// A backend passes its probes again: panic ends.
			r.d.reconcile(r.s, map[string]bool{"cp1": true, "cp2": false}, map[string]bool{"cp2": true}, true)
			r.d.decide(r.s)
			if got := len(r.events(EventPanicRoutingEnd)); got != len(ev) {
				t.Errorf("%d panic-routing-over events, want %d", got, len(ev))
			}
			if last := r.log.get(); !slices.Contains(last, "dp.Reconcile healthy=[cp1] drain=[cp2]") {
				t.Errorf("calls %q, want the healthy set only", last)
			}
		})
	}
}
