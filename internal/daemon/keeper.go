package daemon

// The liveness token's keeper. The heartbeat helper beats only while the
// daemon's liveness token is fresh (heartbeat.Beater.Refresh, at most
// heartbeat.DefaultTokenTTL old), so that a hung daemon stops beating and
// its peers take the VIP over. The decision loop refreshes the token on
// every decision; with nothing else, a decision loop that stalled for
// longer than the token's TTL — one slow pass on a saturated host — made
// the owner fall silent and the VIP move, though the host forwarded
// traffic throughout.
//
// So the token has a keeper: a goroutine on its own OS thread at
// real-time priority (below the helper's) that renews it every keepEvery
// with what the loop last asked the beats to say, for as long as the loop
// made progress within KeepTolerance. The keeper is the only timer of the
// token: the loop renews it when it decides (publish) and otherwise not
// at all (wake.go tokenAt). A loop silent for keepPoke is asked to show
// it still runs (Asks; the loop answers with Alive, no decision pass), so
// an idle loop that decides rarely is not taken for a hung one. KeepTolerance is the trade-off: a
// decision loop that hangs (deadlocked, blocked for good) keeps this node
// beating — and the VIP here, forwarding with the rules last programmed —
// for KeepTolerance plus the token's TTL; a stall shorter than it moves
// nothing. A crash is still seen at once (the helper exits with its
// control socket), and a frozen process (SIGSTOP, a paused VM) after the
// token's TTL, since the keeper is frozen with it.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/epconsole/epconsole/cluster/heartbeat"
	"golang.org/x/sys/unix"
)

const (
	// KeepTolerance is how long after the decision loop's last decision
	// the keeper keeps the liveness token fresh. The longest stall of the
	// loop seen under saturation was 1.1 s (a 90 s soak beside the fault
	// campaign, load 7.4); three seconds leave room for that and stay
	// below the systemd watchdog (WatchdogSec=5s), which restarts a loop
	// stalled that long anyway.
	KeepTolerance = 3 * time.Second
	// keepEvery is the keeper's period: four chances per token TTL (its
	// worst wake-up lateness under saturation was 1.3 ms). It was a
	// tenth of the TTL; each wake-up costs more than its own work: the
	// thread's return to its sleep leaves the Go runtime's P in a system
	// call, and sysmon, which sleeps only while every P is idle, polls
	// every 20 µs for the 10 ms it takes to take that P back (about 55
	// wake-ups of sysmon per keeper wake-up, the largest share of an idle
	// daemon's CPU in its profile).
	keepEvery = heartbeat.DefaultTokenTTL / 4
	// keepPoke: a loop that made no progress for this long is asked to
	// show it runs (Asks).
	keepPoke = 250 * time.Millisecond
	// keepPriority is the keeper thread's SCHED_FIFO priority: below the
	// helper's beat loop, above every normal thread.
	keepPriority = heartbeat.DefaultPriority / 2
	// keepStallLog: a stall of the loop the keeper bridged is logged from
	// this long (a quiet loop is asked for a decision after keepPoke).
	keepStallLog = 500 * time.Millisecond
)

// Test settings (drills only, never in production).
const (
	// tokenKeeperEnv=off refreshes the token from the decision loop alone,
	// as releases before the keeper did: the drills' control.
	tokenKeeperEnv = "EPCONSOLE_TEST_TOKEN_KEEPER"
	// loopStallEnv=DURATION makes the decision loop busy for DURATION (at
	// most 10 s) in the first decision after each SIGUSR2: a stalled loop
	// on demand, for the drills.
	loopStallEnv = "EPCONSOLE_TEST_LOOP_STALL"
)

// keptBeat is the beat loop as the decision loop holds it.
type keptBeat struct {
	beatLoop
	log *slog.Logger

	mu       sync.Mutex // orders the loop's and the keeper's refreshes
	advert   heartbeat.Advert
	have     bool           // the loop refreshed at least once
	progress heartbeat.Mono // the loop's last refresh
	closed   bool
	gaveUp   bool // the keeper stopped refreshing: the loop made no progress for KeepTolerance

	// Written by the keeper, read (and logged) by the loop.
	worstAge  atomic.Int64 // longest the loop went without a decision, as the keeper saw it (ns)
	worstLate atomic.Int64 // the keeper's worst wake-up lateness (ns)
	logged    time.Duration
	rt        atomic.Pointer[string] // the keeper's priority: "SCHED_FIFO 5" or why not

	// tolerance, every and poke are KeepTolerance, keepEvery and
	// keepPoke (tests shorten them).
	tolerance, every, poke time.Duration

	stop chan struct{}
	// asks is the keeper's question to a quiet loop (Asks); keeping says
	// the keeper runs (keepBeat started it, and it did not end on an
	// error), so the loop sets no token timer of its own.
	asks      chan struct{}
	keeping   atomic.Bool
	stall     atomic.Bool // a stall is armed (loopStallEnv)
	stallFor  time.Duration
	stopStall func()
}

// keepBeat wraps a running beat loop with a keeper (unless the test
// setting switches it off).
func keepBeat(b beatLoop, log *slog.Logger) *keptBeat {
	k := newKeptBeat(b, log)
	if v := os.Getenv(loopStallEnv); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 && d <= 10*time.Second {
			k.armStalls(d)
		}
	}
	if os.Getenv(tokenKeeperEnv) == "off" {
		log.Warn("liveness token keeper off (" + tokenKeeperEnv + "=off, a test setting): a decision loop stalled for the token's TTL stops this node's beats")
		return k
	}
	k.keeping.Store(true)
	go k.run()
	return k
}

func newKeptBeat(b beatLoop, log *slog.Logger) *keptBeat {
	return &keptBeat{beatLoop: b, log: log, stop: make(chan struct{}), asks: make(chan struct{}, 1),
		tolerance: KeepTolerance, every: keepEvery, poke: keepPoke}
}

// keeps reports whether b's token has a keeper running: then the decision
// loop sets no token timer of its own (wake.go tokenAt).
func keeps(b beatLoop) bool {
	k, ok := b.(*keptBeat)
	return ok && k.keeping.Load()
}

// Asks delivers the keeper's question to a loop that made no progress for
// keepPoke; the loop answers with Alive. Signals coalesce.
func (k *keptBeat) Asks() <-chan struct{} { return k.asks }

// Alive is the decision loop's answer to Asks: it records progress
// without a decision (the keeper renews the token with the last advert).
func (k *keptBeat) Alive() {
	k.mu.Lock()
	k.progress = heartbeat.MonoNow()
	gaveUp := k.gaveUp
	k.gaveUp = false
	k.mu.Unlock()
	k.progressed(gaveUp)
}

// Refresh is the decision loop's refresh: it records the loop's progress
// and the advert, and renews the token at once.
func (k *keptBeat) Refresh(a heartbeat.Advert) error {
	if k.stall.CompareAndSwap(true, false) {
		k.busy(k.stallFor)
	}
	k.mu.Lock()
	k.advert, k.have, k.progress = a, true, heartbeat.MonoNow()
	gaveUp := k.gaveUp
	k.gaveUp = false
	err := k.beatLoop.Refresh(a)
	k.mu.Unlock()
	k.progressed(gaveUp)
	return err
}

// progressed logs, after the loop's progress, a give-up or a stall the
// keeper bridged.
func (k *keptBeat) progressed(gaveUp bool) {
	if gaveUp {
		k.log.Warn("decision loop runs again after the keeper let the heartbeat stop", "tolerance", k.tolerance)
	}
	if age := time.Duration(k.worstAge.Load()); age >= keepStallLog && age > k.logged {
		k.logged = age
		k.log.Warn("decision loop stalled; the liveness token keeper kept the beats", "stall", age.Round(time.Millisecond),
			"keeper_worst_lateness", time.Duration(k.worstLate.Load()), "keeper", k.priority(), "tolerance", k.tolerance)
	}
}

// Close stops the keeper (it refreshes no more; its goroutine ends at its
// next wake-up) and the beat loop.
func (k *keptBeat) Close() error {
	k.mu.Lock()
	if !k.closed {
		k.closed = true
		close(k.stop)
		if k.stopStall != nil {
			k.stopStall()
		}
	}
	k.mu.Unlock()
	return k.beatLoop.Close()
}

func (k *keptBeat) priority() string {
	if p := k.rt.Load(); p != nil {
		return *p
	}
	return "not started"
}

// run is the keeper. Its thread sleeps in clock_nanosleep to absolute
// deadlines (no runtime timer: the wake-up does not wait for another
// thread of this process to notice an expired timer), then renews the
// token.
func (k *keptBeat) run() {
	// Never unlocked: the thread ends with the goroutine, and its
	// real-time policy with it.
	runtime.LockOSThread()
	rt := keeperRealtime()
	k.rt.Store(&rt)
	ts := unix.Timespec{}
	next := heartbeat.MonoNow().Add(k.every)
	for {
		ts = unix.NsecToTimespec(int64(next))
		if err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil); err != nil && err != unix.EINTR {
			// Never seen; the decision loop takes the token's refresh
			// back (keeps).
			k.keeping.Store(false)
			k.log.Error("liveness token keeper stopped; the decision loop refreshes the token itself", "err", err)
			select {
			case k.asks <- struct{}{}: // wakes the loop to set its own token timer
			default:
			}
			return
		}
		select {
		case <-k.stop:
			return
		default:
		}
		now := heartbeat.MonoNow()
		if now < next {
			continue // interrupted early
		}
		if late := int64(now.Sub(next)); late > k.worstLate.Load() {
			k.worstLate.Store(late)
		}
		k.keep(now)
		next = next.Add(k.every)
		if next <= now {
			next = now.Add(k.every)
		}
	}
}

// keep renews the token with the loop's last advert while the loop made
// progress within KeepTolerance, and asks a quiet loop to show it runs.
func (k *keptBeat) keep(now heartbeat.Mono) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || !k.have {
		return
	}
	age := now.Sub(k.progress)
	if int64(age) > k.worstAge.Load() {
		k.worstAge.Store(int64(age))
	}
	if age > k.tolerance {
		k.gaveUp = true
		return
	}
	if age >= k.poke {
		select {
		case k.asks <- struct{}{}:
		default:
		}
	}
	_ = k.beatLoop.Refresh(k.advert) // a stopped loop shows in View; the decision loop logs it
}

// keeperRealtime puts the calling thread at SCHED_FIFO keepPriority; the
// threads it creates do not inherit it (reset on fork). It returns what
// is in effect.
func keeperRealtime() string {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: keepPriority,
		Flags: unix.SCHED_FLAG_RESET_ON_FORK}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fmt.Sprintf("normal priority (sched_setattr(SCHED_FIFO, %d): %v; needs CAP_SYS_NICE)", keepPriority, err)
	}
	return fmt.Sprintf("SCHED_FIFO %d", keepPriority)
}

// armStalls arms a stall of the decision loop on every SIGUSR2
// (loopStallEnv).
func (k *keptBeat) armStalls(d time.Duration) {
	k.stallFor = d
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR2)
	ctx, cancel := context.WithCancel(context.Background())
	k.stopStall = func() { signal.Stop(ch); cancel() }
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				k.log.Warn("test stall of the decision loop armed ("+loopStallEnv+")", "for", d)
				k.stall.Store(true)
			}
		}
	}()
}

// busy keeps the calling goroutine busy for d (a stalled decision loop).
func (k *keptBeat) busy(d time.Duration) {
	k.log.Warn("decision loop busy on purpose ("+loopStallEnv+")", "for", d)
	end := time.Now().Add(d)
	n := 0
	for time.Now().Before(end) {
		n++
	}
	k.log.Warn("decision loop busy on purpose: done", "iterations", n)
}
