// Package chaos runs fault campaigns against a lab (internal/lab), in the
// spirit of Jepsen's nemesis: a random sequence of faults drawn from a
// seed (kill -9 of a daemon, a paused owner, a link down, partitions both
// ways and one way, 1 % loss, both cores busy, a backend stopped, unready
// or slow, a peer restarted, a graceful handoff), one at a time, each held
// for a while and healed, under a client's connect loop and long-lived
// streams. An observer that is no part of epconsole (observer.go: a
// sniffer on the lab's switch, an ARP prober, the connect loop) records
// what the wire and the client see, and the invariants (invariants.go,
// slotmap.go) are checked on that record after every fault. A failing
// run prints the seed, the fault log and the observer's timeline. The
// campaign runs as a test: see docs/chaos.md.
package chaos

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/internal/lab"
	"github.com/epconsole/epconsole/internal/netlab"
)

// Options of a campaign.
type Options struct {
	Seed  uint64
	Count int
	// Kinds limits the faults drawn (default: all).
	Kinds []Kind
	// RecoveryBound: after each heal, connects through the VIP succeed
	// again within it (default DefaultRecoveryBound).
	RecoveryBound time.Duration
	// TwoMACBound: two MACs may answer for the VIP at once at most this
	// long (default DefaultTwoMACBound).
	TwoMACBound time.Duration
	// ProbeInterval is the daemons' health probe interval: a backend up
	// in every view is in every slot map within it (default 500 ms, the
	// lab's).
	ProbeInterval time.Duration
	// Streams is the number of long-lived streams held through each fault
	// (default 2; negative: none).
	Streams int
	// Logf receives the fault log as it happens (default: nothing).
	Logf func(format string, args ...any)
}

// Defaults of Options.
const (
	// DefaultRecoveryBound is the failover target after a heal.
	DefaultRecoveryBound = time.Second
	// DetectionTime is the heartbeat's detection time (interval × misses).
	DetectionTime = heartbeat.DefaultInterval * heartbeat.DefaultMisses
	// DefaultTwoMACBound is how long two hosts may answer for the VIP at
	// once: the heartbeat's detection time plus two of the observer's
	// probe periods. The owner's kernel answers ARP / NDP for the VIP only
	// while a lease that each of its beats saying "holding" renews for one
	// detection time runs (dataplane.LeaseBeats), so a paused or crashed
	// owner falls silent at most one detection time after its last beat,
	// which is the earliest its peers count it gone and a successor
	// claims; a woken owner's helper says "holding" again only after it
	// has read the beats that queued meanwhile (cluster/heartbeat,
	// leasehold.go). An owner cut off from its peers stops saying it
	// when its helper loses the majority, one detection time after the
	// cut, as the successor claims. What is left is the observer's
	// resolution: it sees an answer only at its probes, so each end of an
	// interval is known to one probe period. With the daemon's 150 ms
	// lease (--no-beat-lease) the bound is dataplane.DefaultLeaseTTL +
	// 2*ProbeEvery: set Options.TwoMACBound.
	DefaultTwoMACBound = DetectionTime + 2*ProbeEvery
	// settleAfterHeal is how long after a heal connects are watched.
	settleAfterHeal = 1500 * time.Millisecond
	// claimGap: a MAC silent for longer has stopped answering (ten probe
	// periods: a loaded machine delays the prober).
	claimGap = 10 * ProbeEvery
)

func (o *Options) defaults() {
	if o.RecoveryBound == 0 {
		o.RecoveryBound = DefaultRecoveryBound
	}
	if o.TwoMACBound == 0 {
		o.TwoMACBound = DefaultTwoMACBound
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = 500 * time.Millisecond
	}
	if o.Streams == 0 {
		o.Streams = 2
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// StepResult is what happened in one step.
type StepResult struct {
	Step
	N         int
	Target    string
	OwnerFrom string
	OwnerTo   string
	Start     time.Duration
	Healed    time.Duration
	End       time.Duration
	Moves     int
	// Holders are the hosts that answered alone for the VIP, in order.
	Holders    []string
	Recovery   Recovery
	StreamEnds []string
	Err        string
}

// Report is a campaign's outcome.
type Report struct {
	Seed       uint64
	Options    Options
	Steps      []StepResult
	Violations []Violation
	// Intervals and Fails are the observer's timeline over the run.
	Intervals []Interval
	Fails     []FailRun
}

// WorstRecovery is the longest recovery after a heal, and its step.
func (r Report) WorstRecovery() (time.Duration, int) {
	var w time.Duration
	at := -1
	for _, s := range r.Steps {
		if s.Recovery.RecoveryTime > w || at < 0 {
			w, at = s.Recovery.RecoveryTime, s.N
		}
	}
	return w, at
}

// WorstDark is the longest stretch without a successful connect in any
// step, and its step.
func (r Report) WorstDark() (time.Duration, int) {
	var w time.Duration
	at := -1
	for _, s := range r.Steps {
		if s.Recovery.Dark > w || at < 0 {
			w, at = s.Recovery.Dark, s.N
		}
	}
	return w, at
}

// Run runs the campaign against l, observed by obs.
func Run(ctx context.Context, l *lab.Lab, obs *Observer, o Options) (Report, error) {
	o.defaults()
	rep := Report{Seed: o.Seed, Options: o}
	plan := Plan(o.Seed, o.Count, o.Kinds...)
	o.Logf("campaign: seed %d, %d faults; bounds: recovery %s after heal, two MACs %s, slot map %s", o.Seed, o.Count, o.RecoveryBound, o.TwoMACBound, o.ProbeInterval)
	for i, s := range plan {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		r, vs, err := runStep(ctx, l, obs, o, i+1, s)
		rep.Steps = append(rep.Steps, r)
		rep.Violations = append(rep.Violations, vs...)
		o.Logf("%s", r.line())
		for _, v := range vs {
			o.Logf("  VIOLATION %s", v)
		}
		if err != nil {
			return rep, fmt.Errorf("step %d (%s): %w", i+1, s, err)
		}
	}
	return rep, nil
}

func (r StepResult) line() string {
	moves := fmt.Sprint(r.Moves)
	if r.Moves > 0 {
		moves += " (" + strings.Join(r.Holders, " -> ") + ")"
	}
	s := fmt.Sprintf("%3d %s %-18s on %-5s hold %-6s owner %s->%s moves %s; connects: %d/%d failed, dark %s, recovery %s after heal",
		r.N, fmtAt(r.Start), r.Kind, r.Target, r.Hold, r.OwnerFrom, r.OwnerTo, moves,
		r.Recovery.Failures, r.Recovery.Attempts, r.Recovery.Dark.Round(time.Millisecond), r.Recovery.RecoveryTime.Round(time.Millisecond))
	if len(r.StreamEnds) > 0 {
		s += "; streams " + strings.Join(r.StreamEnds, ",")
	}
	if r.Err != "" {
		s += "; error: " + r.Err
	}
	return s
}

// runStep does one fault, heals it, lets the lab settle and checks the
// invariants over the step's record.
func runStep(ctx context.Context, l *lab.Lab, obs *Observer, o Options, n int, s Step) (StepResult, []Violation, error) {
	r := StepResult{Step: s, N: n}
	owner, err := l.WaitOwner(ctx, "")
	if err != nil {
		return r, nil, err
	}
	r.OwnerFrom = owner
	streams := startStreams(ctx, l, o.Streams)
	r.Start = obs.Now()
	a, err := apply(ctx, l, s, owner)
	if err != nil {
		stopStreams(ctx, streams)
		r.Err = err.Error()
		return r, nil, err
	}
	r.Target = a.target
	if s.Hold > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(s.Hold):
		}
	}
	herr := a.heal(context.WithoutCancel(ctx))
	r.Healed = obs.Now()
	if herr != nil {
		stopStreams(ctx, streams)
		r.Err = herr.Error()
		return r, nil, fmt.Errorf("healing: %w", herr)
	}
	time.Sleep(settleAfterHeal)
	var vs []Violation
	if r.OwnerTo, err = l.WaitOwner(ctx, ""); err != nil {
		vs = append(vs, Violation{Step: n, Invariant: InvOneOwner, Detail: err.Error()})
	}
	vs = append(vs, checkSlotMaps(ctx, l, n, 3*o.ProbeInterval, o.ProbeInterval)...)
	ends := stopStreams(ctx, streams)
	r.End = obs.Now()

	claims := obs.Claims(r.Start-claimGap, r.End)
	iv := Intervals(claims, claimGap)
	holders := Holders(claims)
	r.Holders, r.Moves = holders, max(len(holders)-1, 0)
	vs = append(vs, CheckTwoMACs(n, iv, o.TwoMACBound)...)
	vs = append(vs, CheckNoMove(n, s.Kind, holders)...)
	r.Recovery = Recover(obs.Attempts(r.Start, r.End), r.Healed)
	vs = append(vs, CheckRecovery(n, r.Recovery, o.RecoveryBound)...)
	if graceful(s.Kind) && r.Recovery.Failures > 0 {
		vs = append(vs, Violation{Step: n, Invariant: InvHandoff, Detail: fmt.Sprintf("%d of %d connects failed during a graceful handoff", r.Recovery.Failures, r.Recovery.Attempts)})
	}
	for i, e := range ends {
		r.StreamEnds = append(r.StreamEnds, e.end)
		if e.end == string(netlab.StreamStopped) || e.end == "" {
			continue
		}
		if backendFault(s.Kind) && e.backend == a.target {
			continue // its backend was the one stopped or failed
		}
		vs = append(vs, Violation{Step: n, Invariant: InvStreams, Detail: fmt.Sprintf("stream %d (to %s) ended %s during %s: %s", i+1, e.backend, e.end, s.Kind, e.err)})
	}
	if s.Kind == PauseOwner {
		vs = append(vs, checkPauseQuiet(n, iv, owner, r.Healed)...)
	}
	return r, vs, nil
}

// checkPauseQuiet: once another host claimed the VIP while owner was
// paused, owner must not claim it again after it woke (at resumed).
func checkPauseQuiet(n int, iv []Interval, owner string, resumed time.Duration) []Violation {
	moved := false
	for _, i := range iv {
		if i.Port != owner && i.From < resumed {
			moved = true
		}
	}
	if !moved {
		return nil
	}
	for _, i := range iv {
		if i.Port == owner && i.To >= resumed {
			return []Violation{{Step: n, Invariant: InvPauseQuiet, Detail: fmt.Sprintf(
				"%s answered for the VIP after it woke (%s to %s, %d claims, the first a %s) though another host had claimed it", owner, fmtAt(max(i.From, resumed)), fmtAt(i.To), i.Claims, i.Kind)}}
		}
	}
	return nil
}

// stream is a stream held through a step.
type stream struct {
	s *netlab.Stream
}

type streamEnd struct{ backend, end, err string }

// startStreams opens n streams from the client through the VIP; one
// that does not start is left out (the connect loop sees why).
func startStreams(ctx context.Context, l *lab.Lab, n int) []stream {
	var out []stream
	target := netip.AddrPortFrom(l.Net().VIP4(), lab.ServicePort)
	for range max(n, 0) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := l.Net().Host("client").StartStream(sctx, netlab.StreamOpts{
			Target: target, Lines: 100000, Every: 20 * time.Millisecond, Timeout: 5 * time.Minute,
		})
		cancel()
		if err == nil {
			out = append(out, stream{s: s})
		}
	}
	return out
}

// stopStreams stops the streams and says how each ended ("stopped": it
// lived until now).
func stopStreams(ctx context.Context, ss []stream) []streamEnd {
	var out []streamEnd
	for _, s := range ss {
		s.s.Stop()
	}
	for _, s := range ss {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := s.s.Wait(wctx)
		cancel()
		e := streamEnd{backend: s.s.Backend, end: string(res.End), err: res.Err}
		if err != nil {
			e.end, e.err = "error", err.Error()
		}
		out = append(out, e)
	}
	return out
}
