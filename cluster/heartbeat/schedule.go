package heartbeat

import (
	"time"

	"golang.org/x/sys/unix"
)

// The beat loop's schedule. The loop sends on a fixed cadence (l.next,
// one interval apart), and it also wakes at the moment a peer's beats run
// out: the earliest deadline (last fresh beat + threshold) of the peers
// alive now. A peer that stops beating is then seen gone one detection
// time after its last beat, not at the first send tick after that (up to
// one interval and that tick's lateness later). Such a verdict wake sends
// nothing on the cadence; it reads what arrived, decides (the helper's
// claim, the report to the daemon) and sends one beat out of turn only
// when what this node's beat says changed — a peer it believed the owner
// is gone, it lost its majority, its helper claimed — so the news is not
// held back until the next send tick either.
//
// The successor's claim waits for every other live peer that believed in
// the owner to say it lost the owner too (claimVerdict). Those peers see
// the owner gone at about the same moment and send their news out of
// turn; the successor, whose own verdict came first, then also wakes on
// beats arriving (not only on its timer) until one interval after the
// owner's deadline, and decides again on each.

// NextDeadline returns the earliest moment after now at which a peer
// alive at now is seen gone if no fresh beat of it comes before: its last
// fresh beat plus its threshold (plus the credit for this node's own
// stall, as alive counts it), and one nanosecond, since a peer is alive
// while its beat is no older than the threshold. ok is false when no
// peer is alive.
func (t *Tracker) NextDeadline(now Mono) (at Mono, ok bool) {
	for i := range t.peers {
		if !t.alive(i, now) {
			continue
		}
		d := t.deadline(i)
		if !ok || d < at {
			at, ok = d, true
		}
	}
	return at, ok
}

// deadline is the first moment peer i is not alive without a fresh beat.
func (t *Tracker) deadline(i int) Mono {
	p := &t.peers[i]
	th := t.Threshold(i)
	if p.LastBeat < t.resumed && p.LastBeat <= t.stallFrom.Add(t.cfg.Interval) {
		th += t.stalled
	}
	return p.LastBeat.Add(th + time.Nanosecond)
}

// wakeAt is when the loop wakes next: at the next send (send), or at the
// earliest peer deadline when that comes first. A deadline at or before
// now is not one to wait for (the peer was judged at this wake-up).
func wakeAt(now, send, deadline Mono, haveDeadline bool) Mono {
	if haveDeadline && deadline > now && deadline < send {
		return deadline
	}
	return send
}

// newsWindow is how long after a verdict the successor waits for the
// other peers' word that the owner is gone (see above), in intervals.
const newsWindow = 2

// schedule arms the timer for the next wake-up: the next send or the
// earliest peer deadline.
func (l *loop) schedule(now Mono) error {
	d, ok := l.tr.NextDeadline(now)
	l.wake = wakeAt(now, l.next, d, ok)
	if l.awaitUntil != 0 && now >= l.awaitUntil {
		l.awaitNews(0)
	}
	return l.arm()
}

// awaitNews makes the loop wake on beats arriving until until (0: only on
// its timer again).
func (l *loop) awaitNews(until Mono) {
	l.awaitUntil = until
	if until == 0 {
		l.pfd[pollUDP].Fd = -1
		return
	}
	l.pfd[pollUDP].Fd = int32(l.udp)
}

// verdictWake runs when the loop wakes before its next send: at a peer's
// deadline, or on a beat arriving while it awaits news. What arrived was
// read; it decides and reports what changed, and sends its own news out
// of turn.
func (l *loop) verdictWake(now Mono) error {
	l.verdictWakes++
	if stall := now.Sub(l.wake); stall >= l.cfg.Interval {
		l.tr.Stalled(now, stall)
	}
	majority := l.tr.Majority(now)
	beating := l.tokenSeen && now.Sub(l.tokenAt) <= l.cfg.TokenTTL
	l.claimVerdictWake(now, beating)
	if beating {
		prevFlags, prevOwner, prevEpoch := l.beat.Flags, l.beat.Owner, l.beat.Epoch
		l.composeBeat(now, majority)
		if l.beat.Flags != prevFlags || l.beat.Owner != prevOwner || l.beat.Epoch != prevEpoch {
			l.newsBeats++
			l.sendBeat()
		}
	}
	if err := l.report(now, beating, majority); err != nil {
		return err
	}
	return l.schedule(now)
}

// beatWake runs when beats arrived while the loop awaits news: it reads
// them and decides again. Any other readiness of the beat socket (an
// error) ends the wait for news: the loop goes back to its timer alone.
func (l *loop) beatWake(now Mono) error {
	if l.pfd[pollUDP].Revents&unix.POLLIN == 0 {
		l.awaitNews(0)
		return nil
	}
	l.rxp.clocks(now)
	l.readBeats(now)
	return l.verdictWake(now)
}

// claimVerdictWake is the claim's part of a verdict wake: claim if
// claimVerdict allows, and tell the daemon. The lease renewal keeps to
// the send ticks.
func (l *loop) claimVerdictWake(now Mono, beating bool) {
	c := &l.claim
	if c.cfg == nil {
		return
	}
	l.maybeClaim(now, beating)
	if c.pending {
		l.sendClaim()
	}
	if c.claimed {
		l.awaitNews(0)
	}
}

// awaitOwnerNews: the successor sees owner oi gone, and a live peer
// still says it hears it. That peer's own verdict comes at about the same
// moment, and its news is sent out of turn: the loop wakes on beats
// arriving until newsWindow intervals after the owner's deadline.
func (l *loop) awaitOwnerNews(now Mono, oi int) {
	if l.awaitUntil != 0 {
		return
	}
	if until := l.tr.deadline(oi).Add(newsWindow * l.cfg.Interval); now < until {
		l.awaitNews(until)
	}
}
