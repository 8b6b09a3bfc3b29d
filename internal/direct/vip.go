package direct

import (
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/config"
)

// VIPsHere says, per VIP, whether its address is on its interface in this
// process's network namespace (read through netlink; a missing interface
// or an unreadable address list counts as not here).
func VIPsHere(vips []config.VIP) []bool {
	out := make([]bool, len(vips))
	for i, v := range vips {
		out[i] = addrOnLink(v.Interface, v.Address)
	}
	return out
}

// LinksUp says, per VIP, whether its interface exists and is up by the
// daemon's rule (dataplane.LinkUp), its other condition for eligibility
// besides a healthy backend.
func LinksUp(vips []config.VIP) []bool {
	out := make([]bool, len(vips))
	for i, v := range vips {
		out[i] = dataplane.InterfaceUp(v.Interface)
	}
	return out
}

func addrOnLink(name string, a netip.Addr) bool {
	return addrOn(netlink.LinkByName, netlink.AddrList, name, a)
}
