package heartbeat

import (
	"context"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDeadPeerDetection measures, with real helpers, the time from
// SIGKILL of a peer's helper to another peer's view showing it dead, and
// reports the median and worst of b.N kills (ms).
func BenchmarkDeadPeerDetection(b *testing.B) {
	m := modes[1]
	all := map[string]netip.AddrPort{"a": addrFor(m, 20, 1), "b": addrFor(m, 20, 2)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := func(self string) *Beater {
		var peers []Peer
		for _, n := range sortedNames(all) {
			if n != self {
				peers = append(peers, Peer{Name: n, Addr: all[n]})
			}
		}
		bt, err := Start(ctx, Config{Self: self, Bind: all[self], Peers: peers, Keys: [][]byte{testKey(1)}})
		if err != nil {
			b.Fatal(err)
		}
		return bt
	}
	refresh := func(bts ...*Beater) {
		for _, bt := range bts {
			bt.Refresh(Advert{})
		}
	}
	obs := start("a")
	defer obs.Close()
	var took []time.Duration
	for b.Loop() {
		victim := start("b")
		for deadline := time.Now().Add(5 * time.Second); ; {
			refresh(obs, victim)
			if p, _ := obs.View().Peer("b"); p.Alive {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("b never alive")
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // steady state
		refresh(obs, victim)
		t0 := time.Now()
		syscall.Kill(victim.HelperPID(), syscall.SIGKILL)
		for {
			if p, _ := obs.View().Peer("b"); !p.Alive {
				break
			}
			if time.Since(t0) > time.Second {
				b.Fatal("b not declared dead within 1 s")
			}
			time.Sleep(100 * time.Microsecond)
		}
		took = append(took, time.Since(t0))
		victim.Close()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "worst-ms")
	b.ReportMetric(float64(obs.View().Threshold.Microseconds())/1000, "threshold-ms")
}
