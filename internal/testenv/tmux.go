package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Pane is a tmux server of the test's own (its socket in a temporary
// directory) running one 80×24 pane, for tests that drive a program on a
// real terminal.
type Pane struct {
	t      testing.TB
	server string
}

// paneName is the session (and pane target) every Pane uses.
const paneName = "epc"

// NewPane starts cmd (a shell command) in dir in a new pane; the server is
// killed when the test ends. It skips the test when tmux is not installed
// (fails it under EPCONSOLE_REQUIRE_NETNS=1, as CI installs tmux).
func NewPane(t testing.TB, dir, cmd string) Pane {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		Skip(t, "tmux is not installed (apt-get install tmux)")
	}
	x := Pane{t: t, server: filepath.Join(t.TempDir(), "tmux.sock")}
	t.Cleanup(func() { _, _ = x.Run("kill-server") })
	if out, err := x.Run("new-session", "-d", "-s", paneName, "-x", "80", "-y", "24", "-c", dir, cmd); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	return x
}

// Run runs a tmux command on the pane's server.
func (x Pane) Run(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-S", x.server}, args...)...).CombinedOutput()
	return string(out), err
}

// Screen returns what the pane shows now.
func (x Pane) Screen() string {
	out, _ := x.Run("capture-pane", "-p", "-t", paneName)
	return out
}

// Keys sends keys (tmux key names: "q", "Enter", "Escape") to the pane.
func (x Pane) Keys(keys ...string) {
	x.t.Helper()
	for _, k := range keys {
		if out, err := x.Run("send-keys", "-t", paneName, k); err != nil {
			x.t.Fatalf("send-keys %s: %v: %s", k, err, out)
		}
	}
}

// WaitScreen polls the pane until it shows every one of want (within
// limit) and returns it.
func (x Pane) WaitScreen(limit time.Duration, want ...string) string {
	x.t.Helper()
	var res []*regexp.Regexp
	for _, w := range want {
		res = append(res, regexp.MustCompile(regexp.QuoteMeta(w)))
	}
	return x.WaitMatch(limit, res...)
}

// WaitMatch polls the pane until every one of want matches (within limit)
// and returns it; it fails the test with the last screen otherwise.
func (x Pane) WaitMatch(limit time.Duration, want ...*regexp.Regexp) string {
	x.t.Helper()
	return x.WaitFor(limit, fmt.Sprintf("%q", want), func(screen string) bool {
		for _, w := range want {
			if !w.MatchString(screen) {
				return false
			}
		}
		return true
	})
}

// WaitFor polls the pane every 20 ms until ok(screen) holds (within limit)
// and returns the screen; it fails the test, naming what it waited for,
// with the last screen otherwise.
func (x Pane) WaitFor(limit time.Duration, what string, ok func(screen string) bool) string {
	x.t.Helper()
	var screen string
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if out, err := x.Run("capture-pane", "-p", "-t", paneName); err == nil {
			screen = out
			if ok(screen) {
				return screen
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	x.t.Fatalf("the pane never showed %s within %s; last screen:\n%s", what, limit, screen)
	return ""
}

// WaitExit waits (within limit) until the pane's command has written its
// exit code to file (as `cmd; echo $? > file` does) and returns it.
func (x Pane) WaitExit(file string, limit time.Duration) string {
	x.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if b, err := os.ReadFile(file); err == nil && strings.HasSuffix(string(b), "\n") {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("the pane's command did not exit; screen:\n%s", x.Screen())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
