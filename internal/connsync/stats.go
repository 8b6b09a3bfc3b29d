package connsync

import (
	"maps"
	"slices"
	"time"

	"github.com/epconsole/epconsole/internal/status"
)

// Stats are the sync's running totals and its streams now.
type Stats struct {
	// Sent counts the batches sent, WireBytes their bytes on the wire
	// (sealed frames of the streams, messages of the previous form).
	Sent, WireBytes uint64
	// Applied counts the entries applied to this node's table, Failed
	// the entries and batches that failed.
	Applied, Failed uint64
	// Dropped counts what was not applied or not sent, by reason: sender
	// (no configured peer, or a stream that failed authentication), the
	// scope reasons (vip, backend, snat, mark, state, op), decode,
	// queue-full, send-queue-full, event-overflow, pending-overflow, apply.
	Dropped map[string]uint64
	// Resyncs counts the full dumps sent; GapRepairs the reconnects that
	// resent only the unacknowledged batches.
	Resyncs, GapRepairs uint64
	// Lag is the time from a change on the owner to its entry applied here.
	Lag status.Histogram
	// LagMax is the longest lag measured.
	LagMax time.Duration
	// Peers are the owner's streams, sorted by name.
	Peers []PeerStats
}

// PeerStats is the owner's stream to one peer.
type PeerStats struct {
	Name string
	// Connected: the stream is up.
	Connected bool
	// Pending flows wait to be sent; Unacked entries are sent and not yet
	// acknowledged.
	Pending, Unacked int
}

// Stats returns the running totals (zero on a nil Sync).
func (s *Sync) Stats() Stats {
	if s == nil {
		return Stats{}
	}
	st := Stats{
		Sent: s.sent.Load(), WireBytes: s.wireBytes.Load(), Applied: s.applied.Load(), Failed: s.failed.Load(),
		Resyncs: s.resyncs.Load(), GapRepairs: s.gapRepairs.Load(),
	}
	s.statMu.Lock()
	st.Dropped = maps.Clone(s.drops)
	st.Lag, st.LagMax = s.lag, s.lagMax
	s.statMu.Unlock()
	s.streamMu.Lock()
	for name, r := range s.streams {
		p, u, c := r.p.depth()
		st.Peers = append(st.Peers, PeerStats{Name: name, Connected: c, Pending: p, Unacked: u})
	}
	s.streamMu.Unlock()
	slices.SortFunc(st.Peers, func(a, b PeerStats) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return st
}
