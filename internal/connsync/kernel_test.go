package connsync

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/testenv"
)

// fakeTransport hands the test the sync's message handler and shows lb1
// (a configured peer) and an intruder (a member that is not configured).
type fakeTransport struct {
	mu sync.Mutex
	fn func(from string, payload []byte)
}

func (f *fakeTransport) SetMessageHandler(fn func(from string, payload []byte)) {
	f.mu.Lock()
	f.fn = fn
	f.mu.Unlock()
}
func (f *fakeTransport) SendTo(string, []byte) error { return nil }
func (f *fakeTransport) View() cluster.View {
	return cluster.View{Self: "lb2", Members: []cluster.Member{
		{Name: "intruder", State: cluster.StateAlive},
		{Name: "lb1", Configured: true, State: cluster.StateAlive},
		{Name: "lb2", Configured: true, State: cluster.StateAlive},
	}}
}
func (f *fakeTransport) deliver(t *testing.T, from string, entries ...dataplane.SyncEntry) {
	t.Helper()
	b, err := encodeSyncBatch(entries)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	fn := f.fn
	f.mu.Unlock()
	fn(from, b)
}

// newNS creates an unnamed network namespace (closed at cleanup) on a
// thread that is never unlocked, so Go retires it.
func newNS(t testing.TB) netns.NsHandle {
	t.Helper()
	ch := make(chan netns.NsHandle, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.New()
		if err != nil {
			errc <- err
			return
		}
		ch <- h
	}()
	select {
	case h := <-ch:
		t.Cleanup(func() { h.Close() })
		return h
	case err := <-errc:
		t.Fatalf("creating network namespace: %v", err)
	}
	return 0
}

// TestConnSyncScopeKernel: a peer's connection sync in its own namespace
// (with epconsole's rules for 198.18.173.200:6443 -> .21:6443) receives
// the owner's flow and the reported attack's entries: only the flow to
// the VIP from the configured owner reaches conntrack; an out-of-scope
// entry, one with a foreign mark, and an in-scope entry sent by a member
// that is not configured do not. Control: the kernel itself takes the
// out-of-scope entry when it is written directly, so the filter is what
// keeps it out.
func TestConnSyncScopeKernel(t *testing.T) {
	testenv.NeedNetns(t)
	ns := newNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := []dataplane.Option{dataplane.WithNetNSFd(int(ns)), dataplane.WithLogger(log)}
	ap := netip.MustParseAddrPort
	vip, backend := ap("198.18.173.200:6443"), ap("198.18.173.21:6443")

	d, err := dataplane.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Reconcile(ctx, dataplane.Desired{
		VIPs:     []dataplane.ServiceVIP{{Addr: vip.Addr(), Port: vip.Port()}},
		Backends: []dataplane.Backend{{Name: "cp1", Addr: backend}},
		Healthy:  map[string]bool{"cp1": true},
	}); err != nil {
		t.Fatal(err)
	}
	ct, err := dataplane.NewConntrack(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })

	tr := &fakeTransport{}
	s, err := Start(ctx, log, tr, "lb2", Scope{VIPs: []netip.AddrPort{vip}, Backends: []netip.AddrPort{backend}}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)

	flow := func(src string, dst, nat netip.AddrPort, mark uint32) dataplane.SyncEntry {
		c := ap(src)
		return dataplane.SyncEntry{Op: dataplane.SyncUpsert, OrigSrc: c, OrigDst: dst, ReplySrc: nat,
			ReplyDst: netip.AddrPortFrom(dst.Addr(), c.Port()), TCPState: 3, Timeout: 600, Mark: mark}
	}
	good := flow("198.18.173.50:40000", vip, backend, dataplane.DefaultCtMark)
	foreign := flow("198.18.173.50:40001", ap("198.18.173.11:22"), ap("198.18.173.77:2222"), 0x1)
	marked := flow("198.18.173.50:40002", vip, backend, 0x1)
	byIntruder := flow("198.18.173.50:40003", vip, backend, dataplane.DefaultCtMark)
	tr.deliver(t, "intruder", byIntruder)
	tr.deliver(t, "lb1", foreign, marked, good)

	has := func(e dataplane.SyncEntry) bool {
		t.Helper()
		flows, err := ct.Flows(ctx, e.OrigDst)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range flows {
			if netip.AddrPortFrom(f.TupleOrig.IP.SourceAddress.Unmap(), f.TupleOrig.Proto.SourcePort) == e.OrigSrc {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(5 * time.Second)
	for !has(good) {
		if time.Now().After(deadline) {
			t.Fatal("the owner's flow to the VIP never reached conntrack")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for name, e := range map[string]dataplane.SyncEntry{"out of scope": foreign, "foreign mark": marked, "from a non-configured member": byIntruder} {
		if has(e) {
			t.Errorf("the %s entry %v -> %v reached conntrack", name, e.OrigSrc, e.OrigDst)
		}
	}
	if n := s.Dropped(); n != 3 {
		t.Errorf("dropped %d, want 3", n)
	}
	// A delete of the good flow from the intruder is dropped too.
	del := good
	del.Op = dataplane.SyncDelete
	tr.deliver(t, "intruder", del)
	time.Sleep(200 * time.Millisecond)
	if !has(good) {
		t.Error("a delete from a non-configured member removed the flow")
	}

	// Control: written directly, the kernel takes the out-of-scope entry.
	if err := ct.CreateSynced(ctx, foreign); err != nil {
		t.Fatalf("control: CreateSynced of the out-of-scope entry: %v", err)
	}
	if !has(foreign) {
		t.Error("control: the out-of-scope entry is not in conntrack after a direct CreateSynced")
	}
}
