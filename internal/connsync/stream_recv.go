package connsync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/epconsole/epconsole/cluster"
)

// rxState is what this node knows of an owner's stream: its session and
// the last batch applied from it.
type rxState struct {
	session uint64
	last    uint64
	conn    *secureConn // the current connection (an older one is closed)
}

// acceptStream runs the peer's side of a stream an owner opened.
func (s *Sync) acceptStream(ctx context.Context, from netip.AddrPort, raw net.Conn, keys [][]byte) {
	var owner string
	var session uint64
	conn, err := serverHandshake(raw, keys, func(hello []byte) ([]byte, error) {
		name, sess, err := decodeHello(hello)
		if err != nil {
			return nil, err
		}
		if !s.fromPeerAt(name, from.Addr()) {
			return nil, fmt.Errorf("stream from %q at %v: not a configured peer (that has not left) at that address", name, from.Addr())
		}
		owner, session = name, sess
		s.rxMu.Lock()
		st := s.rx[name]
		known := st != nil && st.session == sess
		var last uint64
		if known {
			last = st.last
		}
		s.rxMu.Unlock()
		return encodeReply(s.self, known, last), nil
	})
	if err != nil {
		raw.Close()
		s.drop("sender", from.Addr().String(), fmt.Errorf("sync stream: %w", err))
		return
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	s.rxMu.Lock()
	st := s.rx[owner]
	if st == nil || st.session != session {
		st = &rxState{session: session}
		s.rx[owner] = st
	}
	if st.conn != nil {
		st.conn.Close()
	}
	st.conn = conn
	s.rxMu.Unlock()

	// The acknowledgements go from their own goroutine, newest only.
	var ackSeq atomic.Uint64
	ackWake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		var sent uint64
		for {
			select {
			case <-done:
				return
			case <-ackWake:
			}
			if a := ackSeq.Load(); a > sent {
				if _, err := conn.WriteFrame(encodeAck(a), true); err != nil {
					conn.Close()
					return
				}
				sent = a
			}
		}
	}()
	defer func() { close(done); wg.Wait() }()

	for {
		b, err := conn.ReadFrame()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				s.log.Debug("connection sync: stream from owner ended", "owner", owner, "err", err)
			}
			return
		}
		seq, entries, err := decodeBatch(b)
		if err != nil {
			s.count("decode")
			s.log.Warn("connection sync: stream batch dropped; reconnecting", "owner", owner, "err", err)
			return
		}
		s.rxMu.Lock()
		dup := seq <= st.last
		s.rxMu.Unlock()
		ack := func() {
			s.rxMu.Lock()
			if seq > st.last {
				st.last = seq
			}
			s.rxMu.Unlock()
			ackSeq.Store(seq)
			select {
			case ackWake <- struct{}{}:
			default:
			}
		}
		if dup {
			ack()
			continue
		}
		// Blocking: a peer that applies slowly slows the owner's stream
		// (its window fills), it drops nothing.
		select {
		case s.recv <- received{from: owner, entries: entries, done: ack}:
		case <-ctx.Done():
			return
		}
	}
}

// fromPeerAt reports whether name may open a sync stream (streamPeer)
// and its gossip address is at a.
func (s *Sync) fromPeerAt(name string, a netip.Addr) bool {
	m, ok := s.streamMember(name)
	return ok && m.Addr.IsValid() && m.Addr.Addr().Unmap() == a.Unmap()
}

// streamPeer reports whether name may send this node flows over a sync
// stream: a configured peer that has not left, whatever gossip thinks of
// its health. After a partition heals gossip may count the peer dead or
// suspect for seconds (a fault campaign saw more than 10 s) while it holds
// the VIP and streams its flows; refusing them then loses every flow
// opened meanwhile at the next failover. The stream's handshake
// authenticates the peer with the gossip keys and fromPeerAt checks its
// configured address.
func (s *Sync) streamPeer(name string) bool {
	_, ok := s.streamMember(name)
	return ok
}

// streamMember is name's member in one view of the cluster, if it may
// send this node flows over a sync stream (streamPeer).
func (s *Sync) streamMember(name string) (cluster.Member, bool) {
	if name == "" || name == s.self {
		return cluster.Member{}, false
	}
	m, ok := s.cl.View().Member(name)
	return m, ok && mayStream(m)
}

// mayStream is the rule both ends of a sync stream share: a configured
// peer that has not left, whatever gossip thinks of its health now.
func mayStream(m cluster.Member) bool {
	return m.Configured && m.State != cluster.StateLeft
}
