package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/pki"
)

// TestConfigHCL: every peer's generated config is valid, has the same
// cluster-wide digest, and names this node, the dual-stack VIPs, the DNS
// name, every backend of both families and the etcd members (at most three)
// with the client certificate.
func TestConfigHCL(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("lab test CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile, _, err := ca.WriteFiles(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(pki.LeafOptions{CommonName: "epconsole-etcd-client", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := client.WriteFiles(dir, "client")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "gossip.key")
	if _, err := writeKey(key); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ peers, backends int }{{1, 1}, {3, 3}, {5, 7}} {
		t.Run(fmt.Sprintf("%dx%d", tc.peers, tc.backends), func(t *testing.T) {
			in := ConfigInput{
				Cluster: "lab", VIP4: netip.MustParseAddr("198.19.0.100"), VIP6: netip.MustParseAddr("fd00:198:18:100::100"),
				DNSName: "api.lab.epconsole.test", CAFile: caFile, KeyFile: key, Dir: dir,
			}
			for i := 1; i <= tc.peers; i++ {
				in.Peers = append(in.Peers, PeerInput{Name: fmt.Sprintf("lb%d", i), Addr4: netip.MustParseAddr(fmt.Sprintf("198.19.0.%d", 10+i)), Priority: 160 - 10*i})
			}
			for i := 1; i <= tc.backends; i++ {
				in.Backends = append(in.Backends, BackendInput{Name: fmt.Sprintf("cp%d", i),
					Addr4: netip.MustParseAddr(fmt.Sprintf("198.19.0.%d", 20+i)), Addr6: netip.MustParseAddr(fmt.Sprintf("fd00:198:18:100::%d", 20+i))})
				if i <= MaxEtcdMembers {
					in.Etcd.Endpoints = append(in.Etcd.Endpoints, fmt.Sprintf("https://198.19.0.%d:2379", 20+i))
				}
			}
			in.Etcd.CAFile, in.Etcd.CertFile, in.Etcd.KeyFile = caFile, certFile, keyFile
			wantEtcd := min(tc.backends, MaxEtcdMembers)
			digest := ""
			for _, p := range in.Peers {
				src := ConfigHCL(in, p.Name)
				if again := ConfigHCL(in, p.Name); again != src {
					t.Fatalf("%s: ConfigHCL is not deterministic", p.Name)
				}
				path := filepath.Join(dir, p.Name+".hcl")
				if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg, diags := config.Parse([]byte(src), path)
				if diags.HasErrors() {
					t.Fatalf("%s: config invalid: %v\n%s", p.Name, diags, src)
				}
				if cfg.Node.Name != p.Name || cfg.Node.Priority != p.Priority {
					t.Errorf("%s: node %s priority %d", p.Name, cfg.Node.Name, cfg.Node.Priority)
				}
				if len(cfg.Peers) != tc.peers-1 {
					t.Errorf("%s: %d peers, want %d", p.Name, len(cfg.Peers), tc.peers-1)
				}
				if len(cfg.VIPs) != 2 || len(cfg.Backends) != 2*tc.backends {
					t.Errorf("%s: %d VIPs, %d backends; want 2 and %d", p.Name, len(cfg.VIPs), len(cfg.Backends), 2*tc.backends)
				}
				if len(cfg.EndpointDNSNames) != 1 || cfg.EndpointDNSNames[0] != in.DNSName {
					t.Errorf("%s: endpoint DNS names %v", p.Name, cfg.EndpointDNSNames)
				}
				if len(cfg.Etcd.Endpoints) != wantEtcd || cfg.Etcd.CAFile != caFile || cfg.Etcd.CertFile != certFile || cfg.Etcd.KeyFile != keyFile {
					t.Errorf("%s: etcd %+v, want %d endpoints and the client certificate", p.Name, cfg.Etcd, wantEtcd)
				}
				if cfg.Status.Socket != socketPath(dir, p.Name) {
					t.Errorf("%s: socket %s", p.Name, cfg.Status.Socket)
				}
				if d := cfg.Digest(); digest == "" {
					digest = d
				} else if d != digest {
					t.Errorf("%s: cluster-wide digest %s differs from lb1's %s", p.Name, d, digest)
				}
			}
		})
	}
}

func TestOptionsBounds(t *testing.T) {
	for _, o := range []Options{{Peers: 6}, {Backends: 8}, {Peers: -1}} {
		if err := o.defaults(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	o := Options{}
	if err := o.defaults(); err != nil || o.Peers != 3 || o.Backends != 3 || o.Prefix != "lab" {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}

// TestOptionsColocated: co-located, the peers are the control-plane hosts
// (Peers follows Backends), and a daemon per host bounds them to MaxPeers.
func TestOptionsColocated(t *testing.T) {
	o := Options{Colocated: true, Peers: 1}
	if err := o.defaults(); err != nil || o.Peers != 3 || o.Backends != 3 {
		t.Errorf("co-located defaults: peers %d backends %d, %v; want 3 and 3", o.Peers, o.Backends, err)
	}
	o = Options{Colocated: true, Backends: MaxPeers + 1}
	if err := o.defaults(); err == nil {
		t.Errorf("co-located with %d backends accepted (each runs a daemon; at most %d)", MaxPeers+1, MaxPeers)
	}
	o = Options{Backends: MaxPeers + 1}
	if err := o.defaults(); err != nil {
		t.Errorf("the LB-host topology with %d backends: %v", MaxPeers+1, err)
	}
}
