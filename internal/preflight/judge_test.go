package preflight

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables/expr"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/probes"
)

var (
	vip4   = VIP{Address: netip.MustParseAddr("198.18.7.100"), Interface: "eth0", Port: 6443}
	vip6   = VIP{Address: netip.MustParseAddr("fd00:198:18:7::100"), Interface: "eth0", Port: 6443}
	be4    = netip.MustParseAddrPort("198.18.7.21:6443")
	be6    = netip.MustParseAddrPort("[fd00:198:18:7::21]:6443")
	opts4  = Options{VIPs: []VIP{vip4}, Backends: []netip.AddrPort{be4}}
	opts46 = Options{VIPs: []VIP{vip4, vip6}, Backends: []netip.AddrPort{be4, be6}}
)

// goodFacts is a host where every check passes for opts46.
func goodFacts() Facts {
	return Facts{
		Sysctls: map[string]string{
			keyIPForward: "1", keyIPv4Conf("all", "forwarding"): "1", keyIPv4Conf("eth0", "forwarding"): "1",
			keyIPv6AllForward: "1", keyIPv6Conf("eth0", "forwarding"): "1", keyIPv6Conf("eth0", "accept_ra"): "1",
			keyIPv4Conf("all", "rp_filter"): "0", keyIPv4Conf("eth0", "rp_filter"): "2",
			keyIPv4Conf("all", "arp_ignore"): "0", keyIPv4Conf("eth0", "arp_ignore"): "0",
			keyIPv4Conf("all", "arp_announce"): "0", keyIPv4Conf("eth0", "arp_announce"): "2",
			keyConntrackMax: "262144", keyConntrackCount: "1000", keyConntrackBkts: "65536",
		},
		Links: map[string]Link{"eth0": {Name: "eth0", Exists: true, Up: true, Carrier: true, Addrs: []LinkAddr{
			{Prefix: netip.MustParsePrefix("198.18.7.11/24")},
			{Prefix: netip.MustParsePrefix("fd00:198:18:7::11/64")},
			{Prefix: netip.MustParsePrefix("fe80::1/64"), Dynamic: true},
		}}},
		BackendRoutes: map[netip.Addr]string{be4.Addr(): "eth0", be6.Addr(): "eth0"},
		TablesRead:    true,
	}
}

// with returns goodFacts changed by fn.
func with(fn func(*Facts)) Facts {
	f := goodFacts()
	fn(&f)
	return f
}

func codes(fs []probes.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Severity.String()+" "+f.Code)
	}
	return out
}

func TestJudge(t *testing.T) {
	forwardDrop := Table{Family: "inet", Name: "filter", Chains: []Chain{{Name: "forward", Hook: "forward", Type: "filter", Policy: "drop"}}}
	tests := []struct {
		desc string
		f    Facts
		o    Options
		// want lists "SEVERITY code" entries that must be present;
		// absent lists codes that must not be.
		want   []string
		absent []string
		// fixPart must appear in the fix of the first wanted finding.
		fixPart string
	}{
		{desc: "all good", f: goodFacts(), o: opts46,
			want:   []string{"OK ip-forward", "OK ipv6-forward", "OK ipv6-accept-ra", "OK rp-filter", "OK conntrack", "OK firewall", "OK vip-interface", "OK arp"},
			absent: []string{CodeIPForwardOff, CodeRPFilterStrict, CodeFirewallDrops}},
		{desc: "ip_forward off", f: with(func(f *Facts) { f.Sysctls[keyIPForward] = "0" }), o: opts4,
			want: []string{"CRITICAL ip-forward-off"}, fixPart: "sysctl -w net.ipv4.ip_forward=1 && echo 'net.ipv4.ip_forward = 1' >> /etc/sysctl.d/90-epconsole.conf"},
		{desc: "forwarding off on the VIP interface", f: with(func(f *Facts) { f.Sysctls[keyIPv4Conf("eth0", "forwarding")] = "0" }), o: opts4,
			want: []string{"CRITICAL ip-forward-iface-off"}, fixPart: "net.ipv4.conf.eth0.forwarding=1"},
		{desc: "forwarding off on a VLAN interface uses sysctl's slash form",
			f: with(func(f *Facts) {
				f.Sysctls[keyIPv4Conf("eth0.100", "forwarding")] = "0"
				f.Links["eth0.100"] = f.Links["eth0"]
			}), o: Options{VIPs: []VIP{{Address: vip4.Address, Interface: "eth0.100", Port: 6443}}},
			want: []string{"CRITICAL ip-forward-iface-off"}, fixPart: "net.ipv4.conf.eth0/100.forwarding=1"},
		{desc: "IPv6 forwarding not judged without an IPv6 VIP", f: with(func(f *Facts) { f.Sysctls[keyIPv6AllForward] = "0" }), o: opts4,
			absent: []string{CodeIPv6ForwardOff, CodeIPv6Forward}},
		{desc: "IPv6 forwarding off", f: with(func(f *Facts) { f.Sysctls[keyIPv6AllForward] = "0" }), o: opts46,
			want: []string{"CRITICAL ipv6-forward-off"}, fixPart: "accept_ra=2"},
		{desc: "forwarding on, RA-learned route ignored",
			f: with(func(f *Facts) {
				l := f.Links["eth0"]
				l.RARoutes = 1
				f.Links["eth0"] = l
			}), o: opts46, want: []string{"WARNING ipv6-ra-ignored"}, fixPart: "net.ipv6.conf.eth0.accept_ra=2"},
		{desc: "forwarding off, SLAAC address would be lost",
			f: with(func(f *Facts) {
				f.Sysctls[keyIPv6AllForward] = "0"
				l := f.Links["eth0"]
				l.Addrs = append(l.Addrs, LinkAddr{Prefix: netip.MustParsePrefix("fd00:198:18:7:0:ff:fe00:1/64"), Dynamic: true})
				f.Links["eth0"] = l
			}), o: opts46, want: []string{"WARNING ipv6-ra-ignored", "CRITICAL ipv6-forward-off"}, fixPart: "before turning forwarding on"},
		{desc: "accept_ra 2 keeps RAs", f: with(func(f *Facts) {
			f.Sysctls[keyIPv6Conf("eth0", "accept_ra")] = "2"
			l := f.Links["eth0"]
			l.RARoutes = 2
			f.Links["eth0"] = l
		}), o: opts46, want: []string{"OK ipv6-accept-ra"}, absent: []string{CodeIPv6RAIgnored}},
		{desc: "rp_filter strict on the interface", f: with(func(f *Facts) { f.Sysctls[keyIPv4Conf("eth0", "rp_filter")] = "1" }), o: opts4,
			want: []string{"WARNING rp-filter-strict"}, fixPart: "net.ipv4.conf.eth0.rp_filter=2"},
		{desc: "rp_filter strict on all wins over loose interface? no: max(1,2)=2 is loose",
			f: with(func(f *Facts) { f.Sysctls[keyIPv4Conf("all", "rp_filter")] = "1" }), o: opts4,
			want: []string{"OK rp-filter"}},
		{desc: "rp_filter strict through all", f: with(func(f *Facts) {
			f.Sysctls[keyIPv4Conf("all", "rp_filter")] = "1"
			f.Sysctls[keyIPv4Conf("eth0", "rp_filter")] = "0"
		}), o: opts4, want: []string{"WARNING rp-filter-strict"}, fixPart: "net.ipv4.conf.all.rp_filter=2"},
		{desc: "rp_filter strict on the backends' interface",
			f: with(func(f *Facts) {
				f.BackendRoutes[be4.Addr()] = "eth1"
				f.Sysctls[keyIPv4Conf("eth1", "rp_filter")] = "1"
				f.Sysctls[keyIPv4Conf("eth1", "forwarding")] = "1"
			}), o: opts4, want: []string{"WARNING rp-filter-strict"}, fixPart: "net.ipv4.conf.eth1.rp_filter=2"},
		{desc: "conntrack not loaded", f: with(func(f *Facts) {
			delete(f.Sysctls, keyConntrackMax)
			delete(f.Sysctls, keyConntrackCount)
		}), o: opts4, want: []string{"OK conntrack-not-loaded"}, fixPart: "nf_conntrack_max = 131072"},
		{desc: "conntrack max below expected flows", f: with(func(f *Facts) { f.Sysctls[keyConntrackMax] = "32768" }), o: opts4,
			want: []string{"CRITICAL conntrack-max-low"}, fixPart: "net.netfilter.nf_conntrack_max=131072"},
		{desc: "conntrack max without headroom", f: with(func(f *Facts) { f.Sysctls[keyConntrackMax] = "65536" }), o: opts4,
			want: []string{"WARNING conntrack-max-low"}},
		{desc: "conntrack max enough for a small explicit expectation", f: with(func(f *Facts) { f.Sysctls[keyConntrackMax] = "65536" }),
			o: Options{VIPs: opts4.VIPs, Backends: opts4.Backends, ExpectedFlows: 1000}, want: []string{"OK conntrack"}},
		{desc: "conntrack table nearly full", f: with(func(f *Facts) { f.Sysctls[keyConntrackCount] = "250000" }), o: opts4,
			want: []string{"CRITICAL conntrack-full"}},
		{desc: "conntrack table filling", f: with(func(f *Facts) { f.Sysctls[keyConntrackCount] = "200000" }), o: opts4,
			want: []string{"WARNING conntrack-full"}},
		{desc: "conntrack hash buckets too few for the table", f: with(func(f *Facts) { f.Sysctls[keyConntrackBkts] = "16384" }), o: opts4,
			want: []string{"WARNING conntrack-buckets"}, fixPart: "net.netfilter.nf_conntrack_buckets=65536"},
		{desc: "50,000 flows and 2,000 new a second need a million entries", f: with(func(f *Facts) {}),
			o:    Options{VIPs: opts4.VIPs, Backends: opts4.Backends, ExpectedFlows: 50000, NewFlowsPerSecond: 2000},
			want: []string{"CRITICAL conntrack-max-low", "WARNING conntrack-buckets"}, fixPart: "net.netfilter.nf_conntrack_max=1048576"},
		{desc: "ufw forward policy drop (the classic runbook)", f: with(func(f *Facts) { f.Tables = []Table{ufwTable()} }), o: opts4,
			want: []string{"CRITICAL firewall-drops"}, absent: []string{CodeFirewall},
			fixPart: `ufw route allow proto tcp to 198.18.7.21 port 6443; or set DEFAULT_FORWARD_POLICY="ACCEPT"`},
		{desc: "ufw with the route allowed", f: with(func(f *Facts) {
			f.Tables = []Table{ufwTable(DecodeRule(20, join(ipDaddr("198.18.7.21"), tcpDport(6443), []expr.Any{verdict(expr.VerdictAccept, "")})))}
		}), o: opts4, want: []string{"OK firewall"}, absent: []string{CodeFirewallDrops, CodeFirewallMayDrop}},
		{desc: "ufw ip table does not judge IPv6 traffic", f: with(func(f *Facts) { f.Tables = []Table{ufwTable()} }),
			o: Options{VIPs: []VIP{vip6}, Backends: []netip.AddrPort{be6}}, want: []string{"OK firewall"}},
		{desc: "iptables-nft FORWARD policy drop", f: with(func(f *Facts) {
			f.Tables = []Table{{Family: "ip", Name: "filter", Chains: []Chain{{Name: "FORWARD", Hook: "forward", Type: "filter", Policy: "drop"}}}}
		}), o: opts4, want: []string{"CRITICAL firewall-drops"}, fixPart: "iptables -I FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT && iptables -I FORWARD -d 198.18.7.21 -p tcp --dport 6443 -j ACCEPT"},
		{desc: "native inet table forward drop hits both families", f: with(func(f *Facts) { f.Tables = []Table{forwardDrop} }), o: opts46,
			want: []string{"CRITICAL firewall-drops"}, fixPart: "ip6 daddr fd00:198:18:7::21 tcp dport 6443 accept"},
		{desc: "undecidable rule in a drop chain", f: with(func(f *Facts) {
			f.Tables = []Table{{Family: "inet", Name: "fw", Chains: []Chain{{Name: "forward", Hook: "forward", Type: "filter", Policy: "drop",
				Rules: []Rule{DecodeRule(3, []expr.Any{&expr.Lookup{SourceRegister: 1, SetName: "ok"}, verdict(expr.VerdictAccept, "")})}}}}}
		}), o: opts4, want: []string{"WARNING firewall-may-drop"}},
		{desc: "prerouting drop of the VIP's port before DNAT", f: with(func(f *Facts) {
			f.Tables = []Table{{Family: "ip", Name: "raw", Chains: []Chain{{Name: "pre", Hook: "prerouting", Type: "filter", Priority: -300, Policy: "accept",
				Rules: []Rule{DecodeRule(4, join(ipDaddr("198.18.7.100"), tcpDport(6443), []expr.Any{verdict(expr.VerdictDrop, "")}))}}}}}
		}), o: opts4, want: []string{"CRITICAL firewall-drops"}},
		{desc: "prerouting rule on the VIP is not hit after DNAT", f: with(func(f *Facts) {
			// ct state new ip daddr VIP tcp dport 6443 drop: after DNAT the
			// request is addressed to the backend; replies are established.
			f.Tables = []Table{{Family: "ip", Name: "late", Chains: []Chain{{Name: "pre", Hook: "prerouting", Type: "filter", Priority: 0, Policy: "accept",
				Rules: []Rule{DecodeRule(4, join(ctState(expr.CtStateBitNEW), ipDaddr("198.18.7.100"), tcpDport(6443), []expr.Any{verdict(expr.VerdictDrop, "")}))}}}}}
		}), o: opts4, want: []string{"OK firewall"}},
		{desc: "input and nat chains are not judged", f: with(func(f *Facts) {
			f.Tables = []Table{{Family: "inet", Name: "fw", Chains: []Chain{
				{Name: "input", Hook: "input", Type: "filter", Policy: "drop"},
				{Name: "nat", Hook: "prerouting", Type: "nat", Policy: "accept"},
			}}}
		}), o: opts4, want: []string{"OK firewall"}},
		{desc: "iptables-legacy tables", f: with(func(f *Facts) { f.LegacyTables = []string{"ip filter"} }), o: opts4,
			want: []string{"WARNING iptables-legacy", "OK firewall"}, fixPart: "iptables-legacy-save"},
		{desc: "nftables unreadable", f: with(func(f *Facts) {
			f.TablesRead = false
			f.Errors = map[string]string{"nftables": "operation not permitted"}
		}), o: opts4, want: []string{"UNKNOWN preflight-unreadable"}, absent: []string{CodeFirewall}},
		{desc: "VIP interface missing", f: with(func(f *Facts) { f.Links["eth0"] = Link{Name: "eth0"} }), o: opts4,
			want: []string{"CRITICAL vip-interface-missing"}, fixPart: "to the interface on the VIP's layer-2 segment"},
		{desc: "VIP interface missing, the VIP's subnet on another link", f: with(func(f *Facts) {
			f.Links["eth0"] = Link{Name: "eth0"}
			f.VIPSubnets = map[netip.Addr]VIPSubnet{netip.MustParseAddr("198.18.7.100"): {Interface: "ens3", Prefix: netip.MustParsePrefix("198.18.7.11/24")}}
		}), o: opts4, want: []string{"CRITICAL vip-interface-missing"}, fixPart: `set interface = "ens3" in vip "198.18.7.100"`},
		{desc: "VIP interface down", f: with(func(f *Facts) { l := f.Links["eth0"]; l.Up = false; f.Links["eth0"] = l }), o: opts4,
			want: []string{"CRITICAL vip-interface-down"}, fixPart: "ip link set eth0 up"},
		{desc: "VIP interface without carrier", f: with(func(f *Facts) { l := f.Links["eth0"]; l.Carrier = false; f.Links["eth0"] = l }), o: opts4,
			want: []string{"CRITICAL vip-interface-no-carrier"}},
		{desc: "VIP outside the interface's subnets", f: goodFacts(),
			o:    Options{VIPs: []VIP{{Address: netip.MustParseAddr("198.18.8.100"), Interface: "eth0", Port: 6443}}},
			want: []string{"WARNING vip-interface-no-subnet"}, fixPart: "inside 198.18.7.11/24"},
		{desc: "VIP interface without an address of the family, the VIP itself does not count", f: with(func(f *Facts) {
			l := f.Links["eth0"]
			l.Addrs = []LinkAddr{{Prefix: netip.MustParsePrefix("198.18.7.11/24")}, {Prefix: netip.MustParsePrefix("fd00:198:18:7::100/128")}}
			f.Links["eth0"] = l
		}), o: opts46, want: []string{"WARNING vip-interface-no-subnet", "OK vip-interface"}},
		{desc: "arp_ignore 2 hides a /32 VIP", f: with(func(f *Facts) { f.Sysctls[keyIPv4Conf("all", "arp_ignore")] = "2" }), o: opts4,
			want: []string{"WARNING arp-ignore"}, fixPart: "net.ipv4.conf.all.arp_ignore=1"},
		{desc: "arp_ignore 8", f: with(func(f *Facts) { f.Sysctls[keyIPv4Conf("eth0", "arp_ignore")] = "8" }), o: opts4,
			want: []string{"WARNING arp-ignore"}},
		{desc: "arp_announce 0 is informational", f: with(func(f *Facts) { f.Sysctls[keyIPv4Conf("eth0", "arp_announce")] = "0" }), o: opts4,
			want: []string{"OK arp"}, fixPart: "arp_announce=2"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got := Judge(tt.f, tt.o)
			have := codes(got)
			for _, w := range tt.want {
				if !slices.Contains(have, w) {
					t.Errorf("missing %q in %v", w, have)
				}
			}
			for _, a := range tt.absent {
				for _, f := range got {
					if f.Code == a {
						t.Errorf("unexpected %s: %+v", a, f)
					}
				}
			}
			if tt.fixPart != "" && len(tt.want) > 0 {
				i := slices.Index(have, tt.want[0])
				if i >= 0 && !strings.Contains(fixText(got[i]), tt.fixPart) {
					t.Errorf("fix of %s = %q, want it to contain %q", tt.want[0], fixText(got[i]), tt.fixPart)
				}
			}
			for i := 1; i < len(got); i++ {
				if got[i].Severity.Rank() > got[i-1].Severity.Rank() {
					t.Errorf("findings not worst first: %v", have)
					break
				}
			}
			for _, f := range got {
				if f.Severity != probes.OK && fixText(f) == "" {
					t.Errorf("%s %s has no fix", f.Severity, f.Code)
				}
				if f.Message == "" {
					t.Errorf("%s has no message", f.Code)
				}
			}
		})
	}
}

func TestSysctlName(t *testing.T) {
	for key, want := range map[string]string{
		"net/ipv4/ip_forward":              "net.ipv4.ip_forward",
		"net/ipv4/conf/eth0.100/rp_filter": "net.ipv4.conf.eth0/100.rp_filter",
	} {
		if got := SysctlName(key); got != want {
			t.Errorf("SysctlName(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestFixes: a preflight finding carries its fix as one line, none for
// an empty fix, and every finding Judge returns is of check "preflight".
func TestFixes(t *testing.T) {
	if fs := fixes(""); fs != nil {
		t.Errorf(`fixes("") = %+v`, fs)
	}
	if fs := fixes("do b"); len(fs) != 1 || fs[0].Text != "do b" || fs[0].Setup != probes.SetupAny {
		t.Errorf(`fixes("do b") = %+v`, fs)
	}
	for _, f := range Judge(Facts{Errors: map[string]string{"netns": "no"}}, Options{}) {
		if f.Check != probes.CheckPreflight {
			t.Errorf("finding %+v: check %q", f, f.Check)
		}
	}
}

// fixText is the text of a finding's fixes, one per line.
func fixText(f probes.Finding) string {
	var ts []string
	for _, fx := range f.Fixes {
		ts = append(ts, fx.String())
	}
	return strings.Join(ts, "\n")
}

// TestOptionsFromConfigLoad: the config's conntrack block is the load the
// daemon's preflight judges the table against: a table of 65,536 is short
// of 2,000 flows plus 120 s of 500 new a second (62,000, without twice
// the headroom), and enough without the churn.
func TestOptionsFromConfigLoad(t *testing.T) {
	cfg := &config.Config{Conntrack: config.Conntrack{ExpectedFlows: 2000, NewFlowsPerSecond: 500}}
	o := OptionsFromConfig(cfg)
	if o.ExpectedFlows != 2000 || o.NewFlowsPerSecond != 500 {
		t.Fatalf("options %+v, want the config's 2000 flows and 500 new a second", o)
	}
	o.VIPs, o.Backends = opts4.VIPs, opts4.Backends
	f := with(func(f *Facts) { f.Sysctls[keyConntrackMax] = "65536" })
	if got := codes(Judge(f, o)); !slices.Contains(got, "WARNING conntrack-max-low") {
		t.Errorf("with the churn: %v, want WARNING conntrack-max-low", got)
	}
	o.NewFlowsPerSecond = 0
	if got := codes(Judge(f, o)); !slices.Contains(got, "OK conntrack") {
		t.Errorf("without the churn: %v, want OK conntrack", got)
	}
}
