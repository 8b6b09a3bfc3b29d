package drills

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/status"
)

// cliRun runs the real binary's `epconsole ARGS...` (a client of a status
// socket: it runs in the test's own namespace, the socket is a file) and
// returns its exit code, stdout and stderr.
func (c *cluster) cliRun(args ...string) (int, string, string) {
	c.t.Helper()
	cmd := exec.CommandContext(c.ctx, epconsoleBin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	c.t.Fatalf("epconsole %q: %v", args, err)
	return -1, "", ""
}

// cliDrained asks lb's daemon with `epconsole status --json` whether
// backend is drained.
func (c *cluster) cliDrained(lb, backend string) bool {
	c.t.Helper()
	code, out, errs := c.cliRun("status", "--json", "--socket", c.socket(lb))
	if code != 0 {
		c.t.Fatalf("status --json on %s: exit %d, stderr %s", lb, code, errs)
	}
	var s status.Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		c.t.Fatalf("status --json on %s: %v\n%s", lb, err, out)
	}
	for _, b := range s.Backends {
		if b.Name == backend {
			return b.Drained
		}
	}
	c.t.Fatalf("status --json on %s: no backend %s", lb, backend)
	return false
}

// waitCLIDrained waits until every LB's `status --json` shows backend
// drained (or not): the drain set reaches the peers by gossip.
func (c *cluster) waitCLIDrained(backend string, drained bool, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var wrong []string
		for _, h := range c.lbs {
			if c.cliDrained(h.Name(), backend) != drained {
				wrong = append(wrong, h.Name())
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s drained=%v not shown by %v within %s", backend, drained, wrong, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCLIActions: a runbook's day-2 steps as commands against a real
// three-LB cluster. `drain cp1` on the owner's socket exits 0 and every
// peer's `status` then shows cp1 drained; `undrain cp1` takes it back;
// `drain nosuch` exits 1 and changes nothing; `handoff` on a non-owner
// exits 1 naming the owner, on the owner it exits 0 and the VIP is on
// another LB; `status` without a daemon exits 3. Control: before the
// drain no peer shows cp1 drained.
func TestCLIActions(t *testing.T) {
	c, owner := newCluster(t, "clq", 120*time.Second)
	sock := c.socket(owner)

	code, out, errs := c.cliRun("status", "--socket", sock)
	if code != 0 || !strings.HasPrefix(out, "cluster drill, seen by "+owner) || !strings.Contains(out, "owner "+owner+" since") {
		t.Fatalf("status on the owner: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	t.Logf("epconsole status on %s:\n%s", owner, out)

	// Control: nobody has drained cp1 yet.
	for _, h := range c.lbs {
		if c.cliDrained(h.Name(), "cp1") {
			t.Fatalf("control: %s shows cp1 drained before any drain", h.Name())
		}
	}

	start := time.Now()
	code, out, errs = c.cliRun("drain", "cp1", "--socket", sock, "--timeout", "10s")
	if code != 0 || !strings.HasPrefix(out, "drained cp1 (cluster-wide; confirmed by "+owner+")") {
		t.Fatalf("drain cp1: exit %d, stderr %q, stdout %q", code, errs, out)
	}
	t.Logf("drain cp1: %s", strings.TrimSpace(out))
	c.waitCLIDrained("cp1", true, 5*time.Second)
	t.Logf("every peer's status shows cp1 drained %s after the drain began", time.Since(start).Round(time.Millisecond))

	code, out, errs = c.cliRun("drain", "nosuch", "--socket", sock, "--timeout", "10s")
	if code != 1 || out != "" || !strings.Contains(errs, `no backend "nosuch"`) {
		t.Errorf("drain nosuch: exit %d (want 1), stdout %q, stderr %q", code, out, errs)
	}
	for _, h := range c.lbs {
		if !c.cliDrained(h.Name(), "cp1") || c.cliDrained(h.Name(), "cp2") {
			t.Errorf("after the refused drain, %s's drain set changed", h.Name())
		}
	}

	code, out, errs = c.cliRun("undrain", "cp1", "--socket", sock, "--timeout", "10s")
	if code != 0 || !strings.HasPrefix(out, "undrained cp1") {
		t.Fatalf("undrain cp1: exit %d, stderr %q, stdout %q", code, errs, out)
	}
	c.waitCLIDrained("cp1", false, 5*time.Second)

	var other string
	for _, h := range c.lbs {
		if h.Name() != owner {
			other = h.Name()
			break
		}
	}
	code, out, errs = c.cliRun("handoff", "--socket", c.socket(other), "--timeout", "10s")
	if code != 1 || out != "" || !strings.Contains(errs, "run the handoff on "+owner) {
		t.Errorf("handoff on the non-owner %s: exit %d (want 1), stdout %q, stderr %q", other, code, out, errs)
	}
	if o := c.owners(); !slices.Equal(o, []string{owner}) {
		t.Errorf("the refused handoff moved the VIP: owners %v", o)
	}

	start = time.Now()
	code, out, errs = c.cliRun("handoff", "--socket", sock, "--timeout", "15s")
	if code != 0 || !strings.HasPrefix(out, "handed the VIP from "+owner+" to ") {
		t.Fatalf("handoff on the owner %s: exit %d, stderr %q, stdout %q", owner, code, errs, out)
	}
	t.Logf("handoff: %s", strings.TrimSpace(out))
	next := c.waitOneOwner(10*time.Second, owner)
	if want := strings.Fields(strings.TrimPrefix(out, "handed the VIP from "+owner+" to "))[0]; next != want {
		t.Errorf("handoff said %s takes the VIP; the VIP is on %s", want, next)
	}
	t.Logf("VIP on %s, %s after the handoff began", next, time.Since(start).Round(time.Millisecond))

	none := filepath.Join(c.dir, "none.sock")
	code, out, errs = c.cliRun("status", "--socket", none)
	if code != 3 || out != "" || !strings.Contains(errs, "no epconsole daemon at "+none) {
		t.Errorf("status without a daemon: exit %d (want 3), stdout %q, stderr %q", code, out, errs)
	}
}
