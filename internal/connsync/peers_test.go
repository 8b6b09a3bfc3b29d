package connsync

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"

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

// TestAlivePeersByVersion: an alive configured peer that advertises the
// stream gets one; a peer of the previous version (no SyncStream), and
// any peer when the transport opens no streams, gets messages; dead
// peers and this node get nothing.
func TestAlivePeersByVersion(t *testing.T) {
	view := cluster.View{Self: "lb1", Members: []cluster.Member{
		{Name: "lb1", Configured: true, State: cluster.StateAlive, Meta: cluster.Meta{SyncStream: true}},
		{Name: "lb2", Configured: true, State: cluster.StateAlive, Meta: cluster.Meta{SyncStream: true}},
		{Name: "lb3", Configured: true, State: cluster.StateAlive, Meta: cluster.Meta{NamedMessages: true}},
		{Name: "lb4", Configured: true, State: cluster.StateDead, Meta: cluster.Meta{SyncStream: true}},
	}}
	tests := []struct {
		name           string
		streams        bool
		stream, legacy []string
	}{
		{"transport with streams", true, []string{"lb2"}, []string{"lb3"}},
		{"transport without streams", false, nil, []string{"lb2", "lb3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := viewTransport{view}
			s := &Sync{cl: tr, self: "lb1"}
			if tc.streams {
				s.st = tr
			}
			stream, legacy := s.alivePeers()
			if !slices.Equal(stream, tc.stream) || !slices.Equal(legacy, tc.legacy) {
				t.Errorf("stream %v legacy %v, want %v and %v", stream, legacy, tc.stream, tc.legacy)
			}
		})
	}
}
