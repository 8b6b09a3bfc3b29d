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
