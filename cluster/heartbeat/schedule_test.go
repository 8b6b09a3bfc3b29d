package heartbeat

import (
	"testing"
	"time"
)

// TestNextDeadline: the earliest moment a peer alive now is seen gone,
// by its last beat, its threshold and this node's stall credit.
func TestNextDeadline(t *testing.T) {
	const ms = Mono(time.Millisecond)
	beat := func(tr *Tracker, name string, seq uint64, f Flags, at Mono) {
		t.Helper()
		if v := tr.Observe(&Beat{Sender: IDOf(name), Boot: 1, Seq: seq, Flags: f}, at); v != Accepted {
			t.Fatalf("beat of %s: %v", name, v)
		}
	}
	cases := []struct {
		name  string
		setup func(tr *Tracker)
		now   Mono
		want  Mono
		ok    bool
	}{
		{name: "no peer heard", setup: func(*Tracker) {}, now: 100 * ms},
		{name: "one real-time peer: last beat + 4 x 5 ms", now: 105 * ms, ok: true, want: 120*ms + 1,
			setup: func(tr *Tracker) { beat(tr, "b", 1, FlagRealtime, 100*ms) }},
		{name: "a sender without real-time priority: 8 x 5 ms", now: 105 * ms, ok: true, want: 140*ms + 1,
			setup: func(tr *Tracker) { beat(tr, "b", 1, 0, 100*ms) }},
		{name: "the earliest of two", now: 105 * ms, ok: true, want: 117*ms + 1,
			setup: func(tr *Tracker) {
				beat(tr, "b", 1, FlagRealtime, 100*ms)
				beat(tr, "c", 1, FlagRealtime, 97*ms)
			}},
		{name: "at the deadline the peer is still alive", now: 120 * ms, ok: true, want: 120*ms + 1,
			setup: func(tr *Tracker) { beat(tr, "b", 1, FlagRealtime, 100*ms) }},
		{name: "a peer already gone is no deadline; the live one is", now: 125 * ms, ok: true, want: 143*ms + 1,
			setup: func(tr *Tracker) {
				beat(tr, "b", 1, FlagRealtime, 100*ms)
				beat(tr, "c", 1, FlagRealtime, 123*ms)
			}},
		{name: "every peer gone", now: 121 * ms,
			setup: func(tr *Tracker) { beat(tr, "b", 1, FlagRealtime, 100*ms) }},
		{name: "this node stalled 30 ms after the beat: the credit moves the deadline", now: 131 * ms, ok: true, want: 150*ms + 1,
			setup: func(tr *Tracker) {
				beat(tr, "b", 1, FlagRealtime, 100*ms)
				tr.Stalled(130*ms, 30*time.Millisecond) // did not run from 100 to 130 ms
			}},
		{name: "a beat after the stall is judged without credit", now: 136 * ms, ok: true, want: 155*ms + 1,
			setup: func(tr *Tracker) {
				beat(tr, "b", 1, FlagRealtime, 100*ms)
				tr.Stalled(130*ms, 30*time.Millisecond)
				beat(tr, "b", 2, FlagRealtime, 135*ms)
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, err := NewTracker(TrackerConfig{Self: "a", Peers: []string{"b", "c"}, Interval: 5 * time.Millisecond, Misses: 4})
			if err != nil {
				t.Fatal(err)
			}
			c.setup(tr)
			got, ok := tr.NextDeadline(c.now)
			if ok != c.ok || (ok && got != c.want) {
				t.Fatalf("NextDeadline(%v) = %v, %v; want %v, %v", time.Duration(c.now), time.Duration(got), ok, time.Duration(c.want), c.ok)
			}
			if ok {
				// The deadline is exactly where alive flips.
				i := tr.Index("b")
				if tr.deadline(i) != got || !tr.alive(i, c.now) {
					i = tr.Index("c")
				}
				if !tr.alive(i, got-1) || tr.alive(i, got) {
					t.Errorf("peer %d: alive at deadline-1ns %v, at the deadline %v; want true, false", i, tr.alive(i, got-1), tr.alive(i, got))
				}
			}
		})
	}
}

// TestWakeAt: the loop wakes at the next send, or at a peer's deadline
// when it comes first.
func TestWakeAt(t *testing.T) {
	const ms = Mono(time.Millisecond)
	cases := []struct {
		name          string
		now, send, dl Mono
		haveDeadline  bool
		want          Mono
	}{
		{"no live peer: the send", 100 * ms, 105 * ms, 0, false, 105 * ms},
		{"deadline before the send", 100 * ms, 105 * ms, 102 * ms, true, 102 * ms},
		{"deadline after the send", 100 * ms, 105 * ms, 108 * ms, true, 105 * ms},
		{"deadline at the send", 100 * ms, 105 * ms, 105 * ms, true, 105 * ms},
		{"deadline passed (judged now)", 100 * ms, 105 * ms, 99 * ms, true, 105 * ms},
		{"deadline now", 100 * ms, 105 * ms, 100 * ms, true, 105 * ms},
		{"a late send (in the past) still comes first", 100 * ms, 98 * ms, 101 * ms, true, 98 * ms},
	}
	for _, c := range cases {
		if got := wakeAt(c.now, c.send, c.dl, c.haveDeadline); got != c.want {
			t.Errorf("%s: wakeAt(%v, %v, %v, %v) = %v, want %v", c.name, time.Duration(c.now), time.Duration(c.send),
				time.Duration(c.dl), c.haveDeadline, time.Duration(got), c.want)
		}
	}
}

// TestVerdictWakeSendsNews: the loop arms its timer for the owner's
// deadline before its next send; at that wake-up it reports the owner gone
// to the daemon and sends one beat out of turn saying so (FlagOwnerGone),
// and none at a wake-up with nothing new.
func TestVerdictWakeSendsNews(t *testing.T) {
	lp := newLoopPair(t, 5*time.Millisecond)
	x, y := lp.loops[0], lp.loops[1]
	const ms = Mono(time.Millisecond)
	t0 := MonoNow()
	// x believes y owns the VIP; y beat at t0.
	x.token, x.tokenAt, x.tokenSeen = refresh{owner: IDOf("y"), epoch: 3}, t0, true
	if v := x.tr.Observe(&Beat{Sender: IDOf("y"), Boot: 9, Seq: 1, Flags: FlagRealtime, Owner: IDOf("y"), Epoch: 3}, t0); v != Accepted {
		t.Fatal(v)
	}
	x.next = t0 + 3*ms
	if err := x.schedule(t0 + ms); err != nil {
		t.Fatal(err)
	}
	if x.wake != x.next {
		t.Fatalf("deadline after the next send: wake %v after t0, want the send at +3ms", time.Duration(x.wake-t0))
	}
	x.next = t0 + 22*ms
	if err := x.schedule(t0 + 18*ms); err != nil {
		t.Fatal(err)
	}
	dl := t0 + 20*ms + 1
	if x.wake != dl {
		t.Fatalf("wake %v after t0, want the deadline %v", time.Duration(x.wake-t0), time.Duration(dl-t0))
	}
	drain(y.udp)
	drain(lp.parent[0])
	sent := x.stats.Sent
	if err := x.verdictWake(dl); err != nil {
		t.Fatal(err)
	}
	if x.newsBeats != 1 || x.stats.Sent != sent+1 {
		t.Fatalf("news beats %d, sent %d; want one beat out of turn", x.newsBeats, x.stats.Sent-sent)
	}
	var b Beat
	buf := make([]byte, MaxDatagramSize+1)
	n, errno := recvDontWait(y.udp, buf)
	if errno != 0 {
		t.Fatalf("y received no beat: %v", errno)
	}
	if err := y.keys.Open(buf[:n], &b); err != nil {
		t.Fatal(err)
	}
	if b.Flags&FlagOwnerGone == 0 || b.Owner != IDOf("y") {
		t.Errorf("the news beat says flags %v owner %v; want FlagOwnerGone for y", b.Flags, b.Owner)
	}
	r := report{peers: make([]peerReport, 1)}
	rbuf := make([]byte, maxReportSize+1)
	n, errno = recvDontWait(lp.parent[0], rbuf)
	if errno != 0 {
		t.Fatalf("no report to the daemon at the verdict: %v", errno)
	}
	if err := r.decode(rbuf[:n]); err != nil {
		t.Fatal(err)
	}
	if r.peers[0].alive || r.at != dl {
		t.Errorf("report at %v: y alive %v; want y gone at the deadline", time.Duration(r.at-t0), r.peers[0].alive)
	}
	// Nothing new: no beat out of turn.
	if err := x.verdictWake(dl + ms); err != nil {
		t.Fatal(err)
	}
	if x.newsBeats != 1 {
		t.Errorf("a second wake-up with nothing new sent news (%d)", x.newsBeats)
	}
	if x.wake != x.next {
		t.Errorf("no live peer: the wake is %v after t0, want the send", time.Duration(x.wake-t0))
	}
}

// TestAwaitOwnerNews: the successor sees the owner gone while a third peer
// still says it hears it; the loop then wakes on beats arriving until two
// intervals after the owner's deadline, and on its timer alone after.
func TestAwaitOwnerNews(t *testing.T) {
	lp := newLoopPair(t, 5*time.Millisecond)
	x := lp.loops[0]
	const ms = Mono(time.Millisecond)
	// x's tracker with two peers: y the owner, z the witness.
	tr, err := NewTracker(TrackerConfig{Self: "x", Peers: []string{"y", "z"}, Interval: 5 * time.Millisecond, Misses: 4})
	if err != nil {
		t.Fatal(err)
	}
	x.tr = tr
	t0 := MonoNow()
	x.token, x.tokenAt, x.tokenSeen = refresh{owner: IDOf("y"), epoch: 3}, t0+15*ms, true
	x.claim.cfg = &ClaimConfig{}
	x.claim.plan, x.claim.havePlan = planMsg{owner: IDOf("y"), epoch: 4, successor: true}, true
	x.claim.log = testLogger(t)
	tr.Observe(&Beat{Sender: IDOf("y"), Boot: 1, Seq: 1, Flags: FlagRealtime | FlagHolding, Owner: IDOf("y"), Epoch: 3}, t0)
	tr.Observe(&Beat{Sender: IDOf("z"), Boot: 1, Seq: 1, Flags: FlagRealtime, Owner: IDOf("y"), Epoch: 3}, t0+18*ms)
	dl := t0 + 20*ms + 1
	x.next, x.wake = t0+22*ms, dl
	if err := x.verdictWake(dl); err != nil {
		t.Fatal(err)
	}
	if x.claim.claimed {
		t.Fatal("claimed while z still hears the owner")
	}
	if x.awaitUntil != dl+10*ms || x.pfd[pollUDP].Fd != int32(x.udp) {
		t.Fatalf("await until %v after t0, polling fd %d; want +30ms on the beat socket %d",
			time.Duration(x.awaitUntil-t0), x.pfd[pollUDP].Fd, x.udp)
	}
	if err := x.schedule(dl + 10*ms); err != nil {
		t.Fatal(err)
	}
	if x.awaitUntil != 0 || x.pfd[pollUDP].Fd != -1 {
		t.Errorf("after the window: await until %v, polling fd %d; want the timer alone", x.awaitUntil, x.pfd[pollUDP].Fd)
	}
}

func drain(fd int) {
	buf := make([]byte, 2048)
	for {
		if _, errno := recvDontWait(fd, buf); errno != 0 {
			return
		}
	}
}
