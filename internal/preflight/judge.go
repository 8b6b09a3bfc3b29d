package preflight

import (
	"fmt"
	"slices"
	"sort"

	"github.com/epconsole/epconsole/probes"
)

// Finding codes. They are stable: scripts and docs/preflight.md use them.
const (
	CodeFactsUnreadable = "preflight-unreadable"

	CodeIPForward           = "ip-forward"
	CodeIPForwardOff        = "ip-forward-off"
	CodeIPForwardIfaceOff   = "ip-forward-iface-off"
	CodeIPv6Forward         = "ipv6-forward"
	CodeIPv6ForwardOff      = "ipv6-forward-off"
	CodeIPv6AcceptRA        = "ipv6-accept-ra"
	CodeIPv6RAIgnored       = "ipv6-ra-ignored"
	CodeRPFilter            = "rp-filter"
	CodeRPFilterStrict      = "rp-filter-strict"
	CodeConntrack           = "conntrack"
	CodeConntrackNotLoaded  = "conntrack-not-loaded"
	CodeConntrackMaxLow     = "conntrack-max-low"
	CodeConntrackFull       = "conntrack-full"
	CodeConntrackBuckets    = "conntrack-buckets"
	CodeFirewall            = "firewall"
	CodeFirewallDrops       = "firewall-drops"
	CodeFirewallMayDrop     = "firewall-may-drop"
	CodeIptablesLegacy      = "iptables-legacy"
	CodeVIPInterface        = "vip-interface"
	CodeVIPInterfaceMissing = "vip-interface-missing"
	CodeVIPInterfaceDown    = "vip-interface-down"
	CodeVIPNoCarrier        = "vip-interface-no-carrier"
	CodeVIPNoSubnet         = "vip-interface-no-subnet"
	CodeARP                 = "arp"
	CodeARPIgnore           = "arp-ignore"
)

// sysctlFile names the file that makes a sysctl setting survive a reboot.
const sysctlFile = "/etc/sysctl.d/90-epconsole.conf"

// Check is one pure preflight check.
type Check func(Facts, Options) []probes.Finding

// Checks returns the checks Judge runs, in order.
func Checks() []Check {
	return []Check{CheckFacts, CheckForwarding, CheckIPv6Forwarding, CheckRPFilter, CheckConntrack,
		CheckFirewall, CheckVIPInterface, CheckARP}
}

// Judge runs every check over f and returns the findings, worst first
// (stable within a severity). It is pure.
func Judge(f Facts, o Options) []probes.Finding {
	var out []probes.Finding
	for _, c := range Checks() {
		out = append(out, c(f, o)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Severity.Rank() > out[j].Severity.Rank() })
	return out
}

// families reports which address families the VIPs use (IPv4 also when
// there is no VIP at all: the checks then assume IPv4).
func families(o Options) (v4, v6 bool) {
	for _, v := range o.VIPs {
		if v.Address.Unmap().Is4() {
			v4 = true
		} else if v.Address.Is6() {
			v6 = true
		}
	}
	if !v4 && !v6 {
		v4 = true
	}
	return v4, v6
}

// vipInterfaces lists the VIP interfaces of the given family, once each.
func vipInterfaces(o Options, v6 bool) []string {
	var out []string
	for _, v := range o.VIPs {
		if v.Interface == "" || v.Address.Unmap().Is6() != v6 || slices.Contains(out, v.Interface) {
			continue
		}
		out = append(out, v.Interface)
	}
	return out
}

// backendInterfaces lists the interfaces the routes to the backends of the
// given family leave by.
func backendInterfaces(f Facts, o Options, v6 bool) []string {
	var out []string
	for _, b := range o.Backends {
		a := b.Addr().Unmap()
		if a.Is6() != v6 {
			continue
		}
		if i := f.BackendRoutes[a]; i != "" && !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	return out
}

// CheckFacts turns facts that could not be read into UNKNOWN findings.
func CheckFacts(f Facts, _ Options) []probes.Finding {
	var out []probes.Finding
	topics := make([]string, 0, len(f.Errors))
	for t := range f.Errors {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Unknown, Code: CodeFactsUnreadable, Subject: t,
			Message: fmt.Sprintf("could not read %s: %s; the checks that need it are not decided", t, f.Errors[t]),
			Fixes:   fixes("run as root (CAP_NET_ADMIN for nftables, CAP_SYS_ADMIN to enter another network namespace)")})
	}
	return out
}
