package preflight

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/epconsole/epconsole/probes"
)

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
