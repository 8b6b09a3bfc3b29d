package status

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

// memHistory is a History in memory.
type memHistory struct {
	mu      sync.Mutex
	evs     []Event
	changed chan struct{}
}

func (h *memHistory) add(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.evs = append(h.evs, e)
	if h.changed != nil {
		close(h.changed)
		h.changed = nil
	}
}

func (h *memHistory) EventsAfter(seq uint64) ([]Event, uint64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.changed == nil {
		h.changed = make(chan struct{})
	}
	n := uint64(len(h.evs))
	return append([]Event(nil), h.evs[min(seq, n):]...), n, h.changed
}

func TestEventsEndpoint(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	h := &memHistory{evs: []Event{
		{Time: t0, Kind: "started", Subject: "lb1", Message: "version 1"},
		{Time: t0.Add(time.Minute), Kind: "vip-acquired", Subject: "192.0.2.10", Message: "elected: lowest priority"},
		{Time: t0.Add(2 * time.Minute), Kind: "backend-down", Subject: "cp2", Message: "failed: readyz 500"},
	}}
	sock := socketPath(t)
	stop := startServer(t, ServerOptions{Socket: sock, Source: NewPublisher(sampleSnapshot(0)), History: h, KeepAlive: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := NewClient(sock)

	all, err := c.Events(ctx, time.Time{})
	if err != nil || !reflect.DeepEqual(all, h.evs) {
		t.Fatalf("Events() = %v, %v; want %v", all, err, h.evs)
	}
	some, err := c.Events(ctx, t0.Add(time.Minute))
	if err != nil || len(some) != 2 || some[0].Kind != "vip-acquired" {
		t.Errorf("Events(since +1m) = %v, %v; want the last two", some, err)
	}

	// Follow: the kept events since, then the new one, then the stop.
	got := make(chan Event, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.FollowEvents(ctx, t0.Add(2*time.Minute), func(e Event) error { got <- e; return nil })
	}()
	if e := <-got; e.Kind != "backend-down" {
		t.Errorf("first followed event = %+v, want backend-down", e)
	}
	newer := Event{Time: t0.Add(3 * time.Minute), Kind: "vip-released", Subject: "192.0.2.10", Message: "handoff to lb2"}
	h.add(newer)
	select {
	case e := <-got:
		if !reflect.DeepEqual(e, newer) {
			t.Errorf("followed event = %+v, want %+v", e, newer)
		}
	case <-ctx.Done():
		t.Fatal("the new event did not reach the follower")
	}
	stop()
	if err := <-done; !errors.Is(err, ErrDaemonStopping) {
		t.Errorf("FollowEvents after the stop = %v, want ErrDaemonStopping", err)
	}

	// Without a history the daemon says so; a bad since is a 400.
	sock2 := socketPath(t)
	startServer(t, ServerOptions{Socket: sock2, Source: NewPublisher(sampleSnapshot(0))})
	if _, err := NewClient(sock2).Events(ctx, time.Time{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("no history: err = %v, want ErrUnsupported", err)
	}
	if err := NewClient(sock2).FollowEvents(ctx, time.Time{}, func(Event) error { return nil }); !errors.Is(err, ErrUnsupported) {
		t.Errorf("no history, follow: err = %v, want ErrUnsupported", err)
	}
}
