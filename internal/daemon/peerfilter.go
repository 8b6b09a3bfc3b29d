package daemon

import (
	"context"
	"time"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/components"
)

// The peer filter: the daemon's nftables table takes heartbeat and gossip
// packets from the configured peers only (gossip.peer_filter, on by
// default). Installed at start, again on every reload, removed at stop.

// peerFilter is the nftables peer filter. *dataplane.PeerFilter is one.
type peerFilter interface {
	Install(ctx context.Context, spec dataplane.PeerFilterSpec) error
	Remove(ctx context.Context) error
}

// applyPeerFilter installs the peer filter s.cfg asks for, or removes it
// when the config switches it off. A failure is logged and the daemon goes
// on: the heartbeat still reads beats from the peers' addresses only.
func (d *Daemon) applyPeerFilter(s *state) {
	if s.peers == nil {
		return
	}
	spec, on := components.PeerFilter(s.cfg)
	if !on {
		if err := s.peers.Remove(s.run); err != nil {
			d.log.Error("removing the peer filter", "err", err)
		}
		d.log.Warn("peer filter switched off (gossip.peer_filter = false): any host may send to the heartbeat and gossip ports")
		return
	}
	if err := s.peers.Install(s.run, spec); err != nil {
		d.log.Error("installing the peer filter; heartbeat and gossip ports take packets from any host (the heartbeat still drops beats from other addresses)", "err", err)
	}
}

// removePeerFilter deletes the peer filter at stop (the ports close).
func (d *Daemon) removePeerFilter(s *state) {
	if s.peers == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.peers.Remove(ctx); err != nil {
		d.log.Error("removing the peer filter", "err", err)
	}
}
