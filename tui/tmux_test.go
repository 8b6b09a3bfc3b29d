package tui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui"
)

// childEnv makes the test binary run the TUI against the status socket it
// names, as `epconsole` will (see TestMain).
const childEnv = "EPCONSOLE_TUI_TEST_SOCKET"

func TestMain(m *testing.M) {
	if sock := os.Getenv(childEnv); sock != "" {
		os.Exit(runChild(sock))
	}
	os.Exit(m.Run())
}

// runChild runs the TUI on the terminal against the daemon at sock.
func runChild(sock string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	c := status.NewClient(sock)
	defer c.Close()
	if err := tui.Run(ctx, tui.Options{Source: c, Actions: c}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// tmux runs tmux commands on the test's own server (its socket in a
// temporary directory).
type tmux struct {
	t      *testing.T
	server string
}

func (x tmux) run(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-S", x.server}, args...)...).CombinedOutput()
	return string(out), err
}

func (x tmux) keys(keys ...string) {
	x.t.Helper()
	for _, k := range keys {
		if out, err := x.run("send-keys", "-t", "tui", k); err != nil {
			x.t.Fatalf("send-keys %s: %v: %s", k, err, out)
		}
	}
}

// waitScreen polls the pane until it shows every one of want, and returns
// it.
func (x tmux) waitScreen(want ...string) string {
	x.t.Helper()
	var screen string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, err := x.run("capture-pane", "-p", "-t", "tui")
		if err == nil {
			screen = out
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(screen, w)
			}
			if ok {
				return screen
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	x.t.Fatalf("the pane never showed %q; last screen:\n%s", want, screen)
	return ""
}

// TestTmux runs the TUI in a real terminal (tmux, 80×24, NO_COLOR) against
// a real status server: the owner shows, a backend going down on one peer
// shows as a split view, a confirmed drain reaches the daemon, the daemon
// going away shows, and q quits. The last line of the pane stays the help
// line throughout, so nothing wrapped or scrolled.
func TestTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "status.sock")
	pub := status.NewPublisher(*loadSnapshot(t, "healthy"))
	d := &daemonSide{pub: pub, acted: make(chan tui.Action, 4)}
	stop := serve(t, sock, pub, d)

	x := tmux{t: t, server: filepath.Join(t.TempDir(), "tmux.sock")}
	t.Cleanup(func() { x.run("kill-server") })
	cmd := fmt.Sprintf("env %s=%s NO_COLOR=1 TERM=xterm-256color %s -test.run=^$", childEnv, sock, exe)
	if out, err := x.run("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", cmd); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	lastIsHelp := func(screen string) {
		t.Helper()
		lines := strings.Split(strings.TrimRight(screen, "\n"), "\n")
		if len(lines) != 24 || !strings.HasPrefix(lines[23], "? help") {
			t.Errorf("the screen wrapped or scrolled (%d lines):\n%s", len(lines), screen)
		}
	}

	lastIsHelp(x.waitScreen("owner lb1 since", "● live"))

	pub.Publish(*loadSnapshot(t, "split-view"))
	x.waitScreen("split view: cp2 down on lb2")
	x.keys("Tab")
	lastIsHelp(x.waitScreen("[2 Backends]", "! cp2", "DOWN"))

	x.keys("j", "d")
	x.waitScreen("Really drain backend cp2")
	x.keys("y")
	select {
	case a := <-d.acted:
		if a != (tui.Action{Kind: tui.Drain, Target: "cp2"}) {
			t.Fatalf("daemon got %+v", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the drain never reached the daemon")
	}
	lastIsHelp(x.waitScreen("drained cp2", "yes"))

	stop()
	lastIsHelp(x.waitScreen("daemon unreachable — reconnecting"))

	x.keys("q")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := x.run("has-session", "-t", "tui"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("q did not end the TUI")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
