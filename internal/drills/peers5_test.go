package drills

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/status"
)

// peers5Env enables TestFivePeers: a lab of nine namespaces and three
// faults in a row, too long for CI's serial phase.
const peers5Env = "EPCONSOLE_DRILL_PEERS5"

// byPriority returns the LB names, highest priority first.
func byPriority(c *cluster) []string {
	var names []string
	for _, h := range c.lbs {
		names = append(names, h.Name())
	}
	sort.Slice(names, func(i, j int) bool { return priorities[names[i]] > priorities[names[j]] })
	return names
}

// waitOwners waits until the LBs holding the VIP are exactly want and
// returns how long that took.
func (c *cluster) waitOwners(timeout time.Duration, want ...string) time.Duration {
	c.t.Helper()
	start := time.Now()
	var last []string
	for time.Since(start) < timeout {
		if last = c.owners(); slices.Equal(last, want) {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, d := range c.daemons {
		c.dumpLog(d)
	}
	c.t.Fatalf("owners %v after %s, want %v", last, timeout, want)
	return 0
}

// keepLogs copies the daemons' full logs (debug lines included) out of
// the test's temporary directory when the test fails (or with
// EPCONSOLE_DRILL_LOGS set), and says where.
func (c *cluster) keepLogs() {
	c.t.Cleanup(func() {
		if !c.t.Failed() && os.Getenv("EPCONSOLE_DRILL_LOGS") == "" {
			return
		}
		dst, err := os.MkdirTemp("", "epconsole-"+c.t.Name()+"-")
		if err != nil {
			c.t.Logf("keeping the logs: %v", err)
			return
		}
		for name, d := range c.daemons {
			if b, err := os.ReadFile(d.logPath); err == nil {
				_ = os.WriteFile(filepath.Join(dst, name+".log"), b, 0o644)
			}
		}
		c.t.Logf("the daemons' full logs are kept in %s", dst)
	})
}

// acquired counts every LB's vip-acquired events.
func (c *cluster) acquired() map[string]int {
	out := map[string]int{}
	for name, d := range c.daemons {
		out[name] = countEvents(d, "vip-acquired")
	}
	return out
}

// TestFivePeers: five LBs (majority 3). Exactly one owner, which every
// peer's status names. kill -9 of the owner: the next in line alone takes
// over (the others acquire nothing); the restarted daemon does not
// reclaim. Then the owner and the highest-priority peer are cut off
// together from the other three (2 against 3, nft drop rules with the
// links up): the minority holds nothing (the owner releases for want of a
// majority, the highest priority never claims), the majority elects its
// own highest; healing moves the VIP no further.
func TestFivePeers(t *testing.T) {
	if os.Getenv(peers5Env) == "" {
		t.Skipf("set %s=1 for the five-peer drill; off by default (nine namespaces, three faults)", peers5Env)
	}
	c, owner := newClusterWith(t, "cl5", 120*time.Second, clusterOpts{peers: 5})
	c.keepLogs()
	order := byPriority(c)
	if owner != order[0] {
		t.Skipf("owner %s, not %s (a late start); the drill's order assumes the highest priority first", owner, order[0])
	}

	// 1. Exactly one owner, by the addresses and by every peer's status.
	c.holdsOnly(time.Second, owner, "five peers up")
	for _, h := range c.lbs {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		s, err := status.NewClient(c.socket(h.Name())).Status(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s status: %v", h.Name(), err)
		}
		e := s.Election
		if e.Owner != owner || e.QuorumPeers != 5 || e.QuorumNeed != 3 || e.QuorumHave != 5 {
			t.Errorf("%s status: owner %q, quorum %d/%d of %d; want %s, 5/3 of 5", h.Name(), e.Owner, e.QuorumHave, e.QuorumNeed, e.QuorumPeers, owner)
		}
	}

	// 2. kill -9 of the owner: the next in line takes over, alone.
	next := order[1]
	before := c.acquired()
	loop, err := c.client.StartTCPConnect(c.ctx, netlab.TCPConnectOpts{
		Target: netipPort(c), Every: 5 * time.Millisecond, Timeout: 20 * time.Millisecond, Duration: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	// The killed daemon's address stays in its kernel (TestOwnerCrash):
	// the takeover is when the successor has it too.
	killed := time.Now()
	c.signal(owner, syscall.SIGKILL)
	took := c.waitOwners(5*time.Second, owner, next)
	res, err := loop.Wait(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kill -9 of %s at %s: %s holds the VIP %s later; client dark time %s (%d of %d connects failed)",
		owner, killed.UTC().Format("15:04:05.000"), next, took.Round(time.Millisecond), res.LongestGap.Round(time.Millisecond), res.Failures, res.Attempts)
	if res.LongestGap >= time.Second || res.LastSuccess <= res.LastFailure {
		t.Errorf("client dark time %s (last success %s, last failure %s), want < 1 s and recovered", res.LongestGap, res.LastSuccess, res.LastFailure)
	}
	// Alone among the living for a second, and nobody else ever claimed.
	end := time.Now().Add(time.Second)
	for time.Now().Before(end) {
		if o := c.owners(); !slices.Equal(o, []string{owner, next}) && !slices.Equal(o, []string{next}) {
			t.Fatalf("owners %v after the kill of %s, want only %s among the living", o, owner, next)
		}
		time.Sleep(25 * time.Millisecond)
	}
	after := c.acquired()
	for _, lb := range order[2:] {
		if after[lb] != before[lb] {
			t.Errorf("%s acquired the VIP after the kill of %s; only %s should have", lb, owner, next)
		}
	}
	if after[next] != before[next]+1 {
		t.Errorf("%s: %d vip-acquired events after the kill, want 1", next, after[next]-before[next])
	}

	// The restarted daemon removes its stale address and does not reclaim.
	c.start(c.lab.Host(owner))
	t.Logf("restarted %s dropped its stale VIP address %s after the start", owner, c.waitOwners(8*time.Second, next).Round(time.Millisecond))
	c.holdsOnly(2*time.Second, next, "after the restart of "+owner)

	// 3. 2 against 3: the owner and the highest priority (the restarted
	// first owner) cut off from the other three.
	minority := []string{next, owner}
	var majority []*netlab.Host
	for _, name := range order[2:] {
		majority = append(majority, c.lab.Host(name))
	}
	c.waitLog(c.daemons[owner], 10*time.Second, `"msg":"decision"`, `"owner":"`+next+`"`)
	before = c.acquired()
	cut := time.Now()
	heal := []func(){partition(t, c.lab.Host(next), majority...), partition(t, c.lab.Host(owner), majority...)}
	elected := order[2]
	took = c.waitOwners(5*time.Second, elected)
	t.Logf("%v cut off from %v at %s: %s owns the VIP alone %s later", minority, order[2:], cut.UTC().Format("15:04:05.000"), elected, took.Round(time.Millisecond))
	if !logHas(c.daemons[next], `"kind":"vip-released"`, "no majority") {
		t.Errorf("%s did not release the VIP for want of a majority", next)
	}
	c.holdsOnly(3*time.Second, elected, "2 against 3")
	c.waitLog(c.daemons[owner], 5*time.Second, `"msg":"decision"`, "no majority")
	after = c.acquired()
	for _, lb := range minority {
		if after[lb] != before[lb] {
			t.Errorf("%s, in the minority, acquired the VIP %d times", lb, after[lb]-before[lb])
		}
	}
	for _, lb := range order[3:] {
		if after[lb] != before[lb] {
			t.Errorf("%s acquired the VIP; the majority's highest, %s, should have", lb, elected)
		}
	}

	// 4. Heal: no further move.
	for _, h := range heal {
		h()
	}
	c.holdsOnly(5*time.Second, elected, "after healing")
	healed := c.acquired()
	for name, n := range healed {
		if n != after[name] {
			t.Errorf("%s acquired the VIP %d times after the heal, want 0", name, n-after[name])
		}
	}
}
