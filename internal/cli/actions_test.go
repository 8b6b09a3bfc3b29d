package cli

import (
	"strings"
	"testing"

	"github.com/epconsole/epconsole/internal/status"
)

// TestActionCommands: drain, undrain and handoff against a daemon: exit 0
// once its snapshot confirms, 1 when it refuses, 2 for a usage error, 3
// without a daemon or without a confirmation in --timeout.
func TestActionCommands(t *testing.T) {
	snap := loadStatusFixture(t, "healthy")
	if snap.Election.Owner != snap.Node || len(snap.Backends) == 0 {
		t.Fatalf("fixture: want a snapshot of the owner with backends, got owner %q node %q", snap.Election.Owner, snap.Node)
	}
	backend := snap.Backends[0].Name
	d := &fakeDaemon{}
	sock := serveFake(t, snap, d)
	other := t.TempDir() + "/none.sock"

	want := func(args []string, code int, stdout, stderr string) {
		t.Helper()
		// Later flags win: a case's own --timeout overrides the 2s.
		c, out, errs := runCLI(t, append([]string{args[0], "--socket", sock, "--timeout", "2s"}, args[1:]...)...)
		if c != code || !strings.Contains(out, stdout) || !strings.Contains(errs, stderr) {
			t.Errorf("%q: exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", args, c, code, out, stdout, errs, stderr)
		}
	}
	want([]string{"drain", backend}, 0, "drained "+backend+" (cluster-wide; confirmed by "+snap.Node+")", "")
	if !d.pub.Snapshot().Backends[0].Drained {
		t.Errorf("drain %s exited 0 but the daemon did not drain it", backend)
	}
	want([]string{"drain", backend}, 0, "drained "+backend, "") // already: done at once
	want([]string{"undrain", backend}, 0, "undrained "+backend, "")
	want([]string{"drain", "nosuch"}, 1, "", `no backend "nosuch"`)
	want([]string{"handoff", "nosuch"}, 1, "", `no peer "nosuch"`)
	want([]string{"drain"}, 2, "", "drain takes one backend name")
	want([]string{"drain", "a", "b"}, 2, "", "drain takes one backend name")
	want([]string{"handoff", "a", "b"}, 2, "", "at most one peer")
	want([]string{"drain", backend, "--timeout", "0s"}, 2, "", "--timeout must be positive")

	// handoff without a peer: the live eligible peer of highest priority.
	target, err := handoffTarget(snap)
	if err != nil {
		t.Fatal(err)
	}
	want([]string{"handoff"}, 0, "handed the VIP from "+snap.Node+" to "+target, "")
	if got := d.pub.Snapshot().Election.Owner; got != target {
		t.Errorf("owner after handoff = %q, want %q", got, target)
	}
	// This node no longer owns it: the daemon refuses, naming the owner.
	want([]string{"handoff"}, 1, "", "run the handoff on "+target)

	for _, args := range [][]string{{"drain", backend}, {"undrain", backend}, {"handoff"}, {"status"}} {
		c, out, errs := runCLI(t, append(args, "--socket", other)...)
		if c != 3 || out != "" || !strings.Contains(errs, "no epconsole daemon at "+other) {
			t.Errorf("%q without a daemon: exit %d (want 3), stdout %q, stderr %q", args, c, out, errs)
		}
	}

	// A daemon that accepts but never shows the drain: exit 3 after --timeout.
	lazy := serveFake(t, snap, &fakeDaemon{lazy: true})
	c, out, errs := runCLI(t, "drain", backend, "--socket", lazy, "--timeout", "300ms")
	if c != 3 || out != "" || !strings.Contains(errs, "did not confirm it within 300ms") {
		t.Errorf("drain on a daemon that never confirms: exit %d (want 3), stdout %q, stderr %q", c, out, errs)
	}
}

// TestHandoffTarget: the peer a handoff without a name picks.
func TestHandoffTarget(t *testing.T) {
	peer := func(name string, prio int, live, eligible bool) status.Peer {
		p := status.Peer{Name: name, Priority: prio, Eligible: eligible, State: "alive", Fresh: live}
		if !live {
			p.State = "dead"
		}
		return p
	}
	tests := []struct {
		name  string
		peers []status.Peer
		want  string // "" = none
	}{
		{"highest priority", []status.Peer{peer("lb1", 200, true, true), peer("lb2", 100, true, true), peer("lb3", 150, true, true)}, "lb3"},
		{"name breaks a tie", []status.Peer{peer("lb1", 200, true, true), peer("lb3", 100, true, true), peer("lb2", 100, true, true)}, "lb2"},
		{"skips dead and ineligible", []status.Peer{peer("lb1", 200, true, true), peer("lb2", 300, false, true), peer("lb3", 250, true, false), peer("lb4", 1, true, true)}, "lb4"},
		{"none left", []status.Peer{peer("lb1", 200, true, true), peer("lb2", 300, false, true)}, ""},
	}
	for _, tc := range tests {
		s := status.Snapshot{Election: status.Election{Owner: "lb1"}, Peers: tc.peers}
		got, err := handoffTarget(s)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
