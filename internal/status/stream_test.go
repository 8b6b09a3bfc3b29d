package status

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStreamDeliversChangesAndCoalesces(t *testing.T) {
	sock := socketPath(t)
	pub := NewPublisher(sampleSnapshot(0))
	startServer(t, ServerOptions{Socket: sock, Source: pub, Coalesce: 100 * time.Millisecond})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := NewClient(sock).Subscribe(ctx)
	if u := next(t, ch, 5*time.Second); u.Kind != Connected {
		t.Fatalf("first update = %v, want connected", u.Kind)
	}
	u := next(t, ch, 5*time.Second)
	if u.Kind != SnapshotUpdate || u.Snapshot.Version != "v0.0" {
		t.Fatalf("second update = %v %+v, want the current snapshot", u.Kind, u.Snapshot)
	}

	// One change arrives promptly.
	changed := sampleSnapshot(1)
	changed.Backends[0].Views[0].State = "down"
	pub.Publish(changed)
	u = next(t, ch, time.Second)
	if u.Kind != SnapshotUpdate || u.Snapshot.Backends[0].Views[0].State != "down" {
		t.Fatalf("after a change: %v %+v, want the changed snapshot", u.Kind, u.Snapshot)
	}

	// A burst is coalesced: far fewer events than changes, the last one
	// being the final state.
	const burst = 500
	for i := 2; i < 2+burst; i++ {
		pub.Publish(sampleSnapshot(i))
	}
	final := sampleSnapshot(1 + burst).Version
	events := 0
	deadline := time.After(3 * time.Second)
	for {
		select {
		case u := <-ch:
			if u.Kind != SnapshotUpdate {
				t.Fatalf("during the burst: %v (%v)", u.Kind, u.Err)
			}
			events++
			if u.Snapshot.Version != final {
				continue
			}
			if events > 10 {
				t.Errorf("a burst of %d changes gave %d events; want them coalesced", burst, events)
			}
			t.Logf("burst of %d changes: %d events", burst, events)
			return
		case <-deadline:
			t.Fatalf("final snapshot %s not delivered within 3s (%d events)", final, events)
		}
	}
}

func TestStreamKeepAliveAndStopping(t *testing.T) {
	sock := socketPath(t)
	stop := startServer(t, ServerOptions{Socket: sock, Source: NewPublisher(sampleSnapshot(0)), KeepAlive: 50 * time.Millisecond})

	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("GET /v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	var lines []string
	readUntil := func(want string) {
		t.Helper()
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the stream (waiting for %q): %v; read so far %q", want, err, lines)
			}
			l = strings.TrimRight(l, "\r\n")
			lines = append(lines, l)
			if strings.HasPrefix(l, want) {
				return
			}
		}
	}
	readUntil("Content-Type: text/event-stream")
	readUntil("event: snapshot")
	readUntil(`data: {"schema":"epconsole.status/v1"`)
	readUntil(": keep-alive")
	readUntil(": keep-alive")
	go stop()
	readUntil("event: stopping")
	readUntil(`data: {"message":"the epconsole daemon is stopping; reconnect"}`)
}

func TestSubscribeReconnectsAfterRestart(t *testing.T) {
	sock := socketPath(t)
	stop := startServer(t, ServerOptions{Socket: sock, Source: NewPublisher(sampleSnapshot(1))})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := NewClient(sock).Subscribe(ctx)
	if u := next(t, ch, 5*time.Second); u.Kind != Connected {
		t.Fatalf("update = %v, want connected", u.Kind)
	}
	if u := next(t, ch, 5*time.Second); u.Kind != SnapshotUpdate || u.Snapshot.Version != "v0.1" {
		t.Fatalf("update = %v, want the first daemon's snapshot", u.Kind)
	}

	stop()
	u := next(t, ch, 5*time.Second)
	if u.Kind != Disconnected || !errors.Is(u.Err, ErrDaemonStopping) {
		t.Fatalf("after the stop: %v %v, want disconnected: daemon stopping", u.Kind, u.Err)
	}
	// While it is away, the client says why.
	u = next(t, ch, 5*time.Second)
	if u.Kind != Disconnected || !errors.Is(u.Err, ErrNoDaemon) {
		t.Fatalf("while away: %v %v, want disconnected: no daemon", u.Kind, u.Err)
	}
	time.Sleep(300 * time.Millisecond) // let the backoff grow

	startServer(t, ServerOptions{Socket: sock, Source: NewPublisher(sampleSnapshot(2))})
	// Backoff is capped at 2s.
	if u := next(t, ch, 3*time.Second); u.Kind != Connected {
		t.Fatalf("after the restart: %v %v, want connected", u.Kind, u.Err)
	}
	if u := next(t, ch, 5*time.Second); u.Kind != SnapshotUpdate || u.Snapshot.Version != "v0.2" {
		t.Fatalf("after the restart: %v, want the new daemon's snapshot", u.Kind)
	}

	cancel()
	for range ch { // closed once ctx ends
	}
}

// TestSubscribeNoticesSilentDaemon: a daemon that accepts but never
// writes (hung) is dropped after IdleTimeout.
func TestSubscribeNoticesSilentDaemon(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "hung.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Answer the headers, then fall silent.
			go func() {
				bufio.NewReader(c).ReadString('\n')
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"))
			}()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := NewClient(sock)
	c.IdleTimeout = 200 * time.Millisecond
	ch := c.Subscribe(ctx)
	if u := next(t, ch, 5*time.Second); u.Kind != Connected {
		t.Fatalf("update = %v, want connected", u.Kind)
	}
	u := next(t, ch, 2*time.Second)
	if u.Kind != Disconnected || !strings.Contains(u.Err.Error(), "sent nothing for 200ms") {
		t.Fatalf("silent daemon: %v %v, want disconnected for silence", u.Kind, u.Err)
	}
}
