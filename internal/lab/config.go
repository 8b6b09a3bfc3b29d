package lab

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/epconsole/epconsole/internal/netlab"
)

// ConfigInput is everything an LB's config.hcl is made from.
type ConfigInput struct {
	Cluster    string
	VIP4, VIP6 netip.Addr
	DNSName    string
	CAFile     string
	KeyFile    string
	// Dir holds each peer's state directory and status socket.
	Dir      string
	Peers    []PeerInput
	Backends []BackendInput
	// Etcd is the lab's etcd cluster (no etcd block when it has no
	// endpoints).
	Etcd EtcdInput
}

// EtcdInput is how the daemons reach etcd.
type EtcdInput struct {
	Endpoints                 []string
	CAFile, CertFile, KeyFile string
}

// PeerInput is one LB.
type PeerInput struct {
	Name     string
	Addr4    netip.Addr
	Priority int
}

// BackendInput is one control-plane host (served on both families).
type BackendInput struct {
	Name         string
	Addr4, Addr6 netip.Addr
}

func socketPath(dir, peer string) string { return filepath.Join(dir, "sock", peer+"-status.sock") }

// ConfigHCL returns the config.hcl of LB self. It is pure: the same input
// gives the same text, and every peer's cluster-wide part is the same.
func ConfigHCL(in ConfigInput, self string) string {
	var b strings.Builder
	var me PeerInput
	for _, p := range in.Peers {
		if p.Name == self {
			me = p
		}
	}
	fmt.Fprintf(&b, "# epconsole-lab: %s (generated)\n", self)
	fmt.Fprintf(&b, "cluster_name = %q\nendpoint_dns_names = [%q]\nstate_dir = %q\n\n", in.Cluster, in.DNSName, filepath.Join(in.Dir, self+"-state"))
	for _, v := range []netip.Addr{in.VIP4, in.VIP6} {
		fmt.Fprintf(&b, "vip %q {\n  interface = \"eth0\"\n  port = %d\n}\n", v, ServicePort)
	}
	fmt.Fprintf(&b, "\nnode {\n  name = %q\n  gossip_bind = \"%s:7946\"\n  priority = %d\n}\n", me.Name, me.Addr4, me.Priority)
	for _, p := range in.Peers {
		if p.Name != self {
			fmt.Fprintf(&b, "peer %q {\n  address = \"%s:7946\"\n}\n", p.Name, p.Addr4)
		}
	}
	fmt.Fprintf(&b, "\ngossip {\n  key_file = %q\n}\n\n", in.KeyFile)
	// Backends of each family: the IPv4 VIP needs IPv4 backends, the IPv6
	// VIP IPv6 ones.
	for _, be := range in.Backends {
		fmt.Fprintf(&b, "backend %q {\n  address = %q\n  port = %d\n}\n", be.Name, be.Addr4.String(), ServicePort)
	}
	for _, be := range in.Backends {
		fmt.Fprintf(&b, "backend %q {\n  address = %q\n  port = %d\n}\n", be.Name+"-v6", be.Addr6.String(), ServicePort)
	}
	b.WriteString("\nhealth {\n  interval = \"500ms\"\n  fast_interval = \"100ms\"\n  timeout = \"400ms\"\n}\n")
	fmt.Fprintf(&b, "\ntls {\n  ca_file = %q\n}\n", in.CAFile)
	if e := in.Etcd; len(e.Endpoints) > 0 {
		eps := make([]string, len(e.Endpoints))
		for i, ep := range e.Endpoints {
			eps[i] = strconv.Quote(ep)
		}
		fmt.Fprintf(&b, "\netcd {\n  endpoints = [%s]\n  ca_file = %q\n  cert_file = %q\n  key_file = %q\n}\n",
			strings.Join(eps, ", "), e.CAFile, e.CertFile, e.KeyFile)
	}
	fmt.Fprintf(&b, "\nstatus {\n  socket = %q\n  metrics_listen = \"%s:%d\"\n}\n", socketPath(in.Dir, self), me.Addr4, MetricsPort)
	return b.String()
}

func writeKey(path string) (string, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("lab: writing gossip key: %w", err)
	}
	return path, nil
}

// configInput gathers what ConfigHCL needs from the built topology.
func (l *Lab) configInput() ConfigInput {
	in := ConfigInput{
		Cluster: l.opts.Prefix, VIP4: l.net.VIP4(), VIP6: l.net.VIP6(), DNSName: l.net.DNSName(),
		CAFile: l.net.CAFile(), KeyFile: l.key, Dir: l.net.Dir(),
	}
	if l.etcd != nil {
		in.Etcd = EtcdInput{Endpoints: l.etcd.Endpoints(), CAFile: l.etcd.CAFile, CertFile: l.etcd.ClientCertFile, KeyFile: l.etcd.ClientKeyFile}
	}
	for i, h := range l.peerHosts() {
		in.Peers = append(in.Peers, PeerInput{Name: h.Name(), Addr4: h.IPv4(), Priority: 150 - 10*i})
	}
	for _, h := range l.net.HostsByRole(netlab.RoleBackend) {
		in.Backends = append(in.Backends, BackendInput{Name: h.Name(), Addr4: h.IPv4(), Addr6: h.IPv6()})
	}
	return in
}
