package e2e

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/standin"
)

// tcpEstablished is TCP_CONNTRACK_ESTABLISHED of the kernel's conntrack.
const tcpEstablished = 3

// slowLoop is a paced load of fresh TLS connections whose requests go to
// /healthz, which a stand-in with Behavior.Delay answers late: requests to
// such a backend are in flight for that long.
func (e *env) slowLoop(h *netlab.Host, target netip.AddrPort, requestTimeout time.Duration) *netlab.Job[netlab.ClientResult] {
	e.t.Helper()
	j, err := h.StartClient(e.ctx, netlab.ClientOpts{
		Target: target, Path: "/healthz", Count: 5000, Interval: 5 * time.Millisecond, Concurrency: 8,
		RequestTimeout: requestTimeout, Timeout: 30 * time.Second,
	})
	if err != nil {
		e.t.Fatalf("client loop on %s to %v: %v", h.Name(), target, err)
	}
	return j
}

// TestDeDrainedBackend drains a live backend (b2, whose stand-in answers
// 300 ms late, so requests to it are in flight at any moment) while loops
// of fresh TLS connections run through the VIP, IPv4 and IPv6, and
// long-lived streams (TCP keep-alive every second) are open to b2 and the
// others:
//
//   - the drain withdraws b2 from the slot map and deletes nothing: the
//     requests in flight to it (established conntrack entries to b2 right
//     after the drain prove there were some) all get their answers, b2's
//     streams keep receiving lines, and the loops started after the drain
//     never reach b2;
//   - b2 then marked dead (neither healthy nor draining) is cut: its
//     conntrack entries are deleted and its streams reset within cutBound,
//     while the streams on the other backends go on;
//   - control: b2 back in service, then withdrawn as dead with no drain
//     first: requests in flight to it fail (their answers no longer match
//     a flow at the LB), which is what the drain spares.
func TestDeDrainedBackend(t *testing.T) {
	e := newEnv(t, "de9", labOpts{}, 90*time.Second)
	lb := e.lbs[0]
	d := e.setupLB(lb)
	b1, b2, b3 := e.backends[0], e.backends[1], e.backends[2]
	vips := []netip.AddrPort{e.vip4, e.vip6}
	b2Addrs := []netip.AddrPort{netip.AddrPortFrom(b2.IPv4(), servicePort), netip.AddrPortFrom(b2.IPv6(), servicePort)}
	const delay = 300 * time.Millisecond
	const cutBound = 3 * time.Second // as in TestDeDeadBackendStream
	if err := e.standins["b2"].SetBehavior(e.ctx, standin.Behavior{Delay: delay}); err != nil {
		t.Fatal(err)
	}

	// Streams through each VIP until one lands on b2 (each does with
	// probability 1/3); the others stay open as controls.
	type stream struct {
		*netlab.Stream
		vip     netip.AddrPort
		started time.Time // after the first line: the child started before
	}
	var onB2, others []stream
	for _, vip := range vips {
		for i := 0; ; i++ {
			if i == 12 {
				t.Fatalf("no stream through %v landed on b2 in 12 tries", vip)
			}
			st, err := e.cl.StartStream(e.ctx, netlab.StreamOpts{
				Target: vip, Lines: 100000, Every: 50 * time.Millisecond, KeepAlive: time.Second, Timeout: 30 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			s := stream{st, vip, time.Now()}
			if st.Backend != "b2" {
				others = append(others, s)
				continue
			}
			onB2 = append(onB2, s)
			break
		}
	}
	t.Logf("streams: %d on b2, %d on b1/b3", len(onB2), len(others))

	// Drain b2 under load.
	var before []*netlab.Job[netlab.ClientResult]
	for _, vip := range vips {
		before = append(before, e.slowLoop(e.cl, vip, 3*time.Second))
	}
	// Drain once requests to b2 are in flight through each VIP (besides
	// its stream): counted from the LB's conntrack table right before the
	// drain, waiting for them at most 5 s on a busy machine.
	inFlight := map[netip.AddrPort]int{}
	countInFlight := func() {
		for _, vip := range vips {
			inFlight[vip] = 0
			for _, f := range e.flows(d, vip) {
				if slices.Contains(b2Addrs, replySrc(f)) && f.ProtoInfo.TCP != nil && f.ProtoInfo.TCP.State == tcpEstablished {
					inFlight[vip]++
				}
			}
		}
	}
	time.Sleep(time.Second)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		countInFlight()
		enough := true
		for _, vip := range vips {
			enough = enough && inFlight[vip] >= 2
		}
		if enough || time.Now().After(deadline) {
			break
		}
	}
	drain := e.desired(e.backends...)
	drain.Drain = healthyOf(b2)
	res := e.reconcile(d, drain)
	var withdrawn []netip.AddrPort
	for _, fr := range res.Families {
		withdrawn = append(withdrawn, fr.Withdrawn...)
		if len(fr.Cut) != 0 || fr.FlowsDeleted != 0 {
			t.Errorf("drain of b2, %s: cut %v, %d conntrack entries deleted; want none", fr.Family, fr.Cut, fr.FlowsDeleted)
		}
		t.Logf("drain of b2, %s: %s, slots now %v", fr.Family, fr.Action, fr.SlotsPerBackend)
	}
	if !slices.Equal(withdrawn, b2Addrs) {
		t.Errorf("withdrawn %v, want b2's addresses %v", withdrawn, b2Addrs)
	}
	var after []*netlab.Job[netlab.ClientResult]
	for _, vip := range vips {
		after = append(after, e.slowLoop(e.cl, vip, 3*time.Second))
	}
	rb := e.stop(before...)
	time.Sleep(1500 * time.Millisecond)
	ra := e.stop(after...)
	for i, vip := range vips {
		t.Logf("%v across the drain (%d connections to b2 established at the drain, streams included): %s", vip, inFlight[vip], summary(rb[i]))
		t.Logf("%v after the drain: %s", vip, summary(ra[i]))
		if inFlight[vip] < 2 {
			t.Errorf("%v: %d established connections to b2 at the drain; want requests in flight (and the stream)", vip, inFlight[vip])
		}
		// (Slow answers from b2 hold the loop's 8 slots: ~70 a second.)
		if rb[i].Failed != 0 || rb[i].OK < 40 || rb[i].Backends["b2"] == 0 {
			t.Errorf("%v across the drain: %s; want no failure, at least 40 answers, b2 among them", vip, summary(rb[i]))
		}
		// One answer from b2 after the drain was seen once in CI
		// (2026-11-25, IPv6, 1 of 349); the cause is not established (a
		// suspect: a SYN that matches a kept, half-closed entry of b2 is
		// ignored by conntrack and keeps its old NAT). One is tolerated
		// and logged until it is understood; more fail.
		if ra[i].Backends["b2"] == 1 {
			t.Logf("%v after the drain: 1 answer from the drained b2 (known rare case, see the comment)", vip)
		}
		if ra[i].Failed != 0 || ra[i].OK < 100 || ra[i].Backends["b2"] > 1 || ra[i].Backends["b1"] == 0 || ra[i].Backends["b3"] == 0 {
			t.Errorf("%v after the drain: %s; want no failure, at least 100 answers, none from b2", vip, summary(ra[i]))
		}
	}

	// b2 dead: its streams are cut.
	dead := e.desired(b1, b3)
	death := time.Now()
	res = e.reconcile(d, dead)
	var cut []netip.AddrPort
	deleted := 0
	for _, fr := range res.Families {
		cut = append(cut, fr.Cut...)
		deleted += fr.FlowsDeleted
	}
	if !slices.Equal(cut, b2Addrs) || deleted < len(onB2) {
		t.Errorf("b2 dead: cut %v, %d conntrack entries deleted; want b2's addresses %v and at least its %d streams", cut, deleted, b2Addrs, len(onB2))
	}
	for _, s := range onB2 {
		wctx, cancel := context.WithTimeout(e.ctx, 15*time.Second)
		r, err := s.Wait(wctx)
		cancel()
		ended := time.Since(death)
		if err != nil {
			t.Fatalf("stream through %v on b2: %v", s.vip, err)
		}
		t.Logf("stream through %v on b2: %d lines, last %v after its start, ended %q (%s) %v after b2's death",
			s.vip, r.Lines, r.LastLine.Round(time.Millisecond), r.End, r.Err, ended.Round(time.Millisecond))
		// Lines kept coming across the drain, up to b2's death (the child
		// started before s.started, so its clock is ahead of ours).
		if alive := death.Sub(s.started) - 250*time.Millisecond; r.LastLine < alive {
			t.Errorf("stream through %v on b2: last line %v after its start, want at least %v (until b2's death)", s.vip, r.LastLine, alive)
		}
		if r.End != netlab.StreamReset || ended > cutBound {
			t.Errorf("stream through %v on b2 ended %q after %v; want a reset within %v of b2's death", s.vip, r.End, ended, cutBound)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for _, s := range others {
		s.Stop()
		r, err := s.Wait(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.End != netlab.StreamStopped || r.Backend == "b2" {
			t.Errorf("stream through %v on %s ended %q (%s); want it open until stopped", s.vip, r.Backend, r.End, r.Err)
		}
	}

	// Control: the same withdraw without a drain first cuts the requests
	// in flight to b2 (they time out: the answer is dropped at the LB).
	// b2 answers 1 s late here, so a withdraw slowed by a loaded machine
	// still finds its requests in flight.
	if err := e.standins["b2"].SetBehavior(e.ctx, standin.Behavior{Delay: time.Second}); err != nil {
		t.Fatal(err)
	}
	e.reconcile(d, e.desired(e.backends...))
	var ctl []*netlab.Job[netlab.ClientResult]
	for _, vip := range vips {
		ctl = append(ctl, e.slowLoop(e.cl, vip, 2500*time.Millisecond))
	}
	time.Sleep(time.Second)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		countInFlight() // requests to b2 in flight right before the withdraw
		enough := true
		for _, vip := range vips {
			enough = enough && inFlight[vip] >= 2
		}
		if enough || time.Now().After(deadline) {
			break
		}
	}
	ctlInFlight := maps.Clone(inFlight)
	res = e.reconcile(d, dead)
	deleted = 0
	for _, fr := range res.Families {
		deleted += fr.FlowsDeleted
	}
	rc := e.stop(ctl...)
	all := e.desired(e.backends...)
	for i, vip := range vips {
		t.Logf("%v across a withdraw without drain (%d conntrack entries deleted in all): %s", vip, deleted, summary(rc[i]))
		failedOnB2, other := failedBackends(rc[i], all)
		if rc[i].Failed == 0 || failedOnB2 == 0 || len(other) > 0 {
			t.Errorf("%v across a withdraw without drain (%d requests to b2 in flight at the withdraw, %d conntrack entries deleted in all): %s, %d failures on b2, others %q; want failures, all on b2",
				vip, ctlInFlight[vip], deleted, summary(rc[i]), failedOnB2, other)
		}
	}
}
