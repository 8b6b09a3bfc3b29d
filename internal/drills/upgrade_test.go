package drills

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/status"
)

// The rolling-upgrade drill: a three-peer cluster runs a binary built at an
// older commit (upgradebin_test.go) and is upgraded to the binary under test
// one peer at a time, under load: SIGTERM, the binary file replaced, the
// daemon started again with the same config. Backups go first, the owner
// last, so the VIP moves once. Every step must keep every request through
// the VIP answered and move the VIP at most once. While old and new run side
// by side each step also checks the wire formats both ways: every peer sees
// every other alive by gossip (node metadata decoded) and fresh by
// heartbeat, with the same config digest, and no daemon logs an undecodable
// peer; after the first step a backend drained through the upgraded peer
// and undrained through an old one shows so on every peer (the drained set
// between releases); streams opened just before the owner's step, whose
// entries reach the upgraded backups only through the connection sync from
// the owner on the other binary, must survive that step; and long-lived
// streams opened before the first step must be alive at the end. The full
// drill then rolls back (new to old, the same order), so the sync runs from
// a new owner to old peers too, and repeats the upgrade with --no-conn-sync
// as the control: there the owner's step breaks the streams.

// upgradeStreams is the number of streams of each set.
const upgradeStreams = 4

// upgradeStep is what one step of a rolling upgrade measured.
type upgradeStep struct {
	LB, To         string
	Attempts, Fail int
	Errors         []netlab.TimedError
	Moves          int
	Owners         []string // the single owners seen in order
	// Overlap is how long two LBs held the VIP at once (a handoff makes
	// before it breaks: the old owner lets go once it sees the new claim),
	// NoOwner how long none did.
	Overlap, NoOwner time.Duration
	Took             time.Duration // SIGTERM to every peer fresh on every peer
}

func (s upgradeStep) String() string {
	return fmt.Sprintf("%s -> %s: %d requests, %d failed; VIP moves %d (owners %v, none for %s, two for %s); SIGTERM to rejoined %s",
		s.LB, s.To, s.Attempts, s.Fail, s.Moves, s.Owners, s.NoOwner.Round(time.Millisecond), s.Overlap.Round(time.Millisecond), s.Took.Round(100*time.Millisecond))
}

// TestRollingUpgrade upgrades a cluster from the old binary to the binary
// under test (then, in the full drill, back, and the control).
func TestRollingUpgrade(t *testing.T) {
	old, from := oldBinary(t)
	full := os.Getenv(upgradeDrillEnv) == "1"
	t.Logf("upgrading from %s to %s", from, epconsoleBin)

	var kept, control, opened, controlOpened int
	t.Run("upgrade", func(t *testing.T) {
		r := newRoll(t, "clu", old)
		r.startStreams()
		r.roll(epconsoleBin, "new")
		if full {
			r.roll(old, "old")
		}
		r.stopStreams()
		kept, opened = r.kept, r.opened
	})
	if !full {
		t.Logf("short version (%s given): the rollback and the control run with %s=1", upgradeBinEnv, upgradeDrillEnv)
		return
	}
	t.Run("control-no-conn-sync", func(t *testing.T) {
		r := newRoll(t, "cluc", old, "--no-conn-sync")
		r.control = true
		r.startStreams()
		r.roll(epconsoleBin, "new")
		r.stopStreams()
		control, controlOpened = r.kept, r.opened
	})
	t.Logf("streams alive across the rolling upgrade: %d of %d with the connection sync, %d of %d without (control)", kept, opened, control, controlOpened)
	if !t.Failed() && control >= kept {
		t.Errorf("the control without the sync kept %d streams, the drill %d: the drill does not show that it watches the streams", control, kept)
	}
}

// roll is one cluster being upgraded.
type roll struct {
	t       *testing.T
	c       *cluster
	bins    map[string]string // each LB's installed binary
	streams []*netlab.Stream
	// kept of opened streams were alive when stopped.
	kept, opened int
	control      bool
	steps        []upgradeStep
}

// newRoll builds a cluster whose LBs run old, each from a binary file of its
// own, after checking that both binaries accept the configs.
func newRoll(t *testing.T, prefix, old string, args ...string) *roll {
	r := &roll{t: t, bins: map[string]string{}}
	saved := epconsoleBin
	t.Cleanup(func() { epconsoleBin = saved })
	c, owner := newClusterWith(t, prefix, 8*time.Minute, clusterOpts{args: args, before: func(c *cluster) {
		for _, h := range c.lbs {
			cfg := filepath.Join(c.dir, h.Name()+".hcl")
			checkConfigAccepted(t, old, cfg)
			checkConfigAccepted(t, saved, cfg)
			bin := filepath.Join(c.dir, h.Name()+"-bin", "epconsole")
			if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := copyBinary(old, bin); err != nil {
				t.Fatal(err)
			}
			r.bins[h.Name()] = bin
		}
		// c.start runs epconsoleBin: the first start runs every LB from
		// lb1's copy of old (a copy renamed over later leaves a running
		// process its inode); each restart runs the LB's own file.
		epconsoleBin = r.bins["lb1"]
	}})
	epconsoleBin = saved
	r.c = c
	t.Logf("cluster up on the old binary; owner %s", owner)
	r.waitWire("the old cluster", 20*time.Second)
	return r
}

// startStreams opens the long-lived streams through the VIP, kept across
// every step and stopped at the end.
func (r *roll) startStreams() { r.streams = r.openStreams() }

// openStreams opens upgradeStreams streams through the VIP: a line every
// 100 ms for up to 6 minutes, until stopped.
func (r *roll) openStreams() []*netlab.Stream {
	var out []*netlab.Stream
	for range upgradeStreams {
		s, err := r.c.client.StartStream(r.c.ctx, netlab.StreamOpts{Target: netipPort(r.c), Lines: 3600, Every: 100 * time.Millisecond, Timeout: 6 * time.Minute})
		if err != nil {
			r.t.Fatal(err)
		}
		out = append(out, s)
	}
	time.Sleep(time.Second) // the entries reach the peers in milliseconds
	return out
}

// stopStreams stops the long-lived streams (once).
func (r *roll) stopStreams() {
	if r.streams != nil {
		r.closeStreams(r.streams, "opened before the first step, across every step")
		r.streams = nil
	}
}

// closeStreams stops streams and counts how many were still exchanging
// lines: stopped by the drill, not ended by a reset or EOF. A dead one
// fails the drill (not the control). what says which streams they are.
func (r *roll) closeStreams(streams []*netlab.Stream, what string) {
	kept := 0
	for i, s := range streams {
		s.Stop()
		res, err := s.Wait(r.c.ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		if res.End == netlab.StreamStopped && res.Ended-res.LastLine < 2*time.Second {
			kept++
			continue
		}
		msg := fmt.Sprintf("stream %d %s (via %s) ended %s after %d lines at %s (last line at %s): %s", i, what, s.Backend, res.End, res.Lines, res.Ended.Round(time.Millisecond), res.LastLine.Round(time.Millisecond), res.Err)
		if r.control {
			r.t.Log(msg)
		} else {
			r.t.Error(msg + "; want it alive")
		}
	}
	r.kept += kept
	r.opened += len(streams)
	r.t.Logf("streams %s: %d of %d alive", what, kept, len(streams))
}

// roll upgrades (or rolls back) every LB to bin, backups first, the owner
// last. name is what the figures call bin.
func (r *roll) roll(bin, name string) {
	r.t.Helper()
	owner := r.c.waitOneOwner(10*time.Second, "")
	var order []string
	for _, h := range r.c.lbs {
		if h.Name() != owner {
			order = append(order, h.Name())
		}
	}
	slices.Reverse(order) // the weakest backup first
	order = append(order, owner)
	var mixed []*netlab.Stream
	for i, lb := range order {
		if i == len(order)-1 {
			// Streams whose entries reach the backups only from an
			// owner on the other binary: across the owner's step they
			// live on the connection sync between the releases (the
			// long-lived streams were synced before the cluster was
			// mixed, and a restart leaves the kernel's entries).
			mixed = r.openStreams()
		}
		st := r.step(lb, bin, name)
		r.steps = append(r.steps, st)
		r.t.Logf("step %d: %s", len(r.steps), st)
		if !r.control && st.Fail > 0 {
			r.t.Errorf("step %d (%s to %s): %d of %d requests failed, want 0: %v", len(r.steps), lb, name, st.Fail, st.Attempts, st.Errors)
		}
		if st.Moves > 1 {
			r.t.Errorf("step %d (%s to %s): the VIP moved %d times (owners %v), want at most once", len(r.steps), lb, name, st.Moves, st.Owners)
		}
		if mixed != nil {
			r.closeStreams(mixed, fmt.Sprintf("opened with %s on %s and the owner not, across the owner's step", strings.Join(order[:i], ", "), name))
			mixed = nil
		}
		if r.t.Failed() {
			r.stopStreams() // how the long-lived streams fared up to this step
			r.t.FailNow()   // the cleanup prints every daemon's log
		}
		if i == 0 {
			// Mixed now: lb runs bin, the others not yet.
			r.drainAcross(lb, order[1])
		}
	}
}

// step replaces lb's binary with bin under load and waits until the
// cluster is whole again.
func (r *roll) step(lb, bin, name string) upgradeStep {
	r.t.Helper()
	c := r.c
	st := upgradeStep{LB: lb, To: name}
	o := c.loadOpts(100000, 10*time.Millisecond)
	o.Timeout = 2 * time.Minute
	job, err := c.client.StartClient(c.ctx, o)
	if err != nil {
		r.t.Fatal(err)
	}
	mon := r.watchOwner()
	time.Sleep(500 * time.Millisecond)

	start := time.Now()
	c.signal(lb, syscall.SIGTERM)
	if err := c.waitExit(c.daemons[lb], 15*time.Second); err != nil {
		r.t.Fatalf("step %s to %s: the daemon after SIGTERM: %v, want a clean exit", lb, name, err)
	}
	if err := copyBinary(bin, r.bins[lb]); err != nil {
		r.t.Fatal(err)
	}
	saved := epconsoleBin
	epconsoleBin = r.bins[lb]
	c.start(c.lab.Host(lb))
	epconsoleBin = saved
	r.waitWire(fmt.Sprintf("step %s to %s", lb, name), 30*time.Second)
	st.Took = time.Since(start)
	c.waitOneOwner(10*time.Second, "")
	time.Sleep(time.Second)

	job.Stop()
	res, err := job.Wait(c.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	st.Attempts, st.Fail, st.Errors = res.Attempts, res.Failed, res.Errors
	st.Owners, st.Overlap, st.NoOwner = mon()
	st.Moves = max(len(st.Owners)-1, 0)
	return st
}

// watchOwner samples which LBs hold the VIP every 20 ms until the returned
// function is called; that returns the sequence of single owners seen and
// how long two LBs held it at once and how long none did.
func (r *roll) watchOwner() func() (owners []string, overlap, none time.Duration) {
	ctx, cancel := context.WithCancel(r.c.ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var seq []string
	var two, empty time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := time.Now()
		for ctx.Err() == nil {
			var held []string
			ok := true
			for _, h := range r.c.lbs {
				has, err := r.c.checks[h.Name()].Has(ctx, netlab.HostLink, r.c.vip)
				ok = ok && err == nil
				if has {
					held = append(held, h.Name())
				}
			}
			now := time.Now()
			mu.Lock()
			switch {
			case !ok: // a failed read (ctx ended, say) tells nothing
			case len(held) == 0:
				empty += now.Sub(last)
			case len(held) == 1:
				if len(seq) == 0 || seq[len(seq)-1] != held[0] {
					seq = append(seq, held[0])
				}
			default:
				two += now.Sub(last)
			}
			mu.Unlock()
			last = now
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() ([]string, time.Duration, time.Duration) {
		cancel()
		wg.Wait()
		return seq, two, empty
	}
}

// waitWire waits until every LB's status shows every peer alive by gossip
// and fresh by heartbeat, with no config digest mismatch: old and new read
// each other's node metadata and heartbeat datagrams. It fails with each
// LB's last view, and the logs, when that does not happen within timeout,
// and fails when a daemon logged a peer's metadata as invalid.
func (r *roll) waitWire(what string, timeout time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	views := map[string]string{}
	for _, h := range r.c.lbs {
		cl := status.NewClient(r.c.socket(h.Name()))
		ok := false
		for !ok && time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(r.c.ctx, time.Second)
			s, err := cl.Status(ctx)
			cancel()
			if err != nil {
				views[h.Name()] = err.Error()
			} else {
				views[h.Name()] = wireView(s)
				ok = wireWhole(s, len(r.c.lbs))
			}
			if !ok {
				time.Sleep(100 * time.Millisecond)
			}
		}
		cl.Close()
		if !ok {
			r.t.Fatalf("%s: the peers do not all see each other alive and fresh within %s (wire formats?); last views:\n%s", what, timeout, formatViews(views))
		}
	}
	for _, d := range r.c.daemons {
		for _, l := range logLines(d) {
			// meta-invalid is a debug line ("cluster event"), a
			// config mismatch an event line.
			if strings.Contains(l, "meta-invalid") || containsAll(l, `"msg":"event"`, `"kind":"config-mismatch"`) {
				r.t.Fatalf("%s: %s logged a peer it cannot agree with: %s", what, d.name, l)
			}
		}
	}
}

// wireWhole reports whether s shows n peers, all alive and the others
// fresh, and no digest mismatch.
func wireWhole(s status.Snapshot, n int) bool {
	if len(s.Peers) != n || len(s.Election.Mismatch) > 0 {
		return false
	}
	for _, p := range s.Peers {
		if p.State != "alive" || (!p.Self && !p.Fresh) {
			return false
		}
	}
	return true
}

func wireView(s status.Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "owner %q mismatch %v;", s.Election.Owner, s.Election.Mismatch)
	for _, p := range s.Peers {
		fmt.Fprintf(&b, " %s(%s fresh=%v sw=%s cd=%s)", p.Name, p.State, p.Fresh, p.Version, p.Digest)
	}
	return b.String()
}

func formatViews(v map[string]string) string {
	var out []string
	for k, s := range v {
		out = append(out, "  "+k+": "+s)
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// drainAcross drains a backend through upgraded's socket and undrains it
// through other's (a peer still on the previous binary): the drained set
// travels between the releases both ways, as every peer's status must show.
func (r *roll) drainAcross(upgraded, other string) {
	r.t.Helper()
	const backend = "cp1"
	for _, a := range []struct {
		via     string
		drained bool
	}{{upgraded, true}, {other, false}} {
		cl := status.NewClient(r.c.socket(a.via))
		act := cl.Undrain
		if a.drained {
			act = cl.Drain
		}
		ctx, cancel := context.WithTimeout(r.c.ctx, 5*time.Second)
		err := act(ctx, backend)
		cancel()
		cl.Close()
		if err != nil {
			r.t.Fatalf("drained=%v for %s through %s's socket: %v", a.drained, backend, a.via, err)
		}
		start := time.Now()
		for _, h := range r.c.lbs {
			r.c.waitSnapshot(h.Name(), 10*time.Second, fmt.Sprintf("showing %s drained=%v (set through %s)", backend, a.drained, a.via), func(s status.Snapshot) bool {
				for _, b := range s.Backends {
					if b.Name == backend {
						return b.Drained == a.drained
					}
				}
				return false
			})
		}
		r.t.Logf("%s drained=%v through %s: on every peer within %s", backend, a.drained, a.via, time.Since(start).Round(10*time.Millisecond))
	}
}
