package drills

import (
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
)

// The connection sync drills (established connections across a
// VIP move): the owner streams its conntrack entries to the peers, so
// established connections keep going when the VIP moves. Each has a
// control with the sync switched off (--no-conn-sync), where they die.

// syncStreams is the number of long-lived streams of a drill.
const syncStreams = 10

// startStreams opens n streams through the VIP: 60 lines 100 ms apart
// (6 s), bounded to 11 s.
func startStreams(t *testing.T, c *cluster, n int) []*netlab.Stream {
	t.Helper()
	var out []*netlab.Stream
	for range n {
		s, err := c.client.StartStream(c.ctx, netlab.StreamOpts{Target: netipPort(c), Lines: 60, Every: 100 * time.Millisecond, Timeout: 11 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// waitStreams waits for the streams and returns how many got every line.
func waitStreams(t *testing.T, c *cluster, streams []*netlab.Stream) int {
	t.Helper()
	complete := 0
	for i, s := range streams {
		res, err := s.Wait(c.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.End == netlab.StreamComplete {
			complete++
		} else {
			t.Logf("stream %d (via %s) ended %s after %d lines: %s", i, s.Backend, res.End, res.Lines, res.Err)
		}
	}
	return complete
}

// TestConnSyncOwnerFailure: 10 long-lived streams through the VIP; the
// owner's cable is pulled; the VIP moves and every stream gets all its
// lines. Control without the sync: the streams die.
func TestConnSyncOwnerFailure(t *testing.T) {
	var kept, control int
	t.Run("sync", func(t *testing.T) {
		kept = syncOwnerFailure(t, "clw")
		if kept != syncStreams {
			t.Errorf("%d of %d streams survived the owner failure, want all", kept, syncStreams)
		}
	})
	t.Run("control-no-conn-sync", func(t *testing.T) {
		control = syncOwnerFailure(t, "clwc", "--no-conn-sync")
	})
	t.Logf("streams surviving the owner failure: %d of %d with the sync, %d of %d without (control)", kept, syncStreams, control, syncStreams)
	if !t.Failed() && control >= kept {
		t.Errorf("the control without the sync kept %d streams, the sync %d: the drill does not show what the sync does", control, kept)
	}
}

func syncOwnerFailure(t *testing.T, prefix string, args ...string) int {
	c, owner := newCluster(t, prefix, 90*time.Second, args...)
	streams := startStreams(t, c, syncStreams)
	time.Sleep(time.Second) // the entries reach the peers in milliseconds
	if err := c.lab.Host(owner).SetCable(false); err != nil {
		t.Fatal(err)
	}
	pulled := time.Now()
	newOwner := c.waitOneOwnerAmong(5*time.Second, owner)
	t.Logf("owner %s cable pulled; new owner %s after %s", owner, newOwner, time.Since(pulled).Round(time.Millisecond))
	n := waitStreams(t, c, streams)
	t.Logf("%v: %d of %d streams complete across the owner failure", args, n, syncStreams)
	return n
}

// TestConnSyncHandoff: SIGTERM on the owner with a loop of fresh TLS
// connections (4 in flight) and 4 streams running: every stream gets all
// its lines. Control without the sync: the streams die.
//
// No request may fail across the handoff.
func TestConnSyncHandoff(t *testing.T) {
	var kept, control int
	t.Run("sync", func(t *testing.T) {
		var failed int
		kept, failed = syncHandoff(t, "cly")
		if failed > 0 {
			t.Errorf("%d requests failed across the handoff, want 0", failed)
		}
		if kept != 4 {
			t.Errorf("%d of 4 streams survived the handoff, want all", kept)
		}
	})
	t.Run("control-no-conn-sync", func(t *testing.T) {
		control, _ = syncHandoff(t, "clyc", "--no-conn-sync")
	})
	t.Logf("streams surviving the handoff: %d of 4 with the sync, %d of 4 without (control)", kept, control)
	if !t.Failed() && control >= kept {
		t.Errorf("the control without the sync kept %d streams, the sync %d: the drill does not show what the sync does", control, kept)
	}
}

func syncHandoff(t *testing.T, prefix string, args ...string) (kept, failed int) {
	c, owner := newCluster(t, prefix, 90*time.Second, args...)
	streams := startStreams(t, c, 4)
	o := c.loadOpts(400, 10*time.Millisecond)
	o.Concurrency = 4
	job, err := c.client.StartClient(c.ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	c.signal(owner, syscall.SIGTERM)
	if err := c.waitExit(c.daemons[owner], 10*time.Second); err != nil {
		c.dumpLog(c.daemons[owner])
		t.Fatalf("daemon %s after SIGTERM: %v, want a clean exit", owner, err)
	}
	res, err := job.Wait(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	newOwner := c.waitOneOwnerAmong(5*time.Second, owner)
	t.Logf("%v: SIGTERM on %s, new owner %s; requests: %d attempts, ok %d, failed %d %v", args, owner, newOwner, res.Attempts, res.OK, res.Failed, res.Errors)
	if res.Attempts < 300 || res.Incomplete {
		t.Errorf("only %d attempts (incomplete %v): the load did not run across the handoff", res.Attempts, res.Incomplete)
	}
	kept = waitStreams(t, c, streams)
	t.Logf("%v: %d of 4 streams complete across the handoff", args, kept)
	return kept, res.Failed
}
