package chaos

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/lab"
)

// The old-lease control's own slice and namespace prefix.
var (
	oldLeaseIPv4 = netip.MustParsePrefix("198.18.225.0/24")
	oldLeaseIPv6 = netip.MustParsePrefix("fd00:198:18:225::/64")
)

// TestOwnerPauseOldLease is TestOwnerPause's control for the lease: the
// daemons renew a 150 ms owner lease every 30 ms themselves
// (--no-beat-lease) instead of the kernel renewing one of a detection
// time from the beats. The paused owner's kernel then answers ARP for the
// VIP until its lease runs out, long after the successor claimed: two
// MACs answer for longer than the detection time, which the beat-renewed
// lease (TestOwnerPause) does not allow.
func TestOwnerPauseOldLease(t *testing.T) {
	l := upLabWith(t, lab.Options{Prefix: "lsx", IPv4: oldLeaseIPv4, IPv6: oldLeaseIPv6, Peers: 3, Backends: 3, DaemonArgs: []string{"--no-beat-lease"}})
	start := time.Now()
	obs, err := StartObserver(context.Background(), l, start)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	time.Sleep(500 * time.Millisecond)
	ov := pauseRound(ctx, t, l, obs, start, l.Net().VIP4().String())
	if ov <= DetectionTime {
		t.Errorf("with the daemon's 150 ms lease two MACs answered for %s, not longer than the detection time %s: the control does not show what the beat-renewed lease is for", ov, DetectionTime)
	}
}
