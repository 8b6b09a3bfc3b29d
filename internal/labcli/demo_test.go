package labcli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/cli"
	"github.com/epconsole/epconsole/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLabDemo runs the README's main command headless for a few seconds:
// three daemons elect an owner, requests through the VIP reach every
// backend over IPv4 and IPv6 with no failure, a drill started from
// "another terminal" (`epconsole-lab fault partition`, then `heal`)
// answers with what to look for, and the lab leaves no namespace behind.
func TestLabDemo(t *testing.T) {
	testenv.NeedNetns(t)
	bin := testenv.Binary(t) // the LB peers' daemon
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"--duration", "5s", "--rate", "30", "--binary", bin}, cli.IO{Out: &out, Err: &errb})
	}()

	// `epconsole-lab fault` from another terminal: refused until the lab is up.
	var fault, ferr bytes.Buffer
	code := -1
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(out.String(), "lab removed") {
		fault.Reset()
		ferr.Reset()
		if code = Run(ctx, []string{"fault", "partition"}, cli.IO{Out: &fault, Err: &ferr}); code == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 0 {
		t.Errorf("lab fault partition: exit %d, stderr %q", code, ferr.String())
	} else {
		t.Logf("lab fault partition: %s", fault.String())
		if !strings.Contains(fault.String(), "not fresh") || !strings.Contains(fault.String(), "cut off") {
			t.Errorf("lab fault partition does not say what to look for: %q", fault.String())
		}
		var heal, herr bytes.Buffer
		if c := Run(ctx, []string{"heal", "partition"}, cli.IO{Out: &heal, Err: &herr}); c != 0 {
			t.Errorf("lab heal partition: exit %d, stderr %q", c, herr.String())
		}
		if c := Run(ctx, []string{"heal", "partition"}, cli.IO{Out: &heal, Err: &herr}); c != 1 || !strings.Contains(herr.String(), "not in place") {
			t.Errorf("a second heal: exit %d, stderr %q; want 1, not in place", c, herr.String())
		}
	}

	code = <-done
	t.Logf("lab output:\n%s\nstderr:\n%s", out.String(), errb.String())
	if code != 0 {
		t.Fatalf("lab exit code %d", code)
	}
	if !regexp.MustCompile(`lab up: .* owner lb[123]\n`).MatchString(out.String()) {
		t.Errorf("no 'lab up' line naming the VIP owner")
	}
	m := regexp.MustCompile(`totals: cp1=(\d+) cp2=(\d+) cp3=(\d+) failed=(\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no totals line with all three backends in the output")
	}
	for i, name := range []string{"cp1", "cp2", "cp3"} {
		if n, _ := strconv.Atoi(m[i+1]); n == 0 {
			t.Errorf("backend %s answered no request through the VIP", name)
		}
	}
	if m[4] != "0" {
		t.Errorf("%s requests failed through the VIP, want 0", m[4])
	}
	if !regexp.MustCompile(`\n  etcd    cp1,cp2,cp3  https://`).MatchString(out.String()) {
		t.Errorf("no line naming the lab's etcd members and endpoints")
	}
	if !strings.Contains(out.String(), "IPv6 ok") {
		t.Errorf("no IPv6 requests in the output")
	}
	testenv.NoNamespacesLeft(t, labPrefix)
	var fo, fe bytes.Buffer
	if c := Run(ctx, []string{"fault", "stop-backend"}, cli.IO{Out: &fo, Err: &fe}); c != 1 || !strings.Contains(fe.String(), "no running lab") {
		t.Errorf("lab fault without a lab: exit %d, stderr %q; want 1 and 'no running lab'", c, fe.String())
	}
}

func TestLabRefusesBadRate(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"--rate", "0"}, cli.IO{Out: &out, Err: &errb}); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(errb.String(), "--rate 0 is out of range") {
		t.Errorf("stderr %q does not say what is wrong", errb.String())
	}
	errb.Reset()
	if code := Run(context.Background(), []string{"--peers", "6"}, cli.IO{Out: &out, Err: &errb}); code != 2 {
		t.Errorf("--peers 6: exit %d, want 2", code)
	}
}

// TestLabConsoleTmux runs the demo binary, `epconsole-lab` (which is also
// the LB peers' daemon), on a real terminal (tmux, 80×24): the console
// opens on the VIP owner; L lists the lab's drills; stop-backend started
// from the menu, confirmed, says what to look for and the backends view
// shows cp1 DOWN; kill-owner from the menu kills the daemon the console is
// attached to and the console falls over to another peer, saying so;
// healing it brings the owner's daemon back and r returns to it; q removes
// the lab.
func TestLabConsoleTmux(t *testing.T) {
	testenv.NeedNetns(t)
	bin := testenv.LabBinary(t)
	exitFile := filepath.Join(t.TempDir(), "exit")
	x := labPane{testenv.NewPane(t, t.TempDir(), fmt.Sprintf("env NO_COLOR=1 TERM=xterm-256color %s --rate 5; echo $? > %s", bin, exitFile)), t}
	t.Cleanup(func() {
		// On a failure: quit the console (it removes the lab), then make sure.
		if _, err := os.Stat(exitFile); err != nil {
			x.Keys("q")
			for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				if _, err := os.Stat(exitFile); err == nil {
					break
				}
			}
		}
		var out, errb bytes.Buffer
		if Run(context.Background(), []string{"down"}, cli.IO{Out: &out, Err: &errb}) != 0 {
			t.Errorf("epconsole-lab down: %s", errb.String())
		}
	})
	screen := x.WaitMatch(120*time.Second, regexp.MustCompile(`\[1 Overview\]`), regexp.MustCompile(`● live`), regexp.MustCompile(`owner (lb\d) since`))
	owner := regexp.MustCompile(`owner (lb\d) since`).FindStringSubmatch(screen)[1]
	if !strings.Contains(screen, "L lab drills") {
		t.Errorf("the help does not offer the lab key:\n%s", screen)
	}

	// stop-backend from the menu.
	x.Keys("L")
	x.WaitScreen(10*time.Second, "Lab drills", "stop-backend", "kill-owner", "ready")
	x.selectDrill("stop-backend")
	x.Keys("Enter")
	x.WaitScreen(5*time.Second, "Really start the lab drill stop-backend")
	x.Keys("y")
	x.WaitScreen(30*time.Second, "lab fault stop-backend · what to look for", "fault stop-backend in place")
	started := time.Now()
	x.Keys("2")
	x.WaitMatch(15*time.Second, regexp.MustCompile(`cp1 +DOWN +DOWN +DOWN`))
	t.Logf("stop-backend confirmed in the console -> cp1 DOWN on every peer's view in %v", time.Since(started).Round(time.Millisecond))
	x.closeText()
	x.Keys("L")
	x.WaitMatch(10*time.Second, regexp.MustCompile(`stop-backend +ACTIVE on cp1`))

	// kill-owner: the console's own daemon dies; it falls over.
	x.selectDrill("kill-owner")
	x.Keys("Enter")
	x.WaitScreen(5*time.Second, "Really start the lab drill kill-owner")
	x.Keys("y")
	killed := time.Now()
	screen = x.WaitMatch(30*time.Second, regexp.MustCompile(`via lb\d \(`+owner+` unreachable\)`))
	t.Logf("kill-owner on %s -> the console via another peer in %v:\n%s", owner, time.Since(killed).Round(time.Millisecond), screen)

	// Heal it: the owner's daemon is back; r returns to it.
	x.closeText()
	x.Keys("L")
	x.WaitMatch(10*time.Second, regexp.MustCompile(`kill-owner +ACTIVE on `+owner))
	x.selectDrill("kill-owner")
	x.Keys("Enter")
	x.WaitScreen(5*time.Second, "Really heal the lab drill kill-owner on "+owner)
	x.Keys("y")
	x.WaitScreen(30*time.Second, "healed kill-owner")
	x.WaitScreen(30*time.Second, owner+" is back · r returns")
	x.closeText()
	x.Keys("r")
	x.WaitMatch(15*time.Second, regexp.MustCompile(`● live · snapshot`))

	x.Keys("q")
	if code := x.WaitExit(exitFile, 60*time.Second); code != "0" {
		t.Errorf("epconsole-lab exited %s, want 0", code)
	}
	testenv.NoNamespacesLeft(t, labPrefix)
}

// labPane is the tmux pane running the lab, with the drill menu's moves.
type labPane struct {
	testenv.Pane
	t *testing.T
}

// closeText waits for the drill's text, closes it with esc and waits until
// it is gone
// (esc and the next key sent together would read as alt+key).
func (x labPane) closeText() {
	x.t.Helper()
	x.WaitScreen(30*time.Second, "what to look for")
	x.Keys("Escape")
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if out := x.Screen(); !strings.Contains(out, "what to look for") {
			return
		}
	}
	out := x.Screen()
	x.t.Fatalf("esc did not close the drill's text:\n%s", out)
}

// selectDrill moves the drill menu's cursor to name.
func (x labPane) selectDrill(name string) {
	x.t.Helper()
	for range 20 {
		out := x.Screen()
		if strings.Contains(out, "> "+name) {
			return
		}
		if !strings.Contains(out, "Lab drills") {
			x.t.Fatalf("no drill menu on the screen:\n%s", out)
		}
		x.Keys("j")
		time.Sleep(50 * time.Millisecond)
	}
	out := x.Screen()
	x.t.Fatalf("cannot select drill %s:\n%s", name, out)
}
