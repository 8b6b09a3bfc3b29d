package heartbeat

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// loopPair is two loops beating each other on loopback, driven by the test
// itself, with the daemon's ends of their control sockets.
type loopPair struct {
	loops  [2]*loop
	parent [2]int
}

func newLoopPair(t *testing.T, interval time.Duration) *loopPair {
	t.Helper()
	addrs := [2]netip.AddrPort{netip.MustParseAddrPort("127.0.5.91:17990"), netip.MustParseAddrPort("127.0.5.92:17990")}
	names := [2]string{"x", "y"}
	key, _ := DeriveKey(testKey(1))
	lp := &loopPair{}
	for i := range 2 {
		udp, err := listenUDP(addrs[i])
		if err != nil {
			t.Fatal(err)
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		cfg := loopConfig{
			Self: names[i], Peers: []loopPeer{{Name: names[1-i], Addr: addrs[1-i]}}, Keys: [][]byte{key},
			Interval: interval, Misses: 4, SlowMisses: 8, TokenTTL: time.Second, ReportInterval: 4 * interval,
		}
		l, err := newLoop(cfg, udp, fds[1])
		if err != nil {
			t.Fatal(err)
		}
		lp.loops[i], lp.parent[i] = l, fds[0]
		t.Cleanup(func() { l.close(); unix.Close(udp); unix.Close(fds[0]); unix.Close(fds[1]) })
		if err := l.start(); err != nil {
			t.Fatal(err)
		}
	}
	return lp
}

// TestLoopIterationDoesNotAllocate drives two loops through ticks, sends,
// receives, token refreshes and reports, and counts allocations.
func TestLoopIterationDoesNotAllocate(t *testing.T) {
	lp := newLoopPair(t, time.Millisecond)
	var msg [refreshSize]byte
	tok := refresh{owner: IDOf("x"), epoch: 1, flags: FlagHolding}
	drain := make([]byte, maxReportSize+1)
	iter := 0
	body := func() {
		iter++
		for i, l := range lp.loops {
			if iter%8 == 1 {
				tok.sentAt = MonoNow()
				tok.encode(&msg)
				if err := unix.Sendto(lp.parent[i], msg[:], unix.MSG_DONTWAIT, nil); err != nil {
					panic(err)
				}
			}
			if err := l.step(); err != nil {
				panic(err)
			}
			for {
				if _, errno := recvDontWait(lp.parent[i], drain); errno != 0 {
					break
				}
			}
		}
	}
	for range 50 { // warm up: first reports, first beats
		body()
	}
	allocs := totalAllocs(300, body)
	for i, l := range lp.loops {
		s := l.stats
		t.Logf("loop %d: ticks=%d sent=%d received=%d accepted=%d reports dropped=%d max lateness=%v", i, s.Ticks, s.Sent, s.Received, s.Accepted, s.ReportsDropped, s.MaxLateness)
		if s.Ticks < 50 || s.Sent < 50 || s.Accepted < 50 || !l.tokenSeen || !l.reported {
			t.Errorf("loop %d did not exercise every path: %+v", i, s)
		}
	}
	if allocs != 0 {
		t.Fatalf("300 loop iterations allocated %d times", allocs)
	}
}

// TestLoopTokenAndReports checks what a loop reports: nothing beats before
// the first token, beats carry the advert, the peer sees them.
func TestLoopTokenAndReports(t *testing.T) {
	lp := newLoopPair(t, time.Millisecond)
	x, y := lp.loops[0], lp.loops[1]
	stepBoth := func(n int) {
		for range n {
			for _, l := range lp.loops {
				if err := l.step(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	stepBoth(20)
	if x.stats.Sent != 0 || y.stats.Sent != 0 {
		t.Fatalf("beats before the first token: %d, %d", x.stats.Sent, y.stats.Sent)
	}
	// A token sent longer ago than its TTL (a backlog read late) does not
	// start the beats.
	var msg [refreshSize]byte
	(&refresh{owner: IDOf("x"), epoch: 9, flags: FlagHolding, sentAt: MonoNow().Add(-2 * time.Second)}).encode(&msg)
	if err := unix.Sendto(lp.parent[0], msg[:], 0, nil); err != nil {
		t.Fatal(err)
	}
	stepBoth(20)
	if x.stats.Sent != 0 {
		t.Fatalf("%d beats on a stale token", x.stats.Sent)
	}
	(&refresh{owner: IDOf("x"), epoch: 9, flags: FlagHolding | FlagRealtime, sentAt: MonoNow()}).encode(&msg)
	if err := unix.Sendto(lp.parent[0], msg[:], 0, nil); err != nil {
		t.Fatal(err)
	}
	stepBoth(20)
	p := y.tr.Peer(0)
	if x.stats.Sent == 0 || !p.Seen || p.Owner != IDOf("x") || p.Epoch != 9 || p.Flags != FlagHolding {
		t.Fatalf("y's view of x: %+v (the daemon cannot set FlagRealtime)", p)
	}
	// The daemon's end reads reports that decode.
	buf := make([]byte, maxReportSize+1)
	var last report
	last.peers = make([]peerReport, 1)
	got := 0
	for {
		n, errno := recvDontWait(lp.parent[1], buf)
		if errno != 0 {
			break
		}
		if err := last.decode(buf[:n]); err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got == 0 || !last.peers[0].alive || last.peers[0].owner != IDOf("x") || last.beating {
		t.Fatalf("%d reports, last %+v", got, last)
	}
}
