package migrate

import (
	"bytes"
	"encoding/base64"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/epconsole/epconsole/internal/config"
)

func initOptions() InitOptions {
	return InitOptions{
		ClusterName: "prod-cp",
		VIPs:        []netip.Addr{addr("198.18.0.100")},
		Interface:   "eth0",
		Nodes:       []NodeName{{"lb1", addr("198.18.0.11")}, {"lb2", addr("198.18.0.12")}, {"lb3", addr("198.18.0.13")}},
		Backends:    []NodeName{{"cp1", addr("198.18.0.21")}, {"cp2", addr("198.18.0.22")}, {"cp3", addr("198.18.0.23")}},
		DNSNames:    []string{"k8s-api.example.internal"},
	}
}

func TestInitWritesConfigsThatAgree(t *testing.T) {
	opts := initOptions()
	opts.Rand = bytes.NewReader(bytes.Repeat([]byte{0x42}, 32))
	files, err := Init(opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, KeyName)
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", KeyName, fi.Mode().Perm())
	}
	key, _ := os.ReadFile(keyPath)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(key)))
	if err != nil || len(raw) != 32 || !bytes.Equal(raw, bytes.Repeat([]byte{0x42}, 32)) {
		t.Errorf("gossip key %q: want 32 bytes from Rand, base64 (err %v)", key, err)
	}
	if len(files) != len(opts.Nodes)+1 {
		t.Errorf("%d files, want %d configs and the key", len(files), len(opts.Nodes))
	}
	var digest string
	for i, n := range opts.Nodes {
		path := filepath.Join(dir, n.Name, "config.hcl")
		cfg, diags := config.Load(path, config.WithReadFile(func(p string) ([]byte, error) {
			if p == DefaultKeyFile {
				return config.ReadFile(keyPath)
			}
			return nil, os.ErrNotExist
		}))
		if len(diags) > 0 {
			t.Fatalf("%s: %v", path, diags)
		}
		if cfg.Node.Name != n.Name || cfg.Node.GossipBind.Addr() != n.Addr || len(cfg.Peers) != len(opts.Nodes)-1 {
			t.Errorf("%s: node %s at %s with %d peers", path, cfg.Node.Name, cfg.Node.GossipBind, len(cfg.Peers))
		}
		for _, p := range cfg.Peers {
			if p.Name == n.Name {
				t.Errorf("%s lists itself as a peer", path)
			}
		}
		if len(cfg.Gossip.Keys) != 1 || !bytes.Equal(cfg.Gossip.Keys[0], raw) {
			t.Errorf("%s does not read the generated key", path)
		}
		if i == 0 {
			digest = cfg.Digest()
		} else if cfg.Digest() != digest {
			t.Errorf("%s: cluster-wide digest differs from %s's", path, opts.Nodes[0].Name)
		}
	}
	if err := WriteFiles(dir, files); err == nil {
		t.Error("WriteFiles overwrote existing files")
	}
}

func TestInitRefusesBadInput(t *testing.T) {
	cases := map[string]func(*InitOptions){
		"no nodes":            func(o *InitOptions) { o.Nodes = nil },
		"no backends":         func(o *InitOptions) { o.Backends = nil },
		"VIP is a backend":    func(o *InitOptions) { o.VIPs = []netip.Addr{addr("198.18.0.21")} },
		"duplicate node name": func(o *InitOptions) { o.Nodes[1].Name = "lb1" },
		"bad interface":       func(o *InitOptions) { o.Interface = "eth 0" },
		"bad cluster name":    func(o *InitOptions) { o.ClusterName = "-x" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			opts := initOptions()
			mutate(&opts)
			if files, err := Init(opts); err == nil {
				t.Errorf("Init succeeded with %d files", len(files))
			}
		})
	}
}
