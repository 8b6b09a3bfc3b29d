package tui_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/teatest"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui"
)

// daemonSide carries out the operator's actions as the daemon would: it
// changes the published snapshot. It reports each action on acted.
type daemonSide struct {
	mu    sync.Mutex
	pub   *status.Publisher
	acted chan tui.Action
}

func (d *daemonSide) Drain(_ context.Context, backend string) error {
	return d.setDrained(tui.Drain, backend, true)
}

func (d *daemonSide) Undrain(_ context.Context, backend string) error {
	return d.setDrained(tui.Undrain, backend, false)
}

func (d *daemonSide) Handoff(_ context.Context, peer string) error {
	d.acted <- tui.Action{Kind: tui.Handoff, Target: peer}
	return status.Conflictf("%s is not eligible", peer)
}

func (d *daemonSide) setDrained(k tui.ActionKind, backend string, drained bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.pub.Snapshot()
	s.Backends = append([]status.Backend(nil), s.Backends...)
	found := false
	for i := range s.Backends {
		if s.Backends[i].Name == backend {
			s.Backends[i].Drained = drained
			found = true
		}
	}
	if !found {
		return status.NotFoundf("no backend %q", backend)
	}
	d.pub.Publish(s)
	d.acted <- tui.Action{Kind: k, Target: backend}
	return nil
}

// serve runs a status server on sock until the returned stop is called.
func serve(t *testing.T, sock string, pub *status.Publisher, acts status.Actions) (stop func()) {
	t.Helper()
	srv, err := status.NewServer(status.ServerOptions{Socket: sock, Source: pub, Actions: acts, Coalesce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("status server: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestLiveDaemon runs the program against a real status server and
// client on a unix socket: the stream's snapshots reach the screen, a
// confirmed drain reaches the daemon and comes back in the next snapshot,
// a refused handoff shows the daemon's reason, and a daemon that goes away
// shows "daemon unreachable — reconnecting" until it is back.
func TestLiveDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "status.sock")
	pub := status.NewPublisher(*loadSnapshot(t, "healthy"))
	d := &daemonSide{pub: pub, acted: make(chan tui.Action, 4)}
	stop := serve(t, sock, pub, d)

	client := status.NewClient(sock)
	t.Cleanup(client.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	opts := options(client, client)
	m := tui.New(opts).WithContext(ctx)
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(80, 24))
	waitFor(t, tm, "owner lb1 since")

	// A new snapshot on the stream.
	pub.Publish(*loadSnapshot(t, "split-view"))
	waitFor(t, tm, "split view: cp2 down on lb2")

	// Drain cp2, confirmed: the daemon gets it, the next snapshot shows it.
	typeKeys(tm, "2", "j", "d")
	waitFor(t, tm, "Really drain backend cp2")
	typeKeys(tm, "y")
	select {
	case a := <-d.acted:
		if a != (tui.Action{Kind: tui.Drain, Target: "cp2"}) {
			t.Fatalf("daemon got %+v", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the drain never reached the daemon")
	}
	waitFor(t, tm, "drained cp2")

	// A handoff the daemon refuses: its reason is shown.
	typeKeys(tm, "6", "j", "h")
	waitFor(t, tm, "Really hand the VIP from lb1 to lb2")
	typeKeys(tm, "y")
	waitFor(t, tm, "lb2 is not eligible")

	// The daemon goes away, then comes back.
	stop()
	waitFor(t, tm, "daemon unreachable — reconnecting")
	pub2 := status.NewPublisher(*loadSnapshot(t, "no-owner"))
	serve(t, sock, pub2, d)
	typeKeys(tm, "1")
	waitFor(t, tm, "has no owner")

	final := finish(t, tm, 80, 24)
	fm := tm.FinalModel(t).(tui.Model)
	if fm.Conn() != tui.Live || fm.Snapshot().Election.Reason != pub2.Snapshot().Election.Reason {
		t.Errorf("conn %v after the daemon came back; screen:\n%s", fm.Conn(), final)
	}
}
