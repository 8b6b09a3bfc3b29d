package migrate

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"

	"github.com/epconsole/epconsole/internal/config"
)

// InitOptions describe a new cluster.
type InitOptions struct {
	// ClusterName is the cluster_name (required).
	ClusterName string
	// VIPs are the virtual addresses (at most one IPv4 and one IPv6).
	VIPs []netip.Addr
	// Port is the VIP port; default 6443.
	Port uint16
	// Interface is the link the VIP goes on, the same on every node.
	Interface string
	// Nodes are the LB nodes, one config each; each is every other's peer.
	Nodes []NodeName
	// Backends are the apiservers, in slot-map order.
	Backends []NodeName
	// BackendPort is the apiservers' port; default 6443.
	BackendPort uint16
	// DNSNames become endpoint_dns_names.
	DNSNames []string
	// CAFile is the cluster CA the probes and the certificate check verify
	// against; default "" (not checked).
	CAFile string
	// KeyFile is where the configs expect the gossip key; default DefaultKeyFile.
	KeyFile string
	// Rand is the source of the gossip key; default crypto/rand.
	Rand io.Reader
}

// KeyName is the name of the gossip key among Init's files.
const KeyName = "gossip.key"

// NewKey returns a new gossip key file's content: 32 random bytes, base64,
// one line.
func NewKey(r io.Reader) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("making a gossip key: %w", err)
	}
	return []byte(base64.StdEncoding.EncodeToString(b) + "\n"), nil
}

// Init returns the files of a new cluster: "<node>/config.hcl" for every
// node and one gossip key (KeyName). The configs differ only in the node
// and peer blocks, and each passes internal/config's validation.
func Init(opts InitOptions) (map[string][]byte, error) {
	if len(opts.Nodes) == 0 || len(opts.Backends) == 0 || len(opts.VIPs) == 0 {
		return nil, errors.New("init needs at least one VIP, one LB node and one backend")
	}
	key, err := NewKey(opts.Rand)
	if err != nil {
		return nil, err
	}
	c := initPlan(opts)
	files := map[string][]byte{KeyName: key}
	var errs []error
	for _, n := range opts.Nodes {
		np := &nodePlan{Name: n.Name, Addr: n.Addr, Interface: opts.Interface, Priority: 100,
			Note: []string{"This node. Every node has priority 100, so of the nodes that are up the greatest name (in byte order) wins a new election; preempt = false: the owner keeps the VIP when another node returns."}}
		for _, o := range opts.Nodes {
			if o != n {
				np.Peers = append(np.Peers, peerPlan{Name: o.Name, Addr: o.Addr})
			}
		}
		np.PeerNote = []string{"The other LB nodes, by name and gossip address (port 7946; heartbeats use 7947)."}
		name := filepath.Join(n.Name, "config.hcl")
		text := render(c, np)
		if _, diags := validate(text, name, c.KeyFile); diags.HasErrors() {
			errs = append(errs, diagsError(diags))
		}
		files[name] = text
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("init: %w", errors.Join(errs...))
	}
	return files, nil
}

func initPlan(opts InitOptions) *clusterPlan {
	c := &clusterPlan{
		Header:            []string{"epconsole config made by epconsole init. The parts marked [cluster-wide] are the same in every node's config. Check it with: epconsole validate -c config.hcl"},
		Name:              opts.ClusterName,
		NameNote:          []string{"The cluster's name. [cluster-wide]"},
		DNSNames:          opts.DNSNames,
		VIPs:              opts.VIPs,
		Port:              opts.Port,
		VIPNote:           []string{"The VIP clients use: https://VIP:port. [cluster-wide, except interface]"},
		KeyFile:           opts.KeyFile,
		HeartbeatInterval: defHeartbeat,
		HeartbeatMisses:   defMisses,
		HeartbeatNote:     []string{heartbeatNote},
		Health: healthPlan{Kind: "https", Path: "/readyz", Interval: defInterval, FastInterval: defFastInterval, Timeout: defTimeout, Rise: defRise, Fall: defFall,
			Note: []string{"How each node probes every backend: GET /readyz over TLS; 401/403 count as reachable. A dead backend is out after at most 2.2 s."}},
		CAFile:      opts.CAFile,
		TLSNote:     []string{"The cluster CA the probes and the certificate check verify the apiservers' chains against (never the host name). Empty: not checked."},
		BalanceMode: "connection",
		BalanceNote: []string{"A consistent (Maglev) hash of source address and port spreads flows over the healthy backends, the same on every node. [cluster-wide]"},
		BackendNote: []string{"The apiservers, in the same order on every node: the order feeds the slot map. [cluster-wide]"},
	}
	if c.Port == 0 {
		c.Port = 6443
	}
	if c.KeyFile == "" {
		c.KeyFile = DefaultKeyFile
	}
	c.GossipNote = []string{fmt.Sprintf("Gossip and heartbeats are encrypted and authenticated with this key: install the %s init wrote as %s on every node, mode 0600.", KeyName, c.KeyFile)}
	port := opts.BackendPort
	if port == 0 {
		port = 6443
	}
	for _, b := range opts.Backends {
		c.Backends = append(c.Backends, backendPlan{Name: b.Name, Addr: b.Addr, Port: port})
	}
	return c
}

func diagsError(diags hcl.Diagnostics) error {
	var errs []error
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs = append(errs, errors.New(config.DiagnosticLine(d)))
		}
	}
	return errors.Join(errs...)
}

// WriteFiles writes files (as Init returns them) under dir: the gossip key
// with mode 0600, the configs 0644, directories 0755. It never overwrites
// an existing file.
func WriteFiles(dir string, files map[string][]byte) error {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		path := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		mode := os.FileMode(0o644)
		if n == KeyName {
			mode = 0o600
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if _, err := f.Write(files[n]); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}
