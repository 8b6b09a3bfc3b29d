package chaos

// The ARP / NDP side of the observer: a packet socket in the lab's switch
// namespace that sees every frame entering a switch port, and a prober on
// the observer host that asks who has the VIP every few milliseconds, so
// every host that would answer for it does, on the wire.

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Claim is one frame in which a host says it has the VIP: an ARP reply or
// a gratuitous ARP with the VIP as sender (IPv4), or a neighbour
// advertisement for it (IPv6).
type Claim struct {
	// MAC is the sender hardware address; Port the switch port (the host's
	// name) the frame entered the bridge on.
	MAC  string
	Port string
	// Kind: "reply", "gratuitous" (an ARP request from the VIP) or "na".
	Kind string
}

// Ethernet types.
const (
	ethARP  = 0x0806
	ethIPv6 = 0x86dd
)

// htons turns a 16-bit value into network byte order for socket calls.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// parseClaim returns the claim for vip4 or vip6 that the Ethernet frame b
// carries, if any. It is pure.
func parseClaim(b []byte, vip4, vip6 netip.Addr) (Claim, bool) {
	if len(b) < 14 {
		return Claim{}, false
	}
	src := net.HardwareAddr(b[6:12]).String()
	typ := binary.BigEndian.Uint16(b[12:14])
	p := b[14:]
	switch typ {
	case ethARP:
		// htype 1, ptype IPv4, hlen 6, plen 4.
		if len(p) < 28 || binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != 0x0800 || p[4] != 6 || p[5] != 4 {
			return Claim{}, false
		}
		op := binary.BigEndian.Uint16(p[6:8])
		sha := net.HardwareAddr(p[8:14]).String()
		spa, _ := netip.AddrFromSlice(p[14:18])
		if !vip4.IsValid() || spa != vip4 {
			return Claim{}, false
		}
		switch op {
		case 2:
			return Claim{MAC: sha, Kind: "reply"}, true
		case 1:
			return Claim{MAC: sha, Kind: "gratuitous"}, true
		}
	case ethIPv6:
		// Fixed header 40 bytes, next header ICMPv6 (58), NA type 136, the
		// target address at offset 8 of the ICMPv6 message.
		if len(p) < 40+24 || p[6] != 58 || p[40] != 136 {
			return Claim{}, false
		}
		target, _ := netip.AddrFromSlice(p[48:64])
		if !vip6.IsValid() || target != vip6 {
			return Claim{}, false
		}
		return Claim{MAC: src, Kind: "na"}, true
	}
	return Claim{}, false
}

// arpRequest builds a broadcast ARP who-has for target from (mac, ip).
func arpRequest(mac net.HardwareAddr, ip, target netip.Addr) []byte {
	b := make([]byte, 42)
	for i := range 6 {
		b[i] = 0xff
	}
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], ethARP)
	p := b[14:]
	binary.BigEndian.PutUint16(p[0:2], 1)
	binary.BigEndian.PutUint16(p[2:4], 0x0800)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], 1)
	copy(p[8:14], mac)
	s, t := ip.As4(), target.As4()
	copy(p[14:18], s[:])
	copy(p[24:28], t[:])
	return b
}

// claimFilter is a classic BPF program that passes ARP frames and IPv6
// frames carrying ICMPv6 (next header 58) and drops the rest:
//
//	ldh [12]; jeq #0x806, pass; jeq #0x86dd, 0, drop; ldb [20]; jeq #58, pass, drop
var claimFilter = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 12},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 3, Jf: 0, K: ethARP},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 3, K: ethIPv6},
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 20},
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: 58},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
}

// openSniffer opens a packet socket that sees every frame on every
// interface of the calling thread's namespace (ETH_P_ALL: a bridge port
// hands its frames to the bridge before protocol taps would see them),
// filtered to ARP and ICMPv6, with a read timeout so a reader can notice
// it should stop.
func openSniffer() (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(claimFilter)), Filter: &claimFilter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("packet socket filter: %w", err)
	}
	tv := unix.Timeval{Usec: 100_000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("packet socket timeout: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	return fd, nil
}

// openSender opens a packet socket bound to interface name of the calling
// thread's namespace and returns it with the interface's index and MAC.
func openSender(name string) (fd, index int, mac net.HardwareAddr, err error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return -1, 0, nil, fmt.Errorf("finding %s: %w", name, err)
	}
	fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(ethARP)))
	if err != nil {
		return -1, 0, nil, fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(ethARP), Ifindex: ifc.Index}); err != nil {
		unix.Close(fd)
		return -1, 0, nil, fmt.Errorf("binding to %s: %w", name, err)
	}
	return fd, ifc.Index, ifc.HardwareAddr, nil
}
