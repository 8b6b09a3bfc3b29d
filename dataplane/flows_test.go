package dataplane

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestDpLocalFlowsFollowSlotMap starts connections from the LB host itself
// to the VIP: the output chain DNATs each to the backend that FlowSlot and
// BuildSlots predict, keeps the host's source address (no SNAT), and
// Reconcile deletes the conntrack entries of a backend it withdraws.
func TestDpLocalFlowsFollowSlotMap(t *testing.T) {
	for _, tc := range []struct {
		fam  int
		mode BalanceMode
	}{{0, BalanceConnection}, {1, BalanceConnection}, {0, BalanceSource}, {1, BalanceSource}} {
		fam := flowFamilies()[tc.fam]
		t.Run(fam.name+"/"+string(tc.mode), func(t *testing.T) {
			ns, ctx := kernelTest(t)
			h := nlHandle(t, ns)
			linkUp(t, h, "lo")
			addStub(t, h, "dp0", "198.18.1.1/24", "fd00:198:18:1::1/64")
			client := netip.MustParseAddr("198.18.1.1")
			if fam.vip.Is6() {
				client = netip.MustParseAddr("fd00:198:18:1::1")
			}
			names := []string{fam.backends[0].Name, fam.backends[1].Name, fam.backends[2].Name}
			want := Desired{VIPs: serviceVIPs(fam.vip), Backends: fam.backends, Healthy: healthySet(names...), Mode: tc.mode}
			d := newDataplane(t, ns)
			if _, err := d.Reconcile(ctx, want); err != nil {
				t.Fatal(err)
			}
			vip := netip.AddrPortFrom(fam.vip, DefaultPort)
			const flows = 30
			expect := map[netip.AddrPort]netip.AddrPort{} // client -> backend
			perBackend := map[netip.AddrPort]int{}
			for i := range flows {
				src := netip.AddrPortFrom(client, uint16(40000+i))
				startConnect(t, ns, src, vip)
				b := expectedBackend(t, want, fam.vip, src)
				expect[src] = b
				perBackend[b]++
			}
			t.Logf("expected flows per backend: %v", perBackend)
			if tc.mode == BalanceSource && len(perBackend) != 1 {
				t.Errorf("balance by source spread one client over %d backends", len(perBackend))
			}
			got, err := d.Conntrack().Flows(ctx, vip)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != flows {
				t.Fatalf("%d conntrack entries to %v, want %d", len(got), vip, flows)
			}
			for _, f := range got {
				src := netip.AddrPortFrom(f.TupleOrig.IP.SourceAddress, f.TupleOrig.Proto.SourcePort)
				if replySrc(f) != expect[src] {
					t.Errorf("flow from %v went to %v, FlowSlot predicts %v", src, replySrc(f), expect[src])
				}
				replyDst := netip.AddrPortFrom(f.TupleReply.IP.DestinationAddress, f.TupleReply.Proto.DestinationPort)
				if replyDst != src {
					t.Errorf("local flow from %v was SNATed: reply goes to %v", src, replyDst)
				}
				if f.Mark&DefaultCtMark != 0 {
					t.Errorf("local flow from %v carries the forwarded-flow mark", src)
				}
			}

			// Withdrawing a backend deletes exactly its entries.
			// Withdraw the backend with the most flows.
			gone := fam.backends[0]
			for _, b := range fam.backends {
				if perBackend[b.Addr] > perBackend[gone.Addr] {
					gone = b
				}
			}
			want.Healthy = healthySet(names...)
			delete(want.Healthy, gone.Name)
			res, err := d.Reconcile(ctx, want)
			if err != nil {
				t.Fatal(err)
			}
			fr := res.Families[0]
			if len(fr.Withdrawn) != 1 || fr.Withdrawn[0] != gone.Addr || fr.FlowsDeleted != perBackend[gone.Addr] {
				t.Errorf("withdrawing %s: withdrawn %v, %d flows deleted; want %d", gone.Name, fr.Withdrawn, fr.FlowsDeleted, perBackend[gone.Addr])
			}
			left, err := d.Conntrack().Flows(ctx, vip)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != flows-perBackend[gone.Addr] {
				t.Errorf("%d entries left, want %d", len(left), flows-perBackend[gone.Addr])
			}
			for _, f := range left {
				if replySrc(f) == gone.Addr {
					t.Errorf("entry of withdrawn backend survived: %v", f.TupleOrig)
				}
			}
		})
	}
}

// TestDpLocalFlowsFromVIPMasqueraded connects from the LB host to the VIP
// it holds with the VIP as the source address (what the kernel picks for a
// connection to a local address): the output chain DNATs the flow, and
// postrouting masquerades it to the host's own address on the egress link,
// so the backend answers the host, not the VIP. The flow stays unmarked,
// and a flow from the host's own address keeps its source.
func TestDpLocalFlowsFromVIPMasqueraded(t *testing.T) {
	for _, fam := range flowFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			ns, ctx := kernelTest(t)
			h := nlHandle(t, ns)
			linkUp(t, h, "lo")
			stub := addStub(t, h, "dp0", "198.18.1.1/24", "fd00:198:18:1::1/64")
			// The VIP as VIP.Add puts it there.
			if err := h.AddrAdd(stub, vipAddr(fam.vip)); err != nil {
				t.Fatal(err)
			}
			own := netip.MustParseAddr("198.18.1.1")
			if fam.vip.Is6() {
				own = netip.MustParseAddr("fd00:198:18:1::1")
			}
			want := Desired{VIPs: serviceVIPs(fam.vip), Backends: fam.backends,
				Healthy: healthySet(fam.backends[0].Name, fam.backends[1].Name, fam.backends[2].Name)}
			d := newDataplane(t, ns)
			if _, err := d.Reconcile(ctx, want); err != nil {
				t.Fatal(err)
			}
			vip := netip.AddrPortFrom(fam.vip, DefaultPort)
			const flows = 10
			for i := range flows {
				startConnect(t, ns, netip.AddrPortFrom(fam.vip, uint16(43000+i)), vip)
			}
			startConnect(t, ns, netip.AddrPortFrom(own, 43100), vip)
			got, err := d.Conntrack().Flows(ctx, vip)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != flows+1 {
				t.Fatalf("%d conntrack entries to %v, want %d", len(got), vip, flows+1)
			}
			for _, f := range got {
				src := netip.AddrPortFrom(f.TupleOrig.IP.SourceAddress, f.TupleOrig.Proto.SourcePort)
				if b := expectedBackend(t, want, fam.vip, src); replySrc(f) != b {
					t.Errorf("flow from %v went to %v, FlowSlot predicts %v", src, replySrc(f), b)
				}
				if f.Mark&DefaultCtMark != 0 {
					t.Errorf("local flow from %v carries the forwarded-flow mark", src)
				}
				replyDst := f.TupleReply.IP.DestinationAddress
				if replyDst != own {
					t.Errorf("local flow from %v: the backend answers %v, want the host's own address %v", src, replyDst, own)
				}
				if src.Addr() == own && netip.AddrPortFrom(replyDst, f.TupleReply.Proto.DestinationPort) != src {
					t.Errorf("local flow from the host's own address %v was NATed to %v", src, replyDst)
				}
			}
		})
	}
}

// TestDpForwardedFlowsSNATToVIP sends connections from a client namespace
// through the LB namespace: prerouting DNATs them to the predicted backend,
// marks them, and postrouting SNATs them to the VIP itself. Another port on
// the VIP is dropped (no RST comes back), while the service port with no
// healthy backend is accepted by the host (RST, connection refused).
func TestDpForwardedFlowsSNATToVIP(t *testing.T) {
	for _, fam := range flowFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			lb, ctx := kernelTest(t)
			cl := newNetNS(t)
			hl, hc := nlHandle(t, lb), nlHandle(t, cl)
			linkUp(t, hl, "lo")
			linkUp(t, hc, "lo")
			if err := hl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dpl0"}, PeerName: "dpc0", PeerNamespace: netlink.NsFd(int(cl))}); err != nil {
				t.Fatal(err)
			}
			// LB: the client-side subnet on the veth, the VIP as a /32 (/128)
			// on it too, backends behind a dummy.
			addAddrs(t, hl, linkUp(t, hl, "dpl0"), "198.18.1.1/26", "fd00:198:18:1::1/122", "198.18.1.100/32", "fd00:198:18:1::100/128")
			addAddrs(t, hc, linkUp(t, hc, "dpc0"), "198.18.1.2/26", "fd00:198:18:1::2/122")
			backends := []Backend{
				{Name: "cp1", Addr: netip.MustParseAddrPort("198.18.1.75:6443")},
				{Name: "cp2", Addr: netip.MustParseAddrPort("198.18.1.76:6443")},
				{Name: "cp3", Addr: netip.MustParseAddrPort("198.18.1.77:16443")},
			}
			client := netip.MustParseAddr("198.18.1.2")
			gw := "198.18.1.1"
			if fam.vip.Is6() {
				backends = []Backend{
					{Name: "cp1", Addr: netip.MustParseAddrPort("[fd00:198:18:1::4b]:6443")},
					{Name: "cp2", Addr: netip.MustParseAddrPort("[fd00:198:18:1::4c]:6443")},
					{Name: "cp3", Addr: netip.MustParseAddrPort("[fd00:198:18:1::4d]:16443")},
				}
				client = netip.MustParseAddr("fd00:198:18:1::2")
				gw = "fd00:198:18:1::1"
			}
			addStub(t, hl, "dpb0", "198.18.1.65/26", "fd00:198:18:1::41/122")
			// Client: the VIP through the LB.
			gwIP := netip.MustParseAddr(gw)
			if err := hc.RouteAdd(&netlink.Route{Dst: prefixNet(netip.PrefixFrom(fam.vip, fam.vip.BitLen())), Gw: gwIP.AsSlice()}); err != nil {
				t.Fatalf("client route to the VIP: %v", err)
			}
			writeSysctl(t, lb, "/proc/sys/net/ipv4/ip_forward", "1")
			writeSysctl(t, lb, "/proc/sys/net/ipv6/conf/all/forwarding", "1")

			want := Desired{VIPs: serviceVIPs(fam.vip), Backends: backends, Healthy: healthySet("cp1", "cp2", "cp3")}
			d := newDataplane(t, lb)
			if _, err := d.Reconcile(ctx, want); err != nil {
				t.Fatal(err)
			}
			vip := netip.AddrPortFrom(fam.vip, DefaultPort)
			const flows = 20
			expect := map[netip.AddrPort]netip.AddrPort{}
			for i := range flows {
				src := netip.AddrPortFrom(client, uint16(41000+i))
				startConnect(t, cl, src, vip)
				expect[src] = expectedBackend(t, want, fam.vip, src)
			}
			// The SYNs cross the veth asynchronously: wait (bounded) for
			// the LB's conntrack entries.
			var got []conntrack.Flow
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				var err error
				if got, err = d.Conntrack().Flows(ctx, vip); err != nil {
					t.Fatal(err)
				}
				if len(got) >= flows {
					break
				}
			}
			if len(got) != flows {
				t.Fatalf("%d forwarded entries to %v, want %d", len(got), vip, flows)
			}
			perBackend := map[netip.AddrPort]int{}
			for _, f := range got {
				src := netip.AddrPortFrom(f.TupleOrig.IP.SourceAddress, f.TupleOrig.Proto.SourcePort)
				perBackend[replySrc(f)]++
				if replySrc(f) != expect[src] {
					t.Errorf("flow from %v went to %v, FlowSlot predicts %v", src, replySrc(f), expect[src])
				}
				if rd := f.TupleReply.IP.DestinationAddress; rd != fam.vip {
					t.Errorf("forwarded flow from %v: reply goes to %v, want the VIP %v (SNAT to VIP)", src, rd, fam.vip)
				}
				if f.Mark&DefaultCtMark == 0 {
					t.Errorf("forwarded flow from %v lacks the mark bit (mark %#x)", src, f.Mark)
				}
			}
			t.Logf("forwarded flows per backend: %v", perBackend)

			// Another port on the VIP: dropped, so the client hears nothing.
			other := startConnect(t, cl, netip.AddrPortFrom(client, 42000), netip.AddrPortFrom(fam.vip, 22))
			if err := connectOutcome(t, other, 500*time.Millisecond); err != unix.ETIMEDOUT {
				t.Errorf("connect to VIP port 22: %v, want no answer (dropped)", err)
			}
			// A segment conntrack calls invalid (no flags at all) to the
			// service port is dropped, not answered with a RST: that is how
			// a moved flow whose synced state lags survives. The control:
			// the same segment to the LB's own address is reset.
			lbAddr := netip.MustParseAddr(gw)
			if rst := invalidSegmentReset(t, cl, netip.AddrPortFrom(client, 42002), vip); rst {
				t.Errorf("invalid segment to %v was answered with a RST, want it dropped", vip)
			}
			if rst := invalidSegmentReset(t, cl, netip.AddrPortFrom(client, 42003), netip.AddrPortFrom(lbAddr, DefaultPort)); !rst {
				t.Errorf("control: invalid segment to the LB's own %v:%d was not reset; the probe cannot tell", lbAddr, DefaultPort)
			}
			// The service port with no healthy backend is not DNATed and is
			// accepted by the filter: the host itself answers with RST.
			want.Healthy = nil
			if _, err := d.Reconcile(ctx, want); err != nil {
				t.Fatal(err)
			}
			refused := startConnect(t, cl, netip.AddrPortFrom(client, 42001), vip)
			if err := connectOutcome(t, refused, 2*time.Second); err != unix.ECONNREFUSED {
				t.Errorf("connect to VIP:%d without backends: %v, want connection refused", DefaultPort, err)
			}
		})
	}
}

// TestDpDrainKeepsFlowsDeathCuts holds unanswered local connections to
// every backend (their conntrack entries stay) and walks one backend X
// through drain and death: draining takes X out of the slot map and keeps
// its entries, also across a repeated Reconcile and a restart (a new
// Dataplane, which learns X's flows from its survey of the conntrack
// table, although X is in no slot map); X's death then deletes exactly
// its entries, once. Another backend Y that dies without draining first
// is cut at once, as before Drain existed.
func TestDpDrainKeepsFlowsDeathCuts(t *testing.T) {
	for _, fam := range flowFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			ns, ctx := kernelTest(t)
			h := nlHandle(t, ns)
			linkUp(t, h, "lo")
			addStub(t, h, "dp0", "198.18.1.1/24", "fd00:198:18:1::1/64")
			client := netip.MustParseAddr("198.18.1.1")
			if fam.vip.Is6() {
				client = netip.MustParseAddr("fd00:198:18:1::1")
			}
			all := []string{fam.backends[0].Name, fam.backends[1].Name, fam.backends[2].Name}
			want := Desired{VIPs: serviceVIPs(fam.vip), Backends: fam.backends, Healthy: healthySet(all...)}
			d := newDataplane(t, ns)
			if _, err := d.Reconcile(ctx, want); err != nil {
				t.Fatal(err)
			}
			vip := netip.AddrPortFrom(fam.vip, DefaultPort)
			perBackend := map[netip.AddrPort]int{}
			for i := range 30 {
				src := netip.AddrPortFrom(client, uint16(44000+i))
				startConnect(t, ns, src, vip)
				perBackend[expectedBackend(t, want, fam.vip, src)]++
			}
			x, y := fam.backends[0], fam.backends[1]
			if perBackend[x.Addr] == 0 || perBackend[y.Addr] == 0 {
				t.Fatalf("flows per backend %v: want some on %s and %s", perBackend, x.Name, y.Name)
			}
			entries := func() map[netip.AddrPort]int {
				t.Helper()
				fl, err := d.Conntrack().Flows(ctx, vip)
				if err != nil {
					t.Fatal(err)
				}
				m := map[netip.AddrPort]int{}
				for _, f := range fl {
					m[replySrc(f)]++
				}
				return m
			}
			type expect struct {
				committed bool
				withdrawn []netip.AddrPort
				cut       []netip.AddrPort
				deleted   int
				left      map[netip.AddrPort]int
			}
			step := func(desc string, d *Dataplane, want Desired, e expect) {
				t.Helper()
				res, err := d.Reconcile(ctx, want)
				if err != nil {
					t.Fatalf("%s: %v", desc, err)
				}
				fr := res.Families[0]
				if res.Committed != e.committed || !slices.Equal(fr.Withdrawn, e.withdrawn) || !slices.Equal(fr.Cut, e.cut) || fr.FlowsDeleted != e.deleted {
					t.Errorf("%s: committed %v, withdrawn %v, cut %v, %d entries deleted; want %v, %v, %v, %d",
						desc, res.Committed, fr.Withdrawn, fr.Cut, fr.FlowsDeleted, e.committed, e.withdrawn, e.cut, e.deleted)
				}
				if got := entries(); !maps.Equal(got, e.left) {
					t.Errorf("%s: entries per backend %v, want %v", desc, got, e.left)
				}
			}
			without := func(m map[netip.AddrPort]int, gone ...netip.AddrPort) map[netip.AddrPort]int {
				m = maps.Clone(m)
				for _, g := range gone {
					delete(m, g)
				}
				return m
			}

			want.Drain = healthySet(x.Name)
			step("X drains", d, want, expect{true, []netip.AddrPort{x.Addr}, nil, 0, perBackend})
			step("X drains, again", d, want, expect{false, nil, nil, 0, perBackend})
			d2 := newDataplane(t, ns) // a restarted daemon
			step("X drains, after a restart", d2, want, expect{false, nil, nil, 0, perBackend})
			want.Drain, want.Healthy = nil, healthySet(all[1:]...)
			step("X dead", d2, want, expect{false, nil, []netip.AddrPort{x.Addr}, perBackend[x.Addr], without(perBackend, x.Addr)})
			step("X still dead", d2, want, expect{false, nil, nil, 0, without(perBackend, x.Addr)})
			want.Healthy = healthySet(all[2:]...)
			step("Y dead without draining", d2, want, expect{true, []netip.AddrPort{y.Addr}, []netip.AddrPort{y.Addr}, perBackend[y.Addr], without(perBackend, x.Addr, y.Addr)})
		})
	}
}
