package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"
)

// cutClient is the n-th client of the cut tests (198.18.110.0/23).
func cutClient(n int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(110 + n/50000), byte(1 + n/250%200)}), uint16(10000+n%50000))
}

// cutTable fills the namespace's conntrack table for the cut tests and
// returns the keys (orig + reply tuple) of cp1's entries through the VIP
// (the victims) and of every other entry.
func cutTable(t *testing.T, ct *Conntrack, victims, others int) (vict, rest []string) {
	t.Helper()
	conn, err := ct.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	vip := netip.AddrPortFrom(vip4, 6443)
	b4, b6 := backends4(), backends6()
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
		add(natFlow(cutClient(n), vip, b4[0].Addr), true)
		n++
	}
	// One victim in another conntrack zone: the delete must name it.
	z := natFlow(cutClient(n), vip, b4[0].Addr)
	z.Zone = 7
	add(z, true)
	n++
	for i := range others {
		switch i % 4 {
		case 0: // through the VIP to cp2
			add(natFlow(cutClient(n), vip, b4[1].Addr), false)
		case 1: // not through the VIP at all
			dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 112, 1}), 443)
			add(natFlow(cutClient(n), dst, dst), false)
		case 2: // straight to cp1 (a probe, say)
			add(natFlow(cutClient(n), b4[0].Addr, b4[0].Addr), false)
		case 3: // through the VIP to cp1's address on another port
			add(natFlow(cutClient(n), vip, netip.AddrPortFrom(b4[0].Addr.Addr(), 9999)), false)
		}
		n++
	}
	// IPv6, through the IPv6 VIP to cp1v6 (same port as cp1).
	add(natFlow(netip.MustParseAddrPort("[fd00:198:18:1::200]:50100"), netip.AddrPortFrom(vip6, 6443), b6[0].Addr), false)
	return vict, rest
}

// tableKeys returns the keys of every entry in the namespace.
func tableKeys(t *testing.T, ct *Conntrack) []string {
	t.Helper()
	conn, err := ct.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	flows, err := conn.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range flows {
		out = append(out, f.TupleOrig.String()+f.TupleReply.String())
	}
	slices.Sort(out)
	return out
}

// TestDpCutBackend: CutBackend deletes exactly the dead backend's entries
// through the VIP (another zone included), in batches, and reads only
// those from the kernel (the filter is applied there, not here).
func TestDpCutBackend(t *testing.T) {
	ns, ctx := kernelTest(t)
	ct, err := NewConntrack(WithNetNSFd(int(ns)), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	const victims = 700
	vict, rest := cutTable(t, ct, victims, 1200)
	vip, cp1 := netip.AddrPortFrom(vip4, 6443), backends4()[0].Addr

	// The kernel filters: the dump brings cp1's entries only.
	conn, err := ct.dialNetlink()
	if err != nil {
		t.Fatal(err)
	}
	req, err := filterRequest(ctMatch{service: vip, backend: cp1})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := conn.Execute(req)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(vict) {
		t.Errorf("the filtered dump brought %d entries, want the %d victims (the kernel must filter: Linux 5.8 or later)", len(msgs), len(vict))
	}

	rep, err := ct.CutBackend(ctx, vip, cp1, CutOptions{Batch: 256, Pause: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Found != victims || rep.Cut != victims || rep.Batches != 3 || rep.Took <= 0 || rep.Dump <= 0 {
		t.Errorf("report %+v: want %d found and cut in 3 batches", rep, victims)
	}
	slices.Sort(rest)
	if got := tableKeys(t, ct); !slices.Equal(got, rest) {
		t.Errorf("%d entries left, want the %d others", len(got), len(rest))
	}
	// Nothing left: zero, no error.
	if rep, err := ct.CutBackend(ctx, vip, cp1, CutOptions{}); err != nil || rep.Found != 0 || rep.Cut != 0 {
		t.Errorf("second cut: %+v, %v", rep, err)
	}
}

// TestDpCutBackendCancel: a cancelled cut stops between batches and says
// how far it got.
func TestDpCutBackendCancel(t *testing.T) {
	ns, ctx := kernelTest(t)
	ct, err := NewConntrack(WithNetNSFd(int(ns)), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	cutTable(t, ct, 600, 0)
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(200*time.Millisecond, cancel)
	rep, err := ct.CutBackend(cctx, netip.AddrPortFrom(vip4, 6443), backends4()[0].Addr, CutOptions{Batch: 100, Pause: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if rep.Cut != 100 || rep.Batches != 1 || rep.Found != 600 {
		t.Errorf("report %+v: want the first batch of 100 of 600 cut", rep)
	}
	if n := len(tableKeys(t, ct)); n != 501 { // 500 victims and the IPv6 entry
		t.Errorf("%d entries left, want 501", n)
	}
}

// TestDpSurveyServices: the survey names the backends with DNATed flows
// through the VIP, and no other.
func TestDpSurveyServices(t *testing.T) {
	ns, ctx := kernelTest(t)
	ct, err := NewConntrack(WithNetNSFd(int(ns)), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	cutTable(t, ct, 10, 20)
	vip := netip.AddrPortFrom(vip4, 6443)
	got, err := ct.SurveyServices(ctx, []netip.AddrPort{vip})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b BackendCut) int { return a.Backend.Compare(b.Backend) })
	b4 := backends4()
	want := []BackendCut{
		{vip, b4[0].Addr},
		{vip, netip.AddrPortFrom(b4[0].Addr.Addr(), 9999)},
		{vip, b4[1].Addr},
	}
	if !slices.Equal(got, want) {
		t.Errorf("survey %v, want %v", got, want)
	}
}

// BenchmarkCutBackend: one cut of 3,000 flows out of a table of 30,000,
// with the default batches and pauses (ns/op is the whole cut).
func BenchmarkCutBackend(b *testing.B) {
	ns, err := benchNetNS()
	if err != nil {
		b.Skip(err)
	}
	defer ns.Close()
	ct, err := NewConntrack(WithNetNSFd(int(ns)))
	if err != nil {
		b.Fatal(err)
	}
	defer ct.Close()
	conn, err := ct.dial()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	vip, b4 := netip.AddrPortFrom(vip4, 6443), backends4()
	other := netip.MustParseAddrPort("198.18.112.1:443")
	for i := range 27000 {
		if err := conn.Create(natFlow(cutClient(3000+i), other, other)); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		for i := range 3000 {
			if err := conn.Create(natFlow(cutClient(i), vip, b4[0].Addr)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		rep, err := ct.CutBackend(ctx, vip, b4[0].Addr, CutOptions{})
		if err != nil || rep.Cut != 3000 {
			b.Fatalf("%+v %v", rep, err)
		}
		b.ReportMetric(float64(rep.Dump.Microseconds()), "dump-µs")
	}
}
