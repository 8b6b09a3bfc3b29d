package dataplane

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/ti-mo/conntrack"
)

// natFlow is a conntrack entry as a DNAT to backend leaves it: original
// client -> vip, reply backend -> client.
func natFlow(client, vip, backend netip.AddrPort) conntrack.Flow {
	f := conntrack.NewFlow(6, 0, client.Addr(), vip.Addr(), client.Port(), vip.Port(), 120, 0)
	f.TupleReply.IP.SourceAddress = backend.Addr()
	f.TupleReply.Proto.SourcePort = backend.Port()
	return f
}

func TestDpConntrackDeleteBackendFlows(t *testing.T) {
	ns, ctx := kernelTest(t)
	ct, err := NewConntrack(WithNetNSFd(int(ns)), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	conn, err := ct.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	vip := netip.AddrPortFrom(vip4, 6443)
	vipv6 := netip.AddrPortFrom(vip6, 6443)
	b4, b6 := backends4(), backends6()
	type entry struct {
		flow    conntrack.Flow
		victim  bool // belongs to cp1 through the VIP: must go
		comment string
	}
	var entries []entry
	for i := range 9 {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(200 + i)}), uint16(50000+i))
		b := b4[i%3]
		entries = append(entries, entry{natFlow(client, vip, b.Addr), b.Name == "cp1", "via VIP to " + b.Name})
	}
	// Through the VIP to cp1v6: same port as cp1, other family: stays.
	entries = append(entries, entry{natFlow(netip.MustParseAddrPort("[fd00:198:18:1::200]:50100"), vipv6, b6[0].Addr), false, "IPv6 via VIP"})
	// Straight to cp1, not through the VIP (a probe, say): stays.
	direct := netip.MustParseAddrPort("198.18.1.210:50200")
	entries = append(entries, entry{natFlow(direct, b4[0].Addr, b4[0].Addr), false, "direct to cp1"})
	// Through the VIP to cp1's address on another port: stays.
	entries = append(entries, entry{natFlow(netip.MustParseAddrPort("198.18.1.211:50300"), vip, netip.AddrPortFrom(b4[0].Addr.Addr(), 9999)), false, "cp1 address, other port"})
	for _, e := range entries {
		if err := conn.Create(e.flow); err != nil {
			t.Fatalf("creating %s: %v", e.comment, err)
		}
	}
	victims := 0
	for _, e := range entries {
		if e.victim {
			victims++
		}
	}

	n, err := ct.DeleteBackendFlows(ctx, vip, b4[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	if n != victims {
		t.Errorf("deleted %d entries, want %d", n, victims)
	}
	left, err := conn.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	key := func(f conntrack.Flow) string { return f.TupleOrig.String() + f.TupleReply.String() }
	var got, want []string
	for _, f := range left {
		got = append(got, key(f))
	}
	for _, e := range entries {
		if !e.victim {
			want = append(want, key(e.flow))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("entries left:\n got %q\nwant %q", got, want)
	}

	// Nothing left to delete: zero, no error.
	if n, err := ct.DeleteBackendFlows(ctx, vip, b4[0].Addr); n != 0 || err != nil {
		t.Errorf("second delete: %d, %v", n, err)
	}
	// A zero VIP matches any original destination: the direct flow goes too.
	if n, err := ct.DeleteBackendFlows(ctx, netip.AddrPort{}, b4[0].Addr); n != 1 || err != nil {
		t.Errorf("delete without VIP: %d, %v; want the direct entry", n, err)
	}
}
