package daemon

import (
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
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
	r.s.beatRetry.restart = time.Now().Add(-2 * time.Second)
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

// TestBeaterRetriedWhilePortBusy: the heartbeat port is held by another
// socket when the daemon starts; the start fails, the status names the
// port and the process holding it, the start is retried with a growing
// wait, and once the port is free the beat loop runs. (Before, a beat
// loop that never started was never tried again.) Real sockets on
// 127.0.6.0/24, the loop in-process.
func TestBeaterRetriedWhilePortBusy(t *testing.T) {
	r := newRig(t, Options{})
	bind := netip.MustParseAddrPort("127.0.6.21:17961")
	busy, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(bind))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var started []*heartbeat.Beater
	r.d.start.heartbeat = func(ctx context.Context, hc heartbeat.Config) (beatLoop, error) {
		hc.Bind, hc.InProcess = bind, true
		for i := range hc.Peers {
			hc.Peers[i].Addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.6.22"), bind.Port())
		}
		b, err := heartbeat.Start(ctx, hc)
		if err != nil {
			return nil, err
		}
		started = append(started, b)
		return b, nil
	}
	t.Cleanup(func() {
		for _, b := range started {
			b.Close()
		}
	})
	r.s.beater.Close()
	r.d.startBeater(r.s)
	if r.s.beater != nil || r.s.beatErr == nil {
		t.Fatalf("start on a busy port: beater %v, error %v", r.s.beater, r.s.beatErr)
	}
	r.d.updateStatus(r.s)
	st := r.d.Status()
	t.Logf("status: running %v, error %q", st.HeartbeatRunning, st.HeartbeatError)
	if st.HeartbeatRunning || !containsAll(st.HeartbeatError, "17961", "held by pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("status heartbeat error %q: want the port and this process as its holder", st.HeartbeatError)
	}
	if r.d.restartBeater(r.s) {
		t.Fatal("retried before its wait")
	}
	waits := []time.Duration{time.Until(r.s.beatRetry.at)}
	for range 3 {
		r.s.beatRetry.at = time.Now().Add(-time.Millisecond)
		if r.d.restartBeater(r.s) {
			t.Fatal("started on a busy port")
		}
		waits = append(waits, time.Until(r.s.beatRetry.at))
	}
	t.Logf("waits between tries: %v (failed starts %d)", waits, r.s.beatRetry.failures)
	if r.s.beatRetry.failures != 4 || waits[3] <= waits[0] || waits[3] > beatRetryMax {
		t.Errorf("waits %v after %d failures: want growing, at most %v", waits, r.s.beatRetry.failures, beatRetryMax)
	}
	busy.Close()
	deadline := time.Now().Add(beatRetryMax + time.Second)
	for !r.d.restartBeater(r.s) {
		if time.Now().After(deadline) {
			t.Fatalf("the beat loop did not start within %v of the port being freed: %v", beatRetryMax+time.Second, r.s.beatErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.d.updateStatus(r.s)
	if st := r.d.Status(); !st.HeartbeatRunning || st.HeartbeatError != "" || r.s.beatRetry.failures != 0 {
		t.Errorf("after recovery: running %v, error %q, failures %d", st.HeartbeatRunning, st.HeartbeatError, r.s.beatRetry.failures)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
