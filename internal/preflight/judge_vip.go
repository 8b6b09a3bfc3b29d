package preflight

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/epconsole/epconsole/probes"
)

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
