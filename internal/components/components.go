package components

import (
	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/config"
)

// VIPs is cfg's VIP list in config order: each VIP's address, its own
// service port and the interface it is put on.
func VIPs(cfg *config.Config) []dataplane.ServiceVIP {
	out := make([]dataplane.ServiceVIP, 0, len(cfg.VIPs))
	for _, v := range cfg.VIPs {
		out = append(out, dataplane.ServiceVIP{Addr: v.Address, Port: v.Port, Interface: v.Interface})
	}
	return out
}

// Desired is the dataplane state for cfg with the healthy and drain sets
// (nil: none healthy, none draining).
func Desired(cfg *config.Config, healthy, drain map[string]bool) dataplane.Desired {
	d := dataplane.Desired{
		VIPs:    VIPs(cfg),
		Healthy: healthy,
		Drain:   drain,
		Mode:    dataplane.BalanceMode(cfg.Balance.Mode),
		Seed:    cfg.Balance.Seed,
		Slots:   cfg.Balance.Slots,
	}
	for _, b := range cfg.Backends {
		d.Backends = append(d.Backends, dataplane.Backend{Name: b.Name, Addr: b.AddrPort()})
	}
	return d
}

// Cluster is the cluster's config for cfg. Events, Logger, Timers and
// Local.Eligible/Owner/Epoch are left for the caller.
func Cluster(cfg *config.Config, version string) cluster.Config {
	cc := cluster.Config{
		Name:      cfg.Node.Name,
		Bind:      cfg.Node.GossipBind,
		Advertise: cfg.Node.GossipAdvertise,
		Keys:      cfg.Gossip.Keys,
		Version:   version,
		Local: cluster.Local{
			Priority: cfg.Node.Priority,
			Preempt:  cfg.Node.Preempt,
			Digest:   cluster.ShortDigest(cfg.Digest()),
		},
	}
	for _, p := range cfg.Peers {
		cc.Peers = append(cc.Peers, cluster.Peer{Name: p.Name, Addr: p.Address})
	}
	return cc
}
