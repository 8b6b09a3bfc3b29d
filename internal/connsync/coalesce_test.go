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
