package netlab

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/testenv"
)

// waitMembers polls the members' status from host from until cond holds.
func waitMembers(t *testing.T, ctx context.Context, c *EtcdCluster, from *Host, bound time.Duration, what string, cond func([]EtcdMemberStatus) bool) []EtcdMemberStatus {
	t.Helper()
	deadline := time.Now().Add(bound)
	var last []EtcdMemberStatus
	var lastErr error
	for time.Now().Before(deadline) {
		st, err := c.Status(ctx, from)
		if err == nil && cond(st) {
			return st
		}
		last, lastErr = st, err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not seen within %s (last %+v, error %v)", what, bound, last, lastErr)
	return nil
}

func reachableNames(st []EtcdMemberStatus) []string {
	var out []string
	for _, s := range st {
		if s.Reachable {
			out = append(out, s.Name)
		}
	}
	return out
}

// TestEtcdCluster runs a real three-member etcd cluster, one member
// process per host, with TLS and client certificate auth: it elects a
// leader, refuses a client without a certificate, keeps a leader with one
// member stopped, loses it with two stopped, gets it back when they
// restart from their data directories, and Close leaves no member process
// and no data directory (also when the lab directory itself stays).
func TestEtcdCluster(t *testing.T) {
	testenv.NeedNetns(t)
	if err := Cleanup("nl7"); err != nil {
		t.Fatal(err)
	}
	spec := testSpec("nl7",
		HostSpec{Name: "cl", Role: RoleClient, Index: 44},
		HostSpec{Name: "e1", Role: RoleBackend, Index: 41},
		HostSpec{Name: "e2", Role: RoleBackend, Index: 42},
		HostSpec{Name: "e3", Role: RoleBackend, Index: 43})
	spec.Dir = t.TempDir()
	lab, err := Build(testCtx(t, 30*time.Second), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lab.Close() })
	ctx := testCtx(t, 90*time.Second)
	cl := lab.Host("cl")

	start := time.Now()
	c, err := lab.StartEtcd(ctx, EtcdOpts{Hosts: lab.HostsByRole(RoleBackend)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("3 members joined in %s", time.Since(start).Round(time.Millisecond))
	if got := c.Endpoints(); len(got) != 3 || got[0] != "https://198.18.2.41:2379" {
		t.Errorf("endpoints %v", got)
	}
	st := waitMembers(t, ctx, c, cl, 5*time.Second, "a leader all three agree on", func(st []EtcdMemberStatus) bool {
		return len(reachableNames(st)) == 3 && agreedLeader(st) != ""
	})
	leader := agreedLeader(st)
	if !slices.Contains(c.Names(), leader) {
		t.Fatalf("leader %q is not a member name", leader)
	}
	for _, m := range c.Members() {
		if _, err := os.Stat(m.DataDir); err != nil {
			t.Errorf("data dir of %s: %v", m.Name, err)
		}
	}

	// Client certificate auth: without a certificate no member answers.
	j, err := startJob[[]EtcdMemberStatus](ctx, cl, roleEtcdStatus, etcdStatusArgs{Names: c.Names(), Endpoints: c.Endpoints(), CAFile: c.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	if noCert, err := j.Wait(ctx); err != nil {
		t.Fatal(err)
	} else if r := reachableNames(noCert); len(r) != 0 {
		t.Errorf("members %v answered a client without a certificate", r)
	}

	// One member stopped (the leader: leadership moves): quorum holds.
	if err := c.Stop(ctx, leader); err != nil {
		t.Fatal(err)
	}
	if c.Member(leader).Running() || len(c.Running()) != 2 {
		t.Fatalf("running after stopping %s: %v", leader, c.Running())
	}
	st = waitMembers(t, ctx, c, cl, 5*time.Second, "a new leader among two", func(st []EtcdMemberStatus) bool {
		l := agreedLeader(st)
		return len(reachableNames(st)) == 2 && l != "" && l != leader
	})
	t.Logf("%s stopped: %s leads", leader, agreedLeader(st))

	// Two stopped: the last member knows no leader.
	var second, last string
	for _, n := range c.Names() {
		if n == leader {
			continue
		}
		if second == "" {
			second = n
		} else {
			last = n
		}
	}
	if err := c.Stop(ctx, second); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, ctx, c, cl, 5*time.Second, "quorum lost", func(st []EtcdMemberStatus) bool {
		r := reachableNames(st)
		return len(r) == 1 && r[0] == last && st[slices.IndexFunc(st, func(s EtcdMemberStatus) bool { return s.Name == last })].Leader == ""
	})

	// Both back from their data directories: quorum and leader again.
	start = time.Now()
	if err := c.Start(ctx, leader, second); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, ctx, c, cl, 5*time.Second, "healed", func(st []EtcdMemberStatus) bool {
		return len(reachableNames(st)) == 3 && agreedLeader(st) != ""
	})
	t.Logf("quorum back %s after restarting %s and %s", time.Since(start).Round(time.Millisecond), leader, second)

	pids := c.Pids()
	if len(pids) != 3 {
		t.Fatalf("pids %v, want 3", pids)
	}
	if err := lab.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil && !zombie(pid) {
			t.Errorf("etcd member process %d left after Close", pid)
		}
	}
	if _, err := os.Stat(c.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("etcd dir %s left after Close (%v)", c.Dir, err)
	}
	if _, err := os.Stat(lab.Dir()); err != nil {
		t.Errorf("the given lab dir must stay: %v", err)
	}
	if left := labNamespaces(t, "nl7"); len(left) != 0 {
		t.Errorf("namespaces left: %v", left)
	}
	if _, err := lab.StartEtcd(ctx, EtcdOpts{Hosts: lab.HostsByRole(RoleBackend)}); !errors.Is(err, ErrClosed) {
		t.Errorf("StartEtcd on a closed lab: %v, want ErrClosed", err)
	}
}

func TestAgreedLeader(t *testing.T) {
	for _, tc := range []struct {
		desc string
		st   []EtcdMemberStatus
		want string
	}{
		{"all agree", []EtcdMemberStatus{{Name: "a", Reachable: true, Leader: "b"}, {Name: "b", Reachable: true, Leader: "b"}}, "b"},
		{"unreachable ignored", []EtcdMemberStatus{{Name: "a", Reachable: true, Leader: "a"}, {Name: "b"}}, "a"},
		{"one knows none", []EtcdMemberStatus{{Name: "a", Reachable: true, Leader: "a"}, {Name: "b", Reachable: true}}, ""},
		{"disagree", []EtcdMemberStatus{{Name: "a", Reachable: true, Leader: "a"}, {Name: "b", Reachable: true, Leader: "b"}}, ""},
		{"none reachable", []EtcdMemberStatus{{Name: "a"}}, ""},
	} {
		if got := agreedLeader(tc.st); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.desc, got, tc.want)
		}
	}
}
