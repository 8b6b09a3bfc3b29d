package dataplane

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The lease tests use the upper half of dataplane's slice: 198.18.1.128/25
// and fd00:198:18:1:8000::/65, links named dpl*.
var (
	leaseVIP4   = netip.MustParseAddr("198.18.1.200")
	leaseHost4  = netip.MustParseAddr("198.18.1.129")
	leasePeer4  = "198.18.1.130/25"
	leaseVIP6   = netip.MustParseAddr("fd00:198:18:1:8000::100")
	leaseHost6  = netip.MustParseAddr("fd00:198:18:1:8000::1")
	leasePeer6  = netip.MustParseAddr("fd00:198:18:1:8000::2")
	leaseWaitNo = 150 * time.Millisecond // how long a probe waits for an answer that must not come
)

func TestLeasePlan(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		vips    []netip.Addr
		want4   netip.Addr
		want6   netip.Addr
		wantErr bool
	}{
		{"none", nil, netip.Addr{}, netip.Addr{}, false},
		{"ipv4", []netip.Addr{leaseVIP4}, leaseVIP4, netip.Addr{}, false},
		{"both", []netip.Addr{leaseVIP6, leaseVIP4}, leaseVIP4, leaseVIP6, false},
		{"mapped ipv4", []netip.Addr{netip.AddrFrom16(leaseVIP4.As16())}, leaseVIP4, netip.Addr{}, false},
		{"same twice", []netip.Addr{leaseVIP4, leaseVIP4}, leaseVIP4, netip.Addr{}, false},
		{"two ipv4", []netip.Addr{leaseVIP4, leaseHost4}, netip.Addr{}, netip.Addr{}, true},
		{"invalid", []netip.Addr{{}}, netip.Addr{}, netip.Addr{}, true},
		{"unspecified", []netip.Addr{netip.IPv6Unspecified()}, netip.Addr{}, netip.Addr{}, true},
	} {
		got, err := leasePlan(tc.vips)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v", tc.desc, err)
			continue
		}
		if err == nil && (got[nftables.TableFamilyARP] != tc.want4 || got[nftables.TableFamilyIPv6] != tc.want6) {
			t.Errorf("%s: %v", tc.desc, got)
		}
	}
}

func TestLeaseTableShape(t *testing.T) {
	s4 := buildLeaseTable(leaseVIP4)
	if s4.table.Family != nftables.TableFamilyARP || s4.table.Name != TableName || *s4.chain.Hooknum != nfARPOut ||
		!s4.set.HasTimeout || s4.set.KeyType != nftables.TypeIPAddr || len(s4.rules) != 1 {
		t.Fatalf("arp lease table: %+v %+v %+v", s4.table, s4.chain, s4.set)
	}
	s6 := buildLeaseTable(leaseVIP6)
	if s6.table.Family != nftables.TableFamilyIPv6 || s6.table.Name != LeaseTable6 || *s6.chain.Hooknum != *nftables.ChainHookOutput ||
		!s6.set.HasTimeout || s6.set.KeyType != nftables.TypeIP6Addr || len(s6.rules) != 2 {
		t.Fatalf("ip6 lease table: %+v %+v %+v", s6.table, s6.chain, s6.set)
	}
	for _, r := range append(s4.rules, s6.rules...) {
		if RuleComment(r.UserData) == "" {
			t.Errorf("rule without comment: %v", r.Exprs)
		}
	}
}

// leaseTopo is an LB namespace (lease host) and a peer namespace on one veth
// pair; the VIP and the host's own address are on the LB's end.
type leaseTopo struct {
	lb, peer netns.NsHandle
	ctx      context.Context
}

func newLeaseTopo(t *testing.T, v6 bool) *leaseTopo {
	t.Helper()
	lb, ctx := kernelTest(t)
	peer := newNetNS(t)
	hl, hp := nlHandle(t, lb), nlHandle(t, peer)
	if err := hl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dpl0"}, PeerName: "dpl1", PeerNamespace: netlink.NsFd(int(peer))}); err != nil {
		t.Fatal(err)
	}
	lbLink, peerLink := linkUp(t, hl, "dpl0"), linkUp(t, hp, "dpl1")
	if v6 {
		addAddrs(t, hl, lbLink, leaseHost6.String()+"/65", leaseVIP6.String()+"/128")
		addAddrs(t, hp, peerLink, leasePeer6.String()+"/65")
	} else {
		addAddrs(t, hl, lbLink, leaseHost4.String()+"/25", leaseVIP4.String()+"/32")
		addAddrs(t, hp, peerLink, leasePeer4)
	}
	return &leaseTopo{lb: lb, peer: peer, ctx: ctx}
}

func newLease(t *testing.T, ns netns.NsHandle) *Lease {
	t.Helper()
	l, err := NewLease(WithNetNSFd(int(ns)), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// inNetNS runs open on a new OS thread moved into ns and returns its
// result. The thread is never unlocked: it dies with its goroutine instead
// of going back to Go's pool in the wrong namespace. Sockets opened by open
// stay in ns.
func inNetNS[T any](t *testing.T, ns netns.NsHandle, open func() (T, error)) T {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			ch <- result{err: err}
			return
		}
		v, err := open()
		ch <- result{v, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("opening a socket in the peer namespace: %v", r.err)
	}
	return r.v
}

// prober asks from the peer namespace whether the LB answers for an
// address: an ARP request (IPv4) or a neighbour solicitation (IPv6).
type prober interface {
	answers(target netip.Addr, wait time.Duration) bool
}

type arpProber struct{ c *arp.Client }

func newARPProber(t *testing.T, peer netns.NsHandle) *arpProber {
	c := inNetNS(t, peer, func() (*arp.Client, error) {
		ifi, err := net.InterfaceByName("dpl1")
		if err != nil {
			return nil, err
		}
		return arp.Dial(ifi)
	})
	t.Cleanup(func() { c.Close() })
	return &arpProber{c: c}
}

func (p *arpProber) answers(target netip.Addr, wait time.Duration) bool {
	p.c.SetDeadline(time.Now().Add(wait))
	_, err := p.c.Resolve(target)
	return err == nil
}

type ndpProber struct {
	c  *ndp.Conn
	hw net.HardwareAddr
}

func newNDPProber(t *testing.T, peer netns.NsHandle) *ndpProber {
	p := inNetNS(t, peer, func() (*ndpProber, error) {
		ifi, err := net.InterfaceByName("dpl1")
		if err != nil {
			return nil, err
		}
		c, _, err := ndp.Listen(ifi, ndp.Addr(leasePeer6.String()))
		if err != nil {
			return nil, err
		}
		return &ndpProber{c: c, hw: ifi.HardwareAddr}, nil
	})
	t.Cleanup(func() { p.c.Close() })
	return p
}

func (p *ndpProber) answers(target netip.Addr, wait time.Duration) bool {
	snm, err := ndp.SolicitedNodeMulticast(target)
	if err != nil {
		return false
	}
	ns := &ndp.NeighborSolicitation{TargetAddress: target, Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: p.hw}}}
	if err := p.c.WriteTo(ns, nil, snm); err != nil {
		return false
	}
	p.c.SetReadDeadline(time.Now().Add(wait))
	for {
		m, _, _, err := p.c.ReadFrom()
		if err != nil {
			return false
		}
		if na, ok := m.(*ndp.NeighborAdvertisement); ok && na.TargetAddress == target && na.Solicited {
			return true
		}
	}
}

// answersSoon is answers with a few tries, for answers that must come.
func answersSoon(p prober, target netip.Addr) bool {
	for range 3 {
		if p.answers(target, 300*time.Millisecond) {
			return true
		}
	}
	return false
}

func expectAnswer(t *testing.T, p prober, target netip.Addr, when string) {
	t.Helper()
	if !answersSoon(p, target) {
		t.Fatalf("%s: %v does not answer from the peer's side", when, target)
	}
}

func expectSilence(t *testing.T, p prober, target netip.Addr, when string) {
	t.Helper()
	if p.answers(target, leaseWaitNo) {
		t.Fatalf("%s: %v answers, but must not", when, target)
	}
}

func TestDpLeaseGatesARP(t *testing.T) {
	topo := newLeaseTopo(t, false)
	p := newARPProber(t, topo.peer)
	testLeaseGates(t, topo, p, leaseVIP4, leaseHost4)
}

func TestDpLeaseGatesNDP(t *testing.T) {
	topo := newLeaseTopo(t, true)
	p := newNDPProber(t, topo.peer)
	testLeaseGates(t, topo, p, leaseVIP6, leaseHost6)
}

func testLeaseGates(t *testing.T, topo *leaseTopo, p prober, vip, host netip.Addr) {
	ctx := topo.ctx
	expectAnswer(t, p, vip, "before Install")

	l := newLease(t, topo.lb)
	if err := l.Renew(ctx, time.Second); !errors.Is(err, ErrLeaseNotInstalled) {
		t.Fatalf("Renew before Install: %v", err)
	}
	if err := l.Install(ctx, []netip.Addr{vip}); err != nil {
		t.Fatalf("Install: %v", err)
	}
	expectSilence(t, p, vip, "installed, no lease")
	expectAnswer(t, p, host, "installed, no lease (the host's own address)")
	gen, err := ruleGeneration(int(topo.lb))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Install(ctx, []netip.Addr{vip}); err != nil {
		t.Fatalf("second Install: %v", err)
	}
	if g, _ := ruleGeneration(int(topo.lb)); g != gen {
		t.Fatalf("second Install committed (generation %d -> %d)", gen, g)
	}

	// A lease answers until it times out.
	ttl := 150 * time.Millisecond
	if err := l.Renew(ctx, ttl); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	renewed := time.Now()
	expectAnswer(t, p, vip, "lease held")
	time.Sleep(time.Until(renewed.Add(400 * time.Millisecond)))
	expectSilence(t, p, vip, "lease expired")
	expectAnswer(t, p, host, "lease expired (the host's own address)")

	// A lapsed lease is not extended in passing (a paused owner that
	// wakes must decide first); after Drop, Renew opens a new one (the
	// element may linger, expired).
	err = l.Renew(ctx, 5*time.Second)
	var first, again *LapsedError
	if !errors.Is(err, ErrLeaseLapsed) || !errors.As(err, &first) || !first.First {
		t.Fatalf("Renew after expiry: %v, want the first LapsedError", err)
	}
	expectSilence(t, p, vip, "a lapsed lease renewed")
	if err := l.Renew(ctx, 5*time.Second); !errors.As(err, &again) || again.First || !again.Noticed.Equal(first.Noticed) {
		t.Fatalf("second Renew after expiry: %v, want a LapsedError noticed at the first one's time", err)
	}
	if err := l.Drop(ctx); err != nil {
		t.Fatalf("Drop after expiry: %v", err)
	}
	if err := l.Renew(ctx, 5*time.Second); err != nil {
		t.Fatalf("Renew after Drop: %v", err)
	}
	expectAnswer(t, p, vip, "renewed after expiry and Drop")

	// Drop ends it at once.
	if err := l.Drop(ctx); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	expectSilence(t, p, vip, "dropped")
	if err := l.Drop(ctx); err != nil {
		t.Fatalf("Drop without a lease: %v", err)
	}

	// Renew extends a held lease; a plain re-add (the control) does not.
	extended := leaseExtension(t, topo, l, p, vip, func() error { return l.Renew(ctx, 400*time.Millisecond) })
	if !extended {
		t.Fatal("Renew did not extend the lease")
	}
	readd := func() error {
		c := nftConn(t, topo.lb)
		spec := buildLeaseTable(vip)
		if err := c.SetAddElements(spec.set, []nftables.SetElement{{Key: vip.AsSlice(), Timeout: 400 * time.Millisecond}}); err != nil {
			return err
		}
		return c.Flush()
	}
	if leaseExtension(t, topo, l, p, vip, readd) {
		t.Fatal("control: a plain re-add extended the lease; the test cannot tell Renew's delete + add from it")
	}

	// A restarted daemon adopts the tables and the lease it still holds.
	if err := l.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	gen, _ = ruleGeneration(int(topo.lb))
	l2 := newLease(t, topo.lb)
	if err := l2.Install(ctx, []netip.Addr{vip}); err != nil {
		t.Fatalf("Install by a new Lease: %v", err)
	}
	if g, _ := ruleGeneration(int(topo.lb)); g != gen {
		t.Errorf("adopting the lease tables committed (generation %d -> %d)", gen, g)
	}
	expectAnswer(t, p, vip, "adopted with the lease held")
	if err := l2.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	expectSilence(t, p, vip, "dropped by the new Lease")

	// Remove lifts the gate.
	if err := l2.Remove(ctx); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	expectAnswer(t, p, vip, "removed")
	if err := l2.Remove(ctx); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := l2.Renew(ctx, time.Second); !errors.Is(err, ErrLeaseNotInstalled) {
		t.Fatalf("Renew after Remove: %v", err)
	}
	c := nftConn(t, topo.lb)
	for _, fam := range leaseFamilies {
		if tb, err := findNamedTable(c, fam, leaseTableName(fam)); err != nil || tb != nil {
			t.Errorf("%s lease table after Remove: %v, %v", leaseFamilyName(fam), tb, err)
		}
	}
}

// leaseExtension takes a 400 ms lease, calls refresh 250 ms later, and
// reports whether the VIP still answers 550 ms after the start (past the
// first expiry, before the refreshed one). Rounds whose sleeps overshoot
// the window are repeated.
func leaseExtension(t *testing.T, topo *leaseTopo, l *Lease, p prober, vip netip.Addr, refresh func() error) bool {
	t.Helper()
	const ttl = 400 * time.Millisecond
	for range 3 {
		if err := l.Drop(topo.ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Renew(topo.ctx, ttl); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		time.Sleep(250 * time.Millisecond)
		if err := refresh(); errors.Is(err, ErrLeaseLapsed) {
			t.Logf("the lease ran out before the refresh (a loaded machine); again")
			continue
		} else if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		refreshed := time.Now()
		time.Sleep(time.Until(start.Add(ttl + 150*time.Millisecond)))
		probeAt := time.Now()
		ok := p.answers(vip, leaseWaitNo)
		// An answer comes within a millisecond of the probe, so the probe's
		// start must fall between the first expiry and the refreshed one.
		if probeAt.Sub(start) > ttl+50*time.Millisecond && probeAt.Before(refreshed.Add(ttl-50*time.Millisecond)) {
			t.Logf("lease of %v refreshed after %v, probed after %v: answers=%v", ttl, refreshed.Sub(start).Round(time.Millisecond), probeAt.Sub(start).Round(time.Millisecond), ok)
			return ok
		}
		t.Logf("timing window missed (refresh after %v, probe after %v); again", refreshed.Sub(start), probeAt.Sub(start))
	}
	t.Fatal("could not probe inside the window in 3 rounds")
	return false
}
