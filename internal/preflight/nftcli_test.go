package preflight

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/probes"
)

// TestNftWrittenRules loads rules written in nft's own syntax, as an
// operator writes /etc/nftables.conf, and checks that the decoder reads
// the kernel's form of them: the IPv4 backend is allowed, the IPv6 one is
// not, and an anonymous set is undecidable. It needs the nft CLI.
func TestNftWrittenRules(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft CLI not installed (apt-get install nftables)")
	}
	lab, lb, cp := kernelLab(t)
	o := Options{NetnsPath: lb.NsPath(),
		VIPs:     []VIP{{Address: lab.VIP4(), Interface: netlab.HostLink, Port: 6443}, {Address: lab.VIP6(), Interface: netlab.HostLink, Port: 6443}},
		Backends: []netip.AddrPort{netip.AddrPortFrom(cp.IPv4(), 6443), netip.AddrPortFrom(cp.IPv6(), 6443)}}
	nft := func(script string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := lb.Command(ctx, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft -f: %v\n%s\n%s", err, out, script)
		}
	}
	nft(fmt.Sprintf(`table inet pfnft {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state invalid drop
		ct state established,related accept
		iifname "lo" accept
		ip saddr 198.18.6.0/24 counter accept
		meta l4proto tcp ip daddr %s th dport 6440-6450 accept
	}
}
`, cp.IPv4()))
	fs := run(t, o)
	f := mustHave(t, fs, probes.Critical, CodeFirewallDrops)
	t.Logf("%s: %s\nfix: %s", f.Code, f.Message, fixText(f))
	if f.Subject != "inet pfnft forward" || !strings.Contains(f.Message, cp.IPv6().String()) || strings.Contains(f.Message, "to "+cp.IPv4().String()) {
		t.Errorf("want only the IPv6 backend dropped: %+v", f)
	}
	if strings.Contains(f.Message, "replies") {
		t.Errorf("replies are established and accepted: %s", f.Message)
	}

	// A named set of allowed backends.
	nft(fmt.Sprintf(`add set inet pfnft b6 { type ipv6_addr; }
add element inet pfnft b6 { %s }
add rule inet pfnft forward ip6 daddr @b6 tcp dport 6443 accept
`, cp.IPv6()))
	fs = run(t, o)
	mustNotHave(t, fs, CodeFirewallDrops)
	mustNotHave(t, fs, CodeFirewallMayDrop)
	mustHave(t, fs, probes.OK, CodeFirewall)

	// An anonymous set holding the port, before DNAT.
	nft(`table ip pfraw {
	chain pre {
		type filter hook prerouting priority raw; policy accept;
		tcp dport { 22, 6443 } drop
	}
}
`)
	f = mustHave(t, run(t, o), probes.Critical, CodeFirewallDrops)
	t.Logf("%s: %s", f.Code, f.Message)
	if f.Subject != "ip pfraw pre" || !strings.Contains(f.Message, "th dport @__set") || !strings.Contains(f.Message, "6443") {
		t.Errorf("finding %+v", f)
	}

	// An interval set around the port, new connections only: not hit.
	nft(`flush chain ip pfraw pre
add rule ip pfraw pre ct state new tcp dport { 6000-6442, 6444-7000 } drop
`)
	fs = run(t, o)
	mustNotHave(t, fs, CodeFirewallDrops)
	mustNotHave(t, fs, CodeFirewallMayDrop)
	// The same set with the port inside a range: hit.
	nft(`flush chain ip pfraw pre
add rule ip pfraw pre ct state new tcp dport { 22, 6000-7000 } drop
`)
	f = mustHave(t, run(t, o), probes.Critical, CodeFirewallDrops)
	t.Logf("%s: %s", f.Code, f.Message)
	if !strings.Contains(f.Message, "6000-7000") {
		t.Errorf("finding %+v", f)
	}
}
