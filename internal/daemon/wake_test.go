package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/probes"
)

// runLoop runs the rig's decision loop until the test ends.
func runLoop(t *testing.T, r *rig) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.d.loop(ctx, r.s) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond for up to 5 s (a loaded machine) and reports whether
// it came true.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// idleRig is a rig past its startup wait, with the links read again only
// after an hour: no timed condition is pending, so a decision pass comes
// from an event or not at all.
func idleRig(t *testing.T, opts Options) *rig {
	t.Helper()
	r := newRig(t, opts)
	r.eligible()
	r.s.links.reread = time.Hour
	r.cl.changes = make(chan struct{}, 1)
	return r
}

// quiet checks that an idle loop runs no decision pass for a while (the
// fixed tick it had made 40 a second), and returns the pass count.
func quiet(t *testing.T, r *rig) int64 {
	t.Helper()
	if !waitFor(func() bool { return r.cl.views.Load() > 0 }) {
		t.Fatal("the loop made no first decision")
	}
	time.Sleep(100 * time.Millisecond) // the first pass ends
	c0 := r.cl.views.Load()
	time.Sleep(300 * time.Millisecond)
	if c1 := r.cl.views.Load(); c1 != c0 {
		t.Fatalf("%d views read in 300ms with nothing happening; want no decision pass while idle", c1-c0)
	}
	return c0
}

// TestLoopDecidesOnEvents: the decision loop sleeps while nothing happens
// and decides on each kind of event, with no tick.
func TestLoopDecidesOnEvents(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(t *testing.T, r *rig, reload chan struct{})
	}{
		{"probe result", func(t *testing.T, r *rig, _ chan struct{}) {
			r.mon().set(backend("cp1", probes.StateDown, passed), backend("cp2", probes.StateUp, passed))
			r.s.probeCh <- struct{}{}
		}},
		{"heartbeat verdict", func(t *testing.T, r *rig, _ chan struct{}) { r.beats[0].changes <- struct{}{} }},
		{"gossip change", func(t *testing.T, r *rig, _ chan struct{}) { r.cl.changes <- struct{}{} }},
		{"cluster event", func(t *testing.T, r *rig, _ chan struct{}) {
			r.s.eventsCh <- cluster.Event{Type: cluster.EventJoin, Member: "lb2"}
		}},
		{"link change", func(t *testing.T, r *rig, _ chan struct{}) { r.links <- struct{}{} }},
		{"operator action", func(t *testing.T, r *rig, _ chan struct{}) {
			if err := r.d.act(context.Background(), action{kind: actDrain, name: "cp1"}); err != nil {
				t.Fatal(err)
			}
		}},
		{"config reload", func(t *testing.T, r *rig, reload chan struct{}) { reload <- struct{}{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reload := make(chan struct{})
			r := idleRig(t, Options{Reload: reload})
			runLoop(t, r)
			c0 := quiet(t, r)
			tc.send(t, r, reload)
			if !waitFor(func() bool { return r.cl.views.Load() > c0 }) {
				t.Fatalf("no decision pass after a %s", tc.name)
			}
		})
	}
}

// TestLoopKeepsTokenFreshWhenIdle: an idle loop, deciding nothing, still
// refreshes the beat loop's liveness token (the last decision published
// again) every heartbeat.DefaultTokenRefresh.
func TestLoopKeepsTokenFreshWhenIdle(t *testing.T) {
	r := idleRig(t, Options{})
	runLoop(t, r)
	quiet(t, r)
	n0 := len(refreshes(r))
	time.Sleep(10 * heartbeat.DefaultTokenRefresh)
	if n := len(refreshes(r)) - n0; n < 2 {
		t.Fatalf("%d token refreshes in %s of idle; want one every %s", n, 10*heartbeat.DefaultTokenRefresh, heartbeat.DefaultTokenRefresh)
	}
}

func refreshes(r *rig) []string {
	var out []string
	for _, c := range r.log.get() {
		if strings.HasPrefix(c, "beat.Refresh") {
			out = append(out, c)
		}
	}
	return out
}

// TestLoopTimedConditionsFire: a timed condition that is pending fires
// with no event: the loop's timer is set to it.
func TestLoopTimedConditionsFire(t *testing.T) {
	t.Run("startup wait ends", func(t *testing.T) {
		r := idleRig(t, Options{StartupWait: 300 * time.Millisecond})
		r.s.waiting, r.s.started = true, time.Now()
		runLoop(t, r)
		if !waitFor(func() bool { return !r.d.Status().Waiting }) {
			t.Fatal("still in the startup wait long after it ended, with no event")
		}
	})
	t.Run("handoff abandoned", func(t *testing.T) {
		r := idleRig(t, Options{HandoffTimeout: 300 * time.Millisecond})
		r.cl.peer("lb2", 100, true, true, "lb1", 1)
		r.cl.peer("lb3", 100, true, true, "lb1", 1)
		r.hold(1)
		r.s.handoffTo, r.s.handoffAt = "lb2", time.Now()
		runLoop(t, r)
		if !waitFor(func() bool {
			for _, e := range r.events(EventHandoff) {
				if strings.Contains(e, "abandoned") {
					return true
				}
			}
			return false
		}) {
			t.Fatalf("the handoff to a peer that never claims was not abandoned after its timeout; events %v", r.events(EventHandoff))
		}
	})
	t.Run("beat loop restarted", func(t *testing.T) {
		r := idleRig(t, Options{})
		close(r.beats[0].done) // it died
		r.s.beatRetry.restart = time.Now()
		runLoop(t, r)
		if !waitFor(func() bool { return r.log.index("beat.Start") >= 0 }) {
			t.Fatal("a beat loop that died was not restarted, with no event")
		}
	})
}

// TestDecideAt: when the next decision pass is due with no event.
func TestDecideAt(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	d := New(Options{StartupWait: 2 * time.Second, HandoffTimeout: 3 * time.Second})
	base := func() *state {
		return &state{links: linkWatch{ch: make(chan struct{}), read: t0, reread: time.Second}}
	}
	for _, tc := range []struct {
		name string
		set  func(s *state)
		want time.Time
	}{
		{"idle: the links' re-read only", func(*state) {}, t0.Add(time.Second)},
		{"no link subscription: read every tick", func(s *state) { s.links.ch = nil }, t0.Add(DefaultTick)},
		{"startup wait", func(s *state) { s.waiting, s.started = true, t0.Add(-1500*time.Millisecond) }, t0.Add(500 * time.Millisecond)},
		{"handoff", func(s *state) { s.handoffTo, s.handoffAt = "lb2", t0.Add(-2900*time.Millisecond) }, t0.Add(100*time.Millisecond + time.Nanosecond)},
		{"datapath retry", func(s *state) { s.dpRetry = retry{pending: true, at: t0.Add(200 * time.Millisecond)} }, t0.Add(200 * time.Millisecond)},
		{"probe monitor retry", func(s *state) { s.monRetry = retry{pending: true, at: t0.Add(300 * time.Millisecond)} }, t0.Add(300 * time.Millisecond)},
		{"a retry not pending", func(s *state) { s.dpRetry = retry{at: t0.Add(200 * time.Millisecond)} }, t0.Add(time.Second)},
		{"the view changes by time", func(s *state) { s.wake.view = t0.Add(7 * time.Millisecond) }, t0.Add(7 * time.Millisecond)},
		{"beat loop start failed", func(s *state) {
			s.beatErr, s.beatRetry.at = errFake, t0.Add(400*time.Millisecond)
		}, t0.Add(400 * time.Millisecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.set(s)
			if got := d.decideAt(s); !got.Equal(tc.want) {
				t.Errorf("decideAt = %v, want %v", got.Sub(t0), tc.want.Sub(t0))
			}
		})
	}
}

// TestBeatViewChanges: the times at which the liveness read from the
// beats changes with no new beat.
func TestBeatViewChanges(t *testing.T) {
	wall := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	now := heartbeat.Mono(10 * time.Second)
	ms := func(n int) heartbeat.Mono { return heartbeat.Mono(time.Duration(n) * time.Millisecond) }
	holdOff := 40 * time.Millisecond
	for _, tc := range []struct {
		name string
		s    state
		hv   heartbeat.View
		want time.Duration // after now; 0: none
	}{
		{"nothing pending", state{}, heartbeat.View{}, 0},
		{"bridge of a restarted beat loop", state{beatBridgeUntil: now + ms(300)}, heartbeat.View{}, 300 * time.Millisecond},
		{"bridge over", state{beatBridgeUntil: now - ms(1)}, heartbeat.View{}, 0},
		{"no-majority hold-off", state{noMajority: majorityWatch{"lb2": now - ms(10)}}, heartbeat.View{}, 30*time.Millisecond + 1},
		{"no-majority hold-off over", state{noMajority: majorityWatch{"lb2": now - ms(50)}}, heartbeat.View{}, 0},
		{"restarting peer's grace", state{}, heartbeat.View{Peers: []heartbeat.PeerView{
			{Name: "lb2", Seen: true, Flags: heartbeat.FlagRestarting, LastBeat: now - ms(100)}}}, RestartGrace - 100*time.Millisecond},
		{"alive restarting peer: nothing", state{}, heartbeat.View{Peers: []heartbeat.PeerView{
			{Name: "lb2", Alive: true, Seen: true, Flags: heartbeat.FlagRestarting, LastBeat: now}}}, 0},
		{"the soonest", state{beatBridgeUntil: now + ms(300), noMajority: majorityWatch{"lb3": now}}, heartbeat.View{}, holdOff + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := beatViewChanges(&tc.s, tc.hv, now, wall, holdOff)
			var want time.Time
			if tc.want > 0 {
				want = wall.Add(tc.want)
			}
			if !got.Equal(want) {
				t.Errorf("beatViewChanges = %v, want %v", got, want)
			}
		})
	}
}

// TestSuspectChanges: when an alive gossip member turns suspect.
func TestSuspectChanges(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	v := cluster.View{Self: "lb1", SuspectAfter: time.Second, Members: []cluster.Member{
		{Name: "lb1", State: cluster.StateAlive, LastSeen: t0.Add(-5 * time.Second)},
		{Name: "lb2", State: cluster.StateAlive, LastSeen: t0.Add(-200 * time.Millisecond)},
		{Name: "lb3", State: cluster.StateAlive, LastSeen: t0.Add(-100 * time.Millisecond)},
		{Name: "lb4", State: cluster.StateDead, LastSeen: t0.Add(-900 * time.Millisecond)},
	}}
	if got, want := suspectChanges(v), t0.Add(800*time.Millisecond+time.Nanosecond); !got.Equal(want) {
		t.Errorf("suspectChanges = %v, want %v (lb2's)", got, want)
	}
	v.SuspectAfter = 0
	if got := suspectChanges(v); !got.IsZero() {
		t.Errorf("suspectChanges without SuspectAfter = %v, want none", got)
	}
}

// keptRig is an idle rig whose beat loop is wrapped in a keeper that
// counts as running (its goroutine is not started: the test plays it).
func keptRig(t *testing.T) (*rig, *keptBeat) {
	t.Helper()
	r := idleRig(t, Options{})
	k := newKeptBeat(r.s.beater, r.d.log)
	k.keeping.Store(true)
	r.s.beater = k
	return r, k
}

// TestWakeScheduleToken: what the loop's timer waits for on the token's
// account. With the keeper running, nothing: the keeper is the token's
// one timer (before, the loop also refreshed it every 50 ms, two timers
// for one token). With the keeper off (a test setting) or a plain beat
// loop, the loop's own refresh every DefaultTokenRefresh; with no beat
// loop, or one that failed, nothing.
func TestWakeScheduleToken(t *testing.T) {
	at := time.Now()
	for _, tc := range []struct {
		name  string
		setup func(r *rig)
		want  time.Time
	}{
		{"keeper runs", func(r *rig) {
			k := keepBeat(r.s.beater, r.d.log) // as the real starter does
			t.Cleanup(func() { k.Close() })
			r.s.beater = k
		}, time.Time{}},
		{"keeper off", func(r *rig) { r.s.beater = newKeptBeat(r.s.beater, r.d.log) }, at.Add(heartbeat.DefaultTokenRefresh)},
		{"plain beat loop", func(*rig) {}, at.Add(heartbeat.DefaultTokenRefresh)},
		{"no beat loop", func(r *rig) { r.s.beater = nil }, time.Time{}},
		{"beat loop failed", func(r *rig) { r.s.beatErr = heartbeat.ErrStopped }, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := idleRig(t, Options{})
			tc.setup(r)
			r.s.wake.token, r.s.links.read = at, at
			r.s.links.ch = make(chan struct{}) // subscribed: re-read after links.reread (an hour)
			if got := r.s.tokenAt(); !got.Equal(tc.want) {
				t.Errorf("token refresh due at %v, want %v (zero: none)", got.Sub(at), tc.want.Sub(at))
			}
			if tc.want.IsZero() {
				if d := r.d.untilWake(r.s); d < time.Second {
					t.Errorf("idle loop sleeps %v; want no wake-up for the token (the links' re-read is an hour away)", d)
				}
			}
		})
	}
}

// TestIdleLoopLeavesTokenToKeeper: an idle loop whose beat loop has a
// running keeper sends no refresh of its own, and answers the keeper's
// question without a decision pass.
func TestIdleLoopLeavesTokenToKeeper(t *testing.T) {
	r, k := keptRig(t)
	runLoop(t, r)
	c0 := quiet(t, r)
	n0 := len(refreshes(r))
	time.Sleep(10 * heartbeat.DefaultTokenRefresh)
	if n := len(refreshes(r)) - n0; n != 0 {
		t.Fatalf("%d token refreshes by an idle loop in %s; want none, the keeper renews the token", n, 10*heartbeat.DefaultTokenRefresh)
	}
	k.mu.Lock()
	k.progress = 0
	k.mu.Unlock()
	k.asks <- struct{}{}
	if !waitFor(func() bool { k.mu.Lock(); defer k.mu.Unlock(); return k.progress != 0 }) {
		t.Fatal("the loop did not answer the keeper")
	}
	if c := r.cl.views.Load(); c != c0 {
		t.Errorf("%d decision passes for the keeper's question; want none", c-c0)
	}
}

// TestProbeWakes: which probe results wake the decision loop at once. A
// steady backend (the same pass again, the same failure of a backend
// already down) does not: it only refreshes a latency or a reason, which
// the next timed pass applies. Before, every result woke a decision pass,
// a gossip update and a status round (6 a second in the 3-backend lab at
// 500 ms).
func TestProbeWakes(t *testing.T) {
	up := probes.Tracker{State: probes.StateUp}
	down := probes.Tracker{State: probes.StateDown, Cause: probes.CauseRefused, Dead: true}
	silent := probes.Tracker{State: probes.StateDown, Cause: probes.CauseTimeout, SilentSince: time.Unix(100, 0)}
	for _, tc := range []struct {
		name       string
		prev, next probes.Tracker
		want       bool
	}{
		{"first result", probes.Tracker{}, up, true},
		{"up, passes again", up, up, false},
		{"up, first failure", up, probes.Tracker{State: probes.StateFalling, Streak: 1, Cause: probes.CauseTimeout}, true},
		{"falling, second failure", probes.Tracker{State: probes.StateFalling, Streak: 1}, probes.Tracker{State: probes.StateFalling, Streak: 2}, true},
		{"falls", probes.Tracker{State: probes.StateFalling, Streak: 2}, down, true},
		{"down, refused again", down, down, false},
		{"down, silent again", silent, silent, false},
		{"down, now dead", silent, probes.Tracker{State: probes.StateDown, Cause: probes.CauseTimeout, SilentSince: time.Unix(100, 0), Dead: true}, true},
		{"down, cause changes", down, probes.Tracker{State: probes.StateDown, Cause: probes.CauseTimeout, Dead: true}, true},
		{"down, first pass", down, probes.Tracker{State: probes.StateRising, Streak: 1}, true},
		{"up, answers only 401", up, probes.Tracker{State: probes.StateUp, AuthOnly: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := probeWakes(probes.Update{Previous: tc.prev, Tracker: tc.next}); got != tc.want {
				t.Errorf("probeWakes(%+v -> %+v) = %v, want %v", tc.prev, tc.next, got, tc.want)
			}
		})
	}
}

// TestSteadyProbesWaitForTimedPass: a probe result that changed nothing
// wakes no decision pass; the loop's next timed pass applies it (the
// views the peers see get the new latency).
func TestSteadyProbesWaitForTimedPass(t *testing.T) {
	r := idleRig(t, Options{})
	runLoop(t, r)
	c0 := quiet(t, r)
	up := probes.Tracker{State: probes.StateUp}
	r.d.onProbeUpdate(r.s, probes.Update{Previous: up, Tracker: up})
	time.Sleep(100 * time.Millisecond)
	if c := r.cl.views.Load(); c != c0 {
		t.Fatalf("%d decision passes after a steady probe result; want none", c-c0)
	}
	if !r.d.probesLater.Load() {
		t.Fatal("the steady result is not kept for the next timed pass")
	}
	r.d.onProbeUpdate(r.s, probes.Update{Previous: up, Tracker: probes.Tracker{State: probes.StateFalling, Streak: 1}})
	if !waitFor(func() bool { return r.cl.views.Load() > c0 }) {
		t.Fatal("no decision pass after a result that changed the tracker")
	}
}
