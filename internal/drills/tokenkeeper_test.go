package drills

import (
	"context"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The token keeper drill's segment (198.18.164.0/24–198.18.167.0/24 is
// the heartbeat's).
var (
	keepNet4 = netip.MustParsePrefix("198.18.164.0/24")
	keepNet6 = netip.MustParsePrefix("fd00:198:18:164::/64")
)

// Test settings of the daemon (internal/daemon/keeper.go).
const (
	tokenKeeperEnv = "EPCONSOLE_TEST_TOKEN_KEEPER"
	loopStallEnv   = "EPCONSOLE_TEST_LOOP_STALL"
)

// keepStall is how long the owner's decision loop is kept busy each time:
// longer than the liveness token's TTL (1 s), as the loop stalled in a
// soak beside the fault campaign (1.1 s).
const keepStall = 1500 * time.Millisecond

// TestStalledLoopKeepsBeating: both cores saturated by bounded busy loops,
// and the owner's decision loop busy for 1.5 s (longer than the liveness
// token's TTL) three times: the token keeper renews the token from its
// own real-time thread, so the owner keeps beating and the VIP does not
// move.
func TestStalledLoopKeepsBeating(t *testing.T) {
	beatingFalse, moves := stalledOwner(t, "bjtk", "")
	if beatingFalse != 0 || moves != 0 {
		t.Errorf("with the keeper: %d beating:false reports on the owner and %d VIP moves, want 0 and 0", beatingFalse, moves)
	}
}

// TestStalledLoopKeeperOff is the control: the token refreshed by the
// decision loop alone (as before the keeper), the same stalls stop the
// owner's beats and move the VIP.
func TestStalledLoopKeeperOff(t *testing.T) {
	beatingFalse, moves := stalledOwner(t, "bjto", "off")
	if beatingFalse == 0 || moves == 0 {
		t.Errorf("control without the keeper: %d beating:false reports and %d VIP moves; want both above 0 (the stall must bite)", beatingFalse, moves)
	}
}

// stalledOwner runs the drill and returns the owner's beating:false
// reports and the VIP moves (acquires and releases on every LB) while the
// cores were saturated and the owner's loop stalled.
func stalledOwner(t *testing.T, prefix, keeper string) (beatingFalse, moves int) {
	t.Setenv(loopStallEnv, keepStall.String())
	t.Setenv(tokenKeeperEnv, keeper)
	c, owner := newClusterWith(t, prefix, 90*time.Second, clusterOpts{net4: keepNet4, net6: keepNet6})
	time.Sleep(time.Second) // settled: the startup's verdicts are logged
	lines := len(logLines(c.daemons[owner]))
	before := map[string]int{}
	for name, dp := range c.daemons {
		before[name] = countEvents(dp, "vip-acquired") + countEvents(dp, "vip-released")
	}
	ctx, cancel := context.WithTimeout(c.ctx, 12*time.Second)
	defer cancel()
	n := busyLoops(t, ctx)
	t.Logf("keeper %q; %d busy loops; owner %s; its loop stalled %s three times", keeper, n, owner, keepStall)
	time.Sleep(time.Second)
	for range 3 {
		c.signal(owner, syscall.SIGUSR2)
		time.Sleep(3 * time.Second)
	}
	cancel()
	time.Sleep(500 * time.Millisecond)
	for _, l := range logLines(c.daemons[owner])[lines:] {
		switch {
		case strings.Contains(l, `"msg":"heartbeat verdict"`) && strings.Contains(l, `"beating":false`):
			beatingFalse++
		case strings.Contains(l, "keeper") || strings.Contains(l, "busy on purpose"):
			t.Logf("%s: %s", owner, l)
		}
	}
	for name, dp := range c.daemons {
		m := countEvents(dp, "vip-acquired") + countEvents(dp, "vip-released") - before[name]
		if m > 0 {
			t.Logf("%s: %d VIP acquire/release events", name, m)
		}
		moves += m
	}
	t.Logf("owner %s: %d beating:false reports; %d VIP acquire/release events in all; owners now %v", owner, beatingFalse, moves, c.owners())
	return beatingFalse, moves
}
