package dataplane

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
)

// testBeats is a beat lease on the lease topology's LB link: beats to port
// 7947 whose payload starts "eh", has bit 0 of byte 3 set (holding) and
// names sender 0x1122334455667788 at byte 4.
func testBeats(ttl time.Duration) *LeaseBeats {
	return &LeaseBeats{
		Devices: []string{"dpl0"}, GateDevices: 1, Ports: []uint16{7947}, TTL: ttl,
		Match: []PayloadMatch{
			{Offset: 0, Value: []byte("eh")},
			{Offset: 3, Value: []byte{1}, Mask: []byte{1}},
			{Offset: 4, Value: []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}},
		},
	}
}

func TestBeatLeaseShape(t *testing.T) {
	b := testBeats(20 * time.Millisecond)
	b.Devices = append(b.Devices, "hb0")
	s := buildBeatLeaseTable(leaseVIP4, b)
	if s.table.Family != nftables.TableFamilyNetdev || s.table.Name != BeatLeaseTable4 || !s.set.Dynamic || !s.set.HasTimeout || len(s.chains) != 2 {
		t.Fatalf("netdev lease table: %+v %+v %d chains", s.table, s.set, len(s.chains))
	}
	if s.chains[0].Device != "dpl0" || len(s.rules[0]) != 2 || s.chains[1].Device != "hb0" || len(s.rules[1]) != 1 {
		t.Errorf("chains: %s with %d rules, %s with %d: want the gate only on the VIP's interface", s.chains[0].Device, len(s.rules[0]), s.chains[1].Device, len(s.rules[1]))
	}
	s6 := buildBeatLeaseTable(leaseVIP6, testBeats(20*time.Millisecond))
	if s6.table.Name != BeatLeaseTable6 || len(s6.rules[0]) != 3 {
		t.Errorf("ip6: table %s, %d rules; want %s with the renewal, NA and NS rules", s6.table.Name, len(s6.rules[0]), BeatLeaseTable6)
	}
	for _, bad := range []func(*LeaseBeats){
		func(b *LeaseBeats) { b.GateDevices = 0 },
		func(b *LeaseBeats) { b.Ports = nil },
		func(b *LeaseBeats) { b.Match = nil },
		func(b *LeaseBeats) { b.TTL = 0 },
		func(b *LeaseBeats) { b.Devices = []string{"dpl0", "dpl0"}; b.GateDevices = 2 },
		func(b *LeaseBeats) { b.Match[1].Mask = []byte{1, 2} },
	} {
		b := testBeats(time.Second)
		bad(b)
		if err := b.validate(); err == nil {
			t.Errorf("validate accepted %+v", b)
		}
	}
}

// beatSender sends beat-like datagrams from the LB namespace to the peer,
// every 5 ms, holding or not, until stopped.
type beatSender struct {
	mu      sync.Mutex
	holding bool
	stop    chan struct{}
	done    chan struct{}
}

func startBeats(t *testing.T, topo *leaseTopo, to netip.AddrPort, holding bool) *beatSender {
	t.Helper()
	c := inNetNS(t, topo.lb, func() (*net.UDPConn, error) { return net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to)) })
	b := &beatSender{holding: holding, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		defer c.Close()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		pkt := make([]byte, 68)
		copy(pkt, "eh\x02")
		copy(pkt[4:], []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88})
		for i := 0; i < 4000; i++ { // bounded: 20 s
			b.mu.Lock()
			pkt[3] = 0x04 // realtime
			if b.holding {
				pkt[3] |= 0x01
			}
			b.mu.Unlock()
			c.Write(pkt)
			select {
			case <-b.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(b.halt)
	return b
}

func (b *beatSender) set(holding bool) {
	b.mu.Lock()
	b.holding = holding
	b.mu.Unlock()
}

func (b *beatSender) halt() {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
}

func TestDpBeatLeaseGatesARP(t *testing.T) {
	topo := newLeaseTopo(t, false)
	testBeatLease(t, topo, newARPProber(t, topo.peer), leaseVIP4, leaseHost4, netip.MustParseAddrPort("198.18.1.130:7947"))
}

func TestDpBeatLeaseGatesNDP(t *testing.T) {
	topo := newLeaseTopo(t, true)
	testBeatLease(t, topo, newNDPProber(t, topo.peer), leaseVIP6, leaseHost6, netip.AddrPortFrom(leasePeer6, 7947))
}

func testBeatLease(t *testing.T, topo *leaseTopo, p prober, vip, host netip.Addr, peer netip.AddrPort) {
	ctx := topo.ctx
	const ttl = 40 * time.Millisecond
	l := newLease(t, topo.lb)
	if err := l.SetBeats(testBeats(ttl)); err != nil {
		t.Fatal(err)
	}
	if err := l.Install(ctx, []netip.Addr{vip}); err != nil {
		t.Fatalf("Install: %v", err)
	}
	expectSilence(t, p, vip, "installed, no beats")
	expectAnswer(t, p, host, "installed (the host's own address)")

	b := startBeats(t, topo, peer, false)
	time.Sleep(50 * time.Millisecond)
	expectSilence(t, p, vip, "beats that do not say holding")
	b.set(true)
	time.Sleep(20 * time.Millisecond)
	expectAnswer(t, p, vip, "beats saying holding")
	// Held for many lease lengths by the beats alone.
	time.Sleep(5 * ttl)
	expectAnswer(t, p, vip, "beats saying holding, five lease lengths later")
	b.set(false)
	time.Sleep(ttl + 10*time.Millisecond)
	expectSilence(t, p, vip, "beats stopped saying holding one lease length ago")
	b.set(true)
	time.Sleep(20 * time.Millisecond)
	expectAnswer(t, p, vip, "holding again")
	b.halt()
	time.Sleep(ttl + 10*time.Millisecond)
	expectSilence(t, p, vip, "beats stopped one lease length ago")

	// A daemon restarted with the same configuration adopts the tables:
	// no commit.
	gen, err := ruleGeneration(int(topo.lb))
	if err != nil {
		t.Fatal(err)
	}
	l2 := newLease(t, topo.lb)
	if err := l2.SetBeats(testBeats(ttl)); err != nil {
		t.Fatal(err)
	}
	if err := l2.Install(ctx, []netip.Addr{vip}); err != nil {
		t.Fatalf("Install again: %v", err)
	}
	if g, err := ruleGeneration(int(topo.lb)); err != nil || g != gen {
		t.Errorf("a second Install of the same beat lease committed (generation %d -> %d, %v): it must adopt the tables", gen, g, err)
	}

	// The claim's explicit renewal: Lease.Renew and the helper's
	// LeaseRenewer work on the netdev tables.
	if err := l2.Renew(ctx, time.Second); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	expectAnswer(t, p, vip, "after Renew")
	if err := l2.Drop(ctx); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	expectSilence(t, p, vip, "after Drop")
	r := inNetNS(t, topo.lb, func() (*LeaseRenewer, error) { return NewLeaseRenewer([]netip.Addr{vip}, time.Second) })
	defer r.Close()
	if err := r.Renew(); err != nil {
		t.Fatalf("LeaseRenewer.Renew: %v", err)
	}
	expectAnswer(t, p, vip, "after the helper's renewal")
	if err := r.Drop(); err != nil {
		t.Fatalf("LeaseRenewer.Drop: %v", err)
	}
	expectSilence(t, p, vip, "after the helper's drop")

	// Back to the arp / ip6 lease: the netdev tables go.
	if err := l2.SetBeats(nil); err != nil {
		t.Fatal(err)
	}
	if err := l2.Install(ctx, []netip.Addr{vip}); err != nil {
		t.Fatalf("Install without beats: %v", err)
	}
	for _, name := range []string{BeatLeaseTable4, BeatLeaseTable6} {
		if tb, err := findNamedTable(nftConn(t, topo.lb), nftables.TableFamilyNetdev, name); err != nil || tb != nil {
			t.Errorf("netdev table %s after switching back: %v %v", name, tb, err)
		}
	}
	if err := l2.Remove(ctx); err != nil {
		t.Fatal(err)
	}
}
