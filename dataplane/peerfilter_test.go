package dataplane

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
)

// TestPeerFilterInstallReplaceRemove installs the peer filter in a fresh
// namespace, reads it back (sets, rules, the nft text form), replaces it
// with other peers and removes it.
func TestPeerFilterInstallReplaceRemove(t *testing.T) {
	ns, ctx := kernelTest(t)
	f, err := NewPeerFilter(WithNetNSFd(int(ns)), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	spec := PeerFilterSpec{HeartbeatPort: 7947, GossipPort: 7946, Peers: []netip.Addr{
		netip.MustParseAddr("198.18.1.12"), netip.MustParseAddr("198.18.1.13"), netip.MustParseAddr("fd00:198:18:1::12"),
	}, VIPs: []netip.Addr{netip.MustParseAddr("198.18.1.100"), netip.MustParseAddr("fd00:198:18:1::100")}}
	c := nftConn(t, ns)
	check := func(spec PeerFilterSpec, rules int) {
		t.Helper()
		tbl, err := findNamedTable(c, nftables.TableFamilyINet, TableName)
		if err != nil || tbl == nil {
			t.Fatalf("table inet %s: %v, %v", TableName, tbl, err)
		}
		got := map[string][]string{}
		for _, name := range []string{peerSet4, peerSet6} {
			s, err := c.GetSetByName(tbl, name)
			if err != nil {
				t.Fatal(err)
			}
			es, err := c.GetSetElements(s)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				a, _ := netip.AddrFromSlice(e.Key)
				got[name] = append(got[name], a.String())
			}
			slices.Sort(got[name])
		}
		var want4, want6 []string
		for _, a := range spec.Peers {
			if a.Is4() {
				want4 = append(want4, a.String())
			} else {
				want6 = append(want6, a.String())
			}
		}
		slices.Sort(want4)
		slices.Sort(want6)
		if !slices.Equal(got[peerSet4], want4) || !slices.Equal(got[peerSet6], want6) {
			t.Errorf("peer sets %v, want %v and %v", got, want4, want6)
		}
		rs, err := c.GetRules(tbl, &nftables.Chain{Name: PeerFilterChain, Table: tbl})
		if err != nil || len(rs) != rules {
			t.Errorf("%d rules (%v), want %d", len(rs), err, rules)
		}
	}
	if err := f.Install(ctx, spec); err != nil {
		t.Fatal(err)
	}
	check(spec, 6)
	if out, err := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/fd/%d", os.Getpid(), int(ns)), "nft", "list", "table", "inet", TableName).CombinedOutput(); err == nil {
		text := string(out)
		t.Logf("nft list table inet %s:\n%s", TableName, text)
		for _, want := range []string{"hook prerouting priority raw", "ip saddr != @peers4", "ip6 saddr != @peers6", "fib daddr type local", "ip daddr != 198.18.1.100", "ip6 daddr != fd00:198:18:1::100", "drop"} {
			if !strings.Contains(text, want) {
				t.Errorf("nft text form lacks %q", want)
			}
		}
	} else {
		t.Logf("nft CLI not usable here (%v): %s", err, out)
	}
	other := PeerFilterSpec{HeartbeatPort: 7947, Peers: []netip.Addr{netip.MustParseAddr("198.18.1.14")}}
	if err := f.Install(ctx, other); err != nil {
		t.Fatal(err)
	}
	check(other, 2)
	if err := f.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if tbl, err := findNamedTable(c, nftables.TableFamilyINet, TableName); err != nil || tbl != nil {
		t.Fatalf("after Remove: table %v, %v", tbl, err)
	}
	if err := f.Remove(ctx); err != nil {
		t.Fatalf("Remove without a table: %v", err)
	}
}
