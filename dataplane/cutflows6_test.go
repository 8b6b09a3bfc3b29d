package dataplane

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/ti-mo/conntrack"
)

// IPv6 addresses of the IPv6 cut tests (fd00:198:18:202::/64).
var (
	cut6VIP = netip.MustParseAddrPort("[fd00:198:18:202::100]:6443")
	cut6B1  = netip.MustParseAddrPort("[fd00:198:18:202::11]:6443")
	cut6B2  = netip.MustParseAddrPort("[fd00:198:18:202::12]:6443")
)

func cut6Client(n int) netip.AddrPort {
	a := netip.MustParseAddr("fd00:198:18:202::1:0").As16()
	a[14], a[15] = byte(n>>8), byte(n)
	return netip.AddrPortFrom(netip.AddrFrom16(a), uint16(20000+n))
}

// cut6Table fills the table with IPv6 entries through the IPv6 VIP to
// two backends (one victim in another zone), entries that only look alike
// and one IPv4 entry; it returns the keys of b1's entries through the VIP
// and of the others.
func cut6Table(t *testing.T, ct *Conntrack, victims, others int) (vict, rest []string) {
	t.Helper()
	conn, err := ct.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	add := func(f conntrack.Flow, victim bool) {
		t.Helper()
		if err := conn.Create(f); err != nil {
			t.Fatalf("creating %v: %v", f.TupleOrig, err)
		}
		k := f.TupleOrig.String() + f.TupleReply.String()
		if victim {
			vict = append(vict, k)
		} else {
			rest = append(rest, k)
		}
	}
	n := 0
	for range victims - 1 {
		add(natFlow(cut6Client(n), cut6VIP, cut6B1), true)
		n++
	}
	z := natFlow(cut6Client(n), cut6VIP, cut6B1)
	z.Zone = 7
	add(z, true)
	n++
	for i := range others {
		switch i % 3 {
		case 0: // through the VIP to b2
			add(natFlow(cut6Client(n), cut6VIP, cut6B2), false)
		case 1: // straight to b1 (a probe, say)
			add(natFlow(cut6Client(n), cut6B1, cut6B1), false)
		case 2: // through the VIP to b1's address on another port
			add(natFlow(cut6Client(n), cut6VIP, netip.AddrPortFrom(cut6B1.Addr(), 9999)), false)
		}
		n++
	}
	// IPv4, through the IPv4 VIP to cp1.
	add(natFlow(cutClient(0), netip.AddrPortFrom(vip4, 6443), backends4()[0].Addr), false)
	return vict, rest
}

// TestDpCutBackendIPv6: an IPv6 cut deletes exactly the dead IPv6
// backend's entries through the IPv6 VIP, the survey names both IPv6
// backends and the count sees them all.
func TestDpCutBackendIPv6(t *testing.T) {
	ns, ctx := kernelTest(t)
	ct, err := NewConntrack(WithNetNSFd(int(ns)), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	const victims = 30
	_, rest := cut6Table(t, ct, victims, 30)

	survey, err := ct.SurveyServices(ctx, []netip.AddrPort{cut6VIP})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(survey, func(a, b BackendCut) int { return a.Backend.Compare(b.Backend) })
	wantSurvey := []BackendCut{
		{cut6VIP, cut6B1},
		{cut6VIP, netip.AddrPortFrom(cut6B1.Addr(), 9999)},
		{cut6VIP, cut6B2},
	}
	if !slices.Equal(survey, wantSurvey) {
		t.Errorf("survey %v, want %v", survey, wantSurvey)
	}
	counts, err := ct.CountByReplySource(ctx, []netip.AddrPort{cut6VIP})
	if err != nil {
		t.Fatal(err)
	}
	if counts[cut6B1] != victims || counts[cut6B2] != 10 || len(counts) != 3 {
		t.Errorf("counts %v, want %d for %v and 10 for %v", counts, victims, cut6B1, cut6B2)
	}

	rep, err := ct.CutBackend(ctx, cut6VIP, cut6B1, CutOptions{Batch: 16, Pause: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Found != victims || rep.Cut != victims || rep.Batches != 2 {
		t.Errorf("report %+v: want %d found and cut in 2 batches", rep, victims)
	}
	slices.Sort(rest)
	if got := tableKeys(t, ct); !slices.Equal(got, rest) {
		t.Errorf("%d entries left, want the %d others", len(got), len(rest))
	}
	// A backend-only cut (no service) takes b1's entries however reached.
	rep, err = ct.CutBackend(ctx, netip.AddrPort{}, cut6B1, CutOptions{})
	if err != nil || rep.Found != 10 || rep.Cut != 10 {
		t.Errorf("backend-only cut: %+v, %v; want the 10 direct entries", rep, err)
	}
}
