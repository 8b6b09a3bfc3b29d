package dataplane

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestDpVIPAddrAdder: the pre-built RTM_NEWADDR puts the VIP on as
// AddAddress does (host prefix; IPv6 without DAD and deprecated; IPv4 with
// arp_announce=2), a second Add is harmless, an IPv6 VIP put there by hand
// is deprecated in place, and an interface re-created since the open makes
// Add fail (the helper then falls back to AddAddress).
func TestDpVIPAddrAdder(t *testing.T) {
	for _, tc := range []struct {
		name string
		vip  netip.Addr
	}{
		{"ipv4", netip.MustParseAddr("198.18.200.100")},
		{"ipv6", netip.MustParseAddr("fd00:198:18:200::100")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lb, ctx := kernelTest(t)
			peer := newNetNS(t)
			hl := nlHandle(t, lb)
			if err := hl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dpa0"}, PeerName: "dpa1", PeerNamespace: netlink.NsFd(int(peer))}); err != nil {
				t.Fatal(err)
			}
			link := linkUp(t, hl, "dpa0")
			v := newVIP(t, lb)
			a, err := v.OpenAddrAdder("dpa0", tc.vip)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(a.Close)
			if tc.vip.Is4() {
				var val []byte
				err := netNS{fd: int(lb)}.do(func() (err error) {
					val, err = os.ReadFile("/proc/sys/net/ipv4/conf/dpa0/arp_announce")
					return err
				})
				if err != nil || strings.TrimSpace(string(val)) != "2" {
					t.Errorf("arp_announce on dpa0 = %q, %v; want 2", val, err)
				}
			}
			for i := range 2 {
				if err := a.Add(); err != nil {
					t.Fatalf("Add #%d: %v", i+1, err)
				}
				checkVIPAddr(t, hl, link, tc.vip)
			}
			if err := v.Remove(ctx, "dpa0", tc.vip); err != nil {
				t.Fatal(err)
			}
			addAddrs(t, hl, link, netip.PrefixFrom(tc.vip, tc.vip.BitLen()).String())
			if err := a.Add(); err != nil {
				t.Fatalf("Add over an existing address: %v", err)
			}
			checkVIPAddr(t, hl, link, tc.vip)

			if err := hl.LinkDel(link); err != nil {
				t.Fatal(err)
			}
			if err := hl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dpa0"}, PeerName: "dpa1", PeerNamespace: netlink.NsFd(int(peer))}); err != nil {
				t.Fatal(err)
			}
			linkUp(t, hl, "dpa0")
			if err := a.Add(); err == nil {
				t.Error("Add on a re-created interface: no error, want one (the index is gone)")
			}
		})
	}
}
