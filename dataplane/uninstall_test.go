package dataplane

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/nftables"
	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netlink"
)

// Addresses of the uninstall test (198.18.77.0/24, fd00:198:18:77::/64).
var (
	unHost4    = netip.MustParseAddr("198.18.77.1")
	unPeer4    = netip.MustParseAddr("198.18.77.2")
	unVIP4     = netip.MustParseAddr("198.18.77.100")
	unForeign4 = netip.MustParseAddr("198.18.77.50")
	unHost6    = netip.MustParseAddr("fd00:198:18:77::1")
	unVIP6     = netip.MustParseAddr("fd00:198:18:77::100")
	unBackend4 = netip.MustParseAddrPort("198.18.77.11:6443")
	unBackend6 = netip.MustParseAddrPort("[fd00:198:18:77::11]:6443")
)

func TestOwnTable(t *testing.T) {
	for name, want := range map[string]bool{
		TableName: true, LeaseTable6: true, "epconsole-next": true,
		"other": false, "epconsolex": false, "my-epconsole": false, "": false, "filter": false,
	} {
		if got := OwnTable(name); got != want {
			t.Errorf("OwnTable(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestDpUninstall programs everything a daemon puts in the kernel through
// the dataplane's own API (the DNAT tables of both families, both VIPs on
// a veth, the arp and ip6 owner-lease tables, DNATed conntrack entries),
// next to a foreign inet and arp table, a foreign address on the same link
// and a conntrack entry that is not epconsole's. Uninstall removes exactly
// epconsole's part; a second run finds nothing. The ARP proof: with the
// lease table in place and no lease, the host does not answer ARP for the
// VIP; after Uninstall, the VIP put back by another program (keepalived,
// say) is answered.
func TestDpUninstall(t *testing.T) {
	lb, ctx := kernelTest(t)
	peer := newNetNS(t)
	hl, hp := nlHandle(t, lb), nlHandle(t, peer)
	if err := hl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dpun0"}, PeerName: "dpl1", PeerNamespace: netlink.NsFd(int(peer))}); err != nil {
		t.Fatal(err)
	}
	lbLink, peerLink := linkUp(t, hl, "dpun0"), linkUp(t, hp, "dpl1")
	addAddrs(t, hl, lbLink, unHost4.String()+"/24", unHost6.String()+"/64", unForeign4.String()+"/32")
	addAddrs(t, hp, peerLink, unPeer4.String()+"/24")
	p := newARPProber(t, peer) // dpl1 is the name newARPProber looks for

	vips := []ServiceVIP{
		{Addr: unVIP4, Port: 6443, Interface: "dpun0"},
		{Addr: unVIP6, Port: 7443, Interface: "dpun0"},
	}
	d := newDataplane(t, lb)
	if _, err := d.Reconcile(ctx, Desired{
		VIPs:     vips,
		Backends: []Backend{{Name: "cp1", Addr: unBackend4}, {Name: "cp1v6", Addr: unBackend6}},
		Healthy:  healthySet("cp1", "cp1v6"),
	}); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	v := newVIP(t, lb)
	for _, sv := range vips {
		if err := v.Add(ctx, sv.Interface, sv.Addr); err != nil {
			t.Fatalf("VIP.Add %v: %v", sv.Addr, err)
		}
	}
	if err := newLease(t, lb).Install(ctx, Addresses(vips)); err != nil {
		t.Fatalf("Lease.Install: %v", err)
	}

	// Foreign state that must survive.
	c := nftConn(t, lb)
	for _, ft := range []*nftables.Table{
		{Name: "other", Family: nftables.TableFamilyINet},
		{Name: "other", Family: nftables.TableFamilyARP},
	} {
		c.AddTable(ft)
		c.AddChain(&nftables.Chain{Name: "input", Table: ft, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("adding foreign tables: %v", err)
	}
	ct, err := NewConntrack(WithNetNSFd(int(lb)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	ctc, err := ct.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer ctc.Close()
	client := netip.MustParseAddrPort("198.18.77.200:50000")
	foreignFlow := natFlow(netip.MustParseAddrPort("198.18.77.201:50001"), netip.AddrPortFrom(unVIP4, 22), netip.AddrPortFrom(unVIP4, 22))
	for _, f := range []conntrack.Flow{
		natFlow(client, vips[0].AddrPort(), unBackend4),
		natFlow(netip.MustParseAddrPort("[fd00:198:18:77::200]:50000"), vips[1].AddrPort(), unBackend6),
		foreignFlow, // to the VIP's own sshd, not DNATed: not epconsole's
	} {
		if err := ctc.Create(f); err != nil {
			t.Fatalf("creating conntrack entry %v: %v", f.TupleOrig, err)
		}
	}

	// The control: the lease table gates the host's ARP for the VIP.
	expectAnswer(t, p, unHost4, "with the tables in place, the host's own address")
	expectSilence(t, p, unVIP4, "with the lease table in place and no lease")

	r, err := Uninstall(ctx, vips, WithNetNSFd(int(lb)), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	wantTables := []string{"arp epconsole", "ip epconsole", "ip6 epconsole", "ip6 epconsole-lease"}
	if !slices.Equal(r.Tables, wantTables) {
		t.Errorf("removed tables %q, want %q", r.Tables, wantTables)
	}
	if !slices.Equal(r.VIPs, vips) {
		t.Errorf("removed VIPs %v, want %v", r.VIPs, vips)
	}
	if r.Flows != 2 {
		t.Errorf("removed %d conntrack entries, want 2 (the DNATed ones)", r.Flows)
	}

	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, tb := range tables {
		left = append(left, tableFamilyName(tb.Family)+" "+tb.Name)
	}
	slices.Sort(left)
	if want := []string{"arp other", "inet other"}; !slices.Equal(left, want) {
		t.Errorf("tables after Uninstall %q, want only the foreign %q", left, want)
	}
	for addr, want := range map[netip.Addr]bool{unVIP4: false, unVIP6: false, unForeign4: true, unHost4: true, unHost6: true} {
		if has, err := v.Has(ctx, "dpun0", addr); err != nil || has != want {
			t.Errorf("%v on dpun0 after Uninstall: %v (%v), want %v", addr, has, err, want)
		}
	}
	flows, err := ctc.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 1 || origDst(flows[0]) != origDst(foreignFlow) {
		t.Errorf("conntrack after Uninstall holds %d entries, want only the foreign one", len(flows))
	}

	// Nothing left: a second run removes nothing, without error.
	if r, err := Uninstall(ctx, vips, WithNetNSFd(int(lb))); err != nil || !r.Empty() {
		t.Errorf("second Uninstall: %+v, %v; want nothing removed", r, err)
	}
	// An interface that does not exist holds no VIP: nothing, no error.
	if r, err := Uninstall(ctx, []ServiceVIP{{Addr: unVIP4, Interface: "dpnone"}}, WithNetNSFd(int(lb))); err != nil || !r.Empty() {
		t.Errorf("Uninstall with a missing interface: %+v, %v", r, err)
	}

	// Another program takes the VIP: its ARP now leaves the host.
	addAddrs(t, hl, lbLink, unVIP4.String()+"/32")
	expectAnswer(t, p, unVIP4, "after Uninstall, the VIP added by another program")
}
