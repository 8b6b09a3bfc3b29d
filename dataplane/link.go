package dataplane

import (
	"net"

	"github.com/vishvananda/netlink"
)

// LinkUp is the one rule for "the VIP's interface is up": administratively
// up and operationally up or unknown (loopback and some virtual links
// report unknown). Dormant, lower-layer-down, not-present, testing and
// down links are not up: a VIP put there would not be reachable, so the
// node must not count as eligible to own it.
func LinkUp(a netlink.LinkAttrs) bool {
	if a.Flags&net.FlagUp == 0 {
		return false
	}
	switch a.OperState {
	case netlink.OperUp, netlink.OperUnknown:
		return true
	}
	return false
}

// InterfaceUp reads the link called name in this process's network
// namespace and applies LinkUp; a missing or unreadable link is down.
func InterfaceUp(name string) bool {
	l, err := netlink.LinkByName(name)
	return err == nil && LinkUp(*l.Attrs())
}

// InterfacesUp reports whether every VIP's interface is up (LinkUp).
func InterfacesUp(vips []ServiceVIP) bool {
	seen := map[string]bool{}
	for _, v := range vips {
		if seen[v.Interface] {
			continue
		}
		seen[v.Interface] = true
		if !InterfaceUp(v.Interface) {
			return false
		}
	}
	return true
}
