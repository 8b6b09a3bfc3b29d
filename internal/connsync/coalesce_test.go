package connsync

import (
	"testing"
	"time"

	"github.com/epconsole/epconsole/dataplane"
)

// TestStreamCoalesce: the changes waiting for one peer keep one entry per
// flow, the latest state with the first change's time; a delete after an
// upsert still goes (the peer may hold an earlier state from a previous
// batch); a take empties the queue, and the reused queue starts empty.
func TestStreamCoalesce(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ev := func(flow int, op dataplane.SyncOp, state uint8, ms int) stamped {
		e := benchEntry(flow)
		e.Op, e.TCPState = op, state
		return stamped{e: e, t: t0.Add(time.Duration(ms) * time.Millisecond)}
	}
	up, del := dataplane.SyncUpsert, dataplane.SyncDelete
	type want struct {
		flow  int
		op    dataplane.SyncOp
		state uint8
		ms    int
	}
	tests := []struct {
		name string
		in   []stamped
		want []want
	}{
		{"one flow, states superseded", []stamped{ev(1, up, 3, 0), ev(1, up, 4, 1), ev(1, up, 7, 2)},
			[]want{{1, up, 7, 0}}},
		{"upsert then delete keeps the delete", []stamped{ev(1, up, 3, 0), ev(1, del, 7, 1)},
			[]want{{1, del, 7, 0}}},
		{"delete then a new upsert of the tuple", []stamped{ev(1, del, 7, 0), ev(1, up, 3, 1)},
			[]want{{1, up, 3, 0}}},
		{"flows keep their first order", []stamped{ev(1, up, 3, 0), ev(2, up, 3, 1), ev(1, up, 5, 2), ev(3, del, 7, 3)},
			[]want{{1, up, 5, 0}, {2, up, 3, 1}, {3, del, 7, 3}}},
	}
	p := newPeerStream(&Sync{}, "peer")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, e := range tc.in {
				p.add(e)
			}
			got := p.take()
			if len(got) != len(tc.want) {
				t.Fatalf("batch of %d entries, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if keyOf(g.e) != keyOf(benchEntry(w.flow)) || g.e.Op != w.op || g.e.TCPState != w.state || !g.t.Equal(t0.Add(time.Duration(w.ms)*time.Millisecond)) {
					t.Errorf("entry %d: %v %v state %d at %v, want flow %d %v state %d at +%d ms", i, g.e.OrigSrc, g.e.Op, g.e.TCPState, g.t, w.flow, w.op, w.state, w.ms)
				}
			}
			p.taken(got)
			if n, _, _ := p.depth(); n != 0 {
				t.Errorf("%d changes wait after the take", n)
			}
		})
	}
}

// TestStreamOfflineBound: changes for a peer the stream cannot reach
// give way to a full resync after streamOfflineMax distinct flows (the
// stream runs to peers gossip counts dead too); a connected stream keeps
// as many (its bound is streamPendingMax).
func TestStreamOfflineBound(t *testing.T) {
	for _, connected := range []bool{false, true} {
		p := newPeerStream(&Sync{drops: map[string]uint64{}}, "peer")
		p.needDump = false
		p.connected = connected
		for i := range streamOfflineMax + 10 {
			p.add(stamped{e: benchEntry(i)})
		}
		n, _, _ := p.depth()
		if !connected && (n != 9 || !p.needDump) {
			t.Errorf("not connected: %d changes wait, full resync %v; want 9 (those after the one that overflowed, which the resync covers) and a full resync", n, p.needDump)
		}
		if connected && (n != streamOfflineMax+10 || p.needDump) {
			t.Errorf("connected: %d changes wait, full resync %v; want %d and none", n, p.needDump, streamOfflineMax+10)
		}
	}
}

// TestStreamDumpBehindLive: a full dump waits in its own queue and goes
// dumpChunk entries a round, after the changes followed live; a live
// change of a flow still in the dump supersedes the dump's copy (which
// would otherwise take the peer's entry back to an older state); the
// dump's entries carry no time (no lag on the peer); a flow whose change
// already waits is left out of the dump.
func TestStreamDumpBehindLive(t *testing.T) {
	p := newPeerStream(&Sync{drops: map[string]uint64{}}, "peer")
	p.needDump, p.connected = false, true
	live := func(i int, state uint8) stamped {
		e := benchEntry(i)
		e.TCPState = state
		return stamped{e: e, t: time.Unix(2000, int64(i))}
	}
	p.add(live(0, 3)) // waits before the dump
	n := dumpChunk + 100
	var dump []dataplane.SyncEntry
	for i := range n {
		dump = append(dump, benchEntry(i))
	}
	p.mu.Lock()
	p.dump.reset(dump, func(k flowKey) bool { _, ok := p.index[k]; return ok })
	p.mu.Unlock()
	if got, _, _ := p.depth(); got != n {
		t.Fatalf("%d wait, want %d (flow 0 once)", got, n)
	}
	p.add(live(n+1, 3)) // a new flow
	p.add(live(5, 7))   // a flow still in the dump: its copy must not go
	first := p.take()
	p.taken(first)
	if len(first) != 3+dumpChunk {
		t.Fatalf("first round: %d entries, want the 3 live changes and %d of the dump", len(first), dumpChunk)
	}
	for i, want := range []int{0, n + 1, 5} {
		if keyOf(first[i].e) != keyOf(benchEntry(want)) || first[i].t.IsZero() {
			t.Errorf("entry %d: %v at %v, want flow %d's live change first", i, first[i].e.OrigSrc, first[i].t, want)
		}
	}
	seen := map[flowKey]int{}
	for _, st := range first[3:] {
		if !st.t.IsZero() {
			t.Errorf("a dump entry carries a time: %v", st.t)
		}
		seen[keyOf(st.e)]++
	}
	rest := p.take()
	p.taken(rest)
	for _, st := range rest {
		seen[keyOf(st.e)]++
	}
	if k := keyOf(benchEntry(5)); seen[k] != 0 {
		t.Errorf("the dump's copy of flow 5 went after its live change")
	}
	if k := keyOf(benchEntry(0)); seen[k] != 0 {
		t.Errorf("flow 0 went in the dump although its change waited")
	}
	if len(seen) != n-2 {
		t.Errorf("%d distinct dump entries went, want %d", len(seen), n-2)
	}
	for k, c := range seen {
		if c > 1 {
			t.Errorf("flow %v went %d times in the dump", k.src, c)
		}
	}
	if got, _, _ := p.depth(); got != 0 {
		t.Errorf("%d still wait", got)
	}
}
