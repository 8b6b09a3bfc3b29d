package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// AddrAdder puts one VIP on one interface with a single netlink message
// built in advance, on a route netlink socket opened in advance: the
// heartbeat helper opens it at its start, so that its claim only sends one
// RTM_NEWADDR and reads its acknowledgement. AddAddress, by contrast,
// opens a netlink handle (three sockets), looks the interface up, writes
// arp_announce, lists the interface's addresses and allocates as it goes.
// Add uses raw system calls, which the Go runtime does not see: a
// GOMAXPROCS=1 caller keeps its P through them.
type AddrAdder struct {
	fd   int
	msg  []byte
	rbuf [1024]byte
	seq  uint32
}

// OpenAddrAdder opens an AddrAdder for addr on iface: it resolves the
// interface's index, sets arp_announce=2 on it (IPv4, as Add does) and
// builds the message. The interface must keep its index: Add fails (and
// the caller falls back to AddAddress) if it was re-created since.
func (v *VIP) OpenAddrAdder(iface string, addr netip.Addr) (*AddrAdder, error) {
	addr, err := checkVIP(addr)
	if err != nil {
		return nil, err
	}
	a := &AddrAdder{fd: -1}
	var index int
	err = v.ns.do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return fmt.Errorf("finding interface %s: %w", iface, err)
		}
		index = ifi.Index
		if addr.Is4() {
			path := "/proc/sys/net/ipv4/conf/" + iface + "/arp_announce"
			if err := os.WriteFile(path, []byte("2"), 0o644); err != nil {
				return fmt.Errorf("setting arp_announce on %s: %w", iface, err)
			}
		}
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("opening a route netlink socket: %w", err)
		}
		a.fd = fd
		return nil
	})
	if err != nil {
		if a.fd >= 0 {
			unix.Close(a.fd)
		}
		return nil, err
	}
	// A lost acknowledgement must not block the caller for long.
	tv := unix.Timeval{Usec: 200_000}
	if err := unix.SetsockoptTimeval(a.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(a.fd)
		return nil, fmt.Errorf("setting the netlink receive timeout: %w", err)
	}
	if err := unix.Bind(a.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(a.fd)
		return nil, fmt.Errorf("binding the route netlink socket: %w", err)
	}
	a.msg = newAddrMsg(index, addr)
	return a, nil
}

// newAddrMsg builds the RTM_NEWADDR of vipAddr(addr) on the interface
// with index: create, or replace an address already there (an IPv6 VIP
// someone else put there is deprecated in place, as AddAddress does).
func newAddrMsg(index int, addr netip.Addr) []byte {
	ip := addr.AsSlice()
	fam, flags := unix.AF_INET, uint32(0)
	if addr.Is6() {
		fam, flags = unix.AF_INET6, unix.IFA_F_NODAD
	}
	attr := func(b []byte, typ uint16, val []byte) []byte {
		var h [4]byte
		binary.NativeEndian.PutUint16(h[0:], uint16(4+len(val)))
		binary.NativeEndian.PutUint16(h[2:], typ)
		b = append(b, h[:]...)
		b = append(b, val...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	b := make([]byte, unix.NLMSG_HDRLEN, 128)
	b = append(b, byte(fam), byte(addr.BitLen()), byte(flags), unix.RT_SCOPE_UNIVERSE, 0, 0, 0, 0)
	binary.NativeEndian.PutUint32(b[unix.NLMSG_HDRLEN+4:], uint32(index))
	b = attr(b, unix.IFA_LOCAL, ip)
	b = attr(b, unix.IFA_ADDRESS, ip)
	if addr.Is6() {
		var ci [16]byte // preferred 0, valid forever: deprecated
		binary.NativeEndian.PutUint32(ci[4:], infiniteLifetime)
		b = attr(b, unix.IFA_CACHEINFO, ci[:])
		var f [4]byte
		binary.NativeEndian.PutUint32(f[:], flags)
		b = attr(b, unix.IFA_FLAGS, f[:])
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], unix.RTM_NEWADDR)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
	return b
}

// Add sends the message and reads its acknowledgement. The kernel handles
// the request within the send (under the RTNL lock), so the
// acknowledgement is queued when the send returns.
func (a *AddrAdder) Add() error {
	a.seq++
	binary.NativeEndian.PutUint32(a.msg[8:], a.seq)
	// Answers left from an earlier Add whose acknowledgement was lost.
	for {
		if _, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(a.fd), uintptr(unsafe.Pointer(&a.rbuf[0])), uintptr(len(a.rbuf)), unix.MSG_DONTWAIT, 0, 0); e != 0 && e != unix.EINTR {
			break
		}
	}
	for {
		_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(a.fd), uintptr(unsafe.Pointer(&a.msg[0])), uintptr(len(a.msg)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return fmt.Errorf("sending RTM_NEWADDR: %w", e)
		}
		break
	}
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(a.fd), uintptr(unsafe.Pointer(&a.rbuf[0])), uintptr(len(a.rbuf)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return fmt.Errorf("no acknowledgement of RTM_NEWADDR: %w", e)
		}
		done, err := a.parseAck(a.rbuf[:n])
		if done {
			return err
		}
	}
}

// parseAck looks for the acknowledgement of the current message.
func (a *AddrAdder) parseAck(b []byte) (bool, error) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return false, errors.New("malformed netlink answer")
		}
		if binary.NativeEndian.Uint16(b[4:]) == unix.NLMSG_ERROR && l >= unix.NLMSG_HDRLEN+4 &&
			binary.NativeEndian.Uint32(b[8:]) == a.seq {
			if e := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); e != 0 && unix.Errno(-e) != unix.EEXIST {
				return true, fmt.Errorf("RTM_NEWADDR: %w", unix.Errno(-e))
			}
			return true, nil
		}
		b = b[min(nlmsgAlign(l), len(b)):]
	}
	return false, nil
}

// Close closes the socket.
func (a *AddrAdder) Close() {
	if a != nil && a.fd >= 0 {
		unix.Close(a.fd)
		a.fd = -1
	}
}
