package components

import (
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/config"
)

// PeerFilter is the nftables peer filter for cfg: the heartbeat port, this
// node's gossip port, the configured peers' addresses and the VIPs (whose
// forwarded flows' answers it leaves alone); false when
// gossip.peer_filter switches it off.
func PeerFilter(cfg *config.Config) (dataplane.PeerFilterSpec, bool) {
	spec := dataplane.PeerFilterSpec{HeartbeatPort: cfg.Gossip.HeartbeatPort, GossipPort: cfg.Node.GossipBind.Port()}
	for _, p := range cfg.Peers {
		spec.Peers = append(spec.Peers, p.Address.Addr().Unmap())
	}
	for _, v := range cfg.VIPs {
		spec.VIPs = append(spec.VIPs, v.Address.Unmap())
	}
	return spec, cfg.Gossip.PeerFilter
}
