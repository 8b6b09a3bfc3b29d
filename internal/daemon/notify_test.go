package daemon

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/probes"
)

// notifySocket is a NOTIFY_SOCKET the test listens on: every datagram the
// daemon sends, one notification line at a time.
type notifySocket struct {
	conn *net.UnixConn
	got  chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	n := &notifySocket{conn: conn, got: make(chan string, 4096)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(buf[:k]), "\n") {
				n.got <- line
			}
		}
	}()
	return n
}

// collect returns what arrived within d.
func (n *notifySocket) collect(d time.Duration) []string {
	var out []string
	deadline := time.After(d)
	for {
		select {
		case m := <-n.got:
			out = append(out, m)
		case <-deadline:
			return out
		}
	}
}

// waitFor waits (at most d) for the notification want and returns what
// came before it; ok is false when it never came.
func (n *notifySocket) waitFor(want string, d time.Duration) (before []string, ok bool) {
	deadline := time.After(d)
	for {
		select {
		case m := <-n.got:
			if m == want {
				return before, true
			}
			before = append(before, m)
		case <-deadline:
			return before, false
		}
	}
}

func count(msgs []string, want string) int {
	k := 0
	for _, m := range msgs {
		if m == want {
			k++
		}
	}
	return k
}

// stallingDatapath is the fake datapath with a gate: while stall is set,
// Reconcile blocks until release is closed (a decision loop stuck in the
// kernel).
type stallingDatapath struct {
	*fakeDatapath
	stall   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (f *stallingDatapath) Reconcile(ctx context.Context, want dataplane.Desired) (dataplane.Result, error) {
	if f.stall.Load() {
		close(f.entered)
		<-f.release
	}
	return f.fakeDatapath.Reconcile(ctx, want)
}

// TestNotifyReadyWatchdog runs the decision loop on the fakes with a real
// NOTIFY_SOCKET: READY=1 comes only after the first datapath reconcile;
// WATCHDOG=1 comes every half WATCHDOG_USEC; none comes while the loop is
// stalled in a reconcile; a reload is framed by RELOADING=1 and READY=1;
// STATUS= names the owner and the healthy backends.
func TestNotifyReadyWatchdog(t *testing.T) {
	const watchdog = 200 * time.Millisecond // pings every 100 ms
	sock := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", "")
	reloadCh := make(chan struct{}, 1)
	r := newRig(t, Options{Reload: reloadCh})
	r.d.sd = newSDState()
	if r.d.sd.watchdog != watchdog {
		t.Fatalf("watchdog interval read from WATCHDOG_USEC = %v, want %v", r.d.sd.watchdog, watchdog)
	}
	dp := &stallingDatapath{fakeDatapath: r.dp, entered: make(chan struct{}), release: make(chan struct{})}
	r.s.dp = dp
	// No probe result yet: the first reconcile waits (up to its bound).
	r.mon().set(backend("cp1", probes.StateUnknown, noResult), backend("cp2", probes.StateUnknown, noResult))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.d.loop(ctx, r.s) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)

	// Before any probe result: pings, a starting STATUS=, no READY=1.
	early := sock.collect(500 * time.Millisecond)
	if k := count(early, "READY=1"); k != 0 {
		t.Fatalf("READY=1 sent before the first reconcile: %q", early)
	}
	if r.log.index("dp.Reconcile") >= 0 {
		t.Fatalf("the datapath was reconciled before any probe result: %v", r.log.get())
	}
	if !hasPrefix(early, "STATUS=starting") {
		t.Errorf("no STATUS=starting... before READY=1: %q", early)
	}

	// The probes answer: the first reconcile, then READY=1.
	r.mon().set(backend("cp1", probes.StateUp, passed), backend("cp2", probes.StateUp, passed))
	r.s.probeCh <- struct{}{}
	before, ok := sock.waitFor("READY=1", 3*time.Second)
	if !ok {
		t.Fatalf("no READY=1 within 3s of the probe results; got %q", before)
	}
	if r.log.index("dp.Reconcile") < 0 {
		t.Fatalf("READY=1 before the datapath was reconciled: %v", r.log.get())
	}

	// The watchdog rate: every 100 ms, so 10 in a second (±50 %).
	window := sock.collect(time.Second)
	if k := count(window, "WATCHDOG=1"); k < 5 || k > 15 {
		t.Errorf("WATCHDOG=1 %d times in 1s with WATCHDOG_USEC=200ms, want 10 (5..15): %q", k, window)
	}
	if !hasPrefix(window, "STATUS=") && !hasPrefix(before, "STATUS=owner") {
		t.Errorf("no STATUS=owner ... after the first reconcile: %q %q", before, window)
	}

	// A reload: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again.
	reloadCh <- struct{}{}
	before, ok = sock.waitFor("READY=1", 3*time.Second)
	if !ok || count(before, "RELOADING=1") != 1 || !hasPrefix(before, "MONOTONIC_USEC=") {
		t.Errorf("reload: want RELOADING=1 and MONOTONIC_USEC= then READY=1, got %q (READY=1 seen: %v)", before, ok)
	}

	// The loop stalls in a reconcile (cp2 goes down): no WATCHDOG=1 for
	// twice the watchdog interval.
	dp.stall.Store(true)
	r.mon().set(backend("cp1", probes.StateUp, passed), backend("cp2", probes.StateDown, refused))
	r.s.probeCh <- struct{}{}
	select {
	case <-dp.entered:
	case <-time.After(3 * time.Second):
		t.Fatal("the reconcile with cp2 down never started")
	}
	for len(sock.got) > 0 {
		<-sock.got
	}
	stalled := sock.collect(2 * watchdog)
	if k := count(stalled, "WATCHDOG=1"); k != 0 {
		t.Errorf("WATCHDOG=1 sent %d times while the decision loop was stalled: %q", k, stalled)
	}

	// Control: released, the loop pings again.
	dp.stall.Store(false)
	close(dp.release)
	if _, ok := sock.waitFor("WATCHDOG=1", time.Second); !ok {
		t.Error("no WATCHDOG=1 within 1s of the loop running again")
	}
	stop()
	after := sock.collect(2 * watchdog)
	if k := count(after, "WATCHDOG=1"); k != 0 {
		t.Errorf("WATCHDOG=1 after the loop ended: %q", after)
	}
}

func hasPrefix(msgs []string, p string) bool {
	for _, m := range msgs {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}

// TestNotifyOffWithoutSocket: without NOTIFY_SOCKET nothing is sent (the
// daemon run by hand or by another supervisor).
func TestNotifyOffWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	sd := newSDState()
	if _, ok := sd.n.(noNotify); !ok || sd.watchdog != 0 {
		t.Errorf("without NOTIFY_SOCKET: notifier %T, watchdog %v; want noNotify, 0", sd.n, sd.watchdog)
	}
}

// TestSDStatus: the STATUS= line names the owner and the healthy backends.
func TestSDStatus(t *testing.T) {
	r := newRig(t, Options{})
	if got := sdStatus(r.s); !strings.HasPrefix(got, "starting") {
		t.Errorf("before the first reconcile: %q", got)
	}
	r.eligible()
	r.s.programmed["cp2"] = false
	r.hold(3)
	if got, want := sdStatus(r.s), "owner lb1 (this node); healthy backends 1/2: cp1"; got != want {
		t.Errorf("holding: %q, want %q", got, want)
	}
	r.s.holding, r.s.last.Owner = false, ""
	r.s.programmed["cp1"] = false
	if got, want := sdStatus(r.s), "owner none; healthy backends 0/2: none"; got != want {
		t.Errorf("no owner: %q, want %q", got, want)
	}
}
