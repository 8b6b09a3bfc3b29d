package dataplane_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netns"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// TestMain lets this test binary serve as netlab's child processes (the
// stand-ins and stream clients of the connection-sync proof).
func TestMain(m *testing.M) {
	netlab.RunChild()
	os.Exit(m.Run())
}

func TestDcsSyncEntryWire(t *testing.T) {
	v4 := dataplane.SyncEntry{
		Op:       dataplane.SyncUpsert,
		OrigSrc:  netip.MustParseAddrPort("198.18.1.210:40000"),
		OrigDst:  netip.MustParseAddrPort("198.18.1.200:6443"),
		ReplySrc: netip.MustParseAddrPort("198.18.1.221:6443"),
		ReplyDst: netip.MustParseAddrPort("198.18.1.200:40000"),
		TCPState: 3, Timeout: 431999, Mark: dataplane.DefaultCtMark,
	}
	v6 := dataplane.SyncEntry{
		Op:       dataplane.SyncDelete,
		OrigSrc:  netip.MustParseAddrPort("[fd00:198:18:1:c000::210]:40001"),
		OrigDst:  netip.MustParseAddrPort("[fd00:198:18:1:c000::200]:6443"),
		ReplySrc: netip.MustParseAddrPort("[fd00:198:18:1:c000::221]:7443"),
		ReplyDst: netip.MustParseAddrPort("[fd00:198:18:1:c000::200]:1024"),
	}
	mapped := v4
	mapped.OrigSrc = netip.AddrPortFrom(netip.AddrFrom16(v4.OrigSrc.Addr().As16()), 40000)
	good, _ := v4.MarshalBinary()
	tests := []struct {
		name    string
		in      dataplane.SyncEntry
		wantLen int
		want    dataplane.SyncEntry // after a round trip
		encErr  bool
	}{
		{"IPv4 upsert", v4, 36, v4, false},
		{"IPv6 delete", v6, 84, v6, false},
		{"IPv4-mapped source is IPv4", mapped, 36, v4, false},
		{"unknown op", dataplane.SyncEntry{Op: 9, OrigSrc: v4.OrigSrc, OrigDst: v4.OrigDst, ReplySrc: v4.ReplySrc, ReplyDst: v4.ReplyDst}, 0, dataplane.SyncEntry{}, true},
		{"missing reply", dataplane.SyncEntry{Op: dataplane.SyncUpsert, OrigSrc: v4.OrigSrc, OrigDst: v4.OrigDst}, 0, dataplane.SyncEntry{}, true},
		{"mixed families", dataplane.SyncEntry{Op: dataplane.SyncUpsert, OrigSrc: v4.OrigSrc, OrigDst: v4.OrigDst, ReplySrc: v6.ReplySrc, ReplyDst: v4.ReplyDst}, 0, dataplane.SyncEntry{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.in.MarshalBinary()
			if tc.encErr {
				if err == nil {
					t.Fatalf("MarshalBinary(%+v) = %x, want an error", tc.in, b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tc.wantLen {
				t.Errorf("%d bytes, want %d", len(b), tc.wantLen)
			}
			var got dataplane.SyncEntry
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}

	bad := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short header", good[:5]},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(slices.Clone(good), 0)},
		{"wire version", append([]byte{2}, good[1:]...)},
		{"address length", func() []byte { b := slices.Clone(good); b[2] = 6; return b }()},
		{"op", func() []byte { b := slices.Clone(good); b[1] = 0; return b }()},
	}
	for _, tc := range bad {
		t.Run("decode "+tc.name, func(t *testing.T) {
			e := dataplane.SyncEntry{Timeout: 7}
			if err := e.UnmarshalBinary(tc.b); err == nil {
				t.Errorf("UnmarshalBinary(%x) = %+v, want an error", tc.b, e)
			}
			if e.Timeout != 7 {
				t.Errorf("a failed decode changed the entry: %+v", e)
			}
		})
	}
}

// newNS creates an unnamed network namespace (closed at cleanup) on a
// thread that is never unlocked, so Go retires it.
func newNS(t *testing.T) netns.NsHandle {
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

// TestDcsCreateSynced creates synced entries in a fresh namespace (a peer,
// "namespace B", with epconsole's rules) and reads them back with a dump:
// the kernel set up the NAT (status SRC_NAT|DST_NAT) from CTA_NAT_DST and
// CTA_NAT_SRC, the reply tuple is the translated one, state, mark and
// timeout are the owner's. A second create refreshes, delete removes.
func TestDcsCreateSynced(t *testing.T) {
	testenv.NeedNetns(t)
	ns := newNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	opts := []dataplane.Option{dataplane.WithNetNSFd(int(ns)), dataplane.WithLogger(quietLogger(t, "b"))}

	vip4, vip6 := netip.MustParseAddr("198.18.1.200"), netip.MustParseAddr("fd00:198:18:1:c000::200")
	b4, b6 := netip.MustParseAddrPort("198.18.1.221:6443"), netip.MustParseAddrPort("[fd00:198:18:1:c000::221]:6443")
	d, err := dataplane.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Reconcile(ctx, dataplane.Desired{
		VIPs:     []dataplane.ServiceVIP{{Addr: vip4, Port: 6443}, {Addr: vip6, Port: 6443}},
		Backends: []dataplane.Backend{{Name: "b4", Addr: b4}, {Name: "b6", Addr: b6}},
		Healthy:  map[string]bool{"b4": true, "b6": true},
	}); err != nil {
		t.Fatal(err)
	}
	ct, err := dataplane.NewConntrack(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })

	entries := []dataplane.SyncEntry{
		{
			Op:      dataplane.SyncUpsert,
			OrigSrc: netip.MustParseAddrPort("198.18.1.210:40000"), OrigDst: netip.AddrPortFrom(vip4, 6443),
			ReplySrc: b4, ReplyDst: netip.AddrPortFrom(vip4, 40000),
			TCPState: 3, Timeout: 3000, Mark: dataplane.DefaultCtMark,
		},
		{
			Op:      dataplane.SyncUpsert,
			OrigSrc: netip.MustParseAddrPort("[fd00:198:18:1:c000::210]:40001"), OrigDst: netip.AddrPortFrom(vip6, 6443),
			ReplySrc: b6, ReplyDst: netip.AddrPortFrom(vip6, 40001),
			TCPState: 3, Timeout: 3000, Mark: dataplane.DefaultCtMark,
		},
	}
	for _, e := range entries {
		if err := ct.CreateSynced(ctx, e); err != nil {
			t.Fatalf("CreateSynced %v: %v", e.OrigSrc, err)
		}
	}
	find := func(e dataplane.SyncEntry) (conntrack.Flow, bool) {
		t.Helper()
		flows, err := ct.Flows(ctx, e.OrigDst)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range flows {
			if netip.AddrPortFrom(f.TupleOrig.IP.SourceAddress.Unmap(), f.TupleOrig.Proto.SourcePort) == e.OrigSrc {
				return f, true
			}
		}
		return conntrack.Flow{}, false
	}
	for _, e := range entries {
		f, ok := find(e)
		if !ok {
			t.Fatalf("no entry from %v after CreateSynced", e.OrigSrc)
		}
		t.Logf("created: %v", f)
		if !f.Status.SrcNAT() || !f.Status.DstNAT() {
			t.Errorf("%v: status %v, want SRC_NAT|DST_NAT set by the kernel", e.OrigSrc, f.Status)
		}
		if !f.Status.Assured() || !f.Status.Confirmed() {
			t.Errorf("%v: status %v, want ASSURED|CONFIRMED", e.OrigSrc, f.Status)
		}
		rs := netip.AddrPortFrom(f.TupleReply.IP.SourceAddress.Unmap(), f.TupleReply.Proto.SourcePort)
		rd := netip.AddrPortFrom(f.TupleReply.IP.DestinationAddress.Unmap(), f.TupleReply.Proto.DestinationPort)
		if rs != e.ReplySrc || rd != e.ReplyDst {
			t.Errorf("%v: reply tuple %v -> %v, want %v -> %v", e.OrigSrc, rs, rd, e.ReplySrc, e.ReplyDst)
		}
		if f.ProtoInfo.TCP == nil || f.ProtoInfo.TCP.State != e.TCPState {
			t.Errorf("%v: TCP protoinfo %+v, want state %d", e.OrigSrc, f.ProtoInfo.TCP, e.TCPState)
		}
		// BE_LIBERAL (0x08) in both directions, as for a flow picked up
		// mid-stream (the dump gives {flags, mask} as one big-endian u16).
		if tcp := f.ProtoInfo.TCP; tcp == nil || tcp.OriginalFlags>>8&0x08 == 0 || tcp.ReplyFlags>>8&0x08 == 0 {
			t.Errorf("%v: TCP protoinfo %+v, want BE_LIBERAL in both directions", e.OrigSrc, f.ProtoInfo.TCP)
		}
		if f.Mark != e.Mark {
			t.Errorf("%v: mark %#x, want %#x", e.OrigSrc, f.Mark, e.Mark)
		}
		if f.Timeout == 0 || f.Timeout > e.Timeout {
			t.Errorf("%v: timeout %d, want (0, %d]", e.OrigSrc, f.Timeout, e.Timeout)
		}
	}
	// The dump an owner sends a joining peer finds them, as upserts.
	dump, err := ct.SyncDump(ctx, []netip.AddrPort{entries[0].OrigDst, entries[1].OrigDst})
	if err != nil {
		t.Fatal(err)
	}
	if len(dump) != len(entries) {
		t.Errorf("SyncDump: %d entries, want %d: %+v", len(dump), len(entries), dump)
	}
	for _, got := range dump {
		i := slices.IndexFunc(entries, func(e dataplane.SyncEntry) bool { return e.OrigSrc == got.OrigSrc })
		if i < 0 {
			t.Errorf("SyncDump: unexpected %+v", got)
			continue
		}
		want := entries[i]
		got.Timeout, want.Timeout = 0, 0
		if got != want {
			t.Errorf("SyncDump:\n got %+v\nwant %+v", got, want)
		}
	}

	// Again (an update event after the create): refreshed, not an error.
	again := entries[0]
	again.Timeout = 600
	if err := ct.CreateSynced(ctx, again); err != nil {
		t.Fatalf("second CreateSynced: %v", err)
	}
	if f, ok := find(again); !ok || f.Timeout > 600 || !f.Status.SrcNAT() {
		t.Errorf("after refresh: %v (found %t), want timeout <= 600 and the NAT kept", f, ok)
	}

	// AddSynced leaves an existing entry alone (the owner's own).
	keep := entries[0]
	keep.Timeout = 60
	if err := ct.AddSynced(ctx, keep); err != nil {
		t.Fatalf("AddSynced on an existing entry: %v", err)
	}
	if f, ok := find(keep); !ok || f.Timeout <= 60 {
		t.Errorf("after AddSynced: %v (found %t), want the timeout (<= 600, > 60) unchanged", f, ok)
	}

	// A handshake state is never synced: a late (reordered) SYN_SENT
	// upsert leaves the established entry established, and a flow still
	// in its handshake gets no entry (the peer picks it up itself).
	stale := entries[0]
	stale.TCPState = 1 // SYN_SENT
	if err := ct.ApplySynced(ctx, stale); err != nil {
		t.Fatalf("ApplySynced of a SYN_SENT upsert: %v", err)
	}
	if f, ok := find(stale); !ok || f.ProtoInfo.TCP == nil || f.ProtoInfo.TCP.State != 3 {
		t.Errorf("after a stale SYN_SENT upsert: %v (found %t), want still ESTABLISHED", f, ok)
	}
	fresh := entries[0]
	fresh.OrigSrc = netip.MustParseAddrPort("198.18.1.210:40002")
	fresh.ReplyDst = netip.AddrPortFrom(vip4, 40002)
	fresh.TCPState = 2 // SYN_RECV
	if err := ct.ApplySynced(ctx, fresh); err != nil {
		t.Fatalf("ApplySynced of a SYN_RECV upsert: %v", err)
	}
	if f, ok := find(fresh); ok {
		t.Errorf("a flow in its handshake was created on the peer: %v", f)
	}

	for _, e := range entries {
		e.Op = dataplane.SyncDelete
		if err := ct.ApplySynced(ctx, e); err != nil {
			t.Fatalf("delete %v: %v", e.OrigSrc, err)
		}
		if _, ok := find(e); ok {
			t.Errorf("%v still there after delete", e.OrigSrc)
		}
		if err := ct.DeleteSynced(ctx, e); err != nil {
			t.Errorf("deleting a missing entry: %v", err)
		}
	}
}

func TestDcsSyncable(t *testing.T) {
	for st, want := range map[uint8]bool{0: true, 1: false, 2: false, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: false} {
		if got := dataplane.Syncable(st); got != want {
			t.Errorf("Syncable(%d) = %v, want %v", st, got, want)
		}
	}
}

// TestDcsStreamsSurviveVIPMove is the proof: streams through the VIP owned
// by lb1, lb1's conntrack events applied on lb2, the VIP moved to lb2;
// every stream keeps receiving its lines. The control run without sync
// shows the streams dying.
func TestDcsStreamsSurviveVIPMove(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix string
		sync   bool
	}{
		{"sync", "dcs", true},
		{"control without sync", "dcsc", false},
	} {
		t.Run(tc.name, func(t *testing.T) { streamsAcrossMove(t, tc.prefix, tc.sync) })
	}
}

func streamsAcrossMove(t *testing.T, prefix string, withSync bool) {
	lab := netlab.New(t, netlab.Spec{
		Prefix: prefix,
		IPv4:   netip.MustParsePrefix("198.18.10.0/24"),
		IPv6:   netip.MustParsePrefix("fd00:198:18:10::/64"),
		Hosts: []netlab.HostSpec{
			{Name: "cl", Role: netlab.RoleClient},
			{Name: "lb1", Role: netlab.RoleLB}, {Name: "lb2", Role: netlab.RoleLB},
			{Name: "b1", Role: netlab.RoleBackend}, {Name: "b2", Role: netlab.RoleBackend},
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	const port = 6443
	vips := []netip.AddrPort{netip.AddrPortFrom(lab.VIP4(), port), netip.AddrPortFrom(lab.VIP6(), port)}
	want := dataplane.Desired{VIPs: []dataplane.ServiceVIP{{Addr: lab.VIP4(), Port: port}, {Addr: lab.VIP6(), Port: port}}, Healthy: map[string]bool{}}
	for _, h := range lab.HostsByRole(netlab.RoleBackend) {
		if _, err := h.StartStandin(ctx, netlab.StandinOpts{}); err != nil {
			t.Fatal(err)
		}
		want.Backends = append(want.Backends,
			dataplane.Backend{Name: h.Name(), Addr: netip.AddrPortFrom(h.IPv4(), port)},
			dataplane.Backend{Name: h.Name() + "v6", Addr: netip.AddrPortFrom(h.IPv6(), port)})
		want.Healthy[h.Name()], want.Healthy[h.Name()+"v6"] = true, true
	}
	type lb struct {
		ct  *dataplane.Conntrack
		vip *dataplane.VIP
	}
	var lbs []lb
	for _, name := range []string{"lb1", "lb2"} {
		opt := dataplane.WithNetNS(lab.Host(name).Namespace())
		d, err := dataplane.New(opt, dataplane.WithLogger(quietLogger(t, name)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		if _, err := d.Reconcile(ctx, want); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ct, err := dataplane.NewConntrack(opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ct.Close() })
		v, err := dataplane.NewVIP(opt, dataplane.WithLogger(quietLogger(t, name)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		lbs = append(lbs, lb{ct, v})
	}
	for _, a := range dataplane.Addresses(want.VIPs) {
		if err := lbs[0].vip.Add(ctx, netlab.HostLink, a); err != nil {
			t.Fatal(err)
		}
	}

	// The sync: lb1's events applied on lb2, as the daemon will do.
	var (
		mu      sync.Mutex
		applied int
		errs    []error
	)
	watchDone := make(chan error, 1)
	wctx, stopWatch := context.WithCancel(ctx)
	if withSync {
		go func() {
			watchDone <- lbs[0].ct.WatchSync(wctx, vips, func(e dataplane.SyncEntry) {
				err := lbs[1].ct.ApplySynced(wctx, e)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				}
				applied++
			})
		}()
	} else {
		watchDone <- nil
	}
	t.Cleanup(func() {
		stopWatch()
		if err := <-watchDone; err != nil {
			t.Errorf("WatchSync: %v", err)
		}
	})

	// Streams: 40 lines 100 ms apart each, both families.
	cl := lab.Host("cl")
	var streams []*netlab.Stream
	for i := range 6 {
		s, err := cl.StartStream(ctx, netlab.StreamOpts{Target: vips[i%2], Lines: 40, Every: 100 * time.Millisecond, Timeout: 8 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	if withSync {
		// Every stream's entry reaches lb2, with the NAT set up.
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := 0
			for _, v := range vips {
				flows, err := lbs[1].ct.Flows(ctx, v)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range flows {
					if f.Status.SrcNAT() && f.Status.DstNAT() {
						n++
					}
				}
			}
			if n >= len(streams) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lb2 has %d NATed entries through the VIPs, want %d", n, len(streams))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond)

	// The move: lb1 lets go, lb2 takes over (address + announcements).
	moved := time.Now()
	for _, a := range dataplane.Addresses(want.VIPs) {
		if err := lbs[0].vip.Remove(ctx, netlab.HostLink, a); err != nil {
			t.Fatal(err)
		}
		if err := lbs[1].vip.Add(ctx, netlab.HostLink, a); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("VIPs moved from lb1 to lb2 (took %v)", time.Since(moved))

	complete := 0
	for i, s := range streams {
		res, err := s.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("stream %d to %v via %s: %s after %d lines (%s)", i, vips[i%2], s.Backend, res.End, res.Lines, res.Err)
		if res.End == netlab.StreamComplete {
			complete++
		}
	}
	mu.Lock()
	t.Logf("sync %t: %d of %d streams complete; %d sync entries applied on lb2", withSync, complete, len(streams), applied)
	for _, err := range errs {
		t.Errorf("applying on lb2: %v", err)
	}
	mu.Unlock()
	if withSync && complete != len(streams) {
		t.Errorf("with sync %d of %d streams survived the VIP move, want all", complete, len(streams))
	}
	if !withSync && complete != 0 {
		t.Errorf("control: %d of %d streams survived without sync; the proof cannot fail", complete, len(streams))
	}
	if withSync && applied < len(streams) {
		t.Errorf("%d entries applied, want at least one per stream (%d)", applied, len(streams))
	}
}

// quietLogger logs warnings and errors of one host to the test log.
func quietLogger(t *testing.T, host string) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("host", host)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
