package heartbeat

import (
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestHostStallIsNoDeath: three real helpers are stopped together for
// 40 ms (twice the 20 ms threshold) and continued together, as a host
// whose CPUs are all held elsewhere (a VM descheduled) stops every loop
// on it at once. No beat was sent meanwhile, so each loop wakes with every
// peer's last beat 30 ms old; the time it did not run itself must not
// count against them (Tracker.Stalled): no node may see a peer gone. The
// control stops one helper alone for as long: its peers, which kept
// running, see it gone.
func TestHostStallIsNoDeath(t *testing.T) {
	m := mode{"helper", false}
	_, nodes := threeNodes(t, m, 7)
	for _, n := range nodes {
		n.waitView(5*time.Second, "all peers alive with a majority", allAlive)
	}
	// watch counts, per node, the peers seen gone from now on.
	watch := func() (stop func() map[string]int) {
		var mu sync.Mutex
		gone := map[string]int{}
		done := make(chan struct{})
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				was := map[string]bool{}
				tick := time.NewTicker(500 * time.Microsecond)
				defer tick.Stop()
				for {
					v := n.b.View()
					if v.Stale {
						mu.Lock()
						gone[n.name+" stale"]++
						mu.Unlock()
					}
					for _, p := range v.Peers {
						if !p.Alive && !v.Stale && !was[p.Name] {
							mu.Lock()
							gone[n.name]++
							mu.Unlock()
						}
						was[p.Name] = !p.Alive
					}
					select {
					case <-done:
						return
					case <-tick.C:
					case <-n.b.Changes():
					}
				}
			}()
		}
		return func() map[string]int {
			close(done)
			wg.Wait()
			return gone
		}
	}
	pause := func(which []*node, d time.Duration) {
		for _, n := range which {
			syscall.Kill(n.b.HelperPID(), syscall.SIGSTOP)
		}
		time.Sleep(d)
		for _, n := range which {
			syscall.Kill(n.b.HelperPID(), syscall.SIGCONT)
		}
	}
	stop := watch()
	for range 5 {
		pause(nodes, 30*time.Millisecond)
		time.Sleep(200 * time.Millisecond)
	}
	gone := stop()
	for _, n := range nodes {
		v := n.b.View()
		t.Logf("%s after 5 stalls of the whole host: %d peers seen gone, %d stale views; late ticks %d, max lateness %v, max beat gap %v",
			n.name, gone[n.name], gone[n.name+" stale"], v.Stats.LateTicks, v.Stats.MaxLateness, v.Stats.MaxBeatGap)
		if gone[n.name] != 0 {
			t.Errorf("%s saw a peer gone %d times across stalls of the whole host", n.name, gone[n.name])
		}
	}

	// Control: one helper stalls alone; the others run and see it gone.
	stop = watch()
	pause(nodes[:1], 30*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	gone = stop()
	t.Logf("control, %s stopped alone for 30 ms: peers seen gone %v", nodes[0].name, gone)
	for _, n := range nodes[1:] {
		if gone[n.name] == 0 {
			t.Errorf("control: %s did not see %s gone while it was stopped alone for 30 ms", n.name, nodes[0].name)
		}
	}
}
