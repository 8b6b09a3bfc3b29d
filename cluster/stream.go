package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// Sync streams share the gossip TCP port: a connection whose first byte
// is StreamMagic is handed to the stream handler (the connection sync's
// persistent stream), every other one goes to memberlist as before. No
// port to open in a firewall, and a peer of the previous version (which
// does not advertise SyncStream in its metadata) is never dialled this
// way. The cluster checks only that the connection comes from a
// configured peer's address; the handler authenticates the peer with the
// gossip keys (StreamKeys) and encrypts what follows.

// StreamMagic is the first byte of a sync stream on the gossip TCP port;
// memberlist never starts a stream with it.
const StreamMagic byte = 0xE5

// streamPeekTimeout bounds the wait for a new connection's first byte.
const streamPeekTimeout = 10 * time.Second

// streamTransport is memberlist's TCP/UDP transport with the streams that
// start with StreamMagic taken out.
type streamTransport struct {
	*memberlist.NetTransport
	out     chan net.Conn
	handler atomic.Pointer[func(from netip.AddrPort, conn net.Conn)]
	allowed func(netip.Addr) bool
	stop    chan struct{} // closed when Shutdown starts: no new stream is routed
	netDone chan struct{} // closed when the NetTransport has shut down
	once    sync.Once
	wg      sync.WaitGroup
}

func newStreamTransport(nt *memberlist.NetTransport, allowed func(netip.Addr) bool) *streamTransport {
	t := &streamTransport{NetTransport: nt, out: make(chan net.Conn), allowed: allowed,
		stop: make(chan struct{}), netDone: make(chan struct{})}
	t.wg.Add(1)
	go t.sort()
	return t
}

// StreamCh is what memberlist reads its streams from.
func (t *streamTransport) StreamCh() <-chan net.Conn { return t.out }

// Shutdown stops the sorting and the underlying transport. The sorting
// goes on draining the NetTransport's stream channel (closing what it
// takes) until that transport has shut down: its listener hands each
// accepted connection over on an unbuffered channel and its Shutdown waits
// for the listener, so a connection accepted as the shutdown begins would
// otherwise block both for ever.
func (t *streamTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		close(t.stop)
		err = t.NetTransport.Shutdown()
		close(t.netDone)
	})
	t.wg.Wait()
	return err
}

func (t *streamTransport) sort() {
	defer t.wg.Done()
	for {
		select {
		case <-t.netDone:
			return
		case conn := <-t.NetTransport.StreamCh():
			select {
			case <-t.stop:
				conn.Close() // shutting down
				continue
			default:
			}
			t.wg.Add(1)
			go t.route(conn)
		}
	}
}

// route reads a connection's first byte and hands it on.
func (t *streamTransport) route(conn net.Conn) {
	defer t.wg.Done()
	br := bufio.NewReaderSize(conn, 4<<10)
	_ = conn.SetReadDeadline(time.Now().Add(streamPeekTimeout))
	first, err := br.Peek(1)
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return
	}
	if first[0] != StreamMagic {
		select {
		case t.out <- &peekedConn{Conn: conn, r: br}:
		case <-t.stop:
			conn.Close()
		}
		return
	}
	_, _ = br.Discard(1)
	from, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
	fn := t.handler.Load()
	if fn == nil || !t.allowed(from.Addr().Unmap()) {
		conn.Close()
		return
	}
	(*fn)(from, &peekedConn{Conn: conn, r: br})
}

// peekedConn is a connection whose first bytes were read ahead.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// SetStreamHandler sets the function that takes the sync streams peers
// open to this node (nil: they are closed). It runs on its own goroutine
// per connection and owns conn. Only connections from a configured peer's
// address reach it; the handler must still authenticate the peer.
func (c *Cluster) SetStreamHandler(fn func(from netip.AddrPort, conn net.Conn)) {
	if c.streams == nil {
		return
	}
	if fn == nil {
		c.streams.handler.Store(nil)
		return
	}
	c.streams.handler.Store(&fn)
}

// ErrNoStream is returned by DialStream for a member that does not
// advertise SyncStream (a peer of the previous version).
var ErrNoStream = errors.New("cluster: member takes no sync stream")

// DialStream opens a sync stream to the configured peer name at its
// configured address (StreamMagic already sent): a peer that advertised
// SyncStream when gossip last heard it and has not left, whatever its
// health now (gossip may count a reachable peer dead for seconds after a
// partition heals). The caller authenticates and encrypts what follows.
func (c *Cluster) DialStream(ctx context.Context, name string) (net.Conn, error) {
	if c.shut.Load() {
		return nil, ErrShutdown
	}
	c.mu.Lock()
	r := c.members[name]
	addr, configured := c.configuredAddrLocked(name)
	ok := r != nil && r.state != StateLeft && c.isPeerLocked(name)
	stream := ok && r.metaErr == "" && r.meta.SyncStream
	c.mu.Unlock()
	if !ok || !configured {
		return nil, fmt.Errorf("%w: %s", ErrNoMember, name)
	}
	if !stream {
		return nil, fmt.Errorf("%w: %s", ErrNoStream, name)
	}
	// From this node's advertise address: the peer takes streams only
	// from its configured peers' addresses.
	d := net.Dialer{Timeout: c.timers.TCPTimeout,
		LocalAddr: &net.TCPAddr{IP: c.cfg.Advertise.Addr().AsSlice()}}
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil && errors.Is(err, syscall.EADDRNOTAVAIL) {
		d.LocalAddr = nil // the advertise address is not this host's (NAT)
		conn, err = d.DialContext(ctx, "tcp", addr.String())
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: sync stream to %s at %v: %w", name, addr, err)
	}
	if _, err := conn.Write([]byte{StreamMagic}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cluster: sync stream to %s at %v: %w", name, addr, err)
	}
	return conn, nil
}

// StreamKeys returns the gossip keys, the primary first: a sync stream
// is authenticated and encrypted with them.
func (c *Cluster) StreamKeys() [][]byte {
	keys := c.keyring.GetKeys()
	out := make([][]byte, 0, len(keys))
	for _, k := range keys {
		out = append(out, append([]byte(nil), k...))
	}
	return out
}

// PeerAddr returns the configured gossip address of the peer name.
func (c *Cluster) PeerAddr(name string) (netip.AddrPort, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.isPeerLocked(name) {
		return netip.AddrPort{}, false
	}
	return c.configuredAddrLocked(name)
}

// isPeerAddr reports whether a is the address of a configured peer.
func (c *Cluster) isPeerAddr(a netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.peers {
		if p.Addr.Addr().Unmap() == a {
			return true
		}
	}
	return false
}
