package preflight

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
	"github.com/epconsole/epconsole/probes"
)

// rootSysctls are root-namespace settings this package's tests must never
// change; TestKernel compares them before and after.
var rootSysctls = []string{keyIPForward, keyIPv6AllForward, keyIPv4Conf("all", "rp_filter")}

func readRoot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range rootSysctls {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatalf("reading root %s: %v", k, err)
		}
		out[k] = strings.TrimSpace(string(b))
	}
	return out
}

// kernelLab is one LB host and one backend on a switch, in namespaces
// pf-lb1, pf-cp1, pf-sw.
func kernelLab(t *testing.T) (*netlab.Lab, *netlab.Host, *netlab.Host) {
	t.Helper()
	lab := netlab.New(t, netlab.Spec{
		Prefix: "pf",
		IPv4:   netip.MustParsePrefix("198.18.7.0/24"),
		IPv6:   netip.MustParsePrefix("fd00:198:18:7::/64"),
		Hosts:  []netlab.HostSpec{{Name: "lb1", Role: netlab.RoleLB}, {Name: "cp1", Role: netlab.RoleBackend}},
	})
	return lab, lab.Host("lb1"), lab.Host("cp1")
}

// run runs the preflight with a bounded context.
func run(t *testing.T, o Options) []probes.Finding {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Run(ctx, o)
}

// find returns the findings with code.
func find(fs []probes.Finding, code string) []probes.Finding {
	var out []probes.Finding
	for _, f := range fs {
		if f.Code == code {
			out = append(out, f)
		}
	}
	return out
}

func mustHave(t *testing.T, fs []probes.Finding, sev probes.Severity, code string) probes.Finding {
	t.Helper()
	for _, f := range find(fs, code) {
		if f.Severity == sev {
			return f
		}
	}
	t.Fatalf("no %s %s in %v", sev, code, codes(fs))
	return probes.Finding{}
}

func mustNotHave(t *testing.T, fs []probes.Finding, code string) {
	t.Helper()
	if got := find(fs, code); len(got) > 0 {
		t.Fatalf("unexpected %s: %+v", code, got)
	}
}

func setSysctl(t *testing.T, h *netlab.Host, key, value string) {
	t.Helper()
	if err := h.WriteSysctl(key, value); err != nil {
		t.Fatal(err)
	}
}

// nftConn opens an nftables connection inside h's namespace.
func nftConn(t *testing.T, h *netlab.Host) *nftables.Conn {
	t.Helper()
	ns, err := h.OpenNetNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatalf("nftables in %s: %v", h.Namespace(), err)
	}
	return c
}

func TestKernel(t *testing.T) {
	before := readRoot(t)
	t.Cleanup(func() {
		after := readRoot(t)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("root namespace %s changed from %s to %s", k, v, after[k])
			}
		}
	})
	lab, lb, cp := kernelLab(t)
	vip4 := VIP{Address: lab.VIP4(), Interface: netlab.HostLink, Port: 6443}
	vip6 := VIP{Address: lab.VIP6(), Interface: netlab.HostLink, Port: 6443}
	be4 := netip.AddrPortFrom(cp.IPv4(), 6443)
	be6 := netip.AddrPortFrom(cp.IPv6(), 6443)
	o := Options{NetnsPath: lb.NsPath(), VIPs: []VIP{vip4, vip6}, Backends: []netip.AddrPort{be4, be6}}

	t.Run("facts", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f := Gather(ctx, o)
		if len(f.Errors) > 0 {
			t.Fatalf("gather errors: %v", f.Errors)
		}
		l := f.Links[netlab.HostLink]
		if !l.Exists || !l.Up || !l.Carrier {
			t.Errorf("eth0 = %+v, want existing, up, with carrier", l)
		}
		if !slices.ContainsFunc(l.Addrs, func(a LinkAddr) bool { return a.Prefix.Addr() == lb.IPv4() && a.Prefix.Bits() == 24 }) {
			t.Errorf("eth0 addresses %v lack %v/24", l.Addrs, lb.IPv4())
		}
		if f.BackendRoutes[cp.IPv4()] != netlab.HostLink || f.BackendRoutes[cp.IPv6()] != netlab.HostLink {
			t.Errorf("backend routes = %v, want eth0", f.BackendRoutes)
		}
		if !f.TablesRead {
			t.Error("nftables not read")
		}
		// The namespace's own view: netlab turned forwarding on in the LB host.
		if f.Sysctls[keyIPForward] != "1" {
			t.Errorf("ip_forward = %q in %s", f.Sysctls[keyIPForward], lb.Namespace())
		}
		// The same namespace by descriptor.
		ns, err := lb.OpenNetNS()
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		byFd := o
		byFd.NetnsPath, byFd.NetnsFd = "", int(ns)
		g := Gather(ctx, byFd)
		if len(g.Errors) > 0 || g.Sysctls[keyIPForward] != f.Sysctls[keyIPForward] || !slices.Equal(g.Links[netlab.HostLink].Addrs, l.Addrs) {
			t.Errorf("by fd: errors %v, links %v; by path: %v", g.Errors, g.Links, f.Links)
		}
	})

	t.Run("ipv4 forwarding", func(t *testing.T) {
		setSysctl(t, lb, keyIPForward, "0")
		f := mustHave(t, run(t, o), probes.Critical, CodeIPForwardOff)
		if !strings.Contains(fixText(f), "sysctl -w net.ipv4.ip_forward=1") {
			t.Errorf("fix %q", fixText(f))
		}
		setSysctl(t, lb, keyIPForward, "1")
		fs := run(t, o)
		mustHave(t, fs, probes.OK, CodeIPForward)
		mustNotHave(t, fs, CodeIPForwardOff)
		setSysctl(t, lb, keyIPv4Conf("eth0", "forwarding"), "0")
		mustHave(t, run(t, o), probes.Critical, CodeIPForwardIfaceOff)
		setSysctl(t, lb, keyIPv4Conf("eth0", "forwarding"), "1")
		mustNotHave(t, run(t, o), CodeIPForwardIfaceOff)
	})

	t.Run("ipv6 forwarding and accept_ra", func(t *testing.T) {
		setSysctl(t, lb, keyIPv6AllForward, "0")
		fs := run(t, o)
		mustHave(t, fs, probes.Critical, CodeIPv6ForwardOff)
		// Without an IPv6 VIP IPv6 forwarding is not judged.
		v4only := Options{NetnsPath: o.NetnsPath, VIPs: []VIP{vip4}, Backends: []netip.AddrPort{be4}}
		fs = run(t, v4only)
		mustNotHave(t, fs, CodeIPv6ForwardOff)
		mustNotHave(t, fs, CodeIPv6AcceptRA)

		setSysctl(t, lb, keyIPv6AllForward, "1")
		setSysctl(t, lb, keyIPv6Conf("eth0", "accept_ra"), "1")
		fs = run(t, o)
		mustHave(t, fs, probes.OK, CodeIPv6Forward)
		mustHave(t, fs, probes.OK, CodeIPv6AcceptRA) // no RA-learned route: nothing lost

		// A route as if learned from a router advertisement (proto ra).
		nh, err := lb.NetlinkHandle()
		if err != nil {
			t.Fatal(err)
		}
		defer nh.Close()
		link, err := nh.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		_, dst, _ := net.ParseCIDR("fd00:198:18:7:1::/80")
		ra := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Protocol: unix.RTPROT_RA}
		if err := nh.RouteAdd(ra); err != nil {
			t.Fatalf("adding proto ra route: %v", err)
		}
		defer nh.RouteDel(ra)
		f := mustHave(t, run(t, o), probes.Warning, CodeIPv6RAIgnored)
		if !strings.Contains(fixText(f), "net.ipv6.conf.eth0.accept_ra=2") {
			t.Errorf("fix %q", fixText(f))
		}
		setSysctl(t, lb, keyIPv6Conf("eth0", "accept_ra"), "2")
		fs = run(t, o)
		mustNotHave(t, fs, CodeIPv6RAIgnored)
		mustHave(t, fs, probes.OK, CodeIPv6AcceptRA)
	})

	t.Run("rp_filter", func(t *testing.T) {
		setSysctl(t, lb, keyIPv4Conf("all", "rp_filter"), "0")
		setSysctl(t, lb, keyIPv4Conf("eth0", "rp_filter"), "1")
		f := mustHave(t, run(t, o), probes.Warning, CodeRPFilterStrict)
		if f.Subject != "eth0" || !strings.Contains(fixText(f), "net.ipv4.conf.eth0.rp_filter=2") {
			t.Errorf("finding %+v", f)
		}
		setSysctl(t, lb, keyIPv4Conf("eth0", "rp_filter"), "2")
		fs := run(t, o)
		mustNotHave(t, fs, CodeRPFilterStrict)
		mustHave(t, fs, probes.OK, CodeRPFilter)
		// Strict through "all": the kernel takes the larger value.
		setSysctl(t, lb, keyIPv4Conf("eth0", "rp_filter"), "0")
		setSysctl(t, lb, keyIPv4Conf("all", "rp_filter"), "1")
		mustHave(t, run(t, o), probes.Warning, CodeRPFilterStrict)
		setSysctl(t, lb, keyIPv4Conf("all", "rp_filter"), "0")
	})

	t.Run("foreign forward chain", func(t *testing.T) {
		c := nftConn(t, lb)
		tab := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "pffw"})
		drop := nftables.ChainPolicyDrop
		ch := c.AddChain(&nftables.Chain{Name: "forward", Table: tab, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
		// Our own table with a drop policy is ignored.
		own := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "epconsole"})
		c.AddChain(&nftables.Chain{Name: "forward", Table: own, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
		if err := c.Flush(); err != nil {
			t.Fatalf("adding tables: %v", err)
		}
		t.Cleanup(func() {
			c.DelTable(tab)
			c.DelTable(own)
			_ = c.Flush()
		})
		fs := run(t, o)
		f := mustHave(t, fs, probes.Critical, CodeFirewallDrops)
		if f.Subject != "inet pffw forward" || !strings.Contains(f.Message, "policy drop") ||
			!strings.Contains(fixText(f), "ip daddr "+cp.IPv4().String()+" tcp dport 6443 accept") ||
			!strings.Contains(fixText(f), "ip6 daddr "+cp.IPv6().String()+" tcp dport 6443 accept") {
			t.Errorf("finding %+v", f)
		}
		for _, f := range find(fs, CodeFirewallDrops) {
			if strings.Contains(f.Subject, "epconsole") {
				t.Errorf("own table judged: %+v", f)
			}
		}

		// Accept replies and new connections to the backend (both families):
		//   ct state established,related accept
		//   ip daddr CP tcp dport 6443 accept
		//   ip6 daddr CP tcp dport 6443 accept
		for _, e := range [][]expr.Any{
			join(ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), []expr.Any{verdict(expr.VerdictAccept, "")}),
			join(nfproto(unix.NFPROTO_IPV4), ipDaddr(cp.IPv4().String()), tcpDport(6443), []expr.Any{&expr.Counter{}, verdict(expr.VerdictAccept, "")}),
			join(nfproto(unix.NFPROTO_IPV6), ipDaddr(cp.IPv6().String()), tcpDport(6443), []expr.Any{&expr.Counter{}, verdict(expr.VerdictAccept, "")}),
		} {
			c.AddRule(&nftables.Rule{Table: tab, Chain: ch, Exprs: e})
		}
		if err := c.Flush(); err != nil {
			t.Fatalf("adding rules: %v", err)
		}
		fs = run(t, o)
		mustNotHave(t, fs, CodeFirewallDrops)
		mustNotHave(t, fs, CodeFirewallMayDrop)
		ok := mustHave(t, fs, probes.OK, CodeFirewall)
		if !strings.Contains(ok.Message, "inet pffw forward") {
			t.Errorf("OK finding %q does not name the judged chain", ok.Message)
		}
	})

	t.Run("ufw forward policy (the classic runbook)", func(t *testing.T) {
		c := nftConn(t, lb)
		// iptables-nft as ufw leaves it with DEFAULT_FORWARD_POLICY="DROP".
		tab := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "filter"})
		drop := nftables.ChainPolicyDrop
		fwd := c.AddChain(&nftables.Chain{Name: "FORWARD", Table: tab, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
		before := c.AddChain(&nftables.Chain{Name: "ufw-before-forward", Table: tab})
		user := c.AddChain(&nftables.Chain{Name: "ufw-user-forward", Table: tab})
		c.AddRule(&nftables.Rule{Table: tab, Chain: fwd, Exprs: []expr.Any{&expr.Counter{}, verdict(expr.VerdictJump, "ufw-before-forward")}})
		// -A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT,
		// an xt match as iptables-nft adds it.
		ctMatch := &expr.Match{Name: "conntrack", Rev: 3, Info: &xt.ConntrackMtinfo3{ConntrackMtinfo2: xt.ConntrackMtinfo2{
			ConntrackMtinfoBase: xt.ConntrackMtinfoBase{MatchFlags: uint16(xt.ConntrackState | xt.ConntrackStateAlias)},
			StateMask:           uint16(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED)}}}
		c.AddRule(&nftables.Rule{Table: tab, Chain: before, Exprs: []expr.Any{ctMatch, &expr.Counter{}, verdict(expr.VerdictAccept, "")}})
		c.AddRule(&nftables.Rule{Table: tab, Chain: before, Exprs: []expr.Any{verdict(expr.VerdictJump, "ufw-user-forward")}})
		if err := c.Flush(); err != nil {
			t.Fatalf("adding ufw table: %v", err)
		}
		t.Cleanup(func() {
			c.DelTable(tab)
			_ = c.Flush()
		})
		fs := run(t, o)
		f := mustHave(t, fs, probes.Critical, CodeFirewallDrops)
		if f.Subject != "ip filter FORWARD" || !strings.Contains(fixText(f), "ufw route allow proto tcp to "+cp.IPv4().String()+" port 6443") ||
			!strings.Contains(fixText(f), `DEFAULT_FORWARD_POLICY="ACCEPT"`) {
			t.Errorf("finding %+v", f)
		}
		if strings.Contains(f.Message, "replies") {
			t.Errorf("replies are accepted by ufw-before-forward, yet: %s", f.Message)
		}
		// `ufw route allow proto tcp to CP port 6443`
		c.AddRule(&nftables.Rule{Table: tab, Chain: user, Exprs: join(ipDaddr(cp.IPv4().String()), tcpDport(6443), []expr.Any{&expr.Counter{}, verdict(expr.VerdictAccept, "")})})
		if err := c.Flush(); err != nil {
			t.Fatalf("adding the route allow: %v", err)
		}
		fs = run(t, o)
		mustNotHave(t, fs, CodeFirewallDrops)
		mustNotHave(t, fs, CodeFirewallMayDrop)
	})

	t.Run("conntrack", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		facts := Gather(ctx, o)
		maxv, ok := facts.sysctl(keyConntrackMax)
		if !ok {
			// The ct expressions above load nf_conntrack.
			t.Fatalf("nf_conntrack_max unreadable after ct rules were loaded: %v", facts.Sysctls)
		}
		if _, ok := facts.sysctl(keyConntrackCount); !ok {
			t.Errorf("nf_conntrack_count missing")
		}
		low := o
		low.ExpectedFlows = maxv + 1
		f := mustHave(t, run(t, low), probes.Critical, CodeConntrackMaxLow)
		if !strings.Contains(f.Message, strconv.Itoa(maxv)) {
			t.Errorf("message %q lacks the current max %d", f.Message, maxv)
		}
		fine := o
		fine.ExpectedFlows = max(1, maxv/4)
		fs := run(t, fine)
		mustNotHave(t, fs, CodeConntrackMaxLow)
		mustHave(t, fs, probes.OK, CodeConntrack)
	})

	t.Run("vip interface", func(t *testing.T) {
		fs := run(t, o)
		if got := find(fs, CodeVIPInterface); len(got) != 2 {
			t.Errorf("want an OK vip-interface per VIP, got %v", codes(fs))
		}
		missing := Options{NetnsPath: o.NetnsPath, VIPs: []VIP{{Address: vip4.Address, Interface: "pfnone0", Port: 6443}}}
		f := mustHave(t, run(t, missing), probes.Critical, CodeVIPInterfaceMissing)
		if want := fmt.Sprintf("the VIP's subnet is on %s", netlab.HostLink); !strings.Contains(f.Message, want) {
			t.Errorf("message %q does not name the link of the VIP's subnet (%q)", f.Message, want)
		}

		if err := lb.SetCable(false); err != nil {
			t.Fatal(err)
		}
		mustHave(t, run(t, o), probes.Critical, CodeVIPNoCarrier)
		if err := lb.SetCable(true); err != nil {
			t.Fatal(err)
		}
		if err := lb.SetLink(false); err != nil {
			t.Fatal(err)
		}
		mustHave(t, run(t, o), probes.Critical, CodeVIPInterfaceDown)
		if err := lb.SetLink(true); err != nil {
			t.Fatal(err)
		}
		// Carrier comes back with the link; bounded wait.
		deadline := time.Now().Add(5 * time.Second)
		for {
			fs := run(t, o)
			if len(find(fs, CodeVIPInterface)) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("eth0 not back: %v", codes(fs))
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("arp", func(t *testing.T) {
		setSysctl(t, lb, keyIPv4Conf("eth0", "arp_ignore"), "2")
		mustHave(t, run(t, o), probes.Warning, CodeARPIgnore)
		setSysctl(t, lb, keyIPv4Conf("eth0", "arp_ignore"), "0")
		setSysctl(t, lb, keyIPv4Conf("eth0", "arp_announce"), "2")
		fs := run(t, o)
		mustNotHave(t, fs, CodeARPIgnore)
		mustHave(t, fs, probes.OK, CodeARP)
	})

	t.Run("unreadable namespace", func(t *testing.T) {
		bad := Options{NetnsPath: "/run/netns/pf-absent", VIPs: o.VIPs}
		f := mustHave(t, run(t, bad), probes.Unknown, CodeFactsUnreadable)
		if f.Subject != "netns" {
			t.Errorf("finding %+v", f)
		}
	})
}

// nfproto: meta nfproto p (how nft guards ip / ip6 matches in inet tables)
func nfproto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// TestRunOwnNamespace runs the preflight on the test's own (root)
// namespace: read-only, so it only proves that the default namespace is
// found and every fact is readable.
func TestRunOwnNamespace(t *testing.T) {
	testenv.NeedNetns(t)
	before := readRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := Gather(ctx, Options{})
	if len(f.Errors) > 0 {
		t.Fatalf("gather errors: %v", f.Errors)
	}
	if _, ok := f.Sysctls[keyIPForward]; !ok || !f.TablesRead {
		t.Fatalf("facts not read: ip_forward present %v, tables read %v", ok, f.TablesRead)
	}
	for _, x := range Judge(f, Options{}) {
		t.Logf("%s %s %s: %s", x.Severity, x.Code, x.Subject, x.Message)
	}
	after := readRoot(t)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("root %s changed from %s to %s", k, v, after[k])
		}
	}
}
