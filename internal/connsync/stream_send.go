package connsync

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/epconsole/epconsole/dataplane"
)

// StreamTransport is what a Transport offers for the persistent sync
// stream (*cluster.Cluster does): a stream to a peer that advertises it,
// the streams peers open to this node, and the gossip keys that
// authenticate and encrypt them. Without it (or for a peer that does not
// advertise the stream: the previous version) the sync goes as
// Transport messages.
type StreamTransport interface {
	DialStream(ctx context.Context, name string) (net.Conn, error)
	SetStreamHandler(fn func(from netip.AddrPort, conn net.Conn))
	StreamKeys() [][]byte
}

// Bounds of a stream.
const (
	streamLinger      = 2 * time.Millisecond // wait for more events before a batch
	streamWindowBytes = 8 << 20              // unacknowledged bytes before the owner waits
	streamPendingMax  = 1 << 20              // distinct flows waiting before a full resync
	// streamOfflineMax is the distinct flows waiting for a peer the stream
	// cannot reach before they give way to a full resync: the stream runs
	// to a peer gossip counts dead too (syncPeers), and a peer down for
	// minutes must not cost the owner a million queued changes.
	streamOfflineMax = 1 << 16
	streamRetryMin   = 100 * time.Millisecond
	streamRetryMax   = 500 * time.Millisecond
)

// flowKey names a flow by its original tuple.
type flowKey struct{ src, dst netip.AddrPort }

func keyOf(e dataplane.SyncEntry) flowKey { return flowKey{e.OrigSrc, e.OrigDst} }

// sentBatch is a batch sent but not yet acknowledged.
type sentBatch struct {
	seq   uint64
	frame []byte
	n     int
}

// peerStream is the owner's stream to one peer: the changes waiting to
// go (one per flow: a newer change replaces an older one, so a slow peer
// costs memory per flow, not per event), the batches sent and not yet
// acknowledged (resent after a reconnect), and the connection.
type peerStream struct {
	s       *Sync
	name    string
	session uint64

	mu          sync.Mutex
	pending     []stamped
	spare       []stamped // the previous batch's queue, for reuse
	index       map[flowKey]int
	dump        dumpQueue // a full dump's entries not sent yet (stream_dump.go)
	window      []sentBatch
	windowBytes int
	nextSeq     uint64
	needDump    bool
	connected   bool
	wake        chan struct{}
}

func newPeerStream(s *Sync, name string) *peerStream {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &peerStream{s: s, name: name, session: binary.BigEndian.Uint64(b[:]) | 1,
		index: map[flowKey]int{}, nextSeq: 1, needDump: true, wake: make(chan struct{}, 1)}
}

func (p *peerStream) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// add queues a change, replacing the waiting change of the same flow
// (whose time it keeps: the lag counts from the first change).
func (p *peerStream) add(st stamped) {
	p.mu.Lock()
	k := keyOf(st.e)
	p.dump.supersede(k) // the change is newer than the dump's copy of the flow
	if i, ok := p.index[k]; ok {
		p.pending[i].e = st.e
	} else if len(p.pending) >= streamPendingMax || !p.connected && len(p.pending) >= streamOfflineMax {
		p.pending, p.index, p.needDump = nil, map[flowKey]int{}, true
		p.s.count("pending-overflow")
	} else {
		p.index[k] = len(p.pending)
		p.pending = append(p.pending, st)
	}
	p.mu.Unlock()
	p.signal()
}

// resync asks for a full dump.
func (p *peerStream) resync() {
	p.mu.Lock()
	p.needDump = true
	p.mu.Unlock()
	p.signal()
}

// depth is how many changes wait plus how many are unacknowledged.
func (p *peerStream) depth() (pending, unacked int, connected bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.window {
		unacked += b.n
	}
	return len(p.pending) + p.dump.left(), unacked, p.connected
}

// run keeps the stream up until ctx ends.
func (p *peerStream) run(ctx context.Context, tr StreamTransport) {
	wait := streamRetryMin
	for ctx.Err() == nil {
		err := p.session1(ctx, tr)
		p.mu.Lock()
		if p.connected {
			wait = streamRetryMin // it was up: the first retry comes soon
		}
		p.connected = false
		p.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if err != nil && p.s.limit.Allow("stream", p.name) {
			p.s.log.Warn("connection sync: stream to peer", "peer", p.name, "err", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, streamRetryMax)
	}
}

// session1 runs one connection of the stream.
func (p *peerStream) session1(ctx context.Context, tr StreamTransport) error {
	keys := tr.StreamKeys()
	if len(keys) == 0 {
		return errors.New("no gossip key")
	}
	raw, err := tr.DialStream(ctx, p.name)
	if err != nil {
		return err
	}
	conn, answer, err := clientHandshake(raw, keys[0], encodeHello(p.s.self, p.session))
	if err != nil {
		raw.Close()
		return fmt.Errorf("handshake: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	name, known, last, err := decodeReply(answer)
	if err != nil {
		return err
	}
	if name != p.name {
		return fmt.Errorf("answered as %q", name)
	}
	p.mu.Lock()
	var resend [][]byte
	switch {
	case known && (len(p.window) == 0 && last+1 == p.nextSeq || len(p.window) > 0 && last+1 >= p.window[0].seq):
		p.trimLocked(last)
		for _, b := range p.window {
			resend = append(resend, b.frame)
		}
		if len(resend) > 0 {
			p.s.gapRepairs.Add(1)
		}
	default:
		// A peer that does not know this stream (it restarted, or this
		// is the first connection) or missed more than the window holds
		// gets everything.
		p.window, p.windowBytes, p.needDump = nil, 0, true
	}
	p.connected = true
	p.mu.Unlock()
	for _, f := range resend {
		if _, err := conn.WriteFrame(f, false); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- p.readAcks(conn) }()
	werr := p.writeLoop(ctx, conn, errc)
	conn.Close()
	if werr != nil {
		return werr
	}
	return <-errc
}

// trimLocked forgets the batches up to seq.
func (p *peerStream) trimLocked(seq uint64) {
	i := 0
	for i < len(p.window) && p.window[i].seq <= seq {
		p.windowBytes -= len(p.window[i].frame)
		i++
	}
	p.window = p.window[i:]
}

func (p *peerStream) readAcks(conn *secureConn) error {
	for {
		b, err := conn.ReadFrame()
		if err != nil {
			return err
		}
		seq, err := decodeAck(b)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.trimLocked(seq)
		p.mu.Unlock()
		p.signal()
	}
}

// writeLoop sends what waits, in batches, while the window has room.
func (p *peerStream) writeLoop(ctx context.Context, conn *secureConn, errc <-chan error) error {
	var buf []byte
	for {
		p.mu.Lock()
		dump := p.needDump
		p.needDump = false
		p.mu.Unlock()
		if dump {
			if err := p.queueDump(ctx); err != nil {
				return err
			}
		}
		p.mu.Lock()
		full := p.windowBytes >= streamWindowBytes
		n := len(p.pending) + p.dump.left()
		p.mu.Unlock()
		if n == 0 || full {
			select {
			case <-ctx.Done():
				return nil
			case err := <-errc:
				return err
			case <-p.wake:
			}
			continue
		}
		if n < syncBatchMax {
			time.Sleep(streamLinger) // let a burst gather
		}
		out := p.take()
		all := out
		for len(out) > 0 {
			chunk := out[:min(len(out), syncBatchMax)]
			out = out[len(chunk):]
			p.mu.Lock()
			seq := p.nextSeq
			p.nextSeq++
			p.mu.Unlock()
			var err error
			buf, err = encodeBatch(buf, seq, chunk)
			if err != nil {
				p.s.log.Error("connection sync: encoding", "err", err)
				continue
			}
			frame := append([]byte(nil), buf...)
			p.mu.Lock()
			p.window = append(p.window, sentBatch{seq: seq, frame: frame, n: len(chunk)})
			p.windowBytes += len(frame)
			p.mu.Unlock()
			w, err := conn.WriteFrame(frame, len(out) == 0)
			if err != nil {
				return err
			}
			p.s.sent.Add(1)
			p.s.wireBytes.Add(uint64(w))
		}
		p.taken(all)
	}
}

// take removes the waiting changes and returns them, then the next
// dumpChunk entries of a full dump: a change followed live never waits
// behind a whole dump. The queue and its index are reused from batch to
// batch (an event costs no allocation), unless a burst grew them: those
// are let go.
func (p *peerStream) take() []stamped {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.pending
	p.pending, p.spare = p.spare, nil
	if len(p.index) <= syncBatchMax {
		clear(p.index)
	} else {
		p.index = map[flowKey]int{}
	}
	return p.dump.next(out, dumpChunk)
}

// taken hands back what take returned once it is encoded, for reuse.
func (p *peerStream) taken(out []stamped) {
	if cap(out) > 4*syncBatchMax {
		return
	}
	p.mu.Lock()
	p.spare = out[:0]
	p.mu.Unlock()
}

// queueDump queues every synced flow that has no change waiting, in the
// dump queue (replacing an earlier dump not sent yet). Its entries carry
// no time: the peer's lag counts the changes followed live, and a dump
// is measured by how long the peer takes to hold it all (join).
func (p *peerStream) queueDump(ctx context.Context) error {
	p.s.mu.Lock()
	vips := append([]netip.AddrPort(nil), p.s.scope.VIPs...)
	p.s.mu.Unlock()
	entries, err := p.s.ct.SyncDump(ctx, vips)
	if err != nil {
		p.resync()
		return fmt.Errorf("dumping conntrack: %w", err)
	}
	p.mu.Lock()
	p.dump.reset(entries, func(k flowKey) bool { _, ok := p.index[k]; return ok })
	p.mu.Unlock()
	p.s.resyncs.Add(1)
	p.s.log.Debug("connection sync: full dump queued", "peer", p.name, "entries", len(entries))
	return nil
}
