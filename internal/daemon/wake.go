package daemon

import (
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/probes"
)

// What wakes the decision loop when nothing happens. The loop decides on
// events: a probe result that changed something (probeWakes), a heartbeat verdict (Changes), a gossip change
// (Changes, and the cluster's events), a link change, an operator's
// action, a reload. Between events it sleeps until the soonest timed
// condition that is pending, not on a fixed tick:
//
//   - the view changes by time alone: a restarted beat loop's bridge ends,
//     a peer's "no majority" hold-off ends, a restarting peer's grace ends,
//     a gossip member turns suspect (when gossip is the liveness: no beat
//     loop, or the startup wait);
//   - the startup wait ends; an operator's handoff is abandoned;
//   - a retry is due (the datapath, the probe monitor, the beat loop);
//   - the VIP interfaces are read again (linkReread with the link
//     subscription, every DefaultTick without it).
//
// Those wake a decision pass. The service manager's watchdog does not: it
// is pinged every half its interval (notifyLoop, at the top of every pass
// of the loop). The heartbeat's liveness token has no timer here: the
// keeper renews it (keeper.go) and asks a loop quiet for keepPoke to show
// it runs (keeperAsks: Alive, no decision pass). Only with the keeper off
// (a test setting) does the loop refresh the token itself, every
// heartbeat.DefaultTokenRefresh (the last decision published again,
// refreshToken). The owner lease has its own ticker (loop).

// minWake is the shortest sleep of the loop: a deadline that already
// passed (a step that did not clear its own) is looked at again after
// this long, never in a spin.
const minWake = 5 * time.Millisecond

// noWake is the sleep when nothing is pending (never, in practice: the
// interfaces are read every linkReread).
const noWake = time.Hour

// wakeState is what the loop's timer needs from the last pass.
type wakeState struct {
	// view is when the last view read changes by time alone (zero: not).
	view time.Time
	// token is when the liveness token was last refreshed (publish).
	token time.Time
}

// probeWakes reports whether a probe result is to wake the decision loop
// at once: it changed the backend's state or anything else of its tracker
// (a failure counted, its cause, dead, silent or forbidden since), or it
// is the first result. A result that changed nothing of that (the same
// pass again, the same failure of a backend already down) only refreshes
// the latency and reason the peers and the status show: the loop applies
// it at its next timed pass (at most linkReread away), so a steady backend
// costs no decision pass, gossip update and status round per probe.
func probeWakes(u probes.Update) bool {
	return u.Previous != u.Tracker || u.Changed() || u.Previous.State == probes.StateUnknown
}

// onProbeUpdate is the probe monitor's OnUpdate on the loop's account: it
// wakes the loop for a result that matters (probeWakes), and marks the
// others for the next timed pass.
func (d *Daemon) onProbeUpdate(s *state, u probes.Update) {
	if !probeWakes(u) {
		d.probesLater.Store(true)
		return
	}
	select {
	case s.probeCh <- struct{}{}:
	default:
	}
}

// earliest returns the earlier of a and b, a zero time being none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// beatViewChanges returns when a view read at now changes by time alone
// (wall is now on the wall clock): the bridge of a restarted beat loop
// ends, a peer's "no majority" hold-off (holdOff) ends (plan.go
// noMajority), a restarting peer's grace ends (plan.go liveness).
func beatViewChanges(s *state, hv heartbeat.View, now heartbeat.Mono, wall time.Time, holdOff time.Duration) time.Time {
	var at time.Time
	add := func(m heartbeat.Mono) {
		if m > now {
			at = earliest(at, wall.Add(m.Sub(now)))
		}
	}
	if s.beatBridgeUntil != 0 {
		add(s.beatBridgeUntil)
	}
	for _, since := range s.noMajority {
		add(since + heartbeat.Mono(holdOff) + 1) // noMajority: held while <= holdOff
	}
	if !hv.Stale {
		for _, p := range hv.Peers {
			if !p.Alive && p.Seen && p.Flags&heartbeat.FlagRestarting != 0 {
				add(p.LastBeat + heartbeat.Mono(RestartGrace))
			}
		}
	}
	return at
}

// suspectChanges returns when an alive member of the gossip view v turns
// suspect (cluster.View: not heard from for longer than SuspectAfter).
func suspectChanges(v cluster.View) time.Time {
	if v.SuspectAfter <= 0 {
		return time.Time{}
	}
	var at time.Time
	for _, m := range v.Members {
		if m.Name != v.Self && m.State == cluster.StateAlive && !m.LastSeen.IsZero() {
			at = earliest(at, m.LastSeen.Add(v.SuspectAfter+time.Nanosecond))
		}
	}
	return at
}

// decideAt returns when the next decision pass is due without an event:
// the soonest timed condition pending (zero: none).
func (d *Daemon) decideAt(s *state) time.Time {
	at := s.wake.view
	if s.waiting {
		at = earliest(at, s.started.Add(d.opts.StartupWait))
	}
	if s.handoffTo != "" {
		at = earliest(at, s.handoffAt.Add(d.opts.HandoffTimeout+time.Nanosecond))
	}
	if s.dpRetry.pending {
		at = earliest(at, s.dpRetry.at)
	}
	if s.monRetry.pending {
		at = earliest(at, s.monRetry.at)
	}
	at = earliest(at, d.beatRestartAt(s))
	if s.links.ch == nil {
		at = earliest(at, s.links.read.Add(DefaultTick))
	} else {
		at = earliest(at, s.links.read.Add(s.links.reread))
	}
	return at
}

// beatRestartAt returns when restartBeater is to try again (zero: it has
// nothing to do).
func (d *Daemon) beatRestartAt(s *state) time.Time {
	if d.opts.NoHeartbeat {
		return time.Time{}
	}
	if s.beater != nil {
		select {
		case <-s.beater.Done():
		default:
			return time.Time{}
		}
		if s.beatRetry.failures == 0 {
			return s.beatRetry.restart.Add(time.Second)
		}
	} else if s.beatErr == nil {
		return time.Time{}
	}
	if s.beatRetry.at.IsZero() {
		return time.Now()
	}
	return s.beatRetry.at
}

// tokenAt returns when the loop is to refresh the beat loop's liveness
// token (zero: no beat loop runs, or its keeper renews the token).
func (s *state) tokenAt() time.Time {
	if s.beater == nil || s.beatErr != nil || keeps(s.beater) {
		return time.Time{}
	}
	return s.wake.token.Add(heartbeat.DefaultTokenRefresh)
}

// keeperAsks is the keeper's question to the loop (keptBeat.Asks; nil: no
// keeper, never ready).
func (s *state) keeperAsks() <-chan struct{} {
	if k, ok := s.beater.(*keptBeat); ok && k.keeping.Load() {
		return k.asks
	}
	return nil
}

// answerKeeper tells the keeper the loop runs (keptBeat.Alive).
func (s *state) answerKeeper() {
	if k, ok := s.beater.(*keptBeat); ok {
		k.Alive()
	}
}

// untilWake returns how long the loop sleeps with no event: until the
// next decision pass, token refresh or watchdog ping.
func (d *Daemon) untilWake(s *state) time.Duration {
	at := earliest(d.decideAt(s), s.tokenAt())
	if d.sd.watchdog > 0 {
		at = earliest(at, d.sd.lastPing.Add(d.sd.watchdog/2))
	}
	if at.IsZero() {
		return noWake
	}
	return max(time.Until(at), minWake)
}

// timedPass is the loop's wake-up by its timer: when only the liveness
// token (or the watchdog, pinged at the top of the loop) is due, it
// refreshes the token and reports false; otherwise it reports true: the
// loop does what is due (links, the beat loop's restart, retries) and
// decides.
func (d *Daemon) timedPass(s *state) (decide bool) {
	if at := d.decideAt(s); at.IsZero() || time.Now().Before(at) {
		if t := s.tokenAt(); !t.IsZero() && !time.Now().Before(t) {
			d.refreshToken(s)
		}
		return false
	}
	if d.probesLater.Swap(false) {
		d.onProbes(s) // results that woke nothing: latencies, reasons
	}
	return true
}

// refreshToken publishes the last decision again: the beat loop's
// liveness token is renewed (and the metadata, unchanged, costs nothing).
func (d *Daemon) refreshToken(s *state) {
	d.publish(s, s.last)
	s.wake.token = time.Now()
}

// digest is the running config's short digest, hashed once per config.
func (s *state) digest() string {
	if s.digestOf != s.cfg {
		s.digestOf, s.cfgDigest = s.cfg, s.cfg.Digest()
	}
	return s.cfgDigest
}
