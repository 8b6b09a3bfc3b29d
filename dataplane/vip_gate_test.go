package dataplane

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// TestDpVIPAnnounceRepeatsStop: the background repeats of an announcement
// stop when the announce gate closes (a paused owner whose lease ran out
// wakes up silent: gratuitous ARPs leave on a packet socket that the
// lease's arp table never sees) and when the address is removed. The
// control, with the gate open, sees every repeat.
func TestDpVIPAnnounceRepeatsStop(t *testing.T) {
	vip := netip.MustParseAddr("198.18.1.100")
	for _, tc := range []struct {
		name   string
		gate   bool // the gate closes after the first announcement
		remove bool // the address is removed after the first announcement
		want   int
	}{
		{"control: gate open", false, false, DefaultAnnounceCount},
		{"gate closed after the first", true, false, 1},
		{"removed after the first", false, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lb, ctx := kernelTest(t)
			peer := newNetNS(t)
			hl, hp := nlHandle(t, lb), nlHandle(t, peer)
			if err := hl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dpg0"}, PeerName: "dpg1", PeerNamespace: netlink.NsFd(int(peer))}); err != nil {
				t.Fatal(err)
			}
			lbLink := linkUp(t, hl, "dpg0")
			addAddrs(t, hp, linkUp(t, hp, "dpg1"), "198.18.1.2/24")
			listener := listenAnnouncements(t, peer, "dpg1", vip, lbLink.Attrs().HardwareAddr, netip.MustParseAddr("198.18.1.2"))

			v := newVIP(t, lb)
			var open atomic.Bool
			open.Store(true)
			v.SetAnnounceGate(open.Load)
			if err := v.Add(ctx, "dpg0", vip); err != nil {
				t.Fatalf("Add: %v", err)
			}
			if tc.gate {
				open.Store(false)
			}
			if tc.remove {
				if err := v.Remove(ctx, "dpg0", vip); err != nil {
					t.Fatalf("Remove: %v", err)
				}
			}
			if n := listener.wait(tc.want, 2*time.Second); n != tc.want {
				t.Errorf("peer saw %d announcements, want %d", n, tc.want)
			}
		})
	}
}
