package heartbeat

import (
	"testing"
	"time"
)

const ms = Mono(time.Millisecond)

func newTestTracker(t *testing.T, peers ...string) *Tracker {
	t.Helper()
	tr, err := NewTracker(TrackerConfig{Self: "lb1", Peers: peers, Interval: 5 * time.Millisecond, Misses: 4})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestTrackerReplayRule(t *testing.T) {
	a, self, stranger := IDOf("lb2"), IDOf("lb1"), IDOf("lbX")
	type step struct {
		sender    NodeID
		boot, seq uint64
		want      Verdict
	}
	for _, tc := range []struct {
		desc  string
		steps []step
	}{
		{"first beat accepted, any sequence number", []step{{a, 10, 500, Accepted}}},
		{"increasing sequence", []step{{a, 10, 1, Accepted}, {a, 10, 2, Accepted}, {a, 10, 5, Accepted}}},
		{"same sequence is a replay", []step{{a, 10, 1, Accepted}, {a, 10, 1, Replayed}}},
		{"older sequence is a replay", []step{{a, 10, 7, Accepted}, {a, 10, 3, Replayed}, {a, 10, 8, Accepted}}},
		{"restart: new boot ID starts over at 1", []step{{a, 10, 900, Accepted}, {a, 11, 1, Accepted}, {a, 11, 2, Accepted}}},
		{"old boot ID never again", []step{{a, 10, 5, Accepted}, {a, 11, 1, Accepted}, {a, 10, 6, OldBoot}, {a, 10, 1000, OldBoot}, {a, 11, 2, Accepted}}},
		{"boot IDs of several restarts are all refused", []step{
			{a, 1, 1, Accepted}, {a, 2, 1, Accepted}, {a, 3, 1, Accepted}, {a, 4, 1, Accepted},
			{a, 1, 9, OldBoot}, {a, 2, 9, OldBoot}, {a, 3, 9, OldBoot}, {a, 4, 2, Accepted},
		}},
		{"history is bounded: the ninth retired boot ID is forgotten", []step{
			{a, 1, 1, Accepted}, {a, 2, 1, Accepted}, {a, 3, 1, Accepted}, {a, 4, 1, Accepted}, {a, 5, 1, Accepted},
			{a, 6, 1, Accepted}, {a, 7, 1, Accepted}, {a, 8, 1, Accepted}, {a, 9, 1, Accepted}, {a, 10, 1, Accepted},
			{a, 3, 5, OldBoot}, {a, 2, 5, OldBoot}, {a, 1, 5, Accepted},
		}},
		{"a replay of the current stream after a restart stays a replay", []step{{a, 10, 3, Accepted}, {a, 11, 1, Accepted}, {a, 11, 1, Replayed}}},
		{"own beats are dropped", []step{{self, 1, 1, FromSelf}}},
		{"unknown sender", []step{{stranger, 1, 1, UnknownSender}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tr := newTestTracker(t, "lb2", "lb3")
			now := 1000 * ms
			for k, s := range tc.steps {
				now += ms
				b := Beat{Sender: s.sender, Boot: s.boot, Seq: s.seq}
				before := tr.Peer(0)
				if got := tr.Observe(&b, now); got != s.want {
					t.Fatalf("step %d (boot %d seq %d): %v, want %v", k, s.boot, s.seq, got, s.want)
				}
				p := tr.Peer(0)
				if s.want == Accepted {
					if p.LastBeat != now || p.Boot != s.boot || p.Seq != s.seq {
						t.Fatalf("step %d: state %+v not updated", k, p)
					}
				} else if p.LastBeat != before.LastBeat || p.Boot != before.Boot || p.Seq != before.Seq {
					t.Fatalf("step %d: a dropped beat changed the state", k)
				}
			}
		})
	}
}

func TestTrackerAlive(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		flags Flags
		age   Mono // now - last beat
		seen  bool
		want  bool
	}{
		{"never seen", FlagRealtime, 0, false, false},
		{"just now", FlagRealtime, 0, true, true},
		{"three intervals", FlagRealtime, 15 * ms, true, true},
		{"exactly four intervals", FlagRealtime, 20 * ms, true, true},
		{"past four intervals", FlagRealtime, 20*ms + 1, true, false},
		{"non-real-time sender: 30 ms still alive", 0, 30 * ms, true, true},
		{"non-real-time sender: exactly eight intervals", 0, 40 * ms, true, true},
		{"non-real-time sender: past eight intervals", 0, 40*ms + 1, true, false},
		{"a beat from the future (clock misuse) is not alive", FlagRealtime, -ms, true, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tr := newTestTracker(t, "lb2")
			last := 500 * ms
			if tc.seen {
				tr.Observe(&Beat{Sender: IDOf("lb2"), Boot: 1, Seq: 1, Flags: tc.flags}, last)
			}
			if got := tr.Alive("lb2", last+tc.age); got != tc.want {
				t.Fatalf("Alive = %v, want %v (threshold %v)", got, tc.want, tr.Threshold(0))
			}
		})
	}
	tr := newTestTracker(t, "lb2")
	if tr.Alive("nobody", 0) {
		t.Fatal("unknown peer alive")
	}
}

func TestIsMajority(t *testing.T) {
	for _, tc := range []struct {
		alive, configured int
		want              bool
	}{
		{1, 1, true}, {1, 2, false}, {2, 2, true},
		{1, 3, false}, {2, 3, true}, {3, 3, true},
		{2, 4, false}, {3, 4, true},
		{2, 5, false}, {3, 5, true},
		{0, 0, false},
	} {
		if got := IsMajority(tc.alive, tc.configured); got != tc.want {
			t.Errorf("IsMajority(%d, %d) = %v, want %v", tc.alive, tc.configured, got, tc.want)
		}
	}
}

func TestTrackerMajority(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		peers []string
		fresh []string // peers with a fresh beat
		stale []string // peers whose beat is too old
		want  bool
	}{
		{"single node", nil, nil, nil, true},
		{"two nodes, peer alive", []string{"lb2"}, []string{"lb2"}, nil, true},
		{"two nodes, peer gone", []string{"lb2"}, nil, []string{"lb2"}, false},
		{"three nodes, one peer alive", []string{"lb2", "lb3"}, []string{"lb3"}, []string{"lb2"}, true},
		{"three nodes, cut off", []string{"lb2", "lb3"}, nil, []string{"lb2", "lb3"}, false},
		{"five nodes, two peers alive", []string{"lb2", "lb3", "lb4", "lb5"}, []string{"lb2", "lb5"}, []string{"lb3"}, true},
		{"five nodes, one peer alive", []string{"lb2", "lb3", "lb4", "lb5"}, []string{"lb4"}, []string{"lb2", "lb3"}, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tr := newTestTracker(t, tc.peers...)
			now := 1000 * ms
			for _, p := range tc.stale {
				tr.Observe(&Beat{Sender: IDOf(p), Boot: 1, Seq: 1, Flags: FlagRealtime}, now-100*ms)
			}
			for _, p := range tc.fresh {
				tr.Observe(&Beat{Sender: IDOf(p), Boot: 1, Seq: 2, Flags: FlagRealtime}, now-2*ms)
			}
			if got := tr.Majority(now); got != tc.want {
				t.Fatalf("Majority = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTrackerClaims(t *testing.T) {
	tr := newTestTracker(t, "lb2", "lb3", "lb4")
	now := 1000 * ms
	tr.Observe(&Beat{Sender: IDOf("lb2"), Boot: 1, Seq: 1, Flags: FlagRealtime | FlagHolding, Owner: IDOf("lb2"), Epoch: 5}, now-ms)
	tr.Observe(&Beat{Sender: IDOf("lb3"), Boot: 1, Seq: 1, Flags: FlagRealtime | FlagHolding, Owner: IDOf("lb3"), Epoch: 6}, now-ms)
	tr.Observe(&Beat{Sender: IDOf("lb4"), Boot: 1, Seq: 1, Flags: FlagRealtime, Owner: IDOf("lb2"), Epoch: 5}, now-1000*ms) // stale
	got := tr.Claims(now, nil)
	want := []Claim{
		{Peer: "lb2", Owner: IDOf("lb2"), Epoch: 5, Holding: true},
		{Peer: "lb3", Owner: IDOf("lb3"), Epoch: 6, Holding: true},
	}
	if len(got) != len(want) {
		t.Fatalf("Claims = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Claims[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	buf := make([]Claim, 0, 8)
	if a := totalAllocs(100, func() { buf = tr.Claims(now, buf[:0]) }); a != 0 {
		t.Fatalf("Claims allocates %v", a)
	}
}

func TestNewTrackerErrors(t *testing.T) {
	many := make([]string, MaxPeers+1)
	for i := range many {
		many[i] = string(rune('a' + i))
	}
	for _, tc := range []struct {
		desc string
		cfg  TrackerConfig
	}{
		{"no name", TrackerConfig{Peers: []string{"lb2"}}},
		{"duplicate peer", TrackerConfig{Self: "lb1", Peers: []string{"lb2", "lb2"}}},
		{"self as peer", TrackerConfig{Self: "lb1", Peers: []string{"lb1"}}},
		{"too many peers", TrackerConfig{Self: "z", Peers: many}},
	} {
		if _, err := NewTracker(tc.cfg); err == nil {
			t.Errorf("%s: no error", tc.desc)
		}
	}
}

func TestTrackerObserveDoesNotAllocate(t *testing.T) {
	tr := newTestTracker(t, "lb2", "lb3")
	b := Beat{Sender: IDOf("lb3"), Boot: 1, Flags: FlagRealtime}
	now := ms
	if a := totalAllocs(1000, func() {
		b.Seq++
		now += ms
		tr.Observe(&b, now)
		tr.Majority(now)
	}); a != 0 {
		t.Fatalf("Observe allocates %v", a)
	}
}

// TestTrackerStalled: time this node's own loop did not run does not count
// against a peer whose last beat came before it (at most MaxStallCredit),
// until the peer's next beat; a peer that did beat during the stall is
// judged as always.
func TestTrackerStalled(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		lastBeat  Mono          // the peer's last beat
		stall     time.Duration // 0: none
		resumedAt Mono
		now       Mono
		want      bool
	}{
		{"no stall: 19 ms after the beat is alive", 1000 * ms, 0, 0, 1019 * ms, true},
		{"no stall: 21 ms after the beat is gone", 1000 * ms, 0, 0, 1021 * ms, false},
		{"a 25 ms stall right after the beat: 28 ms counts as 3", 1000 * ms, 25 * time.Millisecond, 1026 * ms, 1028 * ms, true},
		{"after the stall the peer has its threshold: 46 ms counts as 21", 1000 * ms, 25 * time.Millisecond, 1026 * ms, 1046 * ms, false},
		{"a stall before the last beat credits nothing", 1030 * ms, 25 * time.Millisecond, 1026 * ms, 1051 * ms, false},
		{"a beat read at the resume is fresh anyway", 1026 * ms, 25 * time.Millisecond, 1026 * ms, 1040 * ms, true},
		{"a 5 s stall credits at most MaxStallCredit", 1000 * ms, 5 * time.Second, 6001 * ms, 6010 * ms, false},
		{"a 900 ms stall is credited whole", 1000 * ms, 900 * time.Millisecond, 1901 * ms, 1910 * ms, true},
		{"a beat the kernel received during the stall is judged by that time: the peer stopped then", 1010 * ms, 25 * time.Millisecond, 1026 * ms, 1035 * ms, false},
		{"a beat received within one interval after the stall began is credited", 1004 * ms, 25 * time.Millisecond, 1026 * ms, 1030 * ms, true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tr := newTestTracker(t, "lb2", "lb3")
			b := Beat{Sender: IDOf("lb2"), Boot: 1, Seq: 1, Flags: FlagRealtime}
			if v := tr.Observe(&b, tc.lastBeat); v != Accepted {
				t.Fatal(v)
			}
			if tc.stall > 0 {
				tr.Stalled(tc.resumedAt, tc.stall)
			}
			if got := tr.Alive("lb2", tc.now); got != tc.want {
				t.Errorf("alive %v, want %v", got, tc.want)
			}
		})
	}
}
