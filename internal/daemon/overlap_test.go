package daemon

import (
	"testing"

	"github.com/epconsole/epconsole/cluster/heartbeat"
)

// TestOthersHolding: a live peer whose beats say it holds the VIP; a dead
// one, or a stale view, counts for nothing.
func TestOthersHolding(t *testing.T) {
	holding := heartbeat.PeerView{Name: "lb2", Alive: true, Flags: heartbeat.FlagHolding}
	for _, tc := range []struct {
		name string
		hv   heartbeat.View
		want bool
	}{
		{"a live peer holds", heartbeat.View{Peers: []heartbeat.PeerView{{Name: "lb3", Alive: true}, holding}}, true},
		{"no peer holds", heartbeat.View{Peers: []heartbeat.PeerView{{Name: "lb2", Alive: true}, {Name: "lb3", Alive: true}}}, false},
		{"the holder is dead", heartbeat.View{Peers: []heartbeat.PeerView{{Name: "lb2", Flags: heartbeat.FlagHolding}}}, false},
		{"stale view", heartbeat.View{Stale: true, Peers: []heartbeat.PeerView{holding}}, false},
	} {
		if got := othersHolding(tc.hv); got != tc.want {
			t.Errorf("%s: othersHolding = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAnnounceAfterOverlap: the holder announces the VIP again when the
// last other holder lets go, once; not while another still holds it, not
// when it does not hold the VIP itself, not during the startup wait or a
// graceful stop.
func TestAnnounceAfterOverlap(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(r *rig)
		before bool // another held the VIP at the last decision
		now    bool // another holds it now
		want   bool // announced again
	}{
		{"the previous holder let go", func(r *rig) { r.hold(5) }, true, false, true},
		{"it still holds", func(r *rig) { r.hold(5) }, true, true, false},
		{"nobody held it beside us", func(r *rig) { r.hold(5) }, false, false, false},
		{"we do not hold it", func(*rig) {}, true, false, false},
		{"startup wait", func(r *rig) { r.hold(5); r.s.waiting = true }, true, false, false},
		{"graceful stop", func(r *rig) { r.hold(5); r.s.leaving = true }, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Options{})
			r.s.waiting = false
			tc.setup(r)
			r.s.othersHeld = tc.before
			n := len(r.log.get())
			r.d.announceAfterOverlap(r.s, tc.now)
			var adds int
			for _, c := range r.log.get()[n:] {
				if c == "vip.Add eth0 198.18.5.100" {
					adds++
				}
			}
			if got := adds > 0; got != tc.want || adds > 1 {
				t.Errorf("announced %d times, want %v (calls %v)", adds, tc.want, r.log.get())
			}
			if r.s.othersHeld != tc.now {
				t.Errorf("othersHeld = %v after the decision, want %v", r.s.othersHeld, tc.now)
			}
			// A second decision with nothing changed announces nothing more.
			n = len(r.log.get())
			r.d.announceAfterOverlap(r.s, tc.now)
			if len(r.log.get()) != n {
				t.Errorf("a second decision with nothing changed called %v", r.log.get()[n:])
			}
		})
	}
}
