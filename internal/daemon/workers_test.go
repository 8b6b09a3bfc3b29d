package daemon

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster/heartbeat"
)

// TestRestartBeater: a beat loop that ended is started again, at most
// once a second; one that runs is left alone; when the restart fails the
// old (stale) loop is kept for the next try.
func TestRestartBeater(t *testing.T) {
	r := newRig(t, Options{})
	first := r.s.beater
	if r.d.restartBeater(r.s) || len(r.beats) != 1 {
		t.Fatal("a running beat loop was restarted")
	}
	close(r.beats[0].done)
	if !r.d.restartBeater(r.s) || len(r.beats) != 2 || r.s.beater == first {
		t.Fatalf("an ended beat loop was not restarted (%d started)", len(r.beats))
	}
	close(r.beats[1].done)
	if r.d.restartBeater(r.s) || len(r.beats) != 2 {
		t.Error("restarted twice within a second")
	}
	// The next try fails: the ended loop is kept, and the status says so.
	r.s.beaterRetry = time.Now().Add(-2 * time.Second)
	second := r.s.beater
	r.d.start.heartbeat = func(context.Context, heartbeat.Config) (beatLoop, error) { return nil, errFake }
	if r.d.restartBeater(r.s) || r.s.beater != second || r.s.beatErr == nil {
		t.Errorf("failed restart: beater kept %v, error %v; want the old one kept and the error noted", r.s.beater == second, r.s.beatErr)
	}
	r.d.updateStatus(r.s)
	if st := r.d.Status(); st.HeartbeatRunning || st.HeartbeatError == "" {
		t.Errorf("status heartbeat running %v error %q, want not running with the error", st.HeartbeatRunning, st.HeartbeatError)
	}
	if _, ok := r.d.Heartbeat(); !ok {
		t.Error("Heartbeat() false while a (stale) beat loop is kept")
	}
}

// TestNoHeartbeat: with Options.NoHeartbeat no beat loop starts, and
// liveness comes from the gossip view alone.
func TestNoHeartbeat(t *testing.T) {
	r := newRig(t, Options{NoHeartbeat: true})
	if r.s.beater != nil || len(r.beats) != 0 || r.s.beatErr == nil {
		t.Fatalf("beater %v, %d started, error %v: want none and the reason", r.s.beater, len(r.beats), r.s.beatErr)
	}
	if _, ok := r.d.Heartbeat(); ok {
		t.Error("Heartbeat() true without a beat loop")
	}
	r.cl.peer("lb2", 50, true, true, "lb2", 3)
	v, ok := r.d.ClusterView()
	if m, found := v.Member("lb2"); !ok || !found || !m.Fresh || m.Meta.Owner != "lb2" {
		t.Errorf("ClusterView %v: lb2 %+v, want the gossip view", ok, m)
	}
}

// TestAdopt: a VIP address an earlier process left is adopted (held until
// the election says otherwise); none found, nothing held.
func TestAdopt(t *testing.T) {
	for _, found := range []bool{false, true} {
		r := newRig(t, Options{})
		if found {
			r.vip.on["eth0 198.18.5.100"] = true
		}
		r.d.adopt(r.s)
		if r.s.holding != found || (found && !slices.Equal(r.s.held, vipPlaces(r.s.cfg))) || (!found && len(r.s.held) != 0) {
			t.Errorf("address found %v: holding %v, held %v", found, r.s.holding, r.s.held)
		}
		if got := r.log.get(); len(got) != 0 {
			t.Errorf("adopting changed something: %q", got)
		}
	}
}
