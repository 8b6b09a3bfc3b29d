package connsync

import (
	"context"
	"fmt"
	"time"

	"github.com/epconsole/epconsole/dataplane"
)

// applyLoop applies received batches to the local table, over one
// ctnetlink socket (dataplane.SyncApplier). While this node holds the VIP
// it forwards the flows itself: it then only adds entries it lacks, and
// ignores refreshes and deletes (so two holders during a handoff do not
// echo refreshes at each other).
func (s *Sync) applyLoop(ctx context.Context) {
	defer s.wg.Done()
	flush := time.NewTicker(10 * time.Second)
	defer flush.Stop()
	var ap *dataplane.SyncApplier
	defer func() {
		if ap != nil {
			ap.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			s.flushDrops()
		case r := <-s.recv:
			// A stream's batch (entries, no bytes) comes from a peer
			// checked at the stream's handshake; gossip may still count
			// it unhealthy after a partition (streamPeer).
			if ok := r.b == nil && s.streamPeer(r.from) || s.fromPeer(r.from); !ok {
				s.drop("sender", r.from, fmt.Errorf("batch from %q: not a configured peer that is alive", r.from))
				continue
			}
			entries := r.entries
			if r.b != nil {
				plain, err := decodeSyncBatch(r.b)
				if err != nil {
					s.failed.Add(1)
					s.count("decode")
					if s.limit.Allow("decode", r.from) {
						s.log.Warn("connection sync: batch dropped", "from", r.from, "err", err)
					}
					continue
				}
				entries = make([]stamped, len(plain))
				for i, e := range plain {
					entries[i].e = e
				}
			}
			if ap == nil {
				var err error
				if ap, err = s.ct.NewSyncApplier(); err != nil {
					s.failed.Add(1)
					s.log.Warn("connection sync: opening ctnetlink", "err", err)
					continue
				}
			}
			if !s.applyBatch(ctx, ap, r.from, entries) {
				if ctx.Err() != nil {
					return
				}
				ap.Close()
				ap = nil // a fresh socket for the next batch
			}
			if r.done != nil {
				r.done()
			}
		}
	}
}

// applyBatch applies entries from a peer, many requests to a system
// call (SyncApplier.ApplyAll); false if the socket failed.
func (s *Sync) applyBatch(ctx context.Context, ap *dataplane.SyncApplier, from string, entries []stamped) bool {
	s.mu.Lock()
	scope := s.scope
	s.mu.Unlock()
	holding := s.holding.Load()
	todo := make([]dataplane.SyncEntry, 0, len(entries))
	stamps := make([]time.Time, 0, len(entries))
	for _, st := range entries {
		e := st.e
		if err := scope.Check(e); err != nil {
			s.drop(reasonOf(err), from, fmt.Errorf("%s %v -> %v: %w", e.Op, e.OrigSrc, e.OrigDst, err))
			continue
		}
		if holding && e.Op != dataplane.SyncUpsert {
			// Forwarding them now: add what is missing (a flow a former
			// owner started at the move), touch nothing else.
			continue
		}
		todo, stamps = append(todo, e), append(stamps, st.t)
	}
	errs := ap.ApplyAll(ctx, todo, holding)
	if ctx.Err() != nil {
		return false
	}
	var lags []time.Duration
	now := time.Now()
	for i, err := range errs {
		if err != nil {
			s.failed.Add(1)
			s.count("apply")
			s.log.Debug("connection sync: applying", "op", todo[i].Op.String(), "client", todo[i].OrigSrc, "err", err)
			continue
		}
		s.applied.Add(1)
		if !stamps[i].IsZero() {
			lags = append(lags, max(now.Sub(stamps[i]), 0))
		}
	}
	if len(lags) > 0 {
		s.statMu.Lock()
		for _, l := range lags {
			s.lag.Observe(l)
			s.lagMax = max(s.lagMax, l)
		}
		s.statMu.Unlock()
		if fn := s.lagSink.Load(); fn != nil {
			for _, l := range lags {
				(*fn)(l)
			}
		}
	}
	return true
}
