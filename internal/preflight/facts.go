package preflight

import (
	"net/netip"
	"strconv"
	"strings"
)

// Facts is everything the checks judge, read from one network namespace
// by Gather. Tests build it by hand.
type Facts struct {
	// Sysctls maps a key under /proc/sys ("net/ipv4/ip_forward",
	// "net/ipv4/conf/eth0/rp_filter") to its trimmed value. A key that
	// does not exist is absent.
	Sysctls map[string]string `json:"sysctls"`
	// Links are the interfaces that matter (the VIP interfaces and the
	// interfaces routes to the backends leave by), by name. An interface
	// that does not exist has Exists false.
	Links map[string]Link `json:"links"`
	// BackendRoutes maps each backend address to the interface the route
	// to it leaves by ("" when there is no route).
	BackendRoutes map[netip.Addr]string `json:"backend_routes"`
	// VIPSubnets maps each VIP whose configured interface does not exist
	// to the interface and address whose prefix holds it (the link the
	// VIP belongs on); a VIP no local address's prefix holds is absent.
	VIPSubnets map[netip.Addr]VIPSubnet `json:"vip_subnets,omitempty"`
	// Tables are the foreign nftables tables (not epconsole's own), with
	// chains and decoded rules.
	Tables []Table `json:"tables"`
	// TablesRead is true when the nftables ruleset could be listed.
	TablesRead bool `json:"tables_read"`
	// LegacyTables are the iptables-legacy (x_tables) tables that exist
	// ("ip filter", "ip6 filter"); nftables cannot show their rules.
	LegacyTables []string `json:"legacy_tables,omitempty"`
	// Errors are facts that could not be read, by topic (a check code
	// prefix such as "nftables", "link", "sysctl").
	Errors map[string]string `json:"errors,omitempty"`
}

// Link is one interface's state.
type Link struct {
	Name    string `json:"name"`
	Exists  bool   `json:"exists"`
	Up      bool   `json:"up"`      // administratively up (IFF_UP)
	Carrier bool   `json:"carrier"` // IFF_LOWER_UP
	// Addrs are its addresses with their prefix; Dynamic ones were
	// configured from router advertisements (not permanent).
	Addrs []LinkAddr `json:"addrs,omitempty"`
	// RARoutes counts the routes on it learned from router advertisements
	// (proto ra), which forwarding=1 stops renewing unless accept_ra=2.
	RARoutes int `json:"ra_routes,omitempty"`
}

// VIPSubnet is the interface with an address whose prefix holds a VIP.
type VIPSubnet struct {
	Interface string       `json:"interface"`
	Prefix    netip.Prefix `json:"prefix"`
}

// LinkAddr is an address on a link.
type LinkAddr struct {
	Prefix  netip.Prefix `json:"prefix"`
	Dynamic bool         `json:"dynamic,omitempty"`
}

// unreadable reports whether topic (or the namespace itself) could not be read.
func (f Facts) unreadable(topic string) bool {
	_, t := f.Errors[topic]
	_, n := f.Errors["netns"]
	return t || n
}

// sysctl returns the integer value of key and whether it exists and parses.
func (f Facts) sysctl(key string) (int, bool) {
	v, ok := f.Sysctls[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(strings.Fields(v + " 0")[0])
	if err != nil {
		return 0, false
	}
	return n, true
}

// SysctlName is the `sysctl` command's name for a /proc/sys key: slashes
// become dots and dots inside a component (a VLAN interface "eth0.100")
// become slashes.
func SysctlName(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, ".", "/")
	}
	return strings.Join(parts, ".")
}

// Sysctl keys read by Gather.
const (
	keyIPForward      = "net/ipv4/ip_forward"
	keyIPv6AllForward = "net/ipv6/conf/all/forwarding"
	keyConntrackMax   = "net/netfilter/nf_conntrack_max"
	keyConntrackCount = "net/netfilter/nf_conntrack_count"
	keyConntrackBkts  = "net/netfilter/nf_conntrack_buckets"
)

func keyIPv4Conf(iface, name string) string { return "net/ipv4/conf/" + iface + "/" + name }
func keyIPv6Conf(iface, name string) string { return "net/ipv6/conf/" + iface + "/" + name }

// sysctlKeys lists every key Gather reads for o.
func sysctlKeys(o Options, routeIfaces []string) []string {
	keys := []string{keyIPForward, keyIPv6AllForward, keyConntrackMax, keyConntrackCount, keyConntrackBkts,
		keyIPv4Conf("all", "rp_filter"), keyIPv4Conf("all", "arp_ignore"), keyIPv4Conf("all", "arp_announce"),
		keyIPv4Conf("all", "forwarding")}
	seen := map[string]bool{}
	for _, v := range o.VIPs {
		if v.Interface == "" || seen[v.Interface] {
			continue
		}
		seen[v.Interface] = true
		i := v.Interface
		keys = append(keys, keyIPv4Conf(i, "forwarding"), keyIPv4Conf(i, "rp_filter"), keyIPv4Conf(i, "arp_ignore"),
			keyIPv4Conf(i, "arp_announce"), keyIPv6Conf(i, "forwarding"), keyIPv6Conf(i, "accept_ra"))
	}
	for _, i := range routeIfaces {
		if i == "" || seen[i] {
			continue
		}
		seen[i] = true
		keys = append(keys, keyIPv4Conf(i, "forwarding"), keyIPv4Conf(i, "rp_filter"))
	}
	return keys
}
