package lab

import (
	"path/filepath"

	"github.com/epconsole/epconsole/internal/netlab"
)

// Net returns the underlying topology (hosts, addresses, the lab CA).
func (l *Lab) Net() *netlab.Lab { return l.net }

// peerHosts returns the hosts that run a daemon: the LB hosts, or with
// Colocated the control-plane hosts.
func (l *Lab) peerHosts() []*netlab.Host {
	if l.opts.Colocated {
		return l.net.HostsByRole(netlab.RoleBackend)
	}
	return l.net.HostsByRole(netlab.RoleLB)
}

// Colocated reports whether the daemons run on the control-plane hosts.
func (l *Lab) Colocated() bool { return l.opts.Colocated }

// Peers returns the names of the hosts running a daemon in order (the
// first has the highest priority): lb1..lbN, or cp1..cpN co-located.
func (l *Lab) Peers() []string {
	var out []string
	for _, h := range l.peerHosts() {
		out = append(out, h.Name())
	}
	return out
}

// Backends returns the backend names in config order.
func (l *Lab) Backends() []string {
	var out []string
	for _, h := range l.net.HostsByRole(netlab.RoleBackend) {
		out = append(out, h.Name())
	}
	return out
}

// EtcdMembers returns the names of the control-plane hosts that run an
// etcd member, in order.
func (l *Lab) EtcdMembers() []string { return l.etcd.Names() }

// Etcd returns the lab's etcd cluster (endpoints, client certificate,
// members).
func (l *Lab) Etcd() *netlab.EtcdCluster { return l.etcd }

// ConfigPath returns the config.hcl of LB peer.
func (l *Lab) ConfigPath(peer string) string { return filepath.Join(l.net.Dir(), peer+".hcl") }

// Socket returns the status socket of LB peer.
func (l *Lab) Socket(peer string) string { return socketPath(l.net.Dir(), peer) }

// LogPath returns the daemon log of LB peer.
func (l *Lab) LogPath(peer string) string {
	return filepath.Join(l.net.Dir(), "logs", peer+"-daemon.log")
}
