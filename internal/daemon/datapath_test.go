package daemon

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/probes"
)

// backend is a probe monitor's status of one backend.
func backend(name string, st probes.State, r probes.HealthResult) probes.BackendStatus {
	r.Backend = name
	// The state machine's verdict on this one result, in state st.
	tr := probes.Step(probes.Tracker{State: st}, r, probes.Params{Rise: 2, Fall: 2})
	tr.State, tr.Streak = st, 0
	return probes.BackendStatus{Target: probes.Target{Name: name}, Tracker: tr, Last: r, Since: time.Now()}
}

var (
	passed  = probes.HealthResult{Outcome: probes.OutcomePass, Stage: probes.StageDone, StatusCode: 200}
	refused = probes.HealthResult{Outcome: probes.OutcomeFail, Stage: probes.StageConnect, Cause: probes.CauseRefused, Error: "connection refused"}
	// notReady answers /readyz with 500: alive, out of rotation.
	notReady = probes.HealthResult{Outcome: probes.OutcomeFail, Stage: probes.StageDone, StatusCode: 500, Cause: probes.CauseUnready, Error: "/readyz answered 500"}
	// timedOut gave no answer within the probe timeout: slow, not dead.
	timedOut = probes.HealthResult{Outcome: probes.OutcomeFail, Stage: probes.StageHTTP, Cause: probes.CauseTimeout, Error: "context deadline exceeded"}
	noResult = probes.HealthResult{}
)

// TestProbesToDatapath: the probe monitor's snapshot becomes the healthy
// and drain sets the dataplane is programmed with (the operator's drains
// added), the backend views gossiped, and the backend events.
func TestProbesToDatapath(t *testing.T) {
	tests := []struct {
		name string
		snap []probes.BackendStatus
		// setup runs on the rig before onProbes (nil: nothing programmed
		// yet, just started).
		setup func(r *rig)
		// wantProgram is the Reconcile call expected, "" for none.
		wantProgram string
		wantUp      []string
		wantDown    []string
	}{
		{
			name:        "first results, all up",
			snap:        []probes.BackendStatus{backend("cp1", probes.StateUp, passed), backend("cp2", probes.StateUp, passed)},
			wantProgram: "dp.Reconcile healthy=[cp1 cp2] drain=[]",
			wantUp:      []string{"cp1", "cp2"},
		},
		{
			name: "first program waits for every backend's first result",
			snap: []probes.BackendStatus{backend("cp1", probes.StateUp, passed), backend("cp2", probes.StateUnknown, noResult)},
		},
		{
			name:        "first program without every result once the bound passed",
			snap:        []probes.BackendStatus{backend("cp1", probes.StateUp, passed), backend("cp2", probes.StateUnknown, noResult)},
			setup:       func(r *rig) { r.s.started = time.Now().Add(-time.Hour) },
			wantProgram: "dp.Reconcile healthy=[cp1] drain=[]",
			wantUp:      []string{"cp1"},
		},
		{
			name:        "a dead backend leaves the healthy set (its flows are cut)",
			snap:        []probes.BackendStatus{backend("cp1", probes.StateUp, passed), backend("cp2", probes.StateDown, refused)},
			setup:       func(r *rig) { r.eligible() },
			wantProgram: "dp.Reconcile healthy=[cp1] drain=[]",
			wantDown:    []string{"cp2: down (dead): connection refused"},
		},
		{
			name:        "a backend that answers not ready drains",
			snap:        []probes.BackendStatus{backend("cp1", probes.StateUp, passed), backend("cp2", probes.StateDown, notReady)},
			setup:       func(r *rig) { r.eligible() },
			wantProgram: "dp.Reconcile healthy=[cp1] drain=[cp2]",
			wantDown:    []string{"cp2: down (draining): /readyz answered 500"},
		},
		{
			name:        "a falling backend still serves",
			snap:        []probes.BackendStatus{backend("cp1", probes.StateUp, passed), backend("cp2", probes.StateFalling, refused)},
			setup:       func(r *rig) { r.eligible() },
			wantProgram: "",
		},
		{
			name: "the operator's drain is added to the probes'",
			snap: []probes.BackendStatus{backend("cp1", probes.StateUp, passed), backend("cp2", probes.StateUp, passed)},
			setup: func(r *rig) {
				r.eligible()
				r.s.opDrain = DrainSet{Generation: 1, Backends: []string{"cp1"}}
			},
			wantProgram: "dp.Reconcile healthy=[cp1 cp2] drain=[cp1]",
		},
		{
			name: "a backend without a result after a reload keeps what is programmed",
			snap: []probes.BackendStatus{backend("cp1", probes.StateUnknown, noResult), backend("cp2", probes.StateUp, passed)},
			setup: func(r *rig) {
				r.eligible()
				r.s.programmed["cp2"] = false
			},
			wantProgram: "dp.Reconcile healthy=[cp1 cp2] drain=[]",
			wantUp:      []string{"cp2"},
		},
		{
			name:  "nothing changed: nothing programmed",
			snap:  []probes.BackendStatus{backend("cp1", probes.StateUp, passed), backend("cp2", probes.StateUp, passed)},
			setup: func(r *rig) { r.eligible() },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Options{})
			if tc.setup != nil {
				tc.setup(r)
			}
			r.mon().set(tc.snap...)
			r.d.onProbes(r.s)
			var want []string
			if tc.wantProgram != "" {
				want = []string{tc.wantProgram}
			}
			if got := r.log.get(); !slices.Equal(got, want) {
				t.Errorf("calls %q, want %q", got, want)
			}
			if len(r.cl.backends) != 1 || len(r.cl.backends[0]) != len(tc.snap) {
				t.Fatalf("gossiped backend views %+v, want one publication of %d", r.cl.backends, len(tc.snap))
			}
			for i, v := range r.cl.backends[0] {
				if v.Name != tc.snap[i].Target.Name || v.State != tc.snap[i].Tracker.State.String() {
					t.Errorf("gossiped %+v for %s %s", v, tc.snap[i].Target.Name, tc.snap[i].Tracker.State)
				}
			}
			if tc.wantProgram != "" {
				d := r.dp.want[0]
				if !r.s.reconciled || !sameSet(r.s.programmed, d.Healthy) || !sameSet(r.s.drained, d.Drain) {
					t.Errorf("programmed %v drained %v reconciled %v, want what was reconciled (%v, %v)", r.s.programmed, r.s.drained, r.s.reconciled, d.Healthy, d.Drain)
				}
				if len(d.Backends) != 2 || len(d.VIPs) != 1 {
					t.Errorf("desired state %+v: want the config's backends and VIP", d)
				}
			}
			var up []string
			for _, e := range r.events(EventBackendUp) {
				up = append(up, e[:strings.Index(e, ":")])
			}
			if !slices.Equal(up, tc.wantUp) {
				t.Errorf("backend-up events %q, want %q", r.events(EventBackendUp), tc.wantUp)
			}
			if got := r.events(EventBackendDown); !slices.Equal(got, tc.wantDown) {
				t.Errorf("backend-down events %q, want %q", got, tc.wantDown)
			}
		})
	}
}

// TestReconcileFailure: a failed program keeps the programmed sets (the
// next probe change retries) and is counted.
func TestReconcileFailure(t *testing.T) {
	r := newRig(t, Options{})
	r.eligible()
	r.dp.err = errFake
	r.mon().set(backend("cp1", probes.StateUp, passed), backend("cp2", probes.StateDown, refused))
	r.d.onProbes(r.s)
	if !r.s.programmed["cp2"] {
		t.Errorf("programmed %v after a failed reconcile, want the old set", r.s.programmed)
	}
	if c := r.d.counters.get(); c.Reconciles != 1 || c.ReconcileErrors != 1 {
		t.Errorf("counters %+v, want 1 reconcile, 1 error", c)
	}
	r.dp.err = nil
	r.d.onProbes(r.s)
	if r.s.programmed["cp2"] || len(r.dp.want) != 2 {
		t.Errorf("programmed %v after %d reconciles, want cp2 out on the retry", r.s.programmed, len(r.dp.want))
	}
}

// TestProbeUpdateWakesLoop: a probe result from the monitor wakes the
// decision loop (once however many arrive) and is counted.
func TestProbeUpdateWakesLoop(t *testing.T) {
	r := newRig(t, Options{})
	on := r.mon().opts.OnUpdate
	if on == nil {
		t.Fatal("the monitor was started without OnUpdate")
	}
	if got := r.mon().opts.Targets; len(got) != 2 || got[0].Name != "cp1" || got[1].Name != "cp2" {
		t.Errorf("monitor targets %+v, want cp1, cp2", got)
	}
	on(probes.Update{Result: refused})
	on(probes.Update{Result: refused})
	select {
	case <-r.s.probeCh:
	default:
		t.Fatal("a probe update did not wake the loop")
	}
	select {
	case <-r.s.probeCh:
		t.Error("two updates woke the loop twice; one pending wake-up is enough")
	default:
	}
	if c := r.d.counters.get(); c.ProbeFailures["connect"] != 2 {
		t.Errorf("probe failures %v, want 2 connect", c.ProbeFailures)
	}
}
