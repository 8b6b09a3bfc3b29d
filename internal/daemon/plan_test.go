package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/probes"
)

func TestEventLogRing(t *testing.T) {
	l := NewEventLog(3)
	if got := l.Events(); len(got) != 0 {
		t.Fatalf("empty log: %v", got)
	}
	for i := range 5 {
		l.Add(Event{Kind: EventPeerJoin, Subject: fmt.Sprint(i)})
	}
	got := l.Events()
	if len(got) != 3 || got[0].Subject != "2" || got[2].Subject != "4" {
		t.Fatalf("after 5 adds to a ring of 3: %+v, want subjects 2,3,4", got)
	}
	if got[0].Time.IsZero() {
		t.Error("Add did not set the time")
	}
	if l.Total() != 5 {
		t.Errorf("Total %d, want 5", l.Total())
	}
}

func TestHealth(t *testing.T) {
	now := time.Now()
	st := func(name string, s probes.State, outcome probes.Outcome, errText string) probes.BackendStatus {
		r := probes.HealthResult{Outcome: outcome, Error: errText, Stage: probes.StageConnect}
		if outcome != probes.OutcomeFail {
			r.Stage = probes.StageDone
		}
		if strings.Contains(errText, "refused") {
			r.Cause = probes.CauseRefused
		}
		if strings.Contains(errText, "deadline") {
			r.Stage, r.Cause = probes.StageHTTP, probes.CauseTimeout
		}
		// The state machine's verdict on this one result, in state s.
		tr := probes.Step(probes.Tracker{State: s}, r, probes.Params{Rise: 2, Fall: 2})
		tr.State, tr.Streak = s, 0
		return probes.BackendStatus{Target: probes.Target{Name: name}, Tracker: tr, Last: r, Since: now}
	}
	unready := func(name string, s probes.State) probes.BackendStatus {
		b := st(name, s, probes.OutcomeFail, "/readyz answered 500")
		b.Last.Stage, b.Last.StatusCode = probes.StageDone, 500
		return b
	}
	tests := []struct {
		desc        string
		snap        []probes.BackendStatus
		wantHealthy map[string]bool
		wantSettled bool
		wantDrain   []string
	}{
		{"all up", []probes.BackendStatus{st("a", probes.StateUp, probes.OutcomePass, ""), st("b", probes.StateUp, probes.OutcomePass, "")},
			map[string]bool{"a": true, "b": true}, true, nil},
		{"falling still serves, rising does not (and drains)", []probes.BackendStatus{st("a", probes.StateFalling, probes.OutcomeFail, "refused"), st("b", probes.StateRising, probes.OutcomePass, "")},
			map[string]bool{"a": true, "b": false}, true, []string{"b"}},
		{"unready but answering drains", []probes.BackendStatus{unready("a", probes.StateDown), unready("b", probes.StateFalling)},
			map[string]bool{"a": false, "b": true}, true, []string{"a"}},
		{"readiness unknown is up", []probes.BackendStatus{st("a", probes.StateUp, probes.OutcomeReadinessUnknown, "")},
			map[string]bool{"a": true}, true, nil},
		{"not probed yet", []probes.BackendStatus{st("a", probes.StateUp, probes.OutcomePass, ""), st("b", probes.StateUnknown, "", "")},
			map[string]bool{"a": true, "b": false}, false, nil},
		{"refused is dead, not draining", []probes.BackendStatus{st("a", probes.StateDown, probes.OutcomeFail, "connection refused")},
			map[string]bool{"a": false}, true, nil},
		{"slow is not dead: a timed-out backend drains", []probes.BackendStatus{st("a", probes.StateDown, probes.OutcomeFail, "context deadline exceeded")},
			map[string]bool{"a": false}, true, []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			h, drain, views, settled := health(tc.snap)
			var gotDrain []string
			for _, b := range tc.snap {
				if drain[b.Target.Name] {
					gotDrain = append(gotDrain, b.Target.Name)
				}
			}
			if fmt.Sprint(gotDrain) != fmt.Sprint(tc.wantDrain) {
				t.Errorf("drain %v, want %v", gotDrain, tc.wantDrain)
			}
			if settled != tc.wantSettled {
				t.Errorf("settled %v, want %v", settled, tc.wantSettled)
			}
			if len(h) != len(tc.wantHealthy) {
				t.Errorf("healthy %v, want %v", h, tc.wantHealthy)
			}
			for k, v := range tc.wantHealthy {
				if h[k] != v {
					t.Errorf("healthy[%s] = %v, want %v", k, h[k], v)
				}
			}
			if len(views) != len(tc.snap) {
				t.Fatalf("%d views for %d backends", len(views), len(tc.snap))
			}
			for i, v := range views {
				if v.Name != tc.snap[i].Target.Name || v.State != tc.snap[i].Tracker.State.String() {
					t.Errorf("view %d = %+v", i, v)
				}
			}
		})
	}
}

func TestSameSet(t *testing.T) {
	tests := []struct {
		a, b map[string]bool
		want bool
	}{
		{nil, map[string]bool{}, true},
		{map[string]bool{"a": true, "b": false}, map[string]bool{"a": true}, true},
		{map[string]bool{"a": true}, map[string]bool{"b": true}, false},
		{map[string]bool{"a": true}, map[string]bool{"a": true, "b": true}, false},
	}
	for i, tc := range tests {
		if got := sameSet(tc.a, tc.b); got != tc.want {
			t.Errorf("%d: sameSet(%v, %v) = %v, want %v", i, tc.a, tc.b, got, tc.want)
		}
	}
}

func TestLiveness(t *testing.T) {
	hv := heartbeat.View{Peers: []heartbeat.PeerView{
		{Name: "lb2", Alive: true, Seen: true, Owner: "lb2", Epoch: 7},
		{Name: "lb3", Alive: false, Seen: true, Owner: "lb3", Epoch: 9},
	}}
	live := liveness(hv, "lb1", map[string]bool{"lb2": true, "lb3": true})
	if l := live["lb2"]; !l.Fresh || !l.HasOwner || l.Owner != "lb2" || l.Epoch != 7 {
		t.Errorf("lb2 %+v", l)
	}
	if !live["lb2"].NoMajority || live["lb3"].NoMajority {
		t.Errorf("NoMajority: lb2 %v (fresh, marked), lb3 %v (dead): want true, false", live["lb2"].NoMajority, live["lb3"].NoMajority)
	}
	if l := live["lb3"]; l.Fresh || l.HasOwner {
		t.Errorf("dead lb3 %+v: a dead peer's last claim must not count", l)
	}
	if _, ok := live["lb1"]; ok {
		t.Error("self in the liveness map of a fresh view")
	}
	hv.Stale = true
	live = liveness(hv, "lb1", nil)
	if live["lb2"].Fresh || live["lb1"].Fresh {
		t.Errorf("stale view: %+v, want nobody fresh, self included", live)
	}
	if _, ok := live["lb1"]; !ok {
		t.Error("stale view must mark self not fresh")
	}
	// Elect with a stale heartbeat never holds.
	v := cluster.View{Self: "lb1", Peers: []string{"lb1"}, Members: []cluster.Member{
		{Name: "lb1", Configured: true, Fresh: true, State: cluster.StateAlive, Meta: cluster.Meta{Name: "lb1", Priority: 100, Eligible: true}},
	}}
	if d := cluster.Elect(v, "lb1"); !d.Hold {
		t.Fatalf("control: a lone eligible node should hold: %+v", d)
	}
	if d := cluster.Elect(v.WithLiveness(live), "lb1"); d.Hold {
		t.Errorf("stale heartbeat, still holds: %+v", d)
	}
}

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	c, diags := config.Parse([]byte(testConfigSource), "/cfg/config.hcl", config.WithReadFile(func(string) ([]byte, error) { return []byte(testGossipKey), nil }))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return c
}

// TestMajorityWatch: a fresh peer whose beats lack FlagMajority is
// reported for the hold-off after it was first seen so, then no longer;
// regaining the flag (or going dead, or a stale view) resets it.
func TestMajorityWatch(t *testing.T) {
	const ms = heartbeat.Mono(time.Millisecond)
	holdOff := 40 * time.Millisecond
	view := func(flags heartbeat.Flags, alive, stale bool) heartbeat.View {
		return heartbeat.View{Stale: stale, Peers: []heartbeat.PeerView{
			{Name: "lb2", Alive: alive, Seen: true, Flags: flags},
			{Name: "lb3", Alive: true, Seen: true, Flags: heartbeat.FlagMajority},
		}}
	}
	w := majorityWatch{}
	steps := []struct {
		at           heartbeat.Mono
		flags        heartbeat.Flags
		alive, stale bool
		want         bool
	}{
		{0, heartbeat.FlagMajority, true, false, false},
		{10 * ms, 0, true, false, true},  // first seen without the flag
		{45 * ms, 0, true, false, true},  // within the hold-off
		{51 * ms, 0, true, false, false}, // hold-off over: it no longer holds the election back
		{60 * ms, heartbeat.FlagMajority, true, false, false},
		{70 * ms, 0, true, false, true},   // again: a new hold-off
		{80 * ms, 0, false, false, false}, // dead: not fresh, forgotten
		{85 * ms, 0, true, false, true},
		{90 * ms, 0, true, true, false}, // stale view: nobody
	}
	for i, st := range steps {
		got := w.noMajority(view(st.flags, st.alive, st.stale), st.at, holdOff)
		if got["lb2"] != st.want || got["lb3"] {
			t.Errorf("step %d at %v: %v, want lb2 %v and never lb3", i, time.Duration(st.at), got, st.want)
		}
	}
}
