package produce_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status/produce"
	"github.com/epconsole/epconsole/probes"
)

// TestRunHostMaxAge: a round a Wake asks for reads the VIPs on this host
// again once the last reading is HostMaxAge old, however long the Tick;
// without HostMaxAge a reading is reused for half a Tick.
func TestRunHostMaxAge(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxAge  time.Duration
		atLeast int64
		atMost  int64
	}{
		{"HostMaxAge: every woken round reads", time.Nanosecond, 4, 100},
		{"half a Tick: one reading", 0, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reads atomic.Int64
			feed := &probeFeed{}
			feed.set(probes.StateUp)
			wake := make(chan struct{})
			start(t, produce.Options{Wake: wake, Tick: time.Hour, Republish: time.Hour, HostMaxAge: tc.maxAge,
				VIPsHere: func(v []config.VIP) []bool { reads.Add(1); return make([]bool, len(v)) }}, feed)
			for range 4 {
				wake <- struct{}{} // taken: the round before it ended
				time.Sleep(time.Millisecond)
			}
			wake <- struct{}{}
			if n := reads.Load(); n < tc.atLeast || n > tc.atMost {
				t.Errorf("%d readings of the VIPs on this host in 5 woken rounds; want %d to %d", n, tc.atLeast, tc.atMost)
			}
		})
	}
}
