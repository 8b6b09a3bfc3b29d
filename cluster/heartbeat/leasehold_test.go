package heartbeat

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sendToken hands loop i of lp the daemon's advert.
func sendToken(t *testing.T, lp *loopPair, i int, owner string, epoch uint64, flags Flags) {
	t.Helper()
	var msg [refreshSize]byte
	(&refresh{owner: IDOf(owner), epoch: epoch, flags: flags, sentAt: MonoNow()}).encode(&msg)
	if err := unix.Sendto(lp.parent[i], msg[:], 0, nil); err != nil {
		t.Fatal(err)
	}
}

func stepN(t *testing.T, n int, loops ...*loop) {
	t.Helper()
	for range n {
		for _, l := range loops {
			if err := l.step(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestLoopHoldsLeaseAfterPause: the owner x's helper is paused (its
// daemon too: the advert still says holding) while y claims with a newer
// epoch. The first beat x sends when it wakes must not say it holds the
// VIP, since that beat would renew x's kernel lease beside y's; it reads
// the beats that queued meanwhile first. Without a successor, x holds the
// flag back for lapseHold detection times after a late wake-up, then
// says it holds again.
func TestLoopHoldsLeaseAfterPause(t *testing.T) {
	const interval = 2 * time.Millisecond // detection 8 ms
	det := DetectionTime(interval, 4)
	for _, successor := range []bool{true, false} {
		name := map[bool]string{true: "successor-claims", false: "no-successor"}[successor]
		t.Run(name, func(t *testing.T) {
			lp := newLoopPair(t, interval)
			x, y := lp.loops[0], lp.loops[1]
			sendToken(t, lp, 0, "x", 9, FlagHolding)
			sendToken(t, lp, 1, "x", 9, 0)
			stepN(t, 20, x, y)
			if x.beat.Flags&FlagHolding == 0 {
				t.Fatalf("x does not say it holds before the pause: %v", x.beat.Flags)
			}
			// x paused; y claims (or not) and beats on.
			if successor {
				sendToken(t, lp, 1, "y", 10, FlagHolding)
			}
			stepN(t, int(4*det/interval), y)
			stepN(t, 1, x) // the wake-up: reads the backlog, then beats
			if x.beat.Flags&FlagHolding != 0 {
				t.Fatalf("x's first beat after a pause of 4 detection times says it holds the VIP (%v): it renews its lease beside the successor", x.beat.Flags)
			}
			stepN(t, int(4*det/interval), x, y)
			held := x.beat.Flags&FlagHolding != 0
			t.Logf("%s: beats withheld %d; x says holding after %s: %v", name, x.hold.withheld, 4*det, held)
			if successor && held {
				t.Errorf("x says it holds the VIP beside y's newer claim")
			}
			if !successor && !held {
				t.Errorf("x still holds its flag back %s after the wake-up with no other holder", 4*det)
			}
		})
	}
}

// TestLoopHoldsLeaseStoppedMidStep: the owner x is paused (SIGSTOP of its
// process group, as the chaos campaign's pause-owner does) after it
// composed a beat saying it holds the VIP and before the beat went out:
// the stop lands while the loop runs, not while it waits. Meanwhile y
// claims with a newer epoch. When x resumes, the beat it composed before
// the pause must not go out saying it holds the VIP: that one beat renews
// x's kernel lease for a detection time, and the host answers ARP for the
// VIP beside y's claim before its next tick notices it woke late.
func TestLoopHoldsLeaseStoppedMidStep(t *testing.T) {
	const interval = 2 * time.Millisecond // detection 8 ms
	det := DetectionTime(interval, 4)
	lp := newLoopPair(t, interval)
	x, y := lp.loops[0], lp.loops[1]
	sendToken(t, lp, 0, "x", 9, FlagHolding)
	sendToken(t, lp, 1, "x", 9, 0)
	stepN(t, 20, x, y)
	// x composes its beat, then is stopped before sending it.
	x.composeBeat(x.now(), true)
	if x.beat.Flags&FlagHolding == 0 {
		t.Fatalf("x does not say it holds before the pause: %v", x.beat.Flags)
	}
	sendToken(t, lp, 1, "y", 10, FlagHolding)
	stepN(t, int(4*det/interval), y)
	x.sendBeat() // x resumes where it stopped
	stepN(t, 1, y)
	xi := y.tr.indexOf(IDOf("x"))
	if xi < 0 {
		t.Fatal("y has no peer x")
	}
	if got := y.tr.peers[xi].Seq; got != x.beat.Seq {
		t.Fatalf("y did not read the beat x sent on resuming (seq %d, want %d)", got, x.beat.Seq)
	}
	if f := y.tr.peers[xi].Flags; f&FlagHolding != 0 {
		t.Fatalf("the beat x composed before a pause of %s went out after it saying x holds the VIP (%v): it renews x's lease beside y's claim", 4*det, f)
	}
	t.Logf("beats withheld by x: %d", x.hold.withheld)
}
