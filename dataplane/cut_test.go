package dataplane

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
)

func TestStateOf(t *testing.T) {
	for _, tc := range []struct {
		healthy, drain map[string]bool
		want           backendState
	}{
		{nil, nil, stateDead},
		{healthySet("a"), nil, stateServing},
		{healthySet("a"), healthySet("a"), stateDraining},
		{nil, healthySet("a"), stateDraining}, // draining wins: never cut
		{map[string]bool{"a": false}, map[string]bool{"a": false}, stateDead},
		{healthySet("b"), healthySet("b"), stateDead},
	} {
		if got := stateOf("a", tc.healthy, tc.drain); got != tc.want {
			t.Errorf("healthy %v drain %v: %s, want %s", tc.healthy, tc.drain, got, tc.want)
		}
	}
}

func TestPlanDrainLeavesSlotMap(t *testing.T) {
	d := desired4()
	full := mustPlan(t, d)[0]
	d.Drain = healthySet("cp2", "unknown")
	drained := mustPlan(t, d)[0]
	d.Drain = nil
	d.Healthy = healthySet("cp1", "cp3")
	down := mustPlan(t, d)[0]
	if !slices.Equal(drained.slots, down.slots) {
		t.Error("draining cp2 gives another slot map than cp2 down")
	}
	if slices.Equal(drained.slots, full.slots) || slices.Contains(drained.slots, 1) {
		t.Error("a drained backend kept slots")
	}
}

func TestCutDecision(t *testing.T) {
	svc := netip.MustParseAddrPort("198.18.1.100:6443")
	old := netip.MustParseAddrPort("198.18.1.101:6443") // a former VIP
	a := netip.MustParseAddrPort("198.18.1.11:6443")
	b := netip.MustParseAddrPort("198.18.1.12:6443")
	c := netip.MustParseAddrPort("198.18.1.13:16443")
	k := func(s, b netip.AddrPort) flowKey { return flowKey{s, b} }
	set := func(keys ...flowKey) map[flowKey]bool {
		m := map[flowKey]bool{}
		for _, x := range keys {
			m[x] = true
		}
		return m
	}
	st := func(sa, sb, sc backendState) map[netip.AddrPort]backendState {
		return map[netip.AddrPort]backendState{a: sa, b: sb, c: sc}
	}
	S, D, X := stateServing, stateDraining, stateDead
	for _, tc := range []struct {
		desc   string
		may    map[flowKey]bool
		mapped []flowKey
		states map[netip.AddrPort]backendState
		cut    []flowKey
		keep   map[flowKey]bool
	}{
		{"nothing known, nothing mapped", nil, nil, st(S, S, S), nil, set()},
		{"all serving", set(k(svc, a)), []flowKey{k(svc, a), k(svc, b), k(svc, c)}, st(S, S, S),
			nil, set(k(svc, a), k(svc, b), k(svc, c))},
		{"b dies, it was mapped before (no Drain: the old behaviour)",
			set(k(svc, a), k(svc, b), k(svc, c)), []flowKey{k(svc, a), k(svc, b), k(svc, c), k(svc, a), k(svc, c)}, st(S, X, S),
			[]flowKey{k(svc, b)}, set(k(svc, a), k(svc, c))},
		{"b drains: no cut, remembered",
			set(k(svc, a), k(svc, b), k(svc, c)), []flowKey{k(svc, a), k(svc, b), k(svc, c), k(svc, a), k(svc, c)}, st(S, D, S),
			nil, set(k(svc, a), k(svc, b), k(svc, c))},
		{"drained b, unchanged: still no cut",
			set(k(svc, a), k(svc, b), k(svc, c)), []flowKey{k(svc, a), k(svc, c)}, st(S, D, S),
			nil, set(k(svc, a), k(svc, b), k(svc, c))},
		{"drained b dies later: cut then, although it left the map earlier",
			set(k(svc, a), k(svc, b), k(svc, c)), []flowKey{k(svc, a), k(svc, c)}, st(S, X, S),
			[]flowKey{k(svc, b)}, set(k(svc, a), k(svc, c))},
		{"b dead and already cut: nothing to do (no conntrack dump)",
			set(k(svc, a), k(svc, c)), []flowKey{k(svc, a), k(svc, c)}, st(S, X, S),
			nil, set(k(svc, a), k(svc, c))},
		{"unready and not healthy, draining: never cut",
			set(k(svc, b)), nil, st(S, D, S), nil, set(k(svc, b))},
		{"found by a survey, never mapped here, dead: cut",
			set(k(svc, c)), []flowKey{k(svc, a)}, st(S, S, X), []flowKey{k(svc, c)}, set(k(svc, a))},
		{"no longer configured: dead",
			set(k(svc, a), k(svc, netip.MustParseAddrPort("198.18.1.14:6443"))), []flowKey{k(svc, a)}, st(S, S, S),
			[]flowKey{k(svc, netip.MustParseAddrPort("198.18.1.14:6443"))}, set(k(svc, a))},
		{"flows through a former VIP: cut when the backend dies, kept while it lives",
			set(k(old, a), k(old, b), k(svc, a), k(svc, b)), []flowKey{k(svc, a)}, st(S, X, S),
			[]flowKey{k(svc, b), k(old, b)}, set(k(old, a), k(svc, a))},
		{"mapped before, dead now, not remembered (an earlier process's map)",
			nil, []flowKey{k(svc, a), k(svc, b), k(svc, a)}, st(S, X, S), []flowKey{k(svc, b)}, set(k(svc, a))},
		{"false entries are not remembered", map[flowKey]bool{k(svc, b): false}, nil, st(S, X, S), nil, set()},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			may := maps.Clone(tc.may)
			cut, keep := cutDecision(tc.may, tc.mapped, tc.states)
			if !slices.Equal(cut, tc.cut) {
				t.Errorf("cut %v, want %v", cut, tc.cut)
			}
			if !maps.Equal(keep, tc.keep) {
				t.Errorf("keep %v, want %v", keep, tc.keep)
			}
			if !maps.Equal(tc.may, may) {
				t.Error("cutDecision changed its input")
			}
		})
	}
}

// TestCutDecisionSequence runs cutDecision over a backend's life as
// Reconcile sees it (the slot maps from plan, what is remembered carried
// from step to step) and checks when its flows are cut: once when it dies,
// never while it drains, and again after it served once more.
func TestCutDecisionSequence(t *testing.T) {
	d := desired4()
	svc := netip.AddrPortFrom(vip4, DefaultPort)
	cp2 := backends4()[1].Addr
	steps := []struct {
		desc           string
		healthy, drain map[string]bool
		cut            bool
	}{
		{"all serving", healthySet("cp1", "cp2", "cp3"), nil, false},
		{"cp2 unready: drains", healthySet("cp1", "cp2", "cp3"), healthySet("cp2"), false},
		{"cp2 unready and failing probes, still draining", healthySet("cp1", "cp3"), healthySet("cp2"), false},
		{"cp2 dead", healthySet("cp1", "cp3"), nil, true},
		{"cp2 still dead", healthySet("cp1", "cp3"), nil, false},
		{"cp2 back", healthySet("cp1", "cp2", "cp3"), nil, false},
		{"cp2 dead without draining first", healthySet("cp1", "cp3"), nil, true},
		{"cp2 drained straight from dead: never mapped, nothing to remember", healthySet("cp1", "cp2", "cp3"), healthySet("cp2"), false},
		{"cp2 dead again: no flow can exist, no cut", healthySet("cp1", "cp3"), nil, false},
		{"cp2 back", healthySet("cp1", "cp2", "cp3"), nil, false},
		{"cp2 drained by the operator", healthySet("cp1", "cp2", "cp3"), healthySet("cp2"), false},
		{"all dead", nil, nil, true},
	}
	may := map[flowKey]bool{}
	var before []int
	for _, step := range steps {
		d.Healthy, d.Drain = step.healthy, step.drain
		plans := mustPlan(t, d)
		p := plans[0]
		var mapped []flowKey
		for _, slots := range [][]int{before, p.slots} {
			for _, b := range slots {
				if b >= 0 {
					mapped = append(mapped, flowKey{svc, p.backends[b].Addr})
				}
			}
		}
		cut, keep := cutDecision(may, mapped, backendStates(plans, d.Healthy, d.Drain))
		gotCut := slices.Contains(cut, flowKey{svc, cp2})
		if gotCut != step.cut {
			t.Errorf("%s: cp2 cut %v, want %v (cut %v)", step.desc, gotCut, step.cut, cut)
		}
		for _, k := range cut {
			if st := stateOf(nameOf(p, k.backend), d.Healthy, d.Drain); st != stateDead {
				t.Errorf("%s: cut %v, which is %s", step.desc, k.backend, st)
			}
		}
		may, before = keep, p.slots
		t.Logf("%s: cut %v, remembered %d", step.desc, cut, len(may))
	}
}

func nameOf(p familyPlan, addr netip.AddrPort) string {
	for _, b := range p.backends {
		if b.Addr == addr {
			return b.Name
		}
	}
	panic(fmt.Sprintf("no backend %v", addr))
}

// TestCutPlanner: the planner cuts a dead backend that served since its
// last cut, once; a draining one never; a restored one again; what a
// survey found before the first Plan is cut when that Plan finds it dead,
// and what it found after at once.
func TestCutPlanner(t *testing.T) {
	svc := netip.AddrPortFrom(vip4, 6443)
	b := backends4()
	cut := func(names ...string) []BackendCut {
		var out []BackendCut
		for _, x := range b {
			if slices.Contains(names, x.Name) {
				out = append(out, BackendCut{svc, x.Addr})
			}
		}
		return out
	}
	var p CutPlanner
	step := func(desc string, healthy, drain map[string]bool, want []BackendCut) {
		t.Helper()
		d := desired4()
		d.Healthy, d.Drain = healthy, drain
		got, err := p.Plan(d)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Cut, want) {
			t.Errorf("%s: cut %v, want %v", desc, got.Cut, want)
		}
		if !slices.Equal(got.Services, []netip.AddrPort{svc}) {
			t.Errorf("%s: services %v", desc, got.Services)
		}
	}
	// A survey before the first Plan: cp3 holds flows.
	if got := p.Learn(cut("cp3")); got != nil {
		t.Errorf("Learn before Plan cut %v, want nothing yet", got)
	}
	step("first plan: cp3 dead with surveyed flows", healthySet("cp1", "cp2"), nil, cut("cp3"))
	step("same again: nothing", healthySet("cp1", "cp2"), nil, nil)
	step("cp2 dies", healthySet("cp1"), nil, cut("cp2"))
	step("cp2 still dead: cut once", healthySet("cp1"), nil, nil)
	p.Restore(cut("cp2")[0])
	step("a failed cut restored: again", healthySet("cp1"), nil, cut("cp2"))
	step("all back", healthySet("cp1", "cp2", "cp3"), nil, nil)
	step("cp1 drains: kept", healthySet("cp2", "cp3"), healthySet("cp1"), nil)
	step("drained cp1 dies: cut then", healthySet("cp2", "cp3"), nil, cut("cp1"))
	if !p.Dead(b[0].Addr) || p.Dead(b[1].Addr) {
		t.Errorf("Dead: cp1 %v cp2 %v, want true false", p.Dead(b[0].Addr), p.Dead(b[1].Addr))
	}
	// A survey after a Plan: a dead backend's flows are cut at once, a
	// serving one's remembered.
	if got := p.Learn(cut("cp1", "cp2")); !slices.Equal(got, cut("cp1")) {
		t.Errorf("Learn after Plan cut %v, want cp1", got)
	}
	got, err := p.Plan(desired4())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Cut) != 0 || len(got.Live) != 3 {
		t.Errorf("all healthy: %+v, want no cut and 3 live", got)
	}
}
