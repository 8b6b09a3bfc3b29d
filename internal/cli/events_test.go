package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/daemon"
	"github.com/epconsole/epconsole/internal/status"
)

// eventsDaemon serves the history kept in stateDir on sock, as a daemon's
// status server does, until the returned stop is called.
func eventsDaemon(t *testing.T, sock, stateDir string) (*daemon.History, func()) {
	t.Helper()
	h, _, err := daemon.OpenHistory(stateDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := status.NewServer(status.ServerOptions{Socket: sock, History: h,
		Source: status.NewPublisher(status.Snapshot{Schema: status.Schema, Source: status.SourceDaemon, Node: "lb1"})})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			h.Close()
		})
	}
	t.Cleanup(stop)
	return h, stop
}

// syncBuffer is a bytes.Buffer safe for a command and a test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitUntil waits until cond holds, failing after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEventsCommand: `epconsole events` against a real status server: the
// columns, --since, --json, and the errors.
func TestEventsCommand(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "status.sock")
	h, _ := eventsDaemon(t, sock, filepath.Join(dir, "state"))
	now := time.Now().Truncate(time.Second)
	evs := []daemon.Event{
		{Time: now.Add(-2 * time.Hour), Kind: daemon.EventStarted, Subject: "lb1", Message: "version v1, config digest 3f2a9c1e"},
		{Time: now.Add(-90 * time.Minute), Kind: daemon.EventVIPAcquired, Subject: "198.18.0.100", Message: "elected: highest priority"},
		{Time: now.Add(-10 * time.Minute), Kind: daemon.EventPeerFailed, Subject: "lb2", Message: "no heartbeat for 150ms"},
		{Time: now.Add(-5 * time.Minute), Kind: daemon.EventReloadOK, Message: "config digest\n3f2a9c1e"},
	}
	for _, e := range evs {
		h.Add(e)
	}

	code, out, errs := runCLI(t, "events", "--socket", sock)
	if code != 0 || errs != "" {
		t.Fatalf("events: exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := []string{
		"TIME                  KIND                 SUBJECT          MESSAGE",
		now.Add(-2*time.Hour).UTC().Format(time.RFC3339) + "  started              lb1              version v1, config digest 3f2a9c1e",
		now.Add(-90*time.Minute).UTC().Format(time.RFC3339) + "  vip-acquired         198.18.0.100     elected: highest priority",
		now.Add(-10*time.Minute).UTC().Format(time.RFC3339) + "  peer-failed          lb2              no heartbeat for 150ms",
		now.Add(-5*time.Minute).UTC().Format(time.RFC3339) + "  reload-ok            -                config digest 3f2a9c1e",
	}
	if len(lines) != len(want) {
		t.Fatalf("events printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i := range want {
		if strings.TrimRight(lines[i], " ") != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i, lines[i], want[i])
		}
	}

	_, out, _ = runCLI(t, "events", "--socket", sock, "--since", "1h")
	if strings.Contains(out, "started") || strings.Contains(out, "vip-acquired") || !strings.Contains(out, "peer-failed") {
		t.Errorf("--since 1h: want only the last hour's events:\n%s", out)
	}
	_, out, _ = runCLI(t, "events", "--socket", sock, "--since", now.Add(-95*time.Minute).UTC().Format(time.RFC3339))
	if strings.Contains(out, "started") || !strings.Contains(out, "vip-acquired") {
		t.Errorf("--since an RFC 3339 time: want from vip-acquired on:\n%s", out)
	}

	code, out, _ = runCLI(t, "events", "--socket", sock, "--json")
	jl := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(jl) != len(evs) {
		t.Fatalf("--json: exit %d, %d lines:\n%s", code, len(jl), out)
	}
	for i, l := range jl {
		var e status.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil || !e.Time.Equal(evs[i].Time) || e.Kind != string(evs[i].Kind) || e.Message != evs[i].Message {
			t.Errorf("--json line %d = %q (%v), want %+v", i, l, err, evs[i])
		}
	}

	errCases := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--since", "yesterday"}, 2, `--since "yesterday": use a duration such as 90m or 24h`},
		{[]string{"--since", "-1h"}, 2, "without a sign"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
	}
	for _, tc := range errCases {
		code, _, errs := runCLI(t, append([]string{"events", "--socket", sock}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.err) {
			t.Errorf("events %v: exit %d, stderr %q; want exit %d with %q", tc.args, code, errs, tc.code, tc.err)
		}
	}
	missing := filepath.Join(dir, "none.sock")
	if code, _, errs := runCLI(t, "events", "--socket", missing); code != 1 || !strings.Contains(errs, "no epconsole daemon at "+missing) {
		t.Errorf("no daemon: exit %d, stderr %q", code, errs)
	}
	// A daemon without a history (control: the same command, no History).
	bare := filepath.Join(dir, "bare", "status.sock")
	srv, err := status.NewServer(status.ServerOptions{Socket: bare, Source: status.NewPublisher(status.Snapshot{})})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go srv.Serve(t.Context())
	if code, _, errs := runCLI(t, "events", "--socket", bare); code != 1 || !strings.Contains(errs, "keeps no event history") {
		t.Errorf("daemon without a history: exit %d, stderr %q", code, errs)
	}
}

// TestEventsFollowAcrossRestart: --follow prints the history, then new
// events; when the daemon restarts it waits, and goes on from the last
// event printed with the history the new daemon read back from state_dir:
// nothing twice, nothing lost.
func TestEventsFollowAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "status.sock")
	state := filepath.Join(dir, "state")
	h, stop := eventsDaemon(t, sock, state)
	h.Add(daemon.Event{Time: time.Now(), Kind: daemon.EventStarted, Subject: "lb1", Message: "first run"})

	var out, errs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"events", "--follow", "--socket", sock}, IO{In: strings.NewReader(""), Out: &out, Err: &errs})
	}()
	waitUntil(t, "the history", func() bool { return strings.Contains(out.String(), "first run") })
	h.Add(daemon.Event{Time: time.Now(), Kind: daemon.EventBackendDown, Subject: "cp2", Message: "failed: readyz 500"})
	waitUntil(t, "the new event", func() bool { return strings.Contains(out.String(), "failed: readyz 500") })

	stop()
	waitUntil(t, "the follower to notice the stop", func() bool { return strings.Contains(errs.String(), "waiting for the daemon") })
	h2, _ := eventsDaemon(t, sock, state)
	if n := len(h2.Events()); n != 2 {
		t.Fatalf("the restarted daemon read back %d events, want 2", n)
	}
	h2.Add(daemon.Event{Time: time.Now(), Kind: daemon.EventStarted, Subject: "lb1", Message: "second run"})
	waitUntil(t, "the event after the restart", func() bool { return strings.Contains(out.String(), "second run") })
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("--follow interrupted: exit %d, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--follow did not end with its context")
	}
	o := out.String()
	if strings.Count(o, "first run") != 1 || strings.Count(o, "readyz 500") != 1 || strings.Count(o, "second run") != 1 {
		t.Errorf("each event should be printed once:\n%s", o)
	}
	t.Logf("stderr: %s", errs.String())
}
