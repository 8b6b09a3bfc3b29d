package daemon

import (
	"context"
	"sync"
	"testing"

	"github.com/epconsole/epconsole/cluster/heartbeat"
)

// viewBeat is a beat loop whose view the test sets (fakeBeat's hears
// nobody).
type viewBeat struct {
	fakeBeat
	mu sync.Mutex
	v  heartbeat.View
}

func (b *viewBeat) View() heartbeat.View {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.v
}

func (b *viewBeat) set(v heartbeat.View) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.v = v
}

// useViewBeats makes the rig start viewBeats (each with view v until the
// test sets another) and starts one now.
func useViewBeats(r *rig, v func() heartbeat.View) *[]*viewBeat {
	var started []*viewBeat
	r.d.start.heartbeat = func(_ context.Context, hc heartbeat.Config) (beatLoop, error) {
		b := &viewBeat{fakeBeat: fakeBeat{log: r.log, cfg: hc, changes: make(chan struct{}), done: make(chan struct{})}, v: v()}
		started = append(started, b)
		r.log.add("beat.Start %s", hc.Bind)
		return b, nil
	}
	r.d.startBeater(r.s)
	r.log.reset()
	return &started
}

// reported is a fresh report of a beat loop that hears the named peers
// (flags by name).
func reported(flags map[string]heartbeat.Flags, alive ...string) heartbeat.View {
	v := heartbeat.View{At: heartbeat.MonoNow(), Beating: true, Majority: true, Threshold: 20e6, SlowThreshold: 60e6}
	for _, p := range []string{"lb2", "lb3"} {
		pv := heartbeat.PeerView{Name: p}
		for _, a := range alive {
			if a == p {
				pv.Alive, pv.Seen, pv.LastBeat, pv.Flags = true, true, heartbeat.MonoNow(), flags[p]
			}
		}
		v.Peers = append(v.Peers, pv)
	}
	return v
}

// TestDepartingPeerCountsForNothing: a follower that hears the departing
// owner (its beats say leaving) but not the owner's successor makes no
// claim on the departing node's account: no second move after a handoff.
func TestDepartingPeerCountsForNothing(t *testing.T) {
	for _, how := range []string{"metadata", "beats"} {
		t.Run(how, func(t *testing.T) {
			r := newRig(t, Options{})
			r.eligible()
			var flags map[string]heartbeat.Flags
			if how == "beats" {
				flags = map[string]heartbeat.Flags{"lb2": heartbeat.FlagLeaving}
			}
			useViewBeats(r, func() heartbeat.View { return reported(flags, "lb2") })
			// lb2 holds the VIP and hands it to lb3, which this node
			// does not hear.
			r.cl.peer("lb2", 200, true, false, "lb2", 5)
			r.cl.peer("lb3", 150, false, true, "", 5)
			if how == "metadata" {
				m := r.cl.others["lb2"]
				m.Meta.Leaving, m.Meta.HandoffTo = true, "lb3"
				r.cl.others["lb2"] = m
			}
			for range 3 {
				r.d.decide(r.s)
			}
			if i := r.log.index("vip.Add"); i >= 0 || r.s.holding {
				t.Fatalf("lb1 claimed the VIP counting the departing lb2 toward its majority (%s); calls %v", r.s.last.Reason, r.log.get())
			}
			if r.s.last.Quorum.Have != 1 {
				t.Errorf("quorum = %s; want the departing peer not counted", r.s.last.Quorum)
			}
		})
	}
}

// TestDepartingOwnerNamesSuccessor: a departing owner publishes the peer
// it hands the VIP to, so that every peer elects that one.
func TestDepartingOwnerNamesSuccessor(t *testing.T) {
	r := newRig(t, Options{})
	r.eligible()
	r.hold(5)
	r.cl.peer("lb2", 50, true, true, "lb1", 5)
	r.cl.peer("lb3", 60, true, true, "lb1", 5)
	r.s.leaving = true
	r.d.decide(r.s)
	r.d.decide(r.s)
	if got := r.cl.last().HandoffTo; got != "lb3" {
		t.Fatalf("departing owner publishes HandoffTo %q; want lb3 (the elected successor); reason %s", got, r.s.last.Reason)
	}
	if !r.s.holding {
		t.Fatal("departing owner released before its successor claimed")
	}
}
