package heartbeat

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/epconsole/epconsole/dataplane"
)

// The owner lease renewed by the beats (dataplane.LeaseBeats): the kernel
// refreshes the lease from every beat this node sends with FlagHolding, so
// a beat that says "holding" is what keeps the host answering ARP / NDP
// for the VIP. The loop therefore withholds FlagHolding from its beats
// when saying it would make two hosts answer:
//
//   - after a wake-up at least one detection time late (the helper was
//     paused, as a VM can be, or starved): for lapseHold detection times,
//     while the beats that queued meanwhile are read (readAtTick reads the
//     whole backlog first, judged by when the kernel received each beat),
//     a successor's claim among them;
//   - while a live peer says it holds the VIP with a newer epoch than the
//     one this beat names: the successor's claim wins, at beat rate, before
//     the daemon's next decision releases the VIP;
//   - with three or more peers, while the loop no longer hears the
//     majority it heard: a successor on the other side of a partition
//     claims one detection time after the cut, this host's daemon
//     releases a decision later.
//
//   - when the beat goes out at least one detection time after it was
//     composed: the process was stopped in between (a SIGSTOP, a paused
//     VM, lands while the loop runs as well as while it waits), and the
//     tick after the pause, which would notice it woke late, comes only
//     after this beat renewed the lease (holdStale); the hold then starts
//     as after a late wake-up.
//
// The beat goes out all the same (the peers still hear this node); only
// the flag, and with it the lease's renewal, is held back. A claim the
// helper makes itself is not held back: it is made on what it hears now.

// OwnerBeatMatch is what the kernel tells an owner beat of node self by:
// the magic, FlagHolding and the sender, at their offsets in the UDP
// payload (both datagram versions).
func OwnerBeatMatch(self string) []dataplane.PayloadMatch {
	sender := binary.BigEndian.AppendUint64(nil, uint64(IDOf(self)))
	return []dataplane.PayloadMatch{
		{Offset: 0, Value: []byte{magic0, magic1}},
		{Offset: 3, Value: []byte{byte(FlagHolding)}, Mask: []byte{byte(FlagHolding)}},
		{Offset: 4, Value: sender},
	}
}

// leaseHold is the loop's state for holdLease.
type leaseHold struct {
	// until: FlagHolding is held back until then (a late wake-up).
	until Mono
	// withheld counts beats sent without the FlagHolding the daemon set.
	withheld uint64
	// hadMajority: the loop heard a majority since it started.
	hadMajority bool
	// composed is when the beat about to be sent was composed.
	composed Mono
}

// noteTick records what holdLease needs of every tick, beating or not (a
// woken helper whose token went stale meanwhile beats only from a later
// tick): late is how late this tick came, majority its verdict.
func (l *loop) noteTick(now Mono, late time.Duration, majority bool) {
	if det := DetectionTime(l.cfg.Interval, l.cfg.Misses); late >= det {
		l.hold.until = now.Add(lapseHold * det)
	}
	if majority {
		l.hold.hadMajority = true
	}
}

// holdLease clears FlagHolding from the beat about to be sent when saying
// it would renew a lease that must run out (see above); majority is the
// tick's verdict.
func (l *loop) holdLease(now Mono, majority bool) {
	lost := !majority && l.hold.hadMajority && len(l.cfg.Peers)+1 >= 3
	if l.beat.Flags&FlagHolding == 0 || l.claim.claimed {
		return
	}
	if now < l.hold.until || lost || l.newerHolder(now) {
		l.beat.Flags &^= FlagHolding
		l.hold.withheld++
	}
}

// newerHolder reports whether a live peer says it holds the VIP with an
// epoch newer than the one this node's beat names.
func (l *loop) newerHolder(now Mono) bool {
	if l.beat.Epoch == math.MaxUint64 {
		return false
	}
	return l.liveHolder(now, l.beat.Epoch+1) // claim_loop.go
}

// holdStale runs before each send of a beat that says FlagHolding: when
// the beat was composed at least one detection time ago, the loop was
// stopped between composing and sending it, so it clears the flag and
// starts the hold of a late wake-up. It reports whether it cleared the
// flag (the beat must be sealed again). One vDSO clock read per send.
func (l *loop) holdStale() bool {
	now := l.now()
	late := now.Sub(l.hold.composed)
	if late < DetectionTime(l.cfg.Interval, l.cfg.Misses) {
		return false
	}
	l.noteTick(now, late, false)
	l.beat.Flags &^= FlagHolding
	l.hold.withheld++
	return true
}
