package heartbeat

import (
	"runtime"
	"testing"
	"time"
)

func TestRefreshRoundTrip(t *testing.T) {
	for _, r := range []refresh{
		{},
		{flags: FlagHolding, owner: IDOf("lb1"), epoch: 1, sentAt: 12345},
		{flags: FlagLeaving | FlagHolding, owner: 1<<64 - 1, epoch: 1<<64 - 1, sentAt: 1<<63 - 1},
	} {
		var b [refreshSize]byte
		r.encode(&b)
		var got refresh
		if !got.decode(b[:]) || got != r {
			t.Errorf("refresh %+v -> %+v", r, got)
		}
	}
	// The daemon cannot set the loop's own flags.
	var b [refreshSize]byte
	(&refresh{flags: FlagRealtime | FlagMajority | FlagHolding}).encode(&b)
	var got refresh
	if !got.decode(b[:]) || got.flags != FlagHolding {
		t.Errorf("flags %v", got.flags)
	}
	for _, bad := range [][]byte{nil, b[:refreshSize-1], append(b[:], 0), append([]byte{msgReport}, make([]byte, refreshSize-1)...)} {
		if got.decode(bad) {
			t.Errorf("decoded %x", bad)
		}
	}
}

func TestReportRoundTrip(t *testing.T) {
	r := report{
		at: 123456789, beating: true, majority: false, realtime: true, boot: 0xabcdef, seq: 77,
		stats: Stats{Ticks: 1, Sent: 2, SendErrors: 3, Received: 4, Accepted: 5, Malformed: 6, BadMAC: 7,
			Replayed: 8, OldBoot: 9, Unknown: 10, LateTicks: 11, MaxLateness: 12 * time.Microsecond, ReportsDropped: 13},
		peers: []peerReport{
			{seen: true, alive: true, flags: FlagRealtime | FlagHolding, lastBeat: 99, boot: 5, seq: 6, owner: IDOf("b"), epoch: 3},
			{},
			{seen: true, lastBeat: 1, boot: 1, seq: 1},
		},
	}
	buf := make([]byte, maxReportSize)
	msg := r.encode(buf)
	if len(msg) != reportHeaderSize+3*peerRecordSize {
		t.Fatalf("length %d", len(msg))
	}
	got := report{peers: make([]peerReport, 3)}
	if err := got.decode(msg); err != nil {
		t.Fatal(err)
	}
	if got.at != r.at || got.beating != r.beating || got.majority != r.majority || got.realtime != r.realtime ||
		got.boot != r.boot || got.seq != r.seq || got.stats != r.stats {
		t.Fatalf("header %+v, want %+v", got, r)
	}
	for i := range r.peers {
		if got.peers[i] != r.peers[i] {
			t.Errorf("peer %d: %+v, want %+v", i, got.peers[i], r.peers[i])
		}
	}
	if !sameVerdict(&got, &r) {
		t.Error("sameVerdict of a round trip is false")
	}
	other := report{peers: make([]peerReport, 2)}
	if err := other.decode(msg); err == nil {
		t.Error("decoded a report for another peer count")
	}
	if err := got.decode(msg[:len(msg)-1]); err == nil {
		t.Error("decoded a truncated report")
	}
	if a := totalAllocs(100, func() { r.encode(buf) }); a != 0 {
		t.Errorf("encode allocates %v", a)
	}
}

func TestSameVerdict(t *testing.T) {
	base := func() report {
		return report{beating: true, majority: true, peers: []peerReport{{seen: true, alive: true, owner: 1, epoch: 2, boot: 3, seq: 4, lastBeat: 5}}}
	}
	for _, tc := range []struct {
		desc   string
		change func(*report)
		same   bool
	}{
		{"nothing", func(*report) {}, true},
		{"time, sequence and counters only", func(r *report) { r.at++; r.seq++; r.peers[0].seq++; r.peers[0].lastBeat++; r.stats.Sent++ }, true},
		{"peer died", func(r *report) { r.peers[0].alive = false }, false},
		{"claim epoch", func(r *report) { r.peers[0].epoch++ }, false},
		{"claim owner", func(r *report) { r.peers[0].owner++ }, false},
		{"peer restarted", func(r *report) { r.peers[0].boot++ }, false},
		{"peer flags", func(r *report) { r.peers[0].flags |= FlagLeaving }, false},
		{"majority", func(r *report) { r.majority = false }, false},
		{"token expired", func(r *report) { r.beating = false }, false},
	} {
		a, b := base(), base()
		tc.change(&b)
		if got := sameVerdict(&a, &b); got != tc.same {
			t.Errorf("%s: sameVerdict = %v, want %v", tc.desc, got, tc.same)
		}
	}
}

// totalAllocs runs f runs times (after a few warm-up runs, which may
// allocate once: HMAC states are marshalled on first use) and returns the
// number of heap allocations in all of them, the least of three rounds: the
// runtime's own background work (the scavenger's timer, a new goroutine of
// the test framework) is counted too and lands in one round at most, while
// an allocation of f shows in every round. (testing.AllocsPerRun divides and
// rounds down, which would hide an allocation made every few runs.)
func totalAllocs(runs int, f func()) uint64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for range 10 {
		f()
	}
	least := ^uint64(0)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			f()
		}
		runtime.ReadMemStats(&after)
		least = min(least, after.Mallocs-before.Mallocs)
	}
	return least
}
