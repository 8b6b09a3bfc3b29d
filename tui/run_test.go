package tui_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui"
)

// syncBuffer is a bytes.Buffer safe to read while the program writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Contains(s.b.Bytes(), []byte(sub))
}

func waitOutput(t *testing.T, out *syncBuffer, sub string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !out.Contains(sub) {
		if time.Now().After(deadline) {
			t.Fatalf("%q never shown", sub)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watchedSource is a channel source that hands over the context of its
// subscription.
type watchedSource struct {
	ch  chan status.Update
	ctx chan context.Context
}

func (w watchedSource) Subscribe(ctx context.Context) <-chan status.Update {
	w.ctx <- ctx
	return w.ch
}

// runTUI starts Run on pipes and returns the input, the output, Run's
// result and the context of the subscription.
func runTUI(t *testing.T, ctx context.Context) (io.WriteCloser, *syncBuffer, <-chan error, <-chan context.Context) {
	t.Helper()
	src := watchedSource{ch: make(chan status.Update, 1), ctx: make(chan context.Context, 1)}
	src.ch <- status.Update{Kind: status.SnapshotUpdate, Snapshot: loadSnapshot(t, "healthy")}
	inR, inW := io.Pipe()
	t.Cleanup(func() { inW.Close() })
	out := &syncBuffer{}
	opts := options(src, nil)
	opts.Input, opts.Output = inR, out
	done := make(chan error, 1)
	go func() { done <- tui.Run(ctx, opts) }()
	return inW, out, done, src.ctx
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// TestRunQuit: Run draws the snapshot on its output and returns nil when
// the operator presses q, ending the subscription.
func TestRunQuit(t *testing.T) {
	in, out, done, sub := runTUI(t, context.Background())
	waitOutput(t, out, "owner lb1 since")
	if _, err := in.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case <-(<-sub).Done():
	default:
		t.Error("the subscription outlives Run")
	}
}

// TestRunContext: Run returns nil when its context ends.
func TestRunContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	_, out, done, _ := runTUI(t, ctx)
	waitOutput(t, out, "owner lb1 since")
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
