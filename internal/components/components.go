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
// (nil: none healthy, none draining); operator is the part of drain the
// operator asked for (epconsole drain). In panic (Panic: panic routing on
// and no backend healthy) every configured backend the operator did not
// drain gets new flows and none of them drains: the probes' verdicts are
// set aside rather than refuse every connection. The operator's drains
// stay, unless they cover every backend.
func Desired(cfg *config.Config, healthy, drain, operator map[string]bool) dataplane.Desired {
	if Panic(cfg, healthy) {
		healthy, drain = panicSets(cfg, operator)
	}
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

// panicSets are the healthy and drain sets of panic routing: every
// backend, the operator's drains draining, unless they cover them all.
func panicSets(cfg *config.Config, operator map[string]bool) (healthy, drain map[string]bool) {
	healthy = make(map[string]bool, len(cfg.Backends))
	for _, b := range cfg.Backends {
		if !operator[b.Name] {
			healthy[b.Name] = true
		}
	}
	if len(healthy) == 0 {
		for _, b := range cfg.Backends {
			healthy[b.Name] = true
		}
		return healthy, nil
	}
	for _, b := range cfg.Backends {
		if operator[b.Name] {
			if drain == nil {
				drain = map[string]bool{}
			}
			drain[b.Name] = true
		}
	}
	return healthy, drain
}

// Panic reports whether cfg routes in panic with this healthy set: panic
// routing is on, there is a backend, and none is healthy.
func Panic(cfg *config.Config, healthy map[string]bool) bool {
	if !cfg.Balance.PanicRouting || len(cfg.Backends) == 0 {
		return false
	}
	for _, b := range cfg.Backends {
		if healthy[b.Name] {
			return false
		}
	}
	return true
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
		// The same setting moves the dataplane to every backend (Desired).
		PanicRouting: cfg.Balance.PanicRouting,
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
