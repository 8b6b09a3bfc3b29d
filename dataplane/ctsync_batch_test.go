package dataplane_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/testenv"
)

// TestDcsApplyAll applies 1,000 entries in batches (more than one
// sendmsg chunk) to a namespace with epconsole's rules and checks that
// each entry's outcome is its own: the good ones are in the table with
// their state and timeout, the one the kernel refuses (a TCP state out of
// range) has the kernel's error of its own, a second pass refreshes what exists,
// deletes of missing entries are no errors, and Add leaves existing
// entries alone.
func TestDcsApplyAll(t *testing.T) {
	testenv.NeedNetns(t)
	ns := newNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	opts := []dataplane.Option{dataplane.WithNetNSFd(int(ns)), dataplane.WithLogger(quietLogger(t, "b"))}
	vip := netip.MustParseAddrPort("198.18.190.200:6443")
	backend := netip.MustParseAddrPort("198.18.190.21:6443")
	d, err := dataplane.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Reconcile(ctx, dataplane.Desired{
		VIPs:     []dataplane.ServiceVIP{{Addr: vip.Addr(), Port: vip.Port()}},
		Backends: []dataplane.Backend{{Name: "b", Addr: backend}},
		Healthy:  map[string]bool{"b": true},
	}); err != nil {
		t.Fatal(err)
	}
	ct, err := dataplane.NewConntrack(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	ap, err := ct.NewSyncApplier()
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()

	const n, bad = 1000, 517
	entry := func(i int, timeout uint32) dataplane.SyncEntry {
		c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 191, byte(1 + i/200)}), uint16(20000+i))
		return dataplane.SyncEntry{Op: dataplane.SyncUpsert, OrigSrc: c, OrigDst: vip,
			ReplySrc: backend, ReplyDst: netip.AddrPortFrom(vip.Addr(), c.Port()),
			TCPState: 3, Timeout: timeout, Mark: dataplane.DefaultCtMark}
	}
	var es []dataplane.SyncEntry
	for i := range n {
		es = append(es, entry(i, 3000))
	}
	es[bad].TCPState = 99 // the kernel's policy refuses it
	errs := ap.ApplyAll(ctx, es, false)
	for i, err := range errs {
		if (i == bad) != (err != nil) {
			t.Errorf("entry %d: %v", i, err)
		}
	}
	if !errors.Is(errs[bad], unix.ERANGE) && !errors.Is(errs[bad], unix.EINVAL) {
		t.Errorf("the refused entry's error is %v, want the kernel's ERANGE (or EINVAL)", errs[bad])
	}
	timeouts := func() map[netip.AddrPort]uint32 {
		t.Helper()
		flows, err := ct.Flows(ctx, vip)
		if err != nil {
			t.Fatal(err)
		}
		out := map[netip.AddrPort]uint32{}
		for _, f := range flows {
			out[netip.AddrPortFrom(f.TupleOrig.IP.SourceAddress.Unmap(), f.TupleOrig.Proto.SourcePort)] = f.Timeout
		}
		return out
	}
	got := timeouts()
	if len(got) != n-1 {
		t.Fatalf("%d entries in the table after the batch, want %d", len(got), n-1)
	}
	if _, ok := got[es[bad].OrigSrc]; ok {
		t.Errorf("the refused entry is in the table")
	}

	// Add leaves existing entries (timeout 3000) alone.
	var short []dataplane.SyncEntry
	for i := range n {
		short = append(short, entry(i, 60))
	}
	for i, err := range ap.ApplyAll(ctx, short, true) {
		if err != nil {
			t.Errorf("add %d: %v", i, err)
		}
	}
	for a, to := range timeouts() {
		if to < 100 && a != es[bad].OrigSrc {
			t.Fatalf("Add changed the timeout of %v to %d", a, to)
		}
	}
	// Apply refreshes them; deletes of the first 100 and of 100 missing
	// ones are no errors.
	for i, err := range ap.ApplyAll(ctx, short, false) {
		if err != nil {
			t.Errorf("refresh %d: %v", i, err)
		}
	}
	got = timeouts()
	if len(got) != n {
		t.Errorf("%d entries after the refresh, want %d", len(got), n)
	}
	for a, to := range got {
		if to > 60 {
			t.Fatalf("%v: timeout %d after the refresh, want <= 60", a, to)
		}
	}
	var dels []dataplane.SyncEntry
	for i := range 100 {
		for _, j := range []int{i, n + i} {
			e := entry(j, 0)
			e.Op = dataplane.SyncDelete
			dels = append(dels, e)
		}
	}
	for i, err := range ap.ApplyAll(ctx, dels, false) {
		if err != nil {
			t.Errorf("delete %d: %v", i, err)
		}
	}
	if got := len(timeouts()); got != n-100 {
		t.Errorf("%d entries after the deletes, want %d", got, n-100)
	}
}
