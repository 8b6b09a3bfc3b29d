package dataplane

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/testenv"
	"github.com/google/nftables"
	"github.com/vishvananda/netns"
)

// newNetNS creates an unnamed network namespace for one test
// (testenv.NewNetNS).
func newNetNS(t *testing.T) netns.NsHandle { return testenv.NewNetNS(t) }

// benchNetNS creates an unnamed network namespace for a benchmark
// (testenv.UnnamedNetNS); the caller closes the handle.
func benchNetNS() (netns.NsHandle, error) { return testenv.UnnamedNetNS() }

// kernelTest starts a kernel test: skips (or fails under
// EPCONSOLE_REQUIRE_NETNS=1) without root and netns, and returns a fresh
// namespace and a context bounded in time.
func kernelTest(t *testing.T) (netns.NsHandle, context.Context) {
	t.Helper()
	testenv.NeedNetns(t)
	ns := newNetNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ns, ctx
}

func newDataplane(t *testing.T, ns netns.NsHandle, opts ...Option) *Dataplane {
	t.Helper()
	d, err := New(append([]Option{WithNetNSFd(int(ns)), WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// nftConn is an independent nftables connection into ns, for the test's
// own reads and for foreign tables.
func nftConn(t *testing.T, ns netns.NsHandle) *nftables.Conn {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func generation(t *testing.T, ctx context.Context, d *Dataplane) uint32 {
	t.Helper()
	g, err := d.Generation(ctx)
	if err != nil {
		t.Fatalf("Generation: %v", err)
	}
	return g
}

var (
	vip4 = netip.MustParseAddr("198.18.1.100")
	vip6 = netip.MustParseAddr("fd00:198:18:1::100")
)

func backends4() []Backend {
	return []Backend{
		{Name: "cp1", Addr: netip.MustParseAddrPort("198.18.1.11:6443")},
		{Name: "cp2", Addr: netip.MustParseAddrPort("198.18.1.12:6443")},
		{Name: "cp3", Addr: netip.MustParseAddrPort("198.18.1.13:16443")},
	}
}

func backends6() []Backend {
	return []Backend{
		{Name: "cp1v6", Addr: netip.MustParseAddrPort("[fd00:198:18:1::11]:6443")},
		{Name: "cp2v6", Addr: netip.MustParseAddrPort("[fd00:198:18:1::12]:6443")},
		{Name: "cp3v6", Addr: netip.MustParseAddrPort("[fd00:198:18:1::13]:6443")},
	}
}

func healthySet(names ...string) map[string]bool {
	h := map[string]bool{}
	for _, n := range names {
		h[n] = true
	}
	return h
}

// testLogger logs through t.Log, so output shows only for failing or -v runs.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// serviceVIPs makes VIPs on the default port.
func serviceVIPs(addrs ...netip.Addr) []ServiceVIP {
	out := make([]ServiceVIP, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, ServiceVIP{Addr: a})
	}
	return out
}
