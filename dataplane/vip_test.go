package dataplane

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func newVIP(t *testing.T, ns netns.NsHandle) *VIP {
	t.Helper()
	v, err := NewVIP(WithNetNSFd(int(ns)), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// announcementListener collects, on iface inside ns, the announcements of
// vip by hw: gratuitous ARP (sender = target = vip) or unsolicited NA
// (target vip, override, target link-layer address hw). wait returns how
// many arrived, waiting until want arrived or the deadline passed.
type announcementListener struct {
	got  chan struct{}
	stop func()
}

func listenAnnouncements(t *testing.T, ns netns.NsHandle, iface string, vip netip.Addr, hw net.HardwareAddr, local netip.Addr) *announcementListener {
	t.Helper()
	l := &announcementListener{got: make(chan struct{}, 16)}
	var read func() (bool, error)
	var closeFn func() error
	var setDeadline func(time.Time) error
	err := netNS{fd: int(ns)}.do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		if vip.Is4() {
			c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
			if err != nil {
				return err
			}
			closeFn, setDeadline = c.Close, c.SetReadDeadline
			buf := make([]byte, 1500)
			read = func() (bool, error) {
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					return false, err
				}
				var f ethernet.Frame
				var p arp.Packet
				if f.UnmarshalBinary(buf[:n]) != nil || p.UnmarshalBinary(f.Payload) != nil {
					return false, nil
				}
				return p.SenderIP == vip && p.TargetIP == vip && bytes.Equal(p.SenderHardwareAddr, hw) &&
					bytes.Equal(f.Destination, ethernet.Broadcast), nil
			}
			return nil
		}
		c, _, err := ndp.Listen(ifi, ndp.Addr(local.String()))
		if err != nil {
			return err
		}
		closeFn, setDeadline = c.Close, c.SetReadDeadline
		read = func() (bool, error) {
			m, _, _, err := c.ReadFrom()
			if err != nil {
				return false, err
			}
			na, ok := m.(*ndp.NeighborAdvertisement)
			if !ok || na.TargetAddress != vip || !na.Override || na.Solicited {
				return false, nil
			}
			for _, o := range na.Options {
				if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target && bytes.Equal(lla.Addr, hw) {
					return true, nil
				}
			}
			return false, nil
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listening for announcements: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ok, err := read()
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if ok {
				l.got <- struct{}{}
			}
		}
	}()
	l.stop = func() {
		setDeadline(time.Now())
		<-done
		closeFn()
	}
	t.Cleanup(l.stop)
	return l
}

func (l *announcementListener) wait(want int, d time.Duration) int {
	n := 0
	timeout := time.After(d)
	for n < want {
		select {
		case <-l.got:
			n++
		case <-timeout:
			return n
		}
	}
	// Anything beyond want arriving shortly after is counted too.
	for {
		select {
		case <-l.got:
			n++
		case <-time.After(3 * DefaultAnnounceInterval):
			return n
		}
	}
}

func TestDpVIPAddRemoveAnnounce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		vip       netip.Addr
		peerLocal string // the listener's own address
	}{
		{"ipv4", netip.MustParseAddr("198.18.1.100"), "198.18.1.2/24"},
		{"ipv6", netip.MustParseAddr("fd00:198:18:1::100"), "fd00:198:18:1::2/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lb, ctx := kernelTest(t)
			peer := newNetNS(t)
			hl, hp := nlHandle(t, lb), nlHandle(t, peer)
			if err := hl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dpv0"}, PeerName: "dpv1", PeerNamespace: netlink.NsFd(int(peer))}); err != nil {
				t.Fatal(err)
			}
			lbLink := linkUp(t, hl, "dpv0")
			addAddrs(t, hp, linkUp(t, hp, "dpv1"), tc.peerLocal)
			local := netip.MustParsePrefix(tc.peerLocal).Addr()
			listener := listenAnnouncements(t, peer, "dpv1", tc.vip, lbLink.Attrs().HardwareAddr, local)

			v := newVIP(t, lb)
			if has, err := v.Has(ctx, "dpv0", tc.vip); err != nil || has {
				t.Fatalf("Has before Add: %v, %v", has, err)
			}
			if err := v.Add(ctx, "dpv0", tc.vip); err != nil {
				t.Fatalf("Add: %v", err)
			}
			if has, err := v.Has(ctx, "dpv0", tc.vip); err != nil || !has {
				t.Fatalf("Has after Add: %v, %v", has, err)
			}
			checkVIPAddr(t, hl, lbLink, tc.vip)
			if tc.vip.Is4() {
				var val []byte
				err := netNS{fd: int(lb)}.do(func() (err error) {
					val, err = os.ReadFile("/proc/sys/net/ipv4/conf/dpv0/arp_announce")
					return err
				})
				if err != nil || strings.TrimSpace(string(val)) != "2" {
					t.Errorf("arp_announce on dpv0 = %q, %v; want 2", val, err)
				}
			}
			if n := listener.wait(DefaultAnnounceCount, 3*time.Second); n != DefaultAnnounceCount {
				t.Errorf("peer saw %d announcements, want %d", n, DefaultAnnounceCount)
			}

			// Add again: no error, still one address, announced again.
			if err := v.Add(ctx, "dpv0", tc.vip); err != nil {
				t.Fatalf("second Add: %v", err)
			}
			checkVIPAddr(t, hl, lbLink, tc.vip)
			if n := listener.wait(DefaultAnnounceCount, 3*time.Second); n != DefaultAnnounceCount {
				t.Errorf("second Add: peer saw %d announcements, want %d", n, DefaultAnnounceCount)
			}

			for i := range 2 {
				if err := v.Remove(ctx, "dpv0", tc.vip); err != nil {
					t.Fatalf("Remove #%d: %v", i+1, err)
				}
				if has, err := v.Has(ctx, "dpv0", tc.vip); err != nil || has {
					t.Fatalf("Has after Remove #%d: %v, %v", i+1, has, err)
				}
			}

			// A VIP put there by hand (preferred, not deprecated) is
			// deprecated in place by Add.
			addAddrs(t, hl, lbLink, netip.PrefixFrom(tc.vip, tc.vip.BitLen()).String())
			if err := v.Add(ctx, "dpv0", tc.vip); err != nil {
				t.Fatalf("Add over an existing address: %v", err)
			}
			checkVIPAddr(t, hl, lbLink, tc.vip)
		})
	}
}

// checkVIPAddr asserts that vip is on link exactly once, as a host prefix,
// and (IPv6) without DAD.
func checkVIPAddr(t *testing.T, h *netlink.Handle, link netlink.Link, vip netip.Addr) {
	t.Helper()
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		if ip.Unmap() != vip {
			continue
		}
		n++
		if ones, bits := a.Mask.Size(); ones != bits {
			t.Errorf("VIP prefix /%d, want /%d", ones, bits)
		}
		if vip.Is6() && a.Flags&unix.IFA_F_NODAD == 0 {
			t.Errorf("IPv6 VIP without NODAD (flags %#x)", a.Flags)
		}
		if vip.Is6() && (a.Flags&unix.IFA_F_DEPRECATED == 0 || a.PreferedLft != 0 || a.ValidLft != infiniteLifetime) {
			t.Errorf("IPv6 VIP not deprecated for good: flags %#x, preferred %d, valid %d", a.Flags, a.PreferedLft, a.ValidLft)
		}
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			t.Errorf("VIP is tentative (flags %#x)", a.Flags)
		}
	}
	if n != 1 {
		t.Errorf("VIP on the link %d times, want once", n)
	}
}

func TestDpVIPOnLoopbackAndErrors(t *testing.T) {
	ns, ctx := kernelTest(t)
	h := nlHandle(t, ns)
	linkUp(t, h, "lo")
	v := newVIP(t, ns)
	// No Ethernet address: added, not announced, no error.
	if err := v.Add(ctx, "lo", vip4); err != nil {
		t.Fatalf("Add on lo: %v", err)
	}
	if has, err := v.Has(ctx, "lo", vip4); err != nil || !has {
		t.Fatalf("Has on lo: %v, %v", has, err)
	}
	if err := v.Add(ctx, "dpnone", vip4); err == nil {
		t.Error("Add on a missing interface: no error")
	}
	if err := v.Add(ctx, "lo", netip.IPv4Unspecified()); err == nil {
		t.Error("Add of 0.0.0.0: no error")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := v.Add(canceled, "lo", vip6); !errors.Is(err, context.Canceled) {
		t.Errorf("Add with a canceled context: %v", err)
	}
	if err := v.Remove(ctx, "lo", vip4); err != nil {
		t.Fatal(err)
	}
}
