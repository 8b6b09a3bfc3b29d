package heartbeat

import (
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bound is the functional bound of every liveness change in these tests;
// the measured figures are logged.
const bound = time.Second

// threeNodes starts a, b and c of scenario s, all with the same key.
func threeNodes(t *testing.T, m mode, s int) (map[string]netip.AddrPort, []*node) {
	t.Helper()
	all := map[string]netip.AddrPort{"a": addrFor(m, s, 1), "b": addrFor(m, s, 2), "c": addrFor(m, s, 3)}
	var nodes []*node
	for _, n := range []string{"a", "b", "c"} {
		nodes = append(nodes, startNode(t, testConfig(t, m, n, all, testKey(1))))
	}
	return all, nodes
}

func TestBeatersSeeEachOtherAndDetectDeath(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			_, nodes := threeNodes(t, m, 0)
			a, b, c := nodes[0], nodes[1], nodes[2]
			for _, n := range nodes {
				v, took := n.waitView(5*time.Second, "all peers alive with a majority", allAlive)
				t.Logf("%s: all alive after %v; realtime=%+v", n.name, took, v.Realtime)
				if !v.Beating {
					t.Errorf("%s: not beating", n.name)
				}
			}
			if !m.inProcess {
				checkRealtime(t, nodes)
			}

			// Claims travel: a holds the VIP at epoch 3, b and c believe in a.
			a.setAdvert(Advert{Owner: "a", Epoch: 3, Flags: FlagHolding})
			b.setAdvert(Advert{Owner: "a", Epoch: 3})
			for _, n := range []*node{b, c} {
				v, _ := n.waitView(bound, "a's claim", func(v View) bool {
					p, _ := v.Peer("a")
					return p.Owner == "a" && p.Epoch == 3 && p.Flags&FlagHolding != 0
				})
				if p, _ := v.Peer("a"); p.OwnerID != IDOf("a") {
					t.Errorf("%s: owner ID %v", n.name, p.OwnerID)
				}
			}
			c.waitView(bound, "b's belief", func(v View) bool {
				p, _ := v.Peer("b")
				return p.Owner == "a" && p.Epoch == 3 && p.Flags&FlagHolding == 0
			})

			// Stop c: a and b declare it dead, and keep the majority (2 of 3).
			start := time.Now()
			var stopped string
			if m.inProcess {
				c.stopRefresh()
				c.b.Close()
				stopped = "closed"
			} else {
				if err := syscall.Kill(c.b.HelperPID(), syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				stopped = "helper killed"
			}
			var wg sync.WaitGroup
			for _, n := range []*node{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v, _ := n.waitView(bound, "c dead", dead("c"))
					took := time.Since(start)
					pc, _ := v.Peer("c")
					t.Logf("%s: c (%s) declared dead %v after the stop (threshold %v for a %s peer, %d beats of c seen)",
						n.name, stopped, took.Round(100*time.Microsecond), thresholdOf(v, pc), rtName(pc.Realtime), pc.Seq)
					if !v.Majority {
						t.Errorf("%s: lost the majority with 2 of 3 alive", n.name)
					}
				}()
			}
			wg.Wait()
			if !m.inProcess {
				select {
				case <-c.b.Done():
				case <-time.After(bound):
					t.Error("c's Beater did not notice its helper's death")
				}
				if v := c.b.View(); !v.Stale || v.Majority {
					t.Errorf("c's view after its helper died: %s", describe(v))
				}
			}

			// Stop b too: a is alone, no majority.
			b.stopRefresh()
			b.b.Close()
			v, took := a.waitView(bound, "no majority", func(v View) bool { return !v.Majority })
			t.Logf("a: lost the majority %v after b stopped; %s", took, describe(v))
			if v.Stale {
				t.Error("a's own view is stale")
			}
		})
	}
}

func thresholdOf(v View, p PeerView) time.Duration {
	if p.Realtime {
		return v.Threshold
	}
	return v.SlowThreshold
}

func rtName(rt bool) string {
	if rt {
		return "real-time"
	}
	return "normal-priority"
}

// checkRealtime compares each helper's claim of real-time priority with
// the policy the kernel reports for its threads.
func checkRealtime(t *testing.T, nodes []*node) {
	t.Helper()
	for _, n := range nodes {
		rt := n.b.Realtime()
		pid := n.b.HelperPID()
		attr, err := unix.SchedGetAttr(pid, 0)
		if err != nil {
			t.Fatalf("sched_getattr(%d): %v", pid, err)
		}
		isFIFO := attr.Policy == unix.SCHED_FIFO
		t.Logf("%s: helper pid %d realtime in effect=%v (kernel: policy %d priority %d), threads=%d, memory locked=%v, reason=%q",
			n.name, pid, rt.InEffect, attr.Policy, attr.Priority, rt.Threads, rt.MemoryLocked, rt.Reason)
		if rt.InEffect != isFIFO {
			t.Errorf("%s: helper says realtime=%v, kernel says policy %d", n.name, rt.InEffect, attr.Policy)
		}
		if rt.InEffect && int(attr.Priority) != DefaultPriority {
			t.Errorf("%s: priority %d, want %d", n.name, attr.Priority, DefaultPriority)
		}
		for _, p := range n.b.View().Peers {
			if p.Realtime != isFIFO {
				t.Errorf("%s sees %s realtime=%v", n.name, p.Name, p.Realtime)
			}
		}
	}
}

func TestTokenExpiryStopsBeats(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			_, nodes := threeNodes(t, m, 1)
			a, b, c := nodes[0], nodes[1], nodes[2]
			for _, n := range nodes {
				n.waitView(5*time.Second, "all alive", allAlive)
			}
			// b's daemon hangs: no more Refresh. Its loop stops beating
			// after the token's TTL; a and c declare it dead.
			start := time.Now()
			b.stopRefresh()
			for _, n := range []*node{a, c} {
				n.waitView(DefaultTokenTTL+bound, "b dead", dead("b"))
				took := time.Since(start)
				t.Logf("%s: b declared dead %v after its last refresh (token TTL %v)", n.name, took.Round(time.Millisecond), DefaultTokenTTL)
				if took < DefaultTokenTTL-DefaultTokenRefresh {
					t.Errorf("%s: b declared dead after %v, before its token could expire", n.name, took)
				}
			}
			v := b.b.View()
			if v.Beating {
				t.Errorf("b still says it beats: %s", describe(v))
			}
			if v.Stale || !v.Majority {
				t.Errorf("b's loop should still hear a and c: %s", describe(v))
			}
			sent := v.Stats.Sent
			time.Sleep(50 * time.Millisecond)
			if v2 := b.b.View(); v2.Stats.Sent != sent {
				t.Errorf("b sent %d beats without a token", v2.Stats.Sent-sent)
			}
			// The daemon recovers: beats resume.
			b.startRefresh()
			for _, n := range []*node{a, c} {
				n.waitView(bound, "b alive again", alive("b"))
			}
		})
	}
}

func TestRestartedPeerIsAcceptedWithNewBootID(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			_, nodes := threeNodes(t, m, 2)
			a, c := nodes[0], nodes[2]
			a.waitView(5*time.Second, "all alive", allAlive)
			v, _ := a.waitView(bound, "20 beats of c", func(v View) bool { p, _ := v.Peer("c"); return p.Alive && p.Seq >= 20 })
			pc, _ := v.Peer("c")
			oldBoot, oldSeq := pc.Boot, pc.Seq
			c.stopRefresh()
			c.b.Close()
			a.waitView(bound, "c dead", dead("c"))
			c2 := startNode(t, c.cfg)
			v, took := a.waitView(bound, "c alive again", alive("c"))
			pc, _ = v.Peer("c")
			t.Logf("restarted c alive again at a after %v: boot %016x -> %016x, seq %d -> %d", took, oldBoot, pc.Boot, oldSeq, pc.Seq)
			if pc.Boot == oldBoot || pc.Boot != c2.b.View().Boot {
				t.Errorf("boot ID after restart %016x (was %016x, c2 says %016x)", pc.Boot, oldBoot, c2.b.View().Boot)
			}
			if pc.Seq >= oldSeq {
				t.Errorf("the restarted loop's sequence %d is not below the old %d: the restart was not exercised", pc.Seq, oldSeq)
			}
		})
	}
}

func TestWrongKeyIsRejected(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			all := map[string]netip.AddrPort{"a": addrFor(m, 3, 1), "b": addrFor(m, 3, 2), "c": addrFor(m, 3, 3)}
			a := startNode(t, testConfig(t, m, "a", all, testKey(1)))
			b := startNode(t, testConfig(t, m, "b", all, testKey(1)))
			c := startNode(t, testConfig(t, m, "c", all, testKey(2))) // another gossip key
			for _, n := range []*node{a, b} {
				n.waitView(5*time.Second, "the other good peer alive", func(v View) bool {
					other := "b"
					if n.name == "b" {
						other = "a"
					}
					p, _ := v.Peer(other)
					return p.Alive && v.Stats.BadMAC >= 20
				})
			}
			time.Sleep(100 * time.Millisecond)
			for _, n := range []*node{a, b} {
				v := n.b.View()
				if p, _ := v.Peer("c"); p.Alive || p.Seen {
					t.Errorf("%s accepted c's beats under another key: %s", n.name, describe(v))
				}
				t.Logf("%s: %d datagrams rejected for their MAC", n.name, v.Stats.BadMAC)
			}
			v := c.b.View()
			if v.Stats.BadMAC == 0 || v.Stats.Accepted != 0 || v.Majority {
				t.Errorf("c with the wrong key: %s", describe(v))
			}

			// Key rotation: c gets the new key as primary and the old one as
			// second; a and b still seal with the old one and c accepts them,
			// while a and b refuse c's beats until they know the new key.
			c.stopRefresh()
			c.b.Close()
			cfg := c.cfg
			cfg.Keys = [][]byte{testKey(2), testKey(1)}
			c2 := startNode(t, cfg)
			c2.waitView(bound, "a and b alive under the old key", func(v View) bool {
				pa, _ := v.Peer("a")
				pb, _ := v.Peer("b")
				return pa.Alive && pb.Alive
			})
			if p, _ := a.b.View().Peer("c"); p.Seen {
				t.Error("a accepted c's beats sealed with a key it does not have")
			}
		})
	}
}

func TestReplayedDatagramsAreDropped(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			// a sends its beats for b to the test's proxy, which forwards
			// them to b (and keeps copies). The proxy listens on a's
			// address (another port): b reads beats from its peers'
			// addresses only.
			aAddr, bAddr := addrFor(m, 4, 1), addrFor(m, 4, 2)
			proxyAddr := netip.AddrPortFrom(aAddr.Addr(), aAddr.Port()+100)
			proxy, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(proxyAddr))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proxy.Close() })
			a := startNode(t, testConfig(t, m, "a", map[string]netip.AddrPort{"a": aAddr, "b": proxyAddr}, testKey(1)))
			b := startNode(t, testConfig(t, m, "b", map[string]netip.AddrPort{"a": aAddr, "b": bAddr}, testKey(1)))

			var mu sync.Mutex
			var captured [][]byte
			forward := true
			go func() {
				buf := make([]byte, 2048)
				for {
					n, err := proxy.Read(buf)
					if err != nil {
						return
					}
					pkt := append([]byte(nil), buf[:n]...)
					mu.Lock()
					captured = append(captured, pkt)
					fw := forward
					mu.Unlock()
					if fw {
						proxy.WriteToUDPAddrPort(pkt, bAddr)
					}
				}
			}()
			b.waitView(5*time.Second, "20 beats of a through the proxy", func(v View) bool { p, _ := v.Peer("a"); return p.Alive && p.Seq >= 20 })

			// Every forwarded datagram sent again at once: all dropped.
			mu.Lock()
			replay := append([][]byte(nil), captured...)
			mu.Unlock()
			before := b.b.View().Stats
			for _, pkt := range replay {
				proxy.WriteToUDPAddrPort(pkt, bAddr)
			}
			v, _ := b.waitView(bound, "replays counted", func(v View) bool { return v.Stats.Replayed-before.Replayed >= uint64(len(replay)) })
			if got := v.Stats.Accepted - before.Accepted; got > uint64(len(replay)) {
				t.Errorf("accepted %d beats while %d replays and only live beats arrived", got, len(replay))
			}
			t.Logf("b dropped %d replayed datagrams of %d sent", v.Stats.Replayed-before.Replayed, len(replay))

			// Cut a off (the proxy stops forwarding) and replay its old beats
			// to b over and over: b still declares a dead.
			mu.Lock()
			forward = false
			replay = append([][]byte(nil), captured...)
			mu.Unlock()
			stopReplay := make(chan struct{})
			replayed := make(chan int)
			go func() {
				sent := 0
				for {
					for _, pkt := range replay {
						select {
						case <-stopReplay:
							replayed <- sent
							return
						default:
						}
						proxy.WriteToUDPAddrPort(pkt, bAddr)
						sent++
						time.Sleep(time.Millisecond)
					}
				}
			}()
			v, took := b.waitView(bound, "a dead despite replays", dead("a"))
			time.Sleep(100 * time.Millisecond)
			close(stopReplay)
			sent := <-replayed
			v2 := b.b.View()
			if p, _ := v2.Peer("a"); p.Alive {
				t.Errorf("replays revived a: %s", describe(v2))
			}
			t.Logf("a declared dead %v after the cut while %d old datagrams were replayed; replayed counter %d -> %d",
				took, sent, v.Stats.Replayed, v2.Stats.Replayed)
			if v2.Stats.Replayed <= v.Stats.Replayed {
				t.Error("the replays were not counted as such")
			}

			// a restarts (new boot ID) and is forwarded again; the earlier
			// incarnation's datagrams are now refused as an old boot ID.
			a.stopRefresh()
			a.b.Close()
			b.waitView(bound, "a dead", dead("a"))
			mu.Lock()
			forward = true
			mu.Unlock()
			a2 := startNode(t, a.cfg)
			v, _ = b.waitView(bound, "restarted a alive", func(v View) bool { p, _ := v.Peer("a"); return p.Alive && p.Boot == a2.b.View().Boot })
			for _, pkt := range replay {
				proxy.WriteToUDPAddrPort(pkt, bAddr)
			}
			v2, _ = b.waitView(bound, "old boot ID refused", func(v View) bool { return v.Stats.OldBoot >= uint64(len(replay)) })
			if p, _ := v2.Peer("a"); p.Boot != a2.b.View().Boot {
				t.Errorf("a's boot ID at b went back to %016x", p.Boot)
			}
			t.Logf("after a's restart: %d datagrams of its previous boot ID refused", v2.Stats.OldBoot)
		})
	}
}
