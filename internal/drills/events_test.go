package drills

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/testenv"
)

// Groups of the event-history drill (numeric: no group database needed).
const (
	drillReadGID = 4242101
	drillOpGID   = 4242102
)

// TestStatusAPIEventHistory: real daemons with status.socket_group and
// status.operator_group set. `epconsole events` run as an unprivileged
// member of the socket group reads the owner's history (its VIP claim
// with the election's reason) over the socket; the owner is stopped (it
// hands the VIP over) and started again, and the history it serves then
// still holds the first run's events, in order, from state_dir. Controls:
// the same user outside the groups is refused, and a member of the
// socket group only may not drain while a member of the operator group
// may.
func TestStatusAPIEventHistory(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root for network namespaces")
	}
	c, owner := newClusterWith(t, "clh", 90*time.Second, clusterOpts{
		tweak: func(_ *cluster, _, hcl string) string {
			return strings.Replace(hcl, `metrics_listen = ""`, `metrics_listen = ""
  socket_group = "4242101"
  operator_group = "4242102"`, 1)
		},
	})
	// Everything on the way to the sockets and the binary must be open to
	// the unprivileged user.
	for d := c.dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(c.dir, "epconsole")
	data, err := os.ReadFile(epconsoleBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := c.socket(owner)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || st.Gid != drillReadGID {
		t.Errorf("%s's socket: mode %v group %d, want 0660 group %d", owner, fi.Mode().Perm(), st.Gid, drillReadGID)
	}
	reader := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{drillReadGID}}
	stranger := &syscall.Credential{Uid: 65534, Gid: 65534}
	events := func(cred *syscall.Credential) ([]status.Event, int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "events", "--json", "--socket", sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("running epconsole events: %v", err)
		}
		var evs []status.Event
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var e status.Event
			if l != "" && json.Unmarshal([]byte(l), &e) == nil {
				evs = append(evs, e)
			}
		}
		return evs, cmd.ProcessState.ExitCode(), stderr.String()
	}
	claim := func(evs []status.Event) int {
		for i, e := range evs {
			if e.Kind == "vip-acquired" && e.Subject == c.vip.String() && e.Message != "" {
				return i
			}
		}
		return -1
	}

	evs, code, errs := events(reader)
	if code != 0 || claim(evs) < 0 {
		t.Fatalf("events as a socket-group member: exit %d, %d events, stderr %q; want the VIP claim", code, len(evs), errs)
	}
	t.Logf("%s's claim, read by uid 65534: %+v", owner, evs[claim(evs)])
	first := len(evs)
	if _, code, errs := events(stranger); code != 1 || !strings.Contains(errs, "permission denied") {
		t.Errorf("events outside the groups: exit %d, stderr %q; want refused", code, errs)
	}
	// Drain, as curl would: refused to the reader, done for the operator.
	if code, msg := drainAs(t, c, sock, reader); code != 403 || !strings.Contains(msg, "may read the status but not drain") {
		t.Errorf("drain as a reader: %d %q, want 403", code, msg)
	}
	if code, msg := drainAs(t, c, sock, &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{drillReadGID, drillOpGID}}); code != 200 {
		t.Errorf("drain as an operator: %d %q, want 200", code, msg)
	}

	// Restart the owner: a graceful stop hands the VIP over, then it
	// comes back and serves the history it kept.
	c.signal(owner, syscall.SIGTERM)
	if err := c.waitExit(c.daemons[owner], 15*time.Second); err != nil {
		t.Fatalf("%s did not stop: %v", owner, err)
	}
	c.start(c.lab.Host(owner))
	var again []status.Event
	deadline := time.Now().Add(15 * time.Second)
	for {
		again, code, errs = events(reader)
		if code == 0 && len(again) > first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: exit %d, %d events (first run %d), stderr %q", code, len(again), first, errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := range first {
		if again[i].Kind != evs[i].Kind || !again[i].Time.Equal(evs[i].Time) || again[i].Message != evs[i].Message {
			t.Fatalf("event %d changed across the restart: %+v, was %+v", i, again[i], evs[i])
		}
	}
	t.Logf("%s's history: %d events before its restart, %d after", owner, first, len(again))
	var starts, released int
	for _, e := range again {
		switch e.Kind {
		case "started":
			starts++
		case "vip-released":
			released++
		}
	}
	if starts < 2 || released < 1 {
		t.Errorf("after the restart the history should hold both starts and the release on the way down; got %d starts, %d releases:\n%+v", starts, released, again)
	}
}

// drainAs posts a drain of cp1 to sock as cred with curl, and returns the
// status code and the error message.
func drainAs(t *testing.T, c *cluster, sock string, cred *syscall.Credential) (int, string) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		testenv.Skip(t, "needs curl")
	}
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-XPOST", "--unix-socket", sock, "http://epconsole/v1/drain/cp1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	text := strings.TrimSpace(string(out))
	i := strings.LastIndex(text, "\n")
	code, err := strconv.Atoi(text[i+1:])
	if err != nil {
		t.Fatalf("curl wrote %q", out)
	}
	var e struct {
		Error string `json:"error"`
	}
	json.Unmarshal([]byte(text[:max(i, 0)]), &e)
	return code, e.Error
}
