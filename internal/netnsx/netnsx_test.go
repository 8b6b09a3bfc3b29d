package netnsx_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/epconsole/epconsole/internal/netnsx"
	"github.com/epconsole/epconsole/internal/testenv"
)

// threadNamespaces returns the network namespace of every thread of this
// process ("net:[inode]"), by thread id.
func threadNamespaces(t *testing.T) map[string]string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range tasks {
		link, err := os.Readlink(filepath.Join("/proc/self/task", e.Name(), "ns/net"))
		if err != nil {
			continue // the thread just exited
		}
		out[e.Name()] = link
	}
	return out
}

// TestDoAndLocked creates a namespace with Locked, runs functions inside
// it with Do, and checks that they ran there, that their errors come back
// and that afterwards no thread of the process is left in it: each was
// switched back (or retired).
func TestDoAndLocked(t *testing.T) {
	testenv.NeedNetns(t)
	// The namespace every thread is in (a thread's, read while locked:
	// /proc/self/ns/net is the main thread's alone).
	var own string
	if err := netnsx.Locked(func() error {
		var err error
		own, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var h netns.NsHandle
	if err := netnsx.Locked(func() error {
		var err error
		h, err = netns.New() // moves the thread into the new namespace
		return err
	}); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	defer h.Close()
	if created := nsName(t, h); created == own {
		t.Fatalf("the new namespace %s is the process's own", created)
	}
	for i := range 20 {
		var inside bool
		if err := netnsx.Do(h, func() error {
			cur, err := netns.Get()
			if err != nil {
				return err
			}
			defer cur.Close()
			inside = cur.Equal(h)
			return nil
		}); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if !inside {
			t.Fatalf("run %d: fn did not run inside the namespace", i)
		}
	}
	want := errors.New("fn failed")
	if err := netnsx.Do(h, func() error { return want }); !errors.Is(err, want) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	for tid, ns := range threadNamespaces(t) {
		if ns != own {
			t.Errorf("thread %s is left in %s, not in the process's namespace %s", tid, ns, own)
		}
	}
	if err := netnsx.DoPath(filepath.Join(t.TempDir(), "none"), func() error { return nil }); err == nil {
		t.Error("DoPath on a missing namespace file: no error")
	}
}

// nsName is h's "net:[inode]".
func nsName(t *testing.T, h netns.NsHandle) string {
	t.Helper()
	link, err := os.Readlink(filepath.Join("/proc/self/fd", strconv.Itoa(int(h))))
	if err != nil {
		t.Fatal(err)
	}
	return link
}

// TestDoOwnNamespaceUnprivileged: Do into the namespace the thread is in
// needs no setns, so a process without CAP_SYS_ADMIN (the daemon as the
// systemd unit runs it: a plain user with CAP_NET_ADMIN, CAP_NET_RAW and
// CAP_SYS_NICE) reads its own namespace's sysctls through it. The test
// binary runs itself again as uid 65534 with no capabilities; the control
// there is that a setns into its own namespace is refused.
func TestDoOwnNamespaceUnprivileged(t *testing.T) {
	if os.Getenv("NETNSX_UNPRIVILEGED_CHILD") == "1" {
		unprivilegedChild(t)
		return
	}
	testenv.NeedNetns(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	// A copy of this test binary that uid 65534 may run.
	dir, err := os.MkdirTemp("", "netnsx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "netnsx.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--no-new-privs",
		bin, "-test.run=^TestDoOwnNamespaceUnprivileged$", "-test.v")
	cmd.Env = append(os.Environ(), "NETNSX_UNPRIVILEGED_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unprivileged child: %v\n%s", err, out)
	}
	t.Logf("unprivileged child:\n%s", out)
}

func unprivilegedChild(t *testing.T) {
	if os.Getuid() == 0 {
		t.Fatal("the child runs as root")
	}
	var own netns.NsHandle
	if err := netnsx.Locked(func() error {
		var err error
		own, err = netns.Get()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	// The control: setns, even into the namespace the thread is in, is
	// refused without CAP_SYS_ADMIN.
	if err := netnsx.Locked(func() error { return netns.Set(own) }); err == nil {
		t.Fatal("control: setns into the own namespace worked without CAP_SYS_ADMIN; the test proves nothing here")
	}
	var forward []byte
	err := netnsx.Do(own, func() error {
		var err error
		forward, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		return err
	})
	if err != nil {
		t.Fatalf("Do into the own namespace without CAP_SYS_ADMIN: %v", err)
	}
	t.Logf("ip_forward read through Do: %q", forward)
}
