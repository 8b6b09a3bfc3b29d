package preflight

import (
	"fmt"

	"github.com/epconsole/epconsole/probes"
)

// persist is the fix for a sysctl: set it now and in sysctlFile.
func persist(key, value string) string {
	n := SysctlName(key)
	return fmt.Sprintf("sysctl -w %s=%s && echo '%s = %s' >> %s", n, value, n, value, sysctlFile)
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
