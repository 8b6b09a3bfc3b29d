package dataplane

import (
	"maps"
	"net/netip"
	"testing"
)

// TestDpCountByReplySource: the connection count per backend reads, with
// one filtered dump per service, every TCP entry through the services (in
// any zone, both families) by the backend it was DNATed to, and nothing
// else.
func TestDpCountByReplySource(t *testing.T) {
	ns, ctx := kernelTest(t)
	ct, err := NewConntrack(WithNetNSFd(int(ns)), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	cutTable(t, ct, 10, 20)
	b4, b6 := backends4(), backends6()
	got, err := ct.CountByReplySource(ctx, []netip.AddrPort{netip.AddrPortFrom(vip4, 6443), netip.AddrPortFrom(vip6, 6443)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.AddrPort]int{
		b4[0].Addr: 10, // one of them in another zone
		b4[1].Addr: 5,
		netip.AddrPortFrom(b4[0].Addr.Addr(), 9999): 5,
		b6[0].Addr: 1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	if got, err := ct.CountByReplySource(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("counts through no service: %v, %v; want none", got, err)
	}
}
