package daemon

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/probes"
)

// The config projected onto the components: the dataplane's desired
// state, the VIPs (for the lease, the VIP address, the connection sync),
// the cluster's and the heartbeat's configs, the probe targets, and
// whether the VIP interfaces are up. Every such projection is here, in one
// place.

// desired is the dataplane state for cfg with the healthy and drain sets.
func desired(cfg *config.Config, healthy, drain map[string]bool) dataplane.Desired {
	d := dataplane.Desired{
		Healthy: healthy,
		Drain:   drain,
		Mode:    dataplane.BalanceMode(cfg.Balance.Mode),
		Seed:    cfg.Balance.Seed,
		Slots:   cfg.Balance.Slots,
	}
	for _, v := range cfg.VIPs {
		d.VIPs = append(d.VIPs, v.Address)
		d.Port = v.Port
	}
	for _, b := range cfg.Backends {
		d.Backends = append(d.Backends, dataplane.Backend{Name: b.Name, Addr: b.AddrPort()})
	}
	return d
}

// vipPlaces lists the VIPs with their interfaces.
type vipPlace struct {
	Iface string
	Addr  netip.Addr
}

func vipPlaces(cfg *config.Config) []vipPlace {
	out := make([]vipPlace, 0, len(cfg.VIPs))
	for _, v := range cfg.VIPs {
		out = append(out, vipPlace{Iface: v.Interface, Addr: v.Address})
	}
	return out
}

// leaseVIPs are the VIP addresses the owner lease covers.
func leaseVIPs(cfg *config.Config) []netip.Addr {
	return desired(cfg, nil, nil).VIPs
}

// syncVIPs are the VIP:port pairs of cfg whose flows the connection sync
// carries.
func syncVIPs(cfg *config.Config) []netip.AddrPort {
	d := desired(cfg, nil, nil)
	port := d.Port
	if port == 0 {
		port = dataplane.DefaultPort
	}
	var out []netip.AddrPort
	for _, a := range d.VIPs {
		out = append(out, netip.AddrPortFrom(a, port))
	}
	return out
}

// clusterConfig is the cluster part of cfg (the daemon adds its event
// channel and logger).
func clusterConfig(cfg *config.Config, version string) cluster.Config {
	return cluster.ConfigFrom(cfg, version)
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
	if x.Self != y.Self || x.Bind != y.Bind || x.Interval != y.Interval || x.Misses != y.Misses ||
		len(x.Peers) != len(y.Peers) || len(x.Keys) != len(y.Keys) {
		return false
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

// ifacesUp reports whether every VIP interface is up with a carrier.
func ifacesUp(cfg *config.Config) bool {
	seen := map[string]bool{}
	for _, v := range cfg.VIPs {
		if seen[v.Interface] {
			continue
		}
		seen[v.Interface] = true
		l, err := netlink.LinkByName(v.Interface)
		if err != nil {
			return false
		}
		a := l.Attrs()
		if a.Flags&net.FlagUp == 0 {
			return false
		}
		switch a.OperState {
		case netlink.OperUp, netlink.OperUnknown:
		default:
			return false
		}
	}
	return true
}
