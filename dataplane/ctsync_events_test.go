package dataplane

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// TestDcsSyncEvents: entries created and deleted in a namespace's table
// (to the VIP:port, to the VIP on another port, to another address, and
// a UDP flow to the VIP:port) reach the sync's event reader as exactly
// the VIP:port's TCP entries, decoded with their tuples, state, timeout
// and mark. The socket filter keeps the other events from the socket;
// control: the same socket without the filter reads all of them.
func TestDcsSyncEvents(t *testing.T) {
	ns, ctx := kernelTest(t)
	vip := netip.MustParseAddrPort("198.18.192.200:6443")
	backend := netip.MustParseAddrPort("198.18.192.21:6443")
	d := newDataplane(t, ns)
	if _, err := d.Reconcile(ctx, Desired{
		VIPs:     []ServiceVIP{{Addr: vip.Addr(), Port: vip.Port()}},
		Backends: []Backend{{Name: "b", Addr: backend}},
		Healthy:  map[string]bool{"b": true},
	}); err != nil {
		t.Fatal(err)
	}
	ct, err := NewConntrack(WithNetNSFd(int(ns)), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	vips := []netip.AddrPort{vip}

	// Two readers: the sync's (filtered) and a control without the filter,
	// each counting the messages that reach its socket.
	type reader struct {
		mu       sync.Mutex
		messages int
		entries  []SyncEntry
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	read := func(filter bool) *reader {
		r := &reader{}
		nl, err := ct.openSyncEvents(vips, filter)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nl.Close()
			// readSyncEvents with a count of every message seen.
			err := readSyncEvents(rctx, nl, vips, func(e SyncEntry) {
				r.mu.Lock()
				r.entries = append(r.entries, e)
				r.mu.Unlock()
			}, func() { r.mu.Lock(); r.messages++; r.mu.Unlock() })
			if err != nil {
				t.Errorf("reading events: %v", err)
			}
		}()
		return r
	}
	synced, control := read(true), read(false)

	ap, err := ct.NewSyncApplier()
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	const n = 40
	var want, other []SyncEntry
	for i := range n {
		c := netip.AddrPortFrom(netip.MustParseAddr("198.18.193.10"), uint16(30000+i))
		e := SyncEntry{Op: SyncUpsert, OrigSrc: c, OrigDst: vip, ReplySrc: backend,
			ReplyDst: netip.AddrPortFrom(vip.Addr(), c.Port()), TCPState: 3, Timeout: 500 + uint32(i), Mark: DefaultCtMark}
		want = append(want, e)
		o := e
		o.OrigDst = netip.AddrPortFrom(vip.Addr(), 8443) // another port
		o.ReplyDst = netip.AddrPortFrom(vip.Addr(), c.Port()+1000)
		p := e
		p.OrigDst = netip.MustParseAddrPort("198.18.192.201:6443") // another address
		p.ReplyDst = netip.AddrPortFrom(p.OrigDst.Addr(), c.Port())
		other = append(other, o, p)
	}
	all := append(append([]SyncEntry{}, want...), other...)
	for i, err := range ap.ApplyAll(ctx, all, false) {
		if err != nil {
			t.Fatalf("creating %v -> %v: %v", all[i].OrigSrc, all[i].OrigDst, err)
		}
	}
	// A UDP flow to the VIP:port, through the kernel's own table.
	udp, err := udpFlowMessage(vip)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ap.nl.Execute(udp); err != nil {
		t.Fatalf("creating the UDP entry: %v", err)
	}
	var dels []SyncEntry
	for _, e := range all {
		e.Op = SyncDelete
		dels = append(dels, e)
	}
	for i, err := range ap.ApplyAll(ctx, dels, false) {
		if err != nil {
			t.Fatalf("deleting %v: %v", dels[i].OrigSrc, err)
		}
	}
	// 3n TCP entries created and destroyed, one UDP entry created.
	total := 2*3*n + 1
	deadline := time.Now().Add(10 * time.Second)
	for {
		control.mu.Lock()
		m := control.messages
		control.mu.Unlock()
		synced.mu.Lock()
		k := len(synced.entries)
		synced.mu.Unlock()
		if (m >= total && k >= 2*n) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // anything late
	stop()
	wg.Wait()

	if control.messages != total {
		t.Errorf("control: the unfiltered socket read %d messages, want %d", control.messages, total)
	}
	if synced.messages != 2*n {
		t.Errorf("the filtered socket read %d messages, want the VIP:port's %d", synced.messages, 2*n)
	}
	if len(control.entries) != 2*n {
		t.Errorf("control: %d entries decoded from all events, want %d", len(control.entries), 2*n)
	}
	if len(synced.entries) != 2*n {
		t.Fatalf("%d entries decoded, want %d", len(synced.entries), 2*n)
	}
	for i, e := range want {
		got := synced.entries[i]
		// The event's timeout is what is left; the rest is exact.
		if got.Timeout == 0 || got.Timeout > e.Timeout {
			t.Errorf("entry %d: timeout %d, want (0, %d]", i, got.Timeout, e.Timeout)
		}
		got.Timeout = e.Timeout
		if got != e {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, got, e)
		}
		del := synced.entries[n+i]
		if del.Op != SyncDelete || del.OrigSrc != e.OrigSrc || del.OrigDst != vip || del.ReplySrc != backend {
			t.Errorf("delete %d: %+v", i, del)
		}
	}
}

// udpFlowMessage is a create request of a UDP entry to vip.
func udpFlowMessage(vip netip.AddrPort) (netlink.Message, error) {
	src := netip.MustParseAddrPort("198.18.193.11:5353")
	e := SyncEntry{OrigSrc: src, OrigDst: vip}
	tuple := func(typ uint16, a, b netip.AddrPort) netfilter.Attribute {
		t := tupleAttr(typ, a, b)
		t.Children[1].Children[0].Data = []byte{unix.IPPROTO_UDP}
		return t
	}
	return ctMessage(ctnetlinkNewCT, e, netlink.Request|netlink.Acknowledge|netlink.Create|netlink.Excl,
		tuple(ctaTupleOrig, src, vip), tuple(ctaTupleReply, vip, src), u32Attr(ctaTimeout, 30))
}
