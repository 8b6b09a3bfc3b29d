package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
)

// BalanceMode says what the flow hash covers.
type BalanceMode string

// Balance modes.
const (
	// BalanceConnection hashes the client address and port: each new
	// connection may land on another backend.
	BalanceConnection BalanceMode = "connection"
	// BalanceSource hashes the client address only: a client stays on one
	// backend while the map does not change.
	BalanceSource BalanceMode = "source"
)

// Defaults for zero fields of Desired.
const (
	DefaultPort uint16 = 6443
	// DefaultSeed is the jhash seed. Zero cannot be used: without a seed
	// attribute the kernel picks a random seed per rule, and peers would
	// then hash the same flow differently.
	DefaultSeed uint32 = 0x5eed
	// DefaultCtMark is the conntrack mark bit that tags connections DNATed
	// in prerouting, so postrouting SNATs exactly those to the VIP.
	DefaultCtMark uint32 = 0x20000000
)

// ServiceVIP is one VIP as the dataplane serves it: the address, the
// service port clients connect to on it, and the interface it is put on.
// Each VIP has its own port: an IPv4 VIP on 6443 and an IPv6 VIP on 7443
// are both served.
type ServiceVIP struct {
	// Addr is the VIP's address; its family picks the table.
	Addr netip.Addr
	// Port is the service port on the VIP (0: DefaultPort).
	Port uint16
	// Interface is the link the VIP is put on and announced from. The
	// nftables rules match the address on any link and do not read it.
	Interface string
}

// AddrPort is the VIP's address and service port, the default port
// filled in.
func (v ServiceVIP) AddrPort() netip.AddrPort {
	port := v.Port
	if port == 0 {
		port = DefaultPort
	}
	return netip.AddrPortFrom(v.Addr.Unmap(), port)
}

// Family names the VIP's address family: "ipv4" or "ipv6".
func (v ServiceVIP) Family() string {
	if v.Addr.Unmap().Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// Addresses lists the VIPs' addresses in order.
func Addresses(vips []ServiceVIP) []netip.Addr {
	out := make([]netip.Addr, 0, len(vips))
	for _, v := range vips {
		out = append(out, v.Addr)
	}
	return out
}

// AddrPorts lists the VIPs' addresses and service ports in order.
func AddrPorts(vips []ServiceVIP) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(vips))
	for _, v := range vips {
		out = append(out, v.AddrPort())
	}
	return out
}

// Backend is one apiserver behind the VIP.
type Backend struct {
	// Name identifies the backend in the healthy set; unique.
	Name string
	// Addr is the backend's address and port; port 0 means the service
	// port of the VIP of its family.
	Addr netip.AddrPort
}

// Desired is the whole state Reconcile puts in the kernel.
type Desired struct {
	// VIPs holds at most one IPv4 and one IPv6 VIP, each with its own
	// service port. A family without a VIP has no table.
	VIPs []ServiceVIP
	// Backends in config order; the order is part of the slot map's input.
	// Each VIP is served by the backends of its own family.
	Backends []Backend
	// Healthy holds the names of the backends that are up and may get new
	// flows (unless they drain). Names absent or false are down: a backend
	// that is neither healthy nor draining is considered dead, and
	// Reconcile cuts its established flows (deletes their conntrack
	// entries) so that its clients reconnect at once instead of hanging.
	Healthy map[string]bool
	// Drain holds the names of the backends that get no new flows but
	// keep their established ones: unready by probe (kube-apiserver's
	// graceful shutdown fails /readyz first and keeps serving open
	// connections), or drained by the operator. A backend is in the slot
	// map iff Healthy[name] && !Drain[name]; a draining backend's flows
	// are never cut, whatever Healthy says. When it later leaves Drain
	// and is not healthy, its remaining flows are cut then. Nil drains
	// nothing (the behaviour before Drain existed).
	Drain map[string]bool
	// Mode is BalanceConnection (default when empty) or BalanceSource.
	Mode BalanceMode
	// Seed of the flow hash and the slot fill (0: DefaultSeed).
	Seed uint32
	// Slots is the slot map size, rounded up to a prime by SlotCount
	// (0: DefaultSlots).
	Slots int
	// CtMark is the single conntrack mark bit used to tag forwarded flows
	// (0: DefaultCtMark).
	CtMark uint32
}

// familyPlan is the desired state of one address family, with defaults
// applied and the slot map filled.
type familyPlan struct {
	vip      netip.Addr
	port     uint16
	backends []Backend // this family's, config order, ports filled in
	slots    []int     // slot -> index into backends, -1: none healthy
	mode     BalanceMode
	seed     uint32
	mark     uint32
}

func (p familyPlan) is6() bool { return p.vip.Is6() }

// plan validates d and computes the per-family plans: element 0 is IPv4,
// element 1 IPv6; a family without a VIP has an invalid vip.
func plan(d Desired) ([2]familyPlan, error) {
	var plans [2]familyPlan
	mode := d.Mode
	switch mode {
	case "":
		mode = BalanceConnection
	case BalanceConnection, BalanceSource:
	default:
		return plans, fmt.Errorf("unknown balance mode %q", d.Mode)
	}
	seed := d.Seed
	if seed == 0 {
		seed = DefaultSeed
	}
	mark := d.CtMark
	if mark == 0 {
		mark = DefaultCtMark
	}
	if mark&(mark-1) != 0 {
		return plans, fmt.Errorf("ct mark %#x: want a single bit", mark)
	}
	for i := range plans {
		plans[i].port = DefaultPort
	}
	for _, sv := range d.VIPs {
		v := sv.Addr.Unmap()
		if !v.IsValid() || v.IsUnspecified() || v.Zone() != "" {
			return plans, fmt.Errorf("invalid VIP %v", v)
		}
		i := familyIndex(v)
		if plans[i].vip.IsValid() {
			return plans, fmt.Errorf("two VIPs of one family: %v and %v", plans[i].vip, v)
		}
		plans[i].vip, plans[i].port = v, sv.AddrPort().Port()
	}
	names := make(map[string]bool, len(d.Backends))
	addrs := make(map[netip.AddrPort]string, len(d.Backends))
	for _, b := range d.Backends {
		if b.Name == "" {
			return plans, errors.New("backend without a name")
		}
		if names[b.Name] {
			return plans, fmt.Errorf("duplicate backend name %q", b.Name)
		}
		names[b.Name] = true
		a := b.Addr.Addr().Unmap()
		if !a.IsValid() || a.IsUnspecified() {
			return plans, fmt.Errorf("backend %q: invalid address %v", b.Name, b.Addr)
		}
		i := familyIndex(a)
		bp := b.Addr.Port()
		if bp == 0 {
			bp = plans[i].port
		}
		ap := netip.AddrPortFrom(a, bp)
		if other, dup := addrs[ap]; dup {
			return plans, fmt.Errorf("backends %q and %q share address %v", other, b.Name, ap)
		}
		addrs[ap] = b.Name
		plans[i].backends = append(plans[i].backends, Backend{Name: b.Name, Addr: ap})
	}
	// The slot map's healthy set: healthy and not draining.
	serving := make(map[string]bool, len(d.Healthy))
	for name, ok := range d.Healthy {
		if ok && !d.Drain[name] {
			serving[name] = true
		}
	}
	for i := range plans {
		p := &plans[i]
		p.mode, p.seed, p.mark = mode, seed, mark
		if !p.vip.IsValid() {
			continue
		}
		for _, b := range p.backends {
			if b.Addr.Addr() == p.vip {
				return plans, fmt.Errorf("backend %q is the VIP itself", b.Name)
			}
		}
		names := make([]string, len(p.backends))
		for k, b := range p.backends {
			names[k] = b.Name
		}
		p.slots = BuildSlots(names, serving, seed, d.Slots)
	}
	return plans, nil
}

func familyIndex(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}
