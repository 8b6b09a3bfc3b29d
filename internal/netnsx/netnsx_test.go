package netnsx_test

import (
	"errors"
	"os"
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
