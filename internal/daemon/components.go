package daemon

import (
	"net/netip"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/components"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/probes"
)

// The config projected onto the components: the dataplane's desired
// state, the VIPs (for the lease, the VIP address, the connection sync),
// the cluster's and the heartbeat's configs, the probe targets, and
// whether the VIP interfaces are up. Every such projection is here, in one
// place.

// desired is the dataplane state for cfg with the healthy and drain sets.
func desired(cfg *config.Config, healthy, drain, operator map[string]bool) dataplane.Desired {
	return components.Desired(cfg, healthy, drain, operator)
}

// vipPlaces lists the VIPs with their ports and interfaces.
func vipPlaces(cfg *config.Config) []dataplane.ServiceVIP { return components.VIPs(cfg) }

// leaseVIPs are the VIP addresses the owner lease covers.
func leaseVIPs(cfg *config.Config) []netip.Addr { return dataplane.Addresses(components.VIPs(cfg)) }

// syncVIPs are the VIP:port pairs of cfg whose flows the connection sync
// carries, each VIP with its own port.
func syncVIPs(cfg *config.Config) []netip.AddrPort { return dataplane.AddrPorts(components.VIPs(cfg)) }

// syncBackends are the backend addresses received synced flows may be
// NATed to (port 0: the VIP's service port).
func syncBackends(cfg *config.Config) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(cfg.Backends))
	for _, b := range cfg.Backends {
		out = append(out, b.AddrPort())
	}
	return out
}

// clusterConfig is the cluster part of cfg (the daemon adds its event
// channel and logger).
func clusterConfig(cfg *config.Config, version string) cluster.Config {
	return components.Cluster(cfg, version)
}

// clusterPeers are cfg's peers as the cluster takes them on a reload.
func clusterPeers(cfg *config.Config) []cluster.Peer {
	var peers []cluster.Peer
	for _, p := range cfg.Peers {
		peers = append(peers, cluster.Peer{Name: p.Name, Addr: p.Address})
	}
	return peers
}

// targets are the probe targets of cfg's backends, in config order.
func targets(cfg *config.Config) []probes.Target {
	ts := make([]probes.Target, 0, len(cfg.Backends))
	for _, b := range cfg.Backends {
		ts = append(ts, probes.Target{Name: b.Name, Address: b.AddrPort()})
	}
	return ts
}

// heartbeatConfig is the heartbeat part of cfg.
func heartbeatConfig(cfg *config.Config) heartbeat.Config {
	hc := heartbeat.Config{
		Self:     cfg.Node.Name,
		Cluster:  cfg.ClusterName,
		Bind:     cfg.HeartbeatBind(),
		Keys:     cfg.Gossip.Keys,
		Interval: cfg.Gossip.HeartbeatInterval,
		Misses:   cfg.Gossip.HeartbeatMisses,
	}
	for _, p := range cfg.Peers {
		hc.Peers = append(hc.Peers, heartbeat.Peer{Name: p.Name, Addr: cfg.HeartbeatAddr(p)})
	}
	return hc
}

// sameHeartbeat reports whether two configs need the same beat loop.
func sameHeartbeat(a, b *config.Config) bool {
	x, y := heartbeatConfig(a), heartbeatConfig(b)
	if x.Self != y.Self || x.Cluster != y.Cluster || x.Bind != y.Bind || x.Interval != y.Interval || x.Misses != y.Misses ||
		len(x.Peers) != len(y.Peers) || len(x.Keys) != len(y.Keys) {
		return false
	}
	if !samePlaces(vipPlaces(a), vipPlaces(b)) {
		return false // the helper's claim works on the VIP places it started with
	}
	for i := range x.Peers {
		if x.Peers[i] != y.Peers[i] {
			return false
		}
	}
	for i := range x.Keys {
		if string(x.Keys[i]) != string(y.Keys[i]) {
			return false
		}
	}
	return true
}

// ifacesUp reports whether every VIP interface is up (dataplane.LinkUp).
func ifacesUp(cfg *config.Config) bool { return dataplane.InterfacesUp(components.VIPs(cfg)) }
