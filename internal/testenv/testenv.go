// Package testenv is what epconsole's tests share about their environment:
// whether kernel tests (network namespaces, nftables) can run here, turning
// a skip into a failure when CI demands them (EPCONSOLE_REQUIRE_NETNS=1);
// unnamed network namespaces for them;
// the binaries multi-process tests run (cmd/epconsole, cmd/epconsole-lab:
// prebuilt ones from EPCONSOLE_BIN and EPCONSOLE_LAB_BIN, else built once);
// and a tmux pane for tests that drive a program on a real terminal.
package testenv

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/epconsole/epconsole/internal/netnsx"
)

// RequireNetnsEnv is the environment variable that makes a skipped
// network-namespace test a failure.
const RequireNetnsEnv = "EPCONSOLE_REQUIRE_NETNS"

// NetnsRequired reports whether skipping a netns test is an error.
func NetnsRequired() bool { return os.Getenv(RequireNetnsEnv) == "1" }

// Skip skips the test with reason, or fails it when netns tests are required.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if NetnsRequired() {
		t.Fatalf("%s=1 but this network-namespace test cannot run: %s", RequireNetnsEnv, reason)
	}
	t.Skip(reason)
}

// NeedNetns skips (or fails, under EPCONSOLE_REQUIRE_NETNS=1) unless the
// test runs as root on a kernel with network namespaces and `ip` from
// iproute2 is on PATH. Under `go test -short` kernel tests are skipped
// unless required.
func NeedNetns(t testing.TB) {
	t.Helper()
	if testing.Short() && !NetnsRequired() {
		t.Skip("kernel test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		Skip(t, "needs root (network namespaces, nftables); run as root or `sudo go test`")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		Skip(t, "needs `ip` from iproute2 (apt-get install iproute2)")
	}
	if err := probeNetns(); err != nil {
		Skip(t, "cannot create a network namespace: "+err.Error())
	}
}

// probeNetns creates and drops an unnamed namespace on a thread of its own
// (netnsx's policy: the thread goes back to its namespace or is retired).
func probeNetns() error {
	return netnsx.Locked(func() error {
		h, err := netns.New()
		if err == nil {
			h.Close()
		}
		return err
	})
}

// NoNamespacesLeft fails t for every named network namespace whose name
// starts with prefix+"-" (what a lab or topology with that prefix
// creates), as a test checks after its teardown.
func NoNamespacesLeft(t testing.TB, prefix string) {
	t.Helper()
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}

// UnnamedNetNS creates an unnamed network namespace on a thread of its
// own that is never unlocked, so Go retires the thread with the goroutine
// and no other goroutine runs in the namespace; the caller closes the
// handle (which frees the namespace).
func UnnamedNetNS() (netns.NsHandle, error) {
	type result struct {
		h   netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.New()
		ch <- result{h, err}
	}()
	r := <-ch
	return r.h, r.err
}

// NewNetNS is UnnamedNetNS for one test: it fails t when the namespace
// cannot be made and closes the handle at cleanup.
func NewNetNS(t testing.TB) netns.NsHandle {
	t.Helper()
	h, err := UnnamedNetNS()
	if err != nil {
		t.Fatalf("creating network namespace: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}
