package status

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// peerDaemon is one peer's status server for the failover tests.
type peerDaemon struct {
	name string
	sock string
	acts *recordingActions
	stop func()
}

func (p *peerDaemon) start(t *testing.T, n int) {
	t.Helper()
	s := sampleSnapshot(n)
	s.Node = p.name
	p.stop = startServer(t, ServerOptions{Socket: p.sock, Source: NewPublisher(s), Actions: p.acts, Coalesce: 5 * time.Millisecond})
}

func peerDaemons(t *testing.T, n int) []*peerDaemon {
	dir := t.TempDir()
	var out []*peerDaemon
	for i := 1; i <= n; i++ {
		out = append(out, &peerDaemon{name: fmt.Sprintf("lb%d", i), sock: filepath.Join(dir, fmt.Sprintf("lb%d.sock", i)), acts: &recordingActions{}})
	}
	return out
}

// until reads updates until want accepts one, failing after within.
func until(t *testing.T, ch <-chan Update, within time.Duration, what string, want func(Update) bool) Update {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no update within %v: %s", within, what)
		}
		u := next(t, ch, left)
		if want(u) {
			return u
		}
	}
}

func routeIs(u Update, via string, unreachable ...string) bool {
	return u.Route != nil && u.Route.Via == via && slices.Equal(u.Route.Unreachable, unreachable)
}

// TestFailoverFollowsAKilledOwner: three real status servers; the stream
// is on lb1; lb1 stops and the Failover is on lb2 at once, saying lb1 is
// unreachable, with actions going to lb2; lb1 comes back and the
// Failover stays on lb2 but says lb1 answers again; Return goes back.
func TestFailoverFollowsAKilledOwner(t *testing.T) {
	ps := peerDaemons(t, 3)
	var eps []Endpoint
	for i, p := range ps {
		p.start(t, i+1)
		eps = append(eps, Endpoint{Name: p.name, Socket: p.sock})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f, err := DialFailover(ctx, eps)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.ProbeInterval = 50 * time.Millisecond
	ch := f.Subscribe(ctx)
	u := until(t, ch, 5*time.Second, "lb1's snapshot", func(u Update) bool { return u.Snapshot != nil })
	if u.Snapshot.Node != "lb1" || !routeIs(u, "lb1") || u.Route.FellOver() {
		t.Fatalf("first snapshot from %s via %+v, want lb1", u.Snapshot.Node, u.Route)
	}

	time.Sleep(200 * time.Millisecond) // a stream that has served a while
	ps[0].stop()
	stopped := time.Now()
	u = until(t, ch, 5*time.Second, "lb2's snapshot", func(u Update) bool { return u.Snapshot != nil })
	took := time.Since(stopped)
	if u.Snapshot.Node != "lb2" || !routeIs(u, "lb2", "lb1") || !u.Route.FellOver() {
		t.Fatalf("after lb1 stopped: snapshot of %s via %+v, want lb2 with lb1 unreachable", u.Snapshot.Node, u.Route)
	}
	t.Logf("lb1 stopped -> lb2's snapshot in %v", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("falling over took %v, want < 1s", took)
	}
	if err := f.Drain(ctx, "cp1"); err != nil {
		t.Fatal(err)
	}
	if len(ps[1].acts.calls) != 1 || len(ps[0].acts.calls) != 0 {
		t.Errorf("drain went to lb1 %v / lb2 %v, want lb2", ps[0].acts.calls, ps[1].acts.calls)
	}

	// lb1 back: the Failover stays on lb2 and says so.
	ps[0].start(t, 4)
	u = until(t, ch, 5*time.Second, "lb1 answering again", func(u Update) bool { return u.Route != nil && len(u.Route.Unreachable) == 0 })
	if !routeIs(u, "lb2") || !u.Route.FellOver() || f.Current().Name != "lb2" {
		t.Fatalf("after lb1 came back: %+v, current %+v; want to stay on lb2", u.Route, f.Current())
	}
	f.Return()
	u = until(t, ch, 5*time.Second, "back on lb1", func(u Update) bool { return u.Snapshot != nil && u.Snapshot.Node == "lb1" })
	if !routeIs(u, "lb1") || u.Route.FellOver() {
		t.Fatalf("after Return: %+v", u.Route)
	}

	// All gone: Disconnected with the first one's error; then lb3 alone.
	for _, p := range ps {
		p.stop()
	}
	u = until(t, ch, 5*time.Second, "disconnected", func(u Update) bool { return u.Kind == Disconnected && errors.Is(u.Err, ErrNoDaemon) })
	t.Logf("none answers: %v", u.Err)
	ps[2].start(t, 5)
	u = until(t, ch, 5*time.Second, "lb3's snapshot", func(u Update) bool { return u.Snapshot != nil })
	if u.Snapshot.Node != "lb3" || !routeIs(u, "lb3", "lb1", "lb2") {
		t.Fatalf("snapshot of %s via %+v, want lb3 with lb1 and lb2 unreachable", u.Snapshot.Node, u.Route)
	}
	cancel()
	for range ch {
	}
}

// TestDialFailover: the first daemon that answers is taken; unnamed
// endpoints are named after their snapshot's node; none answering is the
// first one's error.
func TestDialFailover(t *testing.T) {
	ps := peerDaemons(t, 2)
	ps[1].start(t, 1)
	eps := []Endpoint{{Socket: ps[0].sock}, {Socket: ps[1].sock}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := DialFailover(ctx, eps)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Current().Socket != ps[1].sock {
		t.Fatalf("current %+v, want the second", f.Current())
	}
	sctx, stop := context.WithCancel(ctx)
	ch := f.Subscribe(sctx)
	u := until(t, ch, 5*time.Second, "a snapshot", func(u Update) bool { return u.Snapshot != nil })
	if u.Route.Via != "lb2" || !slices.Equal(u.Route.Unreachable, []string{ps[0].sock}) {
		t.Errorf("route %+v, want via lb2 (named from its snapshot), the first socket unreachable", u.Route)
	}
	stop()
	for range ch {
	}

	ps[1].stop()
	if _, err := DialFailover(ctx, eps); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("none answering: %v, want ErrNoDaemon", err)
	}
	if _, err := NewFailover(nil); err == nil {
		t.Error("a failover of no socket was accepted")
	}
}
