package bench

// The sections that run every system with a VIP at the same time, each
// in a lab of its own, so that they share the same minutes of the
// machine: the idle cost at 3 and at 5 peers, and the false-failover soak (both
// cores saturated by busy loops and 1 % loss on every LB host, the VIP
// moves counted from the kernels' address events). Their namespaces
// start with "bnx".

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// soakResult is one system's false-failover soak.
type soakResult struct {
	Seconds float64 `json:"seconds"`
	// Moves counts the VIP added on an LB other than the one that held
	// it last (from lb1 on); Adds and Removes every address event.
	Moves   int `json:"vip_moves"`
	Adds    int `json:"vip_adds"`
	Removes int `json:"vip_removes"`
	// OwnersAfter are the LBs with the VIP when the soak ended.
	OwnersAfter []string   `json:"owners_after"`
	Events      []vipEvent `json:"events,omitempty"`
	LoadStart   float64    `json:"load1_start"`
	LoadEnd     float64    `json:"load1_end"`
	StealMS     float64    `json:"steal_ms"`
	Err         string     `json:"err,omitempty"`
}

// vipEvent is the VIP added to or removed from an LB's link.
type vipEvent struct {
	AtMS  float64 `json:"at_ms"`
	Host  string  `json:"host"`
	Added bool    `json:"added"`
}

// countMoves counts the moves in ev, the VIP first on first: an add on
// an LB other than the last one that got it.
func countMoves(first string, ev []vipEvent) (moves, adds, removes int) {
	owner := first
	for _, e := range ev {
		if !e.Added {
			removes++
			continue
		}
		adds++
		if e.Host != owner {
			moves++
			owner = e.Host
		}
	}
	return moves, adds, removes
}

// vipWatch records the VIP's address events on every LB of a stack.
type vipWatch struct {
	done   chan struct{}
	start  time.Time
	mu     sync.Mutex
	events []vipEvent
	wg     sync.WaitGroup
}

// watchVIP subscribes to address events on every LB.
func (s *stack) watchVIP() (*vipWatch, error) {
	w := &vipWatch{done: make(chan struct{}), start: time.Now()}
	for _, h := range s.lbs {
		ns, err := h.OpenNetNS()
		if err != nil {
			w.stop()
			return nil, err
		}
		ch := make(chan netlink.AddrUpdate, 64)
		err = netlink.AddrSubscribeWithOptions(ch, w.done, netlink.AddrSubscribeOptions{Namespace: &ns})
		ns.Close()
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("address events in %s: %w", h.Name(), err)
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for u := range ch {
				if a, ok := netip.AddrFromSlice(u.LinkAddress.IP); ok && a.Unmap() == s.vip {
					w.mu.Lock()
					w.events = append(w.events, vipEvent{AtMS: float64(time.Since(w.start)) / 1e6, Host: h.Name(), Added: u.NewAddr})
					w.mu.Unlock()
				}
			}
		}()
	}
	return w, nil
}

// stop ends the subscriptions and returns the events in order.
func (w *vipWatch) stop() []vipEvent {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ev := slices.Clone(w.events)
	slices.SortStableFunc(ev, func(a, b vipEvent) int {
		switch {
		case a.AtMS < b.AtMS:
			return -1
		case a.AtMS > b.AtMS:
			return 1
		}
		return 0
	})
	return ev
}

// sideBySide is one lab per system, all running at once.
type sideBySide struct {
	systems []system
	stacks  []*stack
	errs    []error
}

// buildSideBySide builds a lab of n LBs for every system, one after the
// other (no lab is built while another's processes start), and starts
// each system in it. A system that does not start keeps its error.
func buildSideBySide(b *testing.B, ctx context.Context, syss []system, n int) *sideBySide {
	sb := &sideBySide{}
	for _, sys := range syss {
		s := newStackN(b, ctx, sidePrefix(sys), n)
		sb.systems = append(sb.systems, sys)
		sb.stacks = append(sb.stacks, s)
		sb.errs = append(sb.errs, s.startSystem(sys))
	}
	return sb
}

// sidePrefix is a system's namespace prefix in the side-by-side sections.
func sidePrefix(sys system) string { return "bnx" + sys.Prefix[len(sys.Prefix)-1:] }

// idleAtOnce measures every started system's idle cost over d, all at
// the same time.
func (sb *sideBySide) idleAtOnce(d time.Duration) []*costResult {
	t0 := make([]map[int]procTicks, len(sb.stacks))
	for i, s := range sb.stacks {
		if sb.errs[i] == nil {
			t0[i] = s.lbTicks()
		}
	}
	time.Sleep(d)
	out := make([]*costResult, len(sb.stacks))
	for i, s := range sb.stacks {
		if sb.errs[i] != nil {
			continue
		}
		out[i] = costOver(t0[i], s.lbTicks(), d, len(s.lbs))
	}
	return out
}

// soakLossOneIn is the soak's loss: one packet in 100 in and out of
// every LB host.
const soakLossOneIn = 100

// soak saturates both cores and puts 1 % loss on every LB of every
// started system for d, and counts each one's VIP moves.
func (sb *sideBySide) soak(ctx context.Context, d time.Duration) []*soakResult {
	out := make([]*soakResult, len(sb.stacks))
	watches := make([]*vipWatch, len(sb.stacks))
	load0, steal0 := load1(), stealMS()
	for i, s := range sb.stacks {
		out[i] = &soakResult{Seconds: d.Seconds(), LoadStart: load0}
		if sb.errs[i] != nil {
			out[i].Err = "start: " + sb.errs[i].Error()
			continue
		}
		if err := s.waitOwner(firstOwner, 300*time.Millisecond, 30*time.Second); err != nil {
			out[i].Err = "before the soak: " + err.Error()
			continue
		}
		w, err := s.watchVIP()
		if err != nil {
			out[i].Err = err.Error()
			continue
		}
		watches[i] = w
		for _, h := range s.lbs {
			if err := setLoss(h, soakLossOneIn); err != nil {
				out[i].Err = err.Error()
			}
		}
	}
	stop, err := busyLoops(ctx, 2, d+30*time.Second)
	if err == nil {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		stop()
	}
	load, steal := load1(), stealMS()-steal0
	for i, s := range sb.stacks {
		if watches[i] == nil {
			continue
		}
		for _, h := range s.lbs {
			_ = setLoss(h, 0)
		}
		time.Sleep(100 * time.Millisecond)
		ev := watches[i].stop()
		r := out[i]
		r.LoadEnd, r.StealMS = load, steal
		r.Moves, r.Adds, r.Removes = countMoves(firstOwner, ev)
		if len(ev) > 20 {
			ev = ev[:20]
		}
		r.Events = ev
		r.OwnersAfter, _ = s.owners()
		if err != nil {
			r.Err = "busy loops: " + err.Error()
		}
	}
	return out
}

// runSideBySide runs the side-by-side sections for the VIP systems of
// syss and files their figures into res.
func runSideBySide(b *testing.B, ctx context.Context, syss []system, p suiteParams, sel selection, res *results) {
	var vip []system
	for _, sys := range syss {
		if sys.VIP {
			vip = append(vip, sys)
		}
	}
	if len(vip) == 0 {
		return
	}
	t0 := time.Now()
	if sel.section(secIdle5) {
		b.Run("idle-5-peers", func(b *testing.B) {
			sb := buildSideBySide(b, ctx, vip, 5)
			for i, c := range sb.idleAtOnce(p.IdleFor) {
				r := res.systemFor(sb.systems[i])
				r.Idle5 = c
				if sb.errs[i] != nil {
					r.Errors = append(r.Errors, "idle at 5 peers: start: "+sb.errs[i].Error())
				} else {
					b.Logf("%s idle at 5 peers: %.2f %% of a core per node, %.1f MB", sb.systems[i].Name, c.CPUPercentPerNode, c.RSSMBPerNode)
				}
			}
		})
		res.addSeconds(secIdle5, time.Since(t0))
		b.Logf("idle at 5 peers took %s (labs built, set up and torn down included), load %s", time.Since(t0).Round(time.Second), loadavg())
		t0 = time.Now()
	}
	if sel.section(secIdle) || sel.section(secFalse) {
		b.Run("three-peers", func(b *testing.B) {
			t0 := time.Now()
			sb := buildSideBySide(b, ctx, vip, 3)
			res.addSeconds("setup", time.Since(t0))
			if sel.section(secIdle) {
				t0 := time.Now()
				for i, c := range sb.idleAtOnce(p.IdleFor) {
					r := res.systemFor(sb.systems[i])
					if sb.errs[i] != nil {
						r.Errors = append(r.Errors, "idle: start: "+sb.errs[i].Error())
						continue
					}
					r.Idle = c
					b.Logf("%s idle at 3 peers: %.2f %% of a core per node, %.1f MB", sb.systems[i].Name, c.CPUPercentPerNode, c.RSSMBPerNode)
				}
				res.addSeconds(secIdle, time.Since(t0))
			}
			if sel.section(secFalse) {
				t0 := time.Now()
				for i, r := range sb.soak(ctx, p.SoakFor) {
					res.systemFor(sb.systems[i]).FalseFailovers = r
					b.Logf("%s false failovers: %d moves in %.0f s (adds %d, removes %d), owners after %v, load %.2f -> %.2f %s",
						sb.systems[i].Name, r.Moves, r.Seconds, r.Adds, r.Removes, r.OwnersAfter, r.LoadStart, r.LoadEnd, r.Err)
				}
				res.addSeconds(secFalse, time.Since(t0))
			}
		})
		b.Logf("the side-by-side sections at 3 peers took %s (labs built and torn down included), load %s", time.Since(t0).Round(time.Second), loadavg())
	}
}
