// Package connsync streams the VIP owner's connection-tracking entries to
// its peers, so established connections survive a VIP move.
//
// While this node holds the VIP it streams its conntrack changes of flows
// through the VIP (new, TCP state changes, destroy) to every alive peer,
// and a full dump to a peer that appears (and to all when it takes the VIP
// over); every node applies what it receives to its own table. The channel
// is a Transport: in production the cluster's reliable stream
// (memberlist's, encrypted and authenticated with the gossip keyring). The
// daemon says whether this node holds the VIP (SetHolding) and which VIP
// ports are synced and which backends exist (SetScope); the rest runs on
// its own.
//
// What arrives is bound to the configuration: a batch is taken only from
// a configured peer (the cluster names the sender), and each entry only
// if it is a TCP flow to a configured VIP:port NATed to a configured
// backend (Scope.Check); the rest is dropped, counted (Dropped) and
// logged a few times a minute with a summary of the rest.
package connsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/floodlimit"
	"github.com/epconsole/epconsole/internal/status"
)

// Transport carries the sync's messages between the peers: a reliable,
// authenticated stream to one named peer, a handler for what arrives, and
// the membership view that says who is alive. *cluster.Cluster is one
// (and a StreamTransport).
type Transport interface {
	SetMessageHandler(fn func(from string, payload []byte))
	SendTo(name string, payload []byte) error
	View() cluster.View
}

// Bounds of the sync.
const (
	syncPeerCheck  = 250 * time.Millisecond // how often new peers are looked for
	syncQueue      = 65536                  // events buffered before a resync
	syncApplyQueue = 64                     // received batches buffered
	syncPeerQueue  = 256                    // messages buffered per legacy peer
	syncWatchRetry = time.Second
)

// Sync runs the connection sync of one node. Its methods may be called on
// a nil *Sync (sync switched off): they do nothing.
type Sync struct {
	log  *slog.Logger
	ct   *dataplane.Conntrack
	cl   Transport
	st   StreamTransport // nil: messages only
	self string

	holding atomic.Bool
	// sending is holding, and stays on for syncReleaseGrace after a
	// release (SetHolding): the events are followed and streamed that
	// long. releaseGen counts releases and claims (a grace timer acts
	// only if none came after its own release).
	sending      atomic.Bool
	releaseGen   atomic.Uint64
	releaseGrace time.Duration // syncReleaseGrace
	// holdWake is signalled when sending changes; watching says the
	// conntrack events are followed.
	holdWake chan struct{}
	watching atomic.Bool
	resync   atomic.Bool // the event queue overflowed: send full dumps
	events   chan stamped
	recv     chan received

	mu        sync.Mutex
	scope     Scope
	restartFn context.CancelFunc // restarts the watch (new VIPs)

	sent, applied, failed, dropped atomic.Uint64
	resyncs, gapRepairs, wireBytes atomic.Uint64
	statMu                         sync.Mutex
	drops                          map[string]uint64
	lag                            status.Histogram
	lagMax                         time.Duration
	// lagSink sees every lag measured (a bench's exact percentiles).
	lagSink atomic.Pointer[func(time.Duration)]
	// limit bounds the logs of dropped batches and entries.
	limit *floodlimit.Limiter

	// peerQ are the per-peer send queues of peers without a stream (owned
	// by sendLoop), so a peer that does not answer delays no other.
	peerQ map[string]chan []byte
	// streams are the owner's streams to the peers that take one.
	streamMu sync.Mutex
	streams  map[string]*streamRun
	// rx is what this node knows of each owner's stream.
	rxMu sync.Mutex
	rx   map[string]*rxState

	hmu    sync.Mutex
	closed bool
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// streamRun is a running peerStream.
type streamRun struct {
	p      *peerStream
	cancel context.CancelFunc
}

// received is a batch with its sender: b a message of the previous
// form, or entries from a stream with done to call once applied.
type received struct {
	from    string
	b       []byte
	entries []stamped
	done    func()
}

// Start starts the sync of the flows through scope's VIPs over tr, self
// being this node's name; stop it with Close. opts reach the conntrack
// handle (a test's namespace).
func Start(ctx context.Context, log *slog.Logger, tr Transport, self string, scope Scope, opts ...dataplane.Option) (*Sync, error) {
	ct, err := dataplane.NewConntrack(append([]dataplane.Option{dataplane.WithLogger(log)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connection sync: %w", err)
	}
	ctx, stop := context.WithCancel(ctx)
	s := &Sync{
		log: log, ct: ct, cl: tr, self: self, scope: scope.clone(),
		events: make(chan stamped, syncQueue), recv: make(chan received, syncApplyQueue), stop: stop,
		holdWake: make(chan struct{}, 1), releaseGrace: syncReleaseGrace,
		peerQ: map[string]chan []byte{}, limit: floodlimit.New(time.Minute, 5, 0, nil),
		drops: map[string]uint64{}, streams: map[string]*streamRun{}, rx: map[string]*rxState{},
	}
	tr.SetMessageHandler(func(from string, b []byte) {
		select {
		case s.recv <- received{from: from, b: b}:
		default:
			s.failed.Add(1)
			s.count("queue-full")
			if s.limit.Allow("queue-full", from) {
				s.log.Warn("connection sync: receive queue full; batch dropped", "from", from)
			}
		}
	})
	if st, ok := tr.(StreamTransport); ok {
		s.st = st
		st.SetStreamHandler(func(from netip.AddrPort, conn net.Conn) {
			s.hmu.Lock()
			if s.closed {
				s.hmu.Unlock()
				conn.Close()
				return
			}
			s.wg.Add(1)
			s.hmu.Unlock()
			defer s.wg.Done()
			pprof.Do(ctx, pprof.Labels("connsync", self), func(ctx context.Context) {
				s.acceptStream(ctx, from, conn, st.StreamKeys())
			})
		})
	}
	// The sync's goroutines (and those they start) carry the node's name
	// as a profiler label, so a CPU profile splits the sync's cost by node.
	labels := pprof.Labels("connsync", self)
	s.wg.Add(3)
	for _, loop := range []func(context.Context){s.watchLoop, s.sendLoop, s.applyLoop} {
		go pprof.Do(ctx, labels, loop)
	}
	log.Info("connection sync started", "vips", scope.VIPs, "backends", len(scope.Backends), "stream", s.st != nil)
	return s, nil
}

// Close stops the sync and waits for its goroutines.
func (s *Sync) Close() {
	if s == nil {
		return
	}
	s.cl.SetMessageHandler(nil)
	if s.st != nil {
		s.st.SetStreamHandler(nil)
	}
	s.hmu.Lock()
	s.closed = true
	s.hmu.Unlock()
	s.stop()
	s.wg.Wait()
	s.ct.Close()
	s.log.Info("connection sync stopped", "batches_sent", s.sent.Load(), "entries_applied", s.applied.Load(),
		"failures", s.failed.Load(), "dropped", s.dropped.Load())
}

// syncReleaseGrace is how long a node goes on following its conntrack
// events and streaming them after it released the VIP. An owner that
// loses its majority for a moment and claims again within it keeps its
// streams and sessions, so its peers get no full dump: without it every
// such blip cost each peer a dump of the whole table (50,000 entries in
// the scale drill, whose new owner blinked 14-27 times under the check's
// load; with the grace it sent one dump, at the takeover). After a
// handover it also carries the flows the old owner
// still forwards while clients learn the new owner's address (a peer
// that holds the VIP applies only entries it lacks).
const syncReleaseGrace = 3 * time.Second

// SetHolding says whether this node holds the VIP (and so streams).
func (s *Sync) SetHolding(on bool) {
	if s == nil {
		return
	}
	if on {
		s.releaseGen.Add(1) // a pending release's grace ends with no effect
		s.holding.Store(true)
		s.setSending(true)
		return
	}
	if !s.holding.Swap(false) {
		return // not holding before either: the grace (if any) runs
	}
	gen := s.releaseGen.Add(1)
	time.AfterFunc(s.releaseGrace, func() {
		if s.releaseGen.Load() == gen && !s.holding.Load() {
			s.setSending(false)
		}
	})
}

// setSending switches the events' following and the streams.
func (s *Sync) setSending(on bool) {
	if s.sending.Swap(on) == on {
		return
	}
	select {
	case s.holdWake <- struct{}{}:
	default:
	}
}

// SetScope changes the VIP:port pairs whose flows are synced and the
// backends received entries may NAT to (a reload).
func (s *Sync) SetScope(vips, backends []netip.AddrPort) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := Scope{VIPs: slices.Clone(vips), Backends: slices.Clone(backends), Mark: s.scope.Mark}
	if s.scope.equal(next) {
		return
	}
	vipsChanged := !slices.Equal(s.scope.VIPs, next.VIPs)
	s.scope = next
	if !vipsChanged {
		return
	}
	if s.restartFn != nil {
		s.restartFn()
	}
	s.resync.Store(true)
}

// Dropped counts the received batches and entries dropped because their
// sender is no configured peer or they are out of scope.
func (s *Sync) Dropped() uint64 {
	if s == nil {
		return 0
	}
	return s.dropped.Load()
}

// count counts one drop or failure by reason.
func (s *Sync) count(reason string) {
	s.statMu.Lock()
	s.drops[reason]++
	s.statMu.Unlock()
}

// watchLoop follows the local conntrack events, restarting the
// subscription when it fails (a full dump then covers the gap). Every
// node subscribes (the kernel reports only the flows created while
// someone listens, and a peer's entries are the flows it forwards after a
// takeover), but while this node does not hold the VIP its socket filter
// drops every event, so its own applied entries do not wake it.
// watching says the events are followed, so the streams (and their full
// dumps) start only once no event can be missed.
func (s *Sync) watchLoop(ctx context.Context) {
	defer s.wg.Done()
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		s.mu.Lock()
		vips := slices.Clone(s.scope.VIPs)
		s.restartFn = cancel
		s.mu.Unlock()
		err := s.watch(wctx, vips)
		s.watching.Store(false)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Warn("connection sync: conntrack events; resubscribing", "err", err)
			s.resync.Store(true)
			select {
			case <-ctx.Done():
				return
			case <-time.After(syncWatchRetry):
			}
		}
	}
}

// watch reads the conntrack events of flows through vips into the event
// queue until ctx ends or the subscription fails, passing them only
// while this node holds the VIP.
func (s *Sync) watch(ctx context.Context, vips []netip.AddrPort) error {
	ev, err := s.ct.SubscribeSync(vips)
	if err != nil {
		return err
	}
	defer ev.Close()
	follow := func() error {
		on := s.sending.Load()
		if err := ev.Pause(!on); err != nil {
			return err
		}
		s.watching.Store(on)
		return nil
	}
	if err := follow(); err != nil {
		return err
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.holdWake:
				if err := follow(); err != nil {
					s.log.Warn("connection sync: switching the event filter", "err", err)
				}
			}
		}
	}()
	return ev.Read(ctx, func(e dataplane.SyncEntry) {
		if !s.sending.Load() {
			return
		}
		select {
		case s.events <- stamped{e: e, t: time.Now()}:
		default:
			s.count("event-overflow")
			s.resync.Store(true)
		}
	})
}

// syncPeers lists the peers the owner sends its flows to: a stream to
// each configured peer that advertised one when gossip last heard it and
// has not left, whatever gossip thinks of its health now (as streamPeer
// on the receiving side: after a partition heals gossip may count a peer
// dead for seconds while it is reachable, and a peer left without flows
// then loses them all at the next failover; a peer that is really down
// costs a refused dial every streamRetryMax); messages to the other
// members gossip hears alive (the previous version's peers, or all of
// them when this node opens no streams).
func (s *Sync) syncPeers() (stream, legacy []string) {
	for _, m := range s.cl.View().Members {
		if m.Name == s.self {
			continue
		}
		if s.st != nil && mayStream(m) && m.Meta.SyncStream && m.State != cluster.StateUnknown {
			stream = append(stream, m.Name)
		} else if m.State == cluster.StateAlive {
			legacy = append(legacy, m.Name)
		}
	}
	return stream, legacy
}

// sendLoop hands the events to the streams and batches them to the
// peers without one; it keeps a stream to every peer that takes one
// while this node holds the VIP, and sends full dumps to the others
// that appear (and to all after a takeover or a lost event).
func (s *Sync) sendLoop(ctx context.Context) {
	defer s.wg.Done()
	check := time.NewTicker(syncPeerCheck)
	defer check.Stop()
	known := map[string]bool{} // legacy peers that got a full dump while holding
	wasHolding := false
	streamPeers, legacyPeers := s.syncPeers()
	defer s.stopStreams(nil)
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-s.events:
			// No waiting: what is queued goes along, the rest follows in
			// the next batch (a peer that takes over needs each entry before
			// the flow's next packet reaches it).
			batch := []stamped{e}
		gather:
			for len(batch) < syncBatchMax {
				select {
				case e := <-s.events:
					batch = append(batch, e)
				default:
					break gather
				}
			}
			s.streamMu.Lock()
			for _, r := range s.streams {
				for _, e := range batch {
					r.p.add(e)
				}
			}
			s.streamMu.Unlock()
			if len(legacyPeers) == 0 {
				continue
			}
			plain := make([]dataplane.SyncEntry, len(batch))
			for i, e := range batch {
				plain[i] = e.e
			}
			b, err := encodeSyncBatch(plain)
			if err != nil {
				s.log.Error("connection sync: encoding", "err", err)
				continue
			}
			for _, p := range legacyPeers {
				if !s.enqueue(ctx, p, b) {
					delete(known, p) // lost an update: a full dump again
				}
			}
			continue
		case <-check.C:
		}
		streamPeers, legacyPeers = s.syncPeers()
		holding := s.sending.Load()
		if holding && !s.watching.Load() {
			continue // not following the events yet: no dump that could miss one
		}
		if !holding {
			wasHolding = false
			s.stopStreams(nil)
			continue
		}
		resync := s.resync.Swap(false)
		if !wasHolding || resync {
			clear(known)
		}
		wasHolding = true
		s.keepStreams(ctx, streamPeers, resync)
		for name := range known {
			if !slices.Contains(legacyPeers, name) {
				delete(known, name) // gone: a full dump when it is back
			}
		}
		for _, p := range legacyPeers {
			if !known[p] {
				if s.fullDump(ctx, p) {
					known[p] = true
				}
			}
		}
	}
}

// keepStreams runs a stream to each of peers and stops the others;
// resync asks every stream for a full dump.
func (s *Sync) keepStreams(ctx context.Context, peers []string, resync bool) {
	s.stopStreams(peers)
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	for _, name := range peers {
		r := s.streams[name]
		if r == nil {
			sctx, cancel := context.WithCancel(ctx)
			r = &streamRun{p: newPeerStream(s, name), cancel: cancel}
			s.streams[name] = r
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				r.p.run(sctx, s.st)
			}()
			continue
		}
		if resync {
			r.p.resync()
		}
	}
}

// stopStreams stops the streams to the peers not in keep.
func (s *Sync) stopStreams(keep []string) {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	for name, r := range s.streams {
		if !slices.Contains(keep, name) {
			r.cancel()
			delete(s.streams, name)
		}
	}
}

// enqueue queues a message for peer, starting its sender on first use;
// false if the queue is full (the message is dropped).
func (s *Sync) enqueue(ctx context.Context, peer string, msg []byte) bool {
	q := s.peerQ[peer]
	if q == nil {
		q = make(chan []byte, syncPeerQueue)
		s.peerQ[peer] = q
		s.wg.Add(1)
		go s.peerLoop(ctx, peer, q)
	}
	select {
	case q <- msg:
		return true
	default:
		s.failed.Add(1)
		s.count("send-queue-full")
		return false
	}
}

// peerLoop sends one peer's messages in order.
func (s *Sync) peerLoop(ctx context.Context, peer string, q <-chan []byte) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-q:
			if err := s.cl.SendTo(peer, msg); err != nil {
				if !errors.Is(err, cluster.ErrNoMember) && !errors.Is(err, cluster.ErrShutdown) {
					s.failed.Add(1)
					s.log.Warn("connection sync: sending", "peer", peer, "bytes", len(msg), "err", err)
				}
				continue
			}
			s.sent.Add(1)
			s.wireBytes.Add(uint64(len(msg)))
		}
	}
}

// fullDump queues every synced entry for a peer without a stream; false
// if it failed.
func (s *Sync) fullDump(ctx context.Context, peer string) bool {
	s.mu.Lock()
	vips := slices.Clone(s.scope.VIPs)
	s.mu.Unlock()
	entries, err := s.ct.SyncDump(ctx, vips)
	if err != nil {
		s.log.Warn("connection sync: dumping conntrack", "err", err)
		return false
	}
	for chunk := range slices.Chunk(entries, syncBatchMax) {
		b, err := encodeSyncBatch(chunk)
		if err != nil {
			s.log.Error("connection sync: encoding", "err", err)
			return false
		}
		if !s.enqueue(ctx, peer, b) {
			return false
		}
	}
	s.resyncs.Add(1)
	s.log.Debug("connection sync: full dump queued", "peer", peer, "entries", len(entries))
	return true
}

// fromPeer reports whether name is a configured peer that is an alive
// member (the cluster checks it too; this keeps the sync honest with any
// Transport).
func (s *Sync) fromPeer(name string) bool {
	if name == "" || name == s.self {
		return false
	}
	m, ok := s.cl.View().Member(name)
	return ok && m.Configured && m.State == cluster.StateAlive
}

// drop counts something received that is not applied and logs it, a few
// times a minute per reason with a summary of the rest.
func (s *Sync) drop(reason, from string, err error) {
	s.dropped.Add(1)
	s.count(reason)
	if s.limit.Allow(reason, from) {
		s.log.Warn("connection sync: received entry dropped", "from", from, "reason", reason, "err", err)
	}
	s.flushDrops()
}

// flushDrops logs the summaries of what the limiter held back.
func (s *Sync) flushDrops() {
	for _, sum := range s.limit.Flush() {
		s.log.Warn("connection sync: received entries dropped", "reason", sum.Kind,
			"summary", sum.Describe("dropped batches or entries"))
	}
}
