package preflight

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

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

// persist is the fix for a sysctl: set it now and in sysctlFile.
func persist(key, value string) string {
	n := SysctlName(key)
	return fmt.Sprintf("sysctl -w %s=%s && echo '%s = %s' >> %s", n, value, n, value, sysctlFile)
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

// CheckForwarding checks IPv4 forwarding: net.ipv4.ip_forward, and the
// per-interface switch of the interfaces forwarded traffic arrives on (the
// VIP interface for requests, the backends' for replies).
func CheckForwarding(f Facts, o Options) []probes.Finding {
	if v4, _ := families(o); !v4 {
		return nil
	}
	if _, read := f.Sysctls[keyIPForward]; !read {
		return nil // unreadable: CheckFacts reports it
	}
	if v, _ := f.sysctl(keyIPForward); v != 1 {
		return []probes.Finding{{Check: probes.CheckPreflight, Severity: probes.Critical, Code: CodeIPForwardOff, Subject: SysctlName(keyIPForward),
			Message: fmt.Sprintf("net.ipv4.ip_forward is %s: the kernel drops every packet DNATed from the VIP to a backend", f.Sysctls[keyIPForward]),
			Fixes:   fixes(persist(keyIPForward, "1"))}}
	}
	var out []probes.Finding
	ifaces := append(vipInterfaces(o, false), backendInterfaces(f, o, false)...)
	seen := map[string]bool{}
	for _, i := range ifaces {
		if seen[i] {
			continue
		}
		seen[i] = true
		k := keyIPv4Conf(i, "forwarding")
		if v, ok := f.sysctl(k); ok && v != 1 {
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Critical, Code: CodeIPForwardIfaceOff, Subject: i,
				Message: fmt.Sprintf("%s is 0: packets arriving on %s are not forwarded although net.ipv4.ip_forward is 1", SysctlName(k), i),
				Fixes:   fixes(persist(k, "1"))})
		}
	}
	if len(out) == 0 {
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.OK, Code: CodeIPForward, Message: "IPv4 forwarding is on"})
	}
	return out
}

// CheckIPv6Forwarding checks net.ipv6.conf.all.forwarding for an IPv6 VIP
// and says what forwarding does to router advertisements on the VIP
// interface: with forwarding on, the kernel ignores RAs unless accept_ra
// is 2, so a default route or addresses learned from RAs expire.
func CheckIPv6Forwarding(f Facts, o Options) []probes.Finding {
	if _, v6 := families(o); !v6 {
		return nil
	}
	if _, read := f.Sysctls[keyIPv6AllForward]; !read {
		return nil
	}
	var out []probes.Finding
	fwd, _ := f.sysctl(keyIPv6AllForward)
	for _, i := range vipInterfaces(o, true) {
		ra, ok := f.sysctl(keyIPv6Conf(i, "accept_ra"))
		if !ok {
			continue
		}
		l := f.Links[i]
		dynamic := 0
		for _, a := range l.Addrs {
			if a.Dynamic && a.Prefix.Addr().Is6() && !a.Prefix.Addr().IsLinkLocalUnicast() {
				dynamic++
			}
		}
		usesRA := l.RARoutes > 0 || dynamic > 0
		key := keyIPv6Conf(i, "accept_ra")
		switch {
		case ra == 2:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.OK, Code: CodeIPv6AcceptRA, Subject: i,
				Message: fmt.Sprintf("%s is 2: router advertisements are still accepted with forwarding on", SysctlName(key))})
		case usesRA && fwd == 1:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeIPv6RAIgnored, Subject: i,
				Message: fmt.Sprintf("IPv6 forwarding is on and %s is %d, so the kernel ignores router advertisements on %s; its %d RA-learned routes and %d autoconfigured addresses will expire",
					SysctlName(key), ra, i, l.RARoutes, dynamic),
				Fixes: fixes(persist(key, "2"))})
		case usesRA:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeIPv6RAIgnored, Subject: i,
				Message: fmt.Sprintf("%s learns %d routes and %d addresses from router advertisements; turning IPv6 forwarding on makes the kernel ignore them unless %s is 2",
					i, l.RARoutes, dynamic, SysctlName(key)),
				Fixes: fixes(persist(key, "2") + " (before turning forwarding on)")})
		default:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.OK, Code: CodeIPv6AcceptRA, Subject: i,
				Message: fmt.Sprintf("with forwarding on the kernel ignores router advertisements on %s (%s is %d, not 2); it has no RA-learned route or address, so nothing is lost",
					i, SysctlName(key), ra)})
		}
	}
	if fwd != 1 {
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Critical, Code: CodeIPv6ForwardOff, Subject: SysctlName(keyIPv6AllForward),
			Message: fmt.Sprintf("net.ipv6.conf.all.forwarding is %s: the kernel drops every packet DNATed from the IPv6 VIP to a backend", f.Sysctls[keyIPv6AllForward]),
			Fixes: fixes(persist(keyIPv6AllForward, "1") + "; forwarding makes the kernel ignore router advertisements on every interface whose accept_ra is not 2: " +
				"set net.ipv6.conf.<interface>.accept_ra=2 first where the host learns its default route or addresses from RAs")})
	} else {
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.OK, Code: CodeIPv6Forward, Message: "IPv6 forwarding is on"})
	}
	return out
}

// CheckRPFilter checks reverse-path filtering on the VIP interfaces and the
// backends' interfaces. The kernel uses the larger of conf.all and the
// interface's value; strict (1) drops a packet whose source is not routed
// back out of the interface it arrived on.
func CheckRPFilter(f Facts, o Options) []probes.Finding {
	v4, _ := families(o)
	if !v4 {
		return nil // rp_filter is IPv4 only
	}
	all, okAll := f.sysctl(keyIPv4Conf("all", "rp_filter"))
	if !okAll {
		return nil
	}
	var out []probes.Finding
	seen := map[string]bool{}
	for _, i := range append(vipInterfaces(o, false), backendInterfaces(f, o, false)...) {
		if seen[i] {
			continue
		}
		seen[i] = true
		v, ok := f.sysctl(keyIPv4Conf(i, "rp_filter"))
		if !ok {
			continue
		}
		eff := max(all, v)
		if eff != 1 {
			continue
		}
		key := keyIPv4Conf(i, "rp_filter")
		fix := persist(key, "2")
		if all == 1 {
			fix = persist(keyIPv4Conf("all", "rp_filter"), "2") + " && " + fix
		}
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeRPFilterStrict, Subject: i,
			Message: fmt.Sprintf("rp_filter on %s is strict (all=%d, %s=%d, the kernel uses the larger): a packet whose source is routed out of another interface is dropped. "+
				"It matters when clients or backends are reached through a different interface than their packets arrive on (several uplinks, policy routing, clients behind a router on another link); with one link it is harmless",
				i, all, i, v),
			Fixes: fixes(fix + " (loose, or 0 to switch it off)")})
	}
	if len(out) == 0 {
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.OK, Code: CodeRPFilter, Message: "reverse-path filtering is loose or off on the interfaces the VIP's traffic uses"})
	}
	return out
}

// conntrackTarget is the conntrack table size recommended for o: twice the
// expected flows plus two minutes of churn in TIME_WAIT (a failover makes
// every client reconnect at once), rounded up to a power of two.
func conntrackTarget(o Options) int {
	n := 1
	for n < 2*o.neededEntries() {
		n <<= 1
	}
	return n
}

// maxChain is the longest average hash chain of a full conntrack table
// that CheckConntrack accepts.
const maxChain = 8

// CheckConntrack checks nf_conntrack_max against the expected flows (and
// churn), the hash buckets against the table size, and the current fill
// of the table. Every flow through the VIP holds one
// entry; a full table drops new connections ("nf_conntrack: table full,
// dropping packet").
func CheckConntrack(f Facts, o Options) []probes.Finding {
	maxv, okMax := f.sysctl(keyConntrackMax)
	if !okMax {
		if f.unreadable("sysctl") {
			return nil
		}
		return []probes.Finding{{Check: probes.CheckPreflight, Severity: probes.OK, Code: CodeConntrackNotLoaded,
			Message: fmt.Sprintf("nf_conntrack is not loaded yet (epconsole's NAT rules load it); once loaded, net.netfilter.nf_conntrack_max should be at least %d for %d expected flows",
				conntrackTarget(o), o.expectedFlows()),
			Fixes: fixes(fmt.Sprintf("after the daemon has started, run `epconsole check` again; to preset: echo 'net.netfilter.nf_conntrack_max = %d' >> %s", conntrackTarget(o), sysctlFile))}}
	}
	var out []probes.Finding
	want, expected := conntrackTarget(o), o.neededEntries()
	fix := persist(keyConntrackMax, fmt.Sprint(want)) + " (in the host's initial namespace: other namespaces can only read it)"
	switch {
	case maxv < expected:
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Critical, Code: CodeConntrackMaxLow, Subject: SysctlName(keyConntrackMax),
			Message: fmt.Sprintf("nf_conntrack_max is %d, below the %d flows expected: new connections are dropped once the table is full", maxv, expected),
			Fixes:   fixes(fix)})
	case maxv < 2*expected:
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeConntrackMaxLow, Subject: SysctlName(keyConntrackMax),
			Message: fmt.Sprintf("nf_conntrack_max is %d, less than twice the %d flows expected: closed flows linger in TIME_WAIT and a failover makes every client reconnect at once", maxv, expected),
			Fixes:   fixes(fix)})
	}
	if count, ok := f.sysctl(keyConntrackCount); ok && maxv > 0 {
		pct := 100 * count / maxv
		switch {
		case pct >= 90:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Critical, Code: CodeConntrackFull, Subject: SysctlName(keyConntrackCount),
				Message: fmt.Sprintf("the conntrack table holds %d of %d entries (%d%%): new connections are about to be dropped", count, maxv, pct),
				Fixes:   fixes(fmt.Sprintf("%s; find the flows with `conntrack -L | awk '{print $4}' | sort | uniq -c | sort -n`", persist(keyConntrackMax, fmt.Sprint(max(want, 2*maxv)))))})
		case pct >= 75:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeConntrackFull, Subject: SysctlName(keyConntrackCount),
				Message: fmt.Sprintf("the conntrack table holds %d of %d entries (%d%%)", count, maxv, pct),
				Fixes:   fixes(persist(keyConntrackMax, fmt.Sprint(max(want, 2*maxv))))})
		}
	}
	if b, ok := f.sysctl(keyConntrackBkts); ok && b > 0 && max(maxv, want)/b > maxChain {
		// The hash chains of a full table: every packet's lookup walks one.
		buckets := max(maxv, want) / 4
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeConntrackBuckets, Subject: SysctlName(keyConntrackBkts),
			Message: fmt.Sprintf("nf_conntrack_buckets is %d for a table of %d entries: %d entries per hash chain when full, and every packet walks one (the connection sync's creates too)", b, max(maxv, want), max(maxv, want)/b),
			Fixes:   fixes(fmt.Sprintf("%s (in the host's initial namespace; or the module option: options nf_conntrack hashsize=%d)", persist(keyConntrackBkts, fmt.Sprint(buckets)), buckets))})
	}
	if len(out) == 0 {
		count, _ := f.sysctl(keyConntrackCount)
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.OK, Code: CodeConntrack,
			Message: fmt.Sprintf("nf_conntrack_max %d holds twice the %d expected flows; %d entries in use", maxv, expected, count)})
	}
	return out
}

// hookPackets are the packets of the VIP's traffic a base chain of the
// given hook and priority sees, each with a description.
type hookPacket struct {
	desc string
	p    Packet
	// dest is the destination a rule must accept for this traffic: the
	// backend, or the VIP before DNAT (for fixes).
	dest netip.AddrPort
}

// natDstPriority is NF_IP_PRI_NAT_DST: chains before it see the VIP as
// destination, chains after it the backend.
const natDstPriority = -100

func packetsFor(f Facts, o Options, hook string, prio int32) []hookPacket {
	var out []hookPacket
	for _, v := range o.VIPs {
		vip := v.Address.Unmap()
		for _, b := range o.Backends {
			ba := b.Addr().Unmap()
			if ba.Is6() != vip.Is6() {
				continue
			}
			bif := f.BackendRoutes[ba]
			preDNAT := prio <= natDstPriority
			switch hook {
			case "forward":
				out = append(out,
					hookPacket{fmt.Sprintf("new connections from clients to %s (via VIP %s)", b, netip.AddrPortFrom(vip, v.Port)),
						Packet{IPv6: vip.Is6(), Dst: ba, L4proto: 6, Dport: b.Port(), CtState: ctNew, IIF: v.Interface, OIF: bif}, b},
					hookPacket{fmt.Sprintf("replies from %s to clients", b),
						Packet{IPv6: vip.Is6(), Src: ba, L4proto: 6, Sport: b.Port(), CtState: ctEstablished, IIF: bif, OIF: v.Interface}, b})
			case "prerouting":
				req := Packet{IPv6: vip.Is6(), Dst: ba, L4proto: 6, Dport: b.Port(), CtState: ctNew, IIF: v.Interface}
				rep := Packet{IPv6: vip.Is6(), Src: ba, L4proto: 6, Sport: b.Port(), CtState: ctEstablished, IIF: bif}
				if preDNAT {
					req.Dst, req.Dport = vip, v.Port
					rep.Dst = vip // SNATed to the VIP, not yet translated back
				}
				dest := b
				if preDNAT {
					dest = netip.AddrPortFrom(vip, v.Port)
				}
				out = append(out,
					hookPacket{fmt.Sprintf("new connections to VIP %s (for %s)", netip.AddrPortFrom(vip, v.Port), b), req, dest},
					hookPacket{fmt.Sprintf("replies from %s to clients", b), rep, dest})
			}
		}
	}
	return out
}

const (
	ctNew         = 8 // expr.CtStateBitNEW
	ctEstablished = 2 // expr.CtStateBitESTABLISHED
)

// familyCarries reports whether a table of family fam sees IPv6 (or IPv4) packets.
func familyCarries(fam string, v6 bool) bool {
	switch fam {
	case "inet":
		return true
	case "ip":
		return !v6
	case "ip6":
		return v6
	}
	return false
}

// CheckFirewall judges every foreign filter base chain on the prerouting
// and forward hooks against the VIP's traffic (new connections to each
// backend and their replies): a drop policy or drop rule reached by it is
// CRITICAL, one that rules we cannot decode may or may not reach is a
// WARNING. In nftables an accept in epconsole's table does not override a
// drop in another table's chain on the same hook, so these must be fixed
// where they are. iptables-nft rules appear as tables "filter" with
// chains "FORWARD"; ufw's as chains "ufw-*" in them. iptables-legacy
// tables cannot be read and are reported as such.
func CheckFirewall(f Facts, o Options) []probes.Finding {
	var out []probes.Finding
	if len(f.LegacyTables) > 0 {
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeIptablesLegacy, Subject: strings.Join(f.LegacyTables, ", "),
			Message: fmt.Sprintf("iptables-legacy tables exist (%s); their rules are invisible to nftables and to this check, and may drop the forwarded traffic",
				strings.Join(f.LegacyTables, ", ")),
			Fixes: fixes("check them with `iptables-legacy-save` / `ip6tables-legacy-save` (the FORWARD chain's policy and rules); better, move the firewall to iptables-nft (update-alternatives --set iptables /usr/sbin/iptables-nft) so it is checked")})
	}
	if !f.TablesRead {
		return out
	}
	var judged []string
	for _, t := range f.Tables {
		for _, c := range t.Chains {
			if c.Type != "filter" || (c.Hook != "forward" && c.Hook != "prerouting") {
				continue
			}
			worst := ""
			var where, dropped, maybe []string
			var dests []netip.AddrPort
			for _, hp := range packetsFor(f, o, c.Hook, c.Priority) {
				if !familyCarries(t.Family, hp.p.IPv6) {
					continue
				}
				res := JudgeBaseChain(t, c, hp.p)
				if res.Kind == OutcomeAccept {
					continue
				}
				if res.Kind == OutcomeDrop {
					worst = OutcomeDrop
					dropped = append(dropped, hp.desc)
				} else {
					if worst == "" {
						worst = OutcomeMaybe
					}
					maybe = append(maybe, hp.desc)
				}
				if !slices.Contains(where, res.Where) {
					where = append(where, res.Where)
				}
				if !slices.Contains(dests, hp.dest) {
					dests = append(dests, hp.dest)
				}
			}
			var traffic []string
			if len(dropped) > 0 {
				traffic = append(traffic, "drops "+strings.Join(dropped, "; "))
			}
			if len(maybe) > 0 {
				traffic = append(traffic, "may drop "+strings.Join(maybe, "; "))
			}
			ref := t.Ref(c.Name)
			if worst == "" {
				if familyCarries(t.Family, false) || familyCarries(t.Family, true) {
					judged = append(judged, ref)
				}
				continue
			}
			sev, code := probes.Critical, CodeFirewallDrops
			if worst == OutcomeMaybe {
				sev, code = probes.Warning, CodeFirewallMayDrop
			}
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: sev, Code: code, Subject: ref,
				Message: fmt.Sprintf("chain %s (hook %s, priority %d) %s; decided by %s. An accept in epconsole's own table does not override it",
					ref, c.Hook, c.Priority, strings.Join(traffic, "; and "), strings.Join(where, "; ")),
				Fixes: fixes(firewallFix(t, c, dests))})
		}
	}
	if len(out) == 0 || (len(out) == 1 && out[0].Code == CodeIptablesLegacy) {
		msg := "no other nftables table filters the forward or prerouting hook"
		if len(judged) > 0 {
			msg = "the other tables' forward and prerouting chains accept the VIP's traffic (" + strings.Join(judged, ", ") + ")"
		}
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.OK, Code: CodeFirewall, Message: msg})
	}
	return out
}

// firewallFix names the fix in the words of the tool that owns the table.
func firewallFix(t Table, c Chain, backends []netip.AddrPort) string {
	isUFW := slices.ContainsFunc(t.Chains, func(c Chain) bool { return strings.HasPrefix(c.Name, "ufw") })
	var b strings.Builder
	switch {
	case isUFW:
		var cmds []string
		for _, be := range backends {
			cmds = append(cmds, fmt.Sprintf("ufw route allow proto tcp to %s port %d", be.Addr(), be.Port()))
		}
		fmt.Fprintf(&b, "ufw's forward policy drops routed traffic: %s; or set DEFAULT_FORWARD_POLICY=\"ACCEPT\" in /etc/default/ufw and run `ufw reload`", strings.Join(cmds, " && "))
	case t.Name == "firewalld":
		fmt.Fprintf(&b, "allow forwarding to the backends in firewalld (it owns table %s): a policy from the VIP interface's zone to the backends' zone with target ACCEPT, or rich rules accepting tcp to ", t.Ref(""))
		var ds []string
		for _, be := range backends {
			ds = append(ds, be.String())
		}
		b.WriteString(strings.Join(ds, ", ") + "; then `firewall-cmd --reload`")
	case (t.Family == "ip" || t.Family == "ip6") && strings.ToUpper(c.Name) == c.Name:
		// iptables-nft.
		cmd := "iptables"
		if t.Family == "ip6" {
			cmd = "ip6tables"
		}
		var cmds []string
		if c.Hook == "forward" {
			cmds = append(cmds, fmt.Sprintf("%s -I %s -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT", cmd, c.Name))
		}
		for _, be := range backends {
			cmds = append(cmds, fmt.Sprintf("%s -I %s -d %s -p tcp --dport %d -j ACCEPT", cmd, c.Name, be.Addr(), be.Port()))
		}
		fmt.Fprintf(&b, "%s (and save them where the firewall is kept, e.g. netfilter-persistent save)", strings.Join(cmds, " && "))
	default:
		var cmds []string
		cmds = append(cmds, "ct state established,related accept")
		for _, be := range backends {
			f := "ip"
			if be.Addr().Unmap().Is6() {
				f = "ip6"
			}
			cmds = append(cmds, fmt.Sprintf("%s daddr %s tcp dport %d accept", f, be.Addr(), be.Port()))
		}
		fmt.Fprintf(&b, "in the configuration that creates table %s %s (e.g. /etc/nftables.conf), accept the VIP's traffic in chain %s before its drop: %s",
			t.Family, t.Name, c.Name, strings.Join(cmds, "; "))
	}
	return b.String()
}

// CheckVIPInterface checks that each VIP's interface exists, is up, has
// carrier and has an address whose prefix holds the VIP: the VIP moves by
// gratuitous ARP / unsolicited NA, which needs a layer-2 segment shared by
// the peers and the clients' router.
func CheckVIPInterface(f Facts, o Options) []probes.Finding {
	var out []probes.Finding
	if _, broken := f.Errors["link"]; broken && len(f.Links) == 0 {
		return nil
	}
	for _, v := range o.VIPs {
		if v.Interface == "" {
			continue
		}
		l, ok := f.Links[v.Interface]
		if !ok {
			continue
		}
		vip := v.Address.Unmap()
		switch {
		case !l.Exists:
			out = append(out, vipInterfaceMissing(f, v.Interface, vip))
			continue
		case !l.Up:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Critical, Code: CodeVIPInterfaceDown, Subject: v.Interface,
				Message: fmt.Sprintf("interface %s of VIP %s is administratively down", v.Interface, vip),
				Fixes:   fixes(fmt.Sprintf("ip link set %s up (and enable it in the network configuration)", v.Interface))})
			continue
		case !l.Carrier:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Critical, Code: CodeVIPNoCarrier, Subject: v.Interface,
				Message: fmt.Sprintf("interface %s of VIP %s has no carrier: this node cannot serve the VIP", v.Interface, vip),
				Fixes:   fixes(fmt.Sprintf("check the cable, switch port or virtual NIC of %s", v.Interface))})
			continue
		}
		var same []string
		holds := ""
		for _, a := range l.Addrs {
			p := a.Prefix
			if p.Addr().Is6() != vip.Is6() || p.Addr() == vip || p.Addr().IsLinkLocalUnicast() {
				continue
			}
			same = append(same, p.String())
			if p.Masked().Contains(vip) && holds == "" {
				holds = p.String()
			}
		}
		fam := "IPv4"
		if vip.Is6() {
			fam = "IPv6"
		}
		switch {
		case holds != "":
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.OK, Code: CodeVIPInterface, Subject: v.Interface,
				Message: fmt.Sprintf("%s is up with carrier; %s holds VIP %s", v.Interface, holds, vip)})
		case len(same) == 0:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeVIPNoSubnet, Subject: v.Interface,
				Message: fmt.Sprintf("%s has no %s address, so VIP %s is on no subnet of it: the VIP needs a layer-2 segment shared with the other peers and the clients' router (gratuitous ARP / unsolicited NA)", v.Interface, fam, vip),
				Fixes:   fixes(fmt.Sprintf("give %s an address in the VIP's subnet, or choose a VIP in the subnet of %s", v.Interface, v.Interface))})
		default:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeVIPNoSubnet, Subject: v.Interface,
				Message: fmt.Sprintf("VIP %s is in none of %s's subnets (%s): neighbours will not ARP for it; the VIP needs a layer-2 segment shared with the other peers and the clients' router (networks that ignore gratuitous ARP, such as most cloud VPCs, cannot carry it)",
					vip, v.Interface, strings.Join(same, ", ")),
				Fixes: fixes(fmt.Sprintf("choose a free VIP inside %s, or set the VIP's interface to the one on its subnet", same[0]))})
		}
	}
	return out
}

// vipInterfaceMissing is the finding for a VIP interface that does not
// exist; it names the interface the VIP's subnet is on when there is one.
func vipInterfaceMissing(f Facts, iface string, vip netip.Addr) probes.Finding {
	msg := fmt.Sprintf("interface %s of VIP %s does not exist on this host", iface, vip)
	fix := fmt.Sprintf("set interface in vip %q of config.hcl to the interface on the VIP's layer-2 segment (`ip -br addr` lists them), then systemctl restart epconsole", vip)
	if sn, ok := f.VIPSubnets[vip]; ok {
		msg += fmt.Sprintf("; the VIP's subnet is on %s (%s)", sn.Interface, sn.Prefix)
		fix = fmt.Sprintf("set interface = %q in vip %q of config.hcl, then systemctl restart epconsole", sn.Interface, vip)
	}
	return probes.Finding{Check: probes.CheckPreflight, Severity: probes.Critical, Code: CodeVIPInterfaceMissing, Subject: iface,
		Message: msg, Fixes: fixes(fix)}
}

// CheckARP reports arp_ignore and arp_announce of the IPv4 VIP interfaces
// (the larger of conf.all and the interface's value applies).
// arp_ignore 2 answers only requesters inside the VIP's own prefix (a /32:
// nobody) and 8 never answers; arp_announce 2 (set by epconsole when it
// adds the VIP) keeps the VIP out of the host's own ARP requests.
func CheckARP(f Facts, o Options) []probes.Finding {
	var out []probes.Finding
	for _, i := range vipInterfaces(o, false) {
		allIg, ok1 := f.sysctl(keyIPv4Conf("all", "arp_ignore"))
		ig, ok2 := f.sysctl(keyIPv4Conf(i, "arp_ignore"))
		allAn, ok3 := f.sysctl(keyIPv4Conf("all", "arp_announce"))
		an, ok4 := f.sysctl(keyIPv4Conf(i, "arp_announce"))
		if !ok1 || !ok2 || !ok3 || !ok4 {
			continue
		}
		effIg, effAn := max(allIg, ig), max(allAn, an)
		switch effIg {
		case 2:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeARPIgnore, Subject: i,
				Message: fmt.Sprintf("arp_ignore on %s is 2: the host answers ARP only for requesters inside the target address's prefix, and the VIP is added as a /32, so nobody gets an answer for it", i),
				Fixes:   fixes(persist(keyIPv4Conf(i, "arp_ignore"), "1") + maybeAll(allIg, "arp_ignore", "1"))})
			continue
		case 8:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeARPIgnore, Subject: i,
				Message: fmt.Sprintf("arp_ignore on %s is 8: the host never answers ARP there, so neighbours that lose the VIP's entry cannot find it again", i),
				Fixes:   fixes(persist(keyIPv4Conf(i, "arp_ignore"), "1") + maybeAll(allIg, "arp_ignore", "1"))})
			continue
		}
		msg := fmt.Sprintf("arp_ignore %d and arp_announce %d on %s", effIg, effAn, i)
		fix := ""
		if effAn == 2 {
			msg += " (the host never uses the VIP as the sender of its own ARP requests)"
		} else {
			msg += "; epconsole sets arp_announce=2 there when it adds the VIP, so the host's own ARP requests never carry the VIP"
			fix = persist(keyIPv4Conf(i, "arp_announce"), "2") + " (optional: epconsole does it when it adds the VIP)"
		}
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.OK, Code: CodeARP, Subject: i, Message: msg, Fixes: fixes(fix)})
	}
	return out
}

func maybeAll(allVal int, name, value string) string {
	if allVal < 2 {
		return ""
	}
	return " && " + persist(keyIPv4Conf("all", name), value)
}
