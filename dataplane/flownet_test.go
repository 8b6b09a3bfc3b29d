package dataplane

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nlHandle is a netlink handle into ns for link and address set-up.
func nlHandle(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func linkUp(t *testing.T, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	return l
}

// addStub creates an up veth link whose peer (NAME+"p", also up) has no
// addresses, with the given prefixes on NAME (IPv6 ones without DAD, so
// they are usable at once). Nothing answers behind it, which is all a SYN
// needs to leave a conntrack entry behind. (This kernel has no dummy links.)
func addStub(t *testing.T, h *netlink.Handle, name string, prefixes ...string) netlink.Link {
	t.Helper()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
		t.Fatalf("adding veth %s: %v", name, err)
	}
	linkUp(t, h, name+"p")
	l := linkUp(t, h, name)
	addAddrs(t, h, l, prefixes...)
	return l
}

func addAddrs(t *testing.T, h *netlink.Handle, l netlink.Link, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		a, err := netlink.ParseAddr(p)
		if err != nil {
			t.Fatal(err)
		}
		if a.IP.To4() == nil {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, a); err != nil {
			t.Fatalf("adding %s to %s: %v", p, l.Attrs().Name, err)
		}
	}
}

// writeSysctl writes a /proc/sys file from a thread inside ns.
func writeSysctl(t *testing.T, ns netns.NsHandle, path, value string) {
	t.Helper()
	err := netNS{fd: int(ns)}.do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
	if err != nil {
		t.Fatalf("sysctl %s=%s: %v", path, value, err)
	}
}

// startConnect opens a non-blocking TCP socket in ns bound to src and starts
// a connect to dst: the SYN leaves (and a conntrack entry appears) without
// any process in the namespace. The socket is closed at cleanup.
func startConnect(t *testing.T, ns netns.NsHandle, src, dst netip.AddrPort) int {
	t.Helper()
	fd := -1
	err := netNS{fd: int(ns)}.do(func() error {
		family := unix.AF_INET
		if dst.Addr().Is6() {
			family = unix.AF_INET6
		}
		s, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		fd = s
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return err
		}
		if err := unix.Bind(s, sockaddr(src)); err != nil {
			return fmt.Errorf("bind %v: %w", src, err)
		}
		if err := unix.Connect(s, sockaddr(dst)); err != nil && err != unix.EINPROGRESS {
			return fmt.Errorf("connect %v: %w", dst, err)
		}
		return nil
	})
	if fd >= 0 {
		t.Cleanup(func() { unix.Close(fd) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// connectOutcome waits up to wait for a started connect: it returns the
// socket error (nil when established, ECONNREFUSED on a RST) or
// unix.ETIMEDOUT when nothing came back.
func connectOutcome(t *testing.T, fd int, wait time.Duration) error {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	deadline := time.Now().Add(wait)
	for {
		n, err := unix.Poll(pfd, int(time.Until(deadline).Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return unix.ETIMEDOUT
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			t.Fatal(err)
		}
		if soErr == 0 {
			return nil
		}
		return unix.Errno(soErr)
	}
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// expectedBackend is the backend the rules should pick for a flow from
// client: FlowSlot into BuildSlots, computed in Go.
func expectedBackend(t *testing.T, d Desired, vip netip.Addr, client netip.AddrPort) netip.AddrPort {
	t.Helper()
	plans, err := plan(d)
	if err != nil {
		t.Fatal(err)
	}
	p := plans[familyIndex(vip)]
	s := FlowSlot(p.mode, p.seed, len(p.slots), client)
	if p.slots[s] < 0 {
		return netip.AddrPort{}
	}
	return p.backends[p.slots[s]].Addr
}

func flowFamilies() []struct {
	name     string
	vip      netip.Addr
	backends []Backend
} {
	return []struct {
		name     string
		vip      netip.Addr
		backends []Backend
	}{
		{"ipv4", vip4, backends4()},
		{"ipv6", vip6, backends6()},
	}
}

// invalidSegmentReset sends, from ns, one TCP segment without any flag
// (conntrack calls it invalid) from src to dst on a raw socket, and
// reports whether a RST for it comes back within 500 ms.
func invalidSegmentReset(t *testing.T, ns netns.NsHandle, src, dst netip.AddrPort) bool {
	t.Helper()
	family := unix.AF_INET
	if dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd := -1
	err := netNS{fd: int(ns)}.do(func() error {
		s, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		fd = s
		return err
	})
	if fd >= 0 {
		defer unix.Close(fd)
	}
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], src.Port())
	binary.BigEndian.PutUint16(seg[2:], dst.Port())
	binary.BigEndian.PutUint32(seg[4:], 0x01020304) // seq
	seg[12] = 5 << 4                                // data offset, no flags
	binary.BigEndian.PutUint16(seg[14:], 64240)     // window
	binary.BigEndian.PutUint16(seg[16:], tcpChecksum(src.Addr(), dst.Addr(), seg))
	if err := unix.Sendto(fd, seg, 0, sockaddr(netip.AddrPortFrom(dst.Addr(), 0))); err != nil {
		t.Fatalf("sending a raw segment to %v: %v", dst, err)
	}
	deadline := time.Now().Add(500 * time.Millisecond)
	buf := make([]byte, 2048)
	for time.Now().Before(deadline) {
		tv := unix.NsecToTimeval(time.Until(deadline).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			t.Fatal(err)
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return false // timed out: nothing came back
		}
		tcp := buf[:n]
		if family == unix.AF_INET { // IPv4 raw sockets deliver the IP header too
			if n < 20 {
				continue
			}
			tcp = buf[int(buf[0]&0x0f)*4 : n]
		}
		if len(tcp) < 20 {
			continue
		}
		sport, dport, flags := binary.BigEndian.Uint16(tcp[0:]), binary.BigEndian.Uint16(tcp[2:]), tcp[13]
		if sport == dst.Port() && dport == src.Port() && flags&0x04 != 0 {
			return true
		}
	}
	return false
}

// tcpChecksum is the TCP checksum of seg (checksum field zero) between
// src and dst, pseudo-header included.
func tcpChecksum(src, dst netip.Addr, seg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	sum += unix.IPPROTO_TCP + uint32(len(seg))
	add(seg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
