package connsync

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
)

// viewTransport shows a fixed view; it may open streams.
type viewTransport struct{ view cluster.View }

func (v viewTransport) SetMessageHandler(func(string, []byte)) {}
func (v viewTransport) SendTo(string, []byte) error            { return nil }
func (v viewTransport) View() cluster.View                     { return v.view }
func (v viewTransport) DialStream(context.Context, string) (net.Conn, error) {
	return nil, cluster.ErrNoStream
}
func (v viewTransport) SetStreamHandler(func(netip.AddrPort, net.Conn)) {}
func (v viewTransport) StreamKeys() [][]byte                            { return nil }

// TestSyncPeersByVersion: a configured peer that advertised the stream
// gets one while it has not left, whatever gossip says of its health now
// (dead or suspect after a partition while it is reachable); a peer of
// the previous version (no SyncStream), and any peer when the transport
// opens no streams, gets messages while gossip hears it alive; a peer
// that left, one never heard from, one not configured (no stream) and
// this node get nothing more.
func TestSyncPeersByVersion(t *testing.T) {
	view := cluster.View{Self: "lb1", Members: []cluster.Member{
		{Name: "lb1", Configured: true, State: cluster.StateAlive, Meta: cluster.Meta{SyncStream: true}},
		{Name: "lb2", Configured: true, State: cluster.StateAlive, Meta: cluster.Meta{SyncStream: true}},
		{Name: "lb3", Configured: true, State: cluster.StateAlive, Meta: cluster.Meta{NamedMessages: true}},
		{Name: "lb4", Configured: true, State: cluster.StateDead, Meta: cluster.Meta{SyncStream: true}},
		{Name: "lb5", Configured: true, State: cluster.StateSuspect, Meta: cluster.Meta{SyncStream: true}},
		{Name: "lb6", Configured: true, State: cluster.StateLeft, Meta: cluster.Meta{SyncStream: true}},
		{Name: "lb7", Configured: true, State: cluster.StateUnknown},
		{Name: "lb8", Configured: true, State: cluster.StateDead, Meta: cluster.Meta{NamedMessages: true}},
		{Name: "x9", Configured: false, State: cluster.StateAlive, Meta: cluster.Meta{SyncStream: true}},
	}}
	tests := []struct {
		name           string
		streams        bool
		stream, legacy []string
	}{
		{"transport with streams", true, []string{"lb2", "lb4", "lb5"}, []string{"lb3", "x9"}},
		{"transport without streams", false, nil, []string{"lb2", "lb3", "x9"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := viewTransport{view}
			s := &Sync{cl: tr, self: "lb1"}
			if tc.streams {
				s.st = tr
			}
			stream, legacy := s.syncPeers()
			if !slices.Equal(stream, tc.stream) || !slices.Equal(legacy, tc.legacy) {
				t.Errorf("stream %v legacy %v, want %v and %v", stream, legacy, tc.stream, tc.legacy)
			}
		})
	}
}

// TestStreamPeer: a sync stream is taken from a configured peer at its
// configured address whatever gossip thinks of its health (after a
// partition gossip may count it dead for seconds while it holds the VIP);
// not from one that left, one that is not configured, another address or
// this node.
func TestStreamPeer(t *testing.T) {
	addr := func(i byte) netip.AddrPort { return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, i}), 7946) }
	view := cluster.View{Self: "lb1", Members: []cluster.Member{
		{Name: "lb1", Configured: true, State: cluster.StateAlive, Addr: addr(1)},
		{Name: "lb2", Configured: true, State: cluster.StateAlive, Addr: addr(2)},
		{Name: "lb3", Configured: true, State: cluster.StateDead, Addr: addr(3)},
		{Name: "lb4", Configured: true, State: cluster.StateSuspect, Addr: addr(4)},
		{Name: "lb5", Configured: true, State: cluster.StateLeft, Addr: addr(5)},
		{Name: "x6", Configured: false, State: cluster.StateAlive, Addr: addr(6)},
		{Name: "lb7", Configured: true, State: cluster.StateUnknown},
	}}
	s := &Sync{cl: viewTransport{view}, self: "lb1"}
	for _, tc := range []struct {
		name string
		from byte
		want bool
	}{
		{"lb2", 2, true}, {"lb3", 3, true}, {"lb4", 4, true},
		{"lb2", 3, false}, // another peer's address
		{"lb5", 5, false}, {"x6", 6, false}, {"lb1", 1, false}, {"lb7", 7, false}, {"lb9", 9, false},
	} {
		if got := s.fromPeerAt(tc.name, addr(tc.from).Addr()); got != tc.want {
			t.Errorf("fromPeerAt(%s, %v) = %v, want %v", tc.name, addr(tc.from).Addr(), got, tc.want)
		}
	}
	// The legacy messages' check is unchanged: alive only.
	if s.fromPeer("lb3") || !s.fromPeer("lb2") {
		t.Errorf("fromPeer: lb3 (dead) %v, lb2 (alive) %v; want false, true", s.fromPeer("lb3"), s.fromPeer("lb2"))
	}
}

// TestReleaseGrace: after a release the node goes on following and
// streaming its flows for the grace; a claim within it keeps it sending
// (no stop, so no full dump to the peers afterwards); repeated releases
// do not extend the grace; once it ends with no claim, sending stops.
func TestReleaseGrace(t *testing.T) {
	s := &Sync{holdWake: make(chan struct{}, 1), releaseGrace: 100 * time.Millisecond}
	s.SetHolding(true)
	if !s.sending.Load() {
		t.Fatal("holding, not sending")
	}
	s.SetHolding(false)
	if !s.sending.Load() {
		t.Fatal("sending stopped at the release, before the grace")
	}
	s.SetHolding(true) // claimed again within the grace
	time.Sleep(250 * time.Millisecond)
	if !s.sending.Load() {
		t.Fatal("sending stopped although the node claimed again within the grace")
	}
	s.SetHolding(false)
	deadline := time.Now().Add(5 * time.Second)
	for s.sending.Load() && time.Now().Before(deadline) {
		s.SetHolding(false) // the daemon says it again and again: no extension
		time.Sleep(10 * time.Millisecond)
	}
	if s.sending.Load() {
		t.Fatal("still sending 5 s after a release with a 100 ms grace")
	}
}
