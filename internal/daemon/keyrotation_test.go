package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster/heartbeat"
)

// secondGossipKey is another valid key (keygen's format).
const secondGossipKey = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=\n"

// TestKeyRotationKeepsOwner: a reload that changes the keys restarts the
// beat loop; the owner stays live across the restart (the old loop's
// last view stands until the new one hears the peers, for at most one
// detection time) instead of releasing the VIP until the new loop's first
// report; a new loop that never hears anyone does not keep it beyond that.
func TestKeyRotationKeepsOwner(t *testing.T) {
	for _, newHears := range []bool{true, false} {
		name := "the new loop hears the peers"
		if !newHears {
			name = "the new loop hears nobody: released after the bridge"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, Options{})
			r.eligible()
			first := true
			beats := useViewBeats(r, func() heartbeat.View {
				if first {
					first = false
					return reported(nil, "lb2", "lb3")
				}
				// A started loop before its first report.
				return heartbeat.View{Stale: true, Threshold: 20 * time.Millisecond, SlowThreshold: 60 * time.Millisecond}
			})
			r.hold(5)
			r.cl.peer("lb2", 50, true, true, "lb1", 5)
			r.cl.peer("lb3", 50, true, true, "lb1", 5)
			r.d.decide(r.s)
			if !r.s.holding {
				t.Fatalf("not holding before the reload: %s", r.s.last.Reason)
			}
			// Key rotation, step 1: a second key added.
			dir := filepath.Dir(r.d.opts.ConfigPath)
			if err := os.WriteFile(filepath.Join(dir, "k"), []byte(testGossipKey+secondGossipKey), 0o600); err != nil {
				t.Fatal(err)
			}
			r.log.reset()
			r.d.reload(r.s)
			if len(*beats) != 2 {
				t.Fatalf("%d beat loops started; want the loop restarted by the key change", len(*beats))
			}
			calls := r.log.get()
			start := r.log.index("beat.Start")
			if start < 0 || start+1 >= len(calls) || !strings.HasPrefix(calls[start+1], "beat.Refresh") {
				t.Errorf("the new loop is not refreshed at once (it beats only after a refresh): calls %v", calls)
			}
			if i := r.log.index("beat.Refresh owner=lb1 epoch=5 flags=holding,restarting"); i < 0 || i > r.log.index("beat.Close") {
				t.Errorf("the old loop did not announce the restart in its beats before it closed: calls %v", calls)
			}
			nb := (*beats)[1]
			// Before the new loop's first report.
			for range 3 {
				r.d.decide(r.s)
			}
			if !r.s.holding || r.log.index("vip.Remove") >= 0 {
				t.Fatalf("the owner released the VIP across the beat loop's restart: %s; calls %v", r.s.last.Reason, r.log.get())
			}
			// Its first report: it hears itself, not yet the peers.
			nb.set(heartbeat.View{At: heartbeat.MonoNow(), Beating: true, Threshold: 20 * time.Millisecond, SlowThreshold: 60 * time.Millisecond,
				Peers: []heartbeat.PeerView{{Name: "lb2"}, {Name: "lb3"}}})
			r.d.decide(r.s)
			if !r.s.holding {
				t.Fatalf("the owner released the VIP at the new loop's first report: %s", r.s.last.Reason)
			}
			if newHears {
				nb.set(reported(nil, "lb2", "lb3"))
			}
			time.Sleep(100 * time.Millisecond) // past the bridge
			r.d.decide(r.s)
			if r.s.holding != newHears {
				t.Fatalf("holding %v after the bridge, want %v: %s", r.s.holding, newHears, r.s.last.Reason)
			}
		})
	}
}

// TestPeerRestartingStaysLive: a peer whose last beat announced a restart
// of its beat loop stays live without beats for up to RestartGrace; one
// without the announcement does not (the control).
func TestPeerRestartingStaysLive(t *testing.T) {
	for _, announced := range []bool{true, false} {
		var flags heartbeat.Flags
		if announced {
			flags = heartbeat.FlagRestarting
		}
		hv := heartbeat.View{At: heartbeat.MonoNow(), Beating: true, Peers: []heartbeat.PeerView{
			{Name: "lb2", Seen: true, LastBeat: heartbeat.MonoNow().Add(-50 * time.Millisecond), Flags: flags}}}
		if got := liveness(hv, "lb1", nil)["lb2"].Fresh; got != announced {
			t.Errorf("announced %v: lb2 fresh %v 50 ms after its last beat; want %v", announced, got, announced)
		}
		hv.Peers[0].LastBeat = heartbeat.MonoNow().Add(-RestartGrace - time.Millisecond)
		if liveness(hv, "lb1", nil)["lb2"].Fresh {
			t.Errorf("announced %v: lb2 fresh past RestartGrace", announced)
		}
	}
}
