package direct

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/epconsole/epconsole/internal/config"
)

// Host reads which VIPs are on this host through one netlink socket it
// keeps open (VIPsHere opens one for every read). Safe for concurrent
// use.
type Host struct {
	mu sync.Mutex
	h  *netlink.Handle
}

// NewHost opens the netlink socket of this process's network namespace.
func NewHost() (*Host, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket to read the VIPs on this host: %w", err)
	}
	return &Host{h: h}, nil
}

// Close closes the socket.
func (h *Host) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.h.Close()
}

// VIPsHere is VIPsHere, read through the kept socket.
func (h *Host) VIPsHere(vips []config.VIP) []bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]bool, len(vips))
	for i, v := range vips {
		out[i] = addrOn(h.h.LinkByName, h.h.AddrList, v.Interface, v.Address)
	}
	return out
}

// addrOn says whether a is on the interface called name, read with
// linkByName and addrList (the package's netlink functions or a handle's).
func addrOn(linkByName func(string) (netlink.Link, error), addrList func(netlink.Link, int) ([]netlink.Addr, error), name string, a netip.Addr) bool {
	link, err := linkByName(name)
	if err != nil {
		return false
	}
	family := netlink.FAMILY_V4
	if a.Is6() && !a.Is4In6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := addrList(link, family)
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}
