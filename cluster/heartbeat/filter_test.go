package heartbeat

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// junkSocket opens a UDP socket on a loopback address that is no peer's.
func junkSocket(t *testing.T, addr string) int {
	t.Helper()
	fd, err := listenUDP(netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// sendBeat sends one beat sealed with the loop pair's key from fd to dst,
// in version 2 of cluster c (or version 1).
func sendBeat(t *testing.T, fd int, dst netip.AddrPort, b Beat, v1 bool, c ClusterID) {
	t.Helper()
	key, _ := DeriveKey(testKey(1))
	k, err := newKeyringDerived([][]byte{key})
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := sockaddr(dst)
	var pkt []byte
	if v1 {
		var d [DatagramSize]byte
		k.Seal(&d, &b)
		pkt = d[:]
	} else {
		var d [DatagramSizeV2]byte
		k.SealV2(&d, &b, c)
		pkt = d[:]
	}
	if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
		t.Fatal(err)
	}
}

// TestNonPeerDroppedBeforeBudget floods a loop with 60-byte junk from an
// address that is not a peer's, then sends one authentic beat from the
// peer: one read round accepts the beat, counts the junk as non-peer and
// spends none of the peers' budget on it. (Before, the junk used up the
// budget and the beat waited behind it; at 40,000 datagrams a second the
// peer was declared missing.)
func TestNonPeerDroppedBeforeBudget(t *testing.T) {
	lp := newLoopPair(t, 5*time.Millisecond)
	x, y := lp.loops[0], lp.loops[1]
	xAddr := netip.MustParseAddrPort("127.0.5.91:17990")
	junk := junkSocket(t, "127.0.5.93:17990")
	sa, _ := sockaddr(xAddr)
	const flood = 300
	var pkt [DatagramSize]byte
	for i := range pkt {
		pkt[i] = byte(i)
	}
	for range flood {
		if err := unix.Sendto(junk, pkt[:], 0, sa); err != nil {
			t.Fatal(err)
		}
	}
	sendBeat(t, y.udp, xAddr, Beat{Sender: IDOf("y"), Boot: 7, Seq: 1}, false, ClusterIDOf(""))
	x.readBeats(MonoNow())
	if x.stats.Accepted != 1 {
		t.Fatalf("after %d junk datagrams from a non-peer, the peer's beat was not accepted in the same read round: %+v", flood, x.stats)
	}
	if x.stats.NonPeer != flood || x.stats.BadMAC != 0 || x.stats.Malformed != 0 {
		t.Fatalf("junk not counted as non-peer (before any authentication): %+v", x.stats)
	}
	if used := x.recvBudget - x.recvLeft; used != 1 {
		t.Fatalf("the peers' budget spent %d datagrams, want 1 (the beat)", used)
	}
	if !x.tr.Alive("y", MonoNow()) {
		t.Fatal("y is not alive after its beat")
	}
}

// TestNonPeerBudgetBounded: a flood larger than nonPeerBudget stops the
// read round (so the tick is never starved) and the socket is polled again
// at the next tick.
func TestNonPeerBudgetBounded(t *testing.T) {
	lp := newLoopPair(t, 5*time.Millisecond)
	x := lp.loops[0]
	junk := junkSocket(t, "127.0.5.94:17990")
	sa, _ := sockaddr(netip.MustParseAddrPort("127.0.5.91:17990"))
	var pkt [DatagramSize]byte
	for range nonPeerBudget + 10 {
		if err := unix.Sendto(junk, pkt[:], 0, sa); err != nil {
			t.Fatal(err)
		}
	}
	x.readBeats(MonoNow())
	if x.stats.NonPeer != nonPeerBudget || x.pfd[pollUDP].Events != 0 {
		t.Fatalf("non-peer reads %d (budget %d), poll events %#x", x.stats.NonPeer, nonPeerBudget, x.pfd[pollUDP].Events)
	}
}

// TestBeatVersionsAndCluster: a version 2 beat of another cluster is
// ignored and counted; a version 1 beat (the previous release) is accepted
// and answered in version 1, until the peer sends version 2 again.
func TestBeatVersionsAndCluster(t *testing.T) {
	lp := newLoopPair(t, 5*time.Millisecond)
	x, y := lp.loops[0], lp.loops[1]
	xAddr := netip.MustParseAddrPort("127.0.5.91:17990")
	sendBeat(t, y.udp, xAddr, Beat{Sender: IDOf("y"), Boot: 7, Seq: 1}, false, ClusterIDOf("another"))
	x.readBeats(MonoNow())
	if x.stats.OtherCluster != 1 || x.stats.Accepted != 0 || x.tr.Peer(0).Seen {
		t.Fatalf("a beat of another cluster was not ignored: %+v", x.stats)
	}
	x.pfd[pollUDP].Events = unix.POLLIN
	sendBeat(t, y.udp, xAddr, Beat{Sender: IDOf("y"), Boot: 7, Seq: 2}, true, 0)
	x.readBeats(MonoNow())
	if x.stats.Accepted != 1 || !x.peerV1[0] {
		t.Fatalf("version 1 beat: accepted %d, answer in version 1 %v", x.stats.Accepted, x.peerV1[0])
	}
	// x's next beat to y is version 1.
	x.tokenSeen, x.tokenAt = true, MonoNow()
	if err := x.tick(MonoNow()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxDatagramSize+1)
	n, _, err := unix.Recvfrom(y.udp, buf, unix.MSG_DONTWAIT)
	if err != nil || n != DatagramSize || buf[2] != Version1 {
		t.Fatalf("x's answer to a version 1 peer: %d bytes, version %d, %v", n, buf[2], err)
	}
	sendBeat(t, y.udp, xAddr, Beat{Sender: IDOf("y"), Boot: 7, Seq: 3}, false, ClusterIDOf(""))
	x.readBeats(MonoNow())
	if x.stats.Accepted != 2 || x.peerV1[0] {
		t.Fatalf("version 2 beat after version 1: accepted %d, v1 %v", x.stats.Accepted, x.peerV1[0])
	}
	if err := x.tick(MonoNow()); err != nil {
		t.Fatal(err)
	}
	if n, _, err = unix.Recvfrom(y.udp, buf, unix.MSG_DONTWAIT); err != nil || n != DatagramSizeV2 || buf[2] != Version {
		t.Fatalf("x's beat to a version 2 peer: %d bytes, %v", n, err)
	}
}

// TestPeerOf matches sources on address and port, or on the address of
// the only peer there.
func TestPeerOf(t *testing.T) {
	l := &loop{srcs: []netip.AddrPort{
		netip.MustParseAddrPort("198.18.0.1:7947"), netip.MustParseAddrPort("127.0.0.1:1000"),
		netip.MustParseAddrPort("127.0.0.1:1001"), netip.MustParseAddrPort("[fd00::1]:7947"),
	}}
	for _, tc := range []struct {
		src  string
		want int
	}{
		{"198.18.0.1:7947", 0}, {"198.18.0.1:40000", 0}, {"198.18.0.2:7947", -1},
		{"127.0.0.1:1001", 2}, {"127.0.0.1:1002", -1}, {"[fd00::1]:7947", 3}, {"[fd00::2]:7947", -1},
	} {
		ap := netip.MustParseAddrPort(tc.src)
		l.from = unix.RawSockaddrAny{}
		if ap.Addr().Is4() {
			sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&l.from))
			sa.Family, sa.Addr, sa.Port = unix.AF_INET, ap.Addr().As4(), ntohs(ap.Port())
		} else {
			sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&l.from))
			sa.Family, sa.Addr, sa.Port = unix.AF_INET6, ap.Addr().As16(), ntohs(ap.Port())
		}
		if got := l.peerOf(); got != tc.want {
			t.Errorf("peerOf(%s) = %d, want %d", tc.src, got, tc.want)
		}
	}
}
