package drills

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/epconsole/epconsole/internal/netlab"
)

// clientNeighbour returns the hardware address the client's neighbour
// table has for the VIP ("" when it has none).
func clientNeighbour(t *testing.T, c *cluster) string {
	t.Helper()
	nh, l := hostLink(t, c.client)
	defer nh.Close()
	ns, err := nh.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.IP.Equal(c.vip.AsSlice()) && n.HardwareAddr != nil {
			return n.HardwareAddr.String()
		}
	}
	return ""
}

// waitClientNeighbour waits until the client's neighbour entry for the VIP
// is want and returns how long that took, or an error naming what it is.
func waitClientNeighbour(t *testing.T, c *cluster, want string, timeout time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	var got string
	for time.Since(start) < timeout {
		if got = clientNeighbour(t, c); got == want {
			return time.Since(start), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("the client's neighbour entry for the VIP is %q after %s, want %q", got, timeout, want)
}

// TestOwnerCrashPreempt: with preempt on, the owner daemon is killed
// (-9), a peer takes the VIP, and the restarted daemon takes it back. Its
// VIP address stayed on the host through the crash (the daemon adopts it
// at start), and it must still announce it when the election keeps it
// there: the client's neighbour entry for the VIP follows the VIP back.
// Without that announcement the client kept the successor's MAC (the
// successor forwards for it and TCP confirms the entry), so every flow
// went through a node that no longer held the VIP. The control: the entry
// followed the successor first, so it moves only on an announcement.
func TestOwnerCrashPreempt(t *testing.T) {
	c, owner := newClusterWith(t, "clr", 60*time.Second, clusterOpts{tweak: func(_ *cluster, _, hcl string) string {
		return strings.Replace(hcl, "node {\n", "node {\n  preempt = true\n", 1)
	}})
	macs := map[string]string{}
	for _, h := range c.lbs {
		macs[h.Name()] = macOf(t, h)
	}
	// Connects every 5 ms keep the client's neighbour entry in use.
	loop, err := c.client.StartTCPConnect(c.ctx, netlab.TCPConnectOpts{
		Target: netipPort(c), Every: 5 * time.Millisecond, Timeout: 20 * time.Millisecond, Duration: 15 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waitClientNeighbour(t, c, macs[owner], 2*time.Second); err != nil {
		t.Fatalf("before the crash: %v", err)
	}
	c.signal(owner, syscall.SIGKILL)
	successor := c.waitOneOwnerAmong(5*time.Second, owner)
	if _, err := waitClientNeighbour(t, c, macs[successor], 2*time.Second); err != nil {
		t.Fatalf("after the crash (control): %v", err)
	}
	time.Sleep(500 * time.Millisecond)

	c.start(c.lab.Host(owner))
	took := c.waitOwners(20*time.Second, owner)
	moved, err := waitClientNeighbour(t, c, macs[owner], time.Second)
	if err != nil {
		c.dumpLog(c.daemons[owner])
		t.Fatalf("after %s took the VIP back: %v", owner, err)
	}
	res, err := loop.Wait(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted %s owned the VIP again %s after its start; the client's neighbour entry followed %s later; connects: %d of %d failed, longest gap %s",
		owner, took.Round(time.Millisecond), moved.Round(time.Millisecond),
		res.Failures, res.Attempts, res.LongestGap.Round(time.Millisecond))
}
