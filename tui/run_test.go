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

// runTUI starts Run on pipes and returns the input, the output and Run's
// result.
func runTUI(t *testing.T, ctx context.Context) (io.WriteCloser, *syncBuffer, <-chan error) {
	t.Helper()
	ch := make(chan status.Update, 1)
	ch <- status.Update{Kind: status.SnapshotUpdate, Snapshot: loadSnapshot(t, "healthy")}
	inR, inW := io.Pipe()
	t.Cleanup(func() { inW.Close() })
	out := &syncBuffer{}
	opts := options(tui.SourceChan(ch), nil)
	opts.Input, opts.Output = inR, out
	done := make(chan error, 1)
	go func() { done <- tui.Run(ctx, opts) }()
	return inW, out, done
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
// the operator presses q.
func TestRunQuit(t *testing.T) {
	in, out, done := runTUI(t, context.Background())
	waitOutput(t, out, "owner lb1 since")
	if _, err := in.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestRunContext: Run returns nil when its context ends.
func TestRunContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	_, out, done := runTUI(t, ctx)
	waitOutput(t, out, "owner lb1 since")
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
