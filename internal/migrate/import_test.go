package migrate

import (
	"bytes"
	"encoding/base64"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/migrate/diag"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/import")

const testdata = "../../testdata/import"

func source(t *testing.T, name string) Source {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return Source{Name: name, Data: b}
}

func sources(t *testing.T, names ...string) []Source {
	var out []Source
	for _, n := range names {
		out = append(out, source(t, n))
	}
	return out
}

// parseGenerated checks a generated config with internal/config, the gossip
// key it names read from a key file written for the test.
func parseGenerated(t *testing.T, name string, hcl []byte, keyFile string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Parse(hcl, name, config.WithReadFile(func(p string) ([]byte, error) {
		if p == keyFile {
			return config.ReadFile(key)
		}
		return nil, os.ErrNotExist
	}))
	if diags.HasErrors() || len(diags) > 0 {
		var lines []string
		for _, d := range diags {
			lines = append(lines, config.DiagnosticLine(d))
		}
		t.Fatalf("%s does not validate:\n%s\n--- config:\n%s", name, strings.Join(lines, "\n"), hcl)
	}
	return cfg
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(testdata, name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update and review the diff):\n%s", name, got)
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestImportRunbookVariants(t *testing.T) {
	cases := []struct {
		name       string
		haproxy    string
		keepalived []string
		opts       ImportOptions
		golden     bool
		wantNodes  []string
		wantVIP    string
		wantPrio   []int
		wantKind   config.HealthKind
	}{
		{
			name: "unicast-pair", haproxy: "haproxy-default-server-check.cfg",
			keepalived: []string{"keepalived-unicast-master.conf", "keepalived-unicast-backup.conf"},
			golden:     true, wantNodes: []string{"lb-141", "lb-142"}, wantVIP: "192.168.2.140", wantPrio: []int{120, 100}, wantKind: config.HealthTCP,
		},
		{
			name: "multicast-on-control-plane", haproxy: "haproxy-vip-bind-inter.cfg",
			keepalived: []string{"keepalived-multicast-master.conf", "keepalived-multicast-backup.conf"},
			opts:       ImportOptions{Nodes: []NodeName{{"node-1", addr("10.1.1.1")}, {"node-2", addr("10.1.1.2")}}},
			golden:     true, wantNodes: []string{"node-1", "node-2"}, wantVIP: "10.1.233.1", wantPrio: []int{100, 99}, wantKind: config.HealthTCP,
		},
		{
			name: "inline-blocks", haproxy: "haproxy-tcp-check.cfg", keepalived: []string{"keepalived-inline-blocks.conf"},
			opts:   ImportOptions{Nodes: []NodeName{{"lb1", addr("192.168.1.11")}}},
			golden: true, wantNodes: []string{"lb1"}, wantVIP: "192.168.1.100", wantPrio: []int{101}, wantKind: config.HealthTCP,
		},
		{
			name: "inline-blocks-tcplog", haproxy: "haproxy-tcp-check-tcplog.cfg", keepalived: []string{"keepalived-inline-blocks.conf"},
			opts:      ImportOptions{Nodes: []NodeName{{"lb1", addr("192.168.1.11")}}},
			wantNodes: []string{"lb1"}, wantVIP: "192.168.1.100", wantPrio: []int{101}, wantKind: config.HealthTCP,
		},
		{
			name: "haproxy-only", haproxy: "haproxy-global-tcp-check.cfg",
			opts:   ImportOptions{VIPs: []netip.Addr{addr("10.0.1.10")}, Interface: "ens5", Nodes: []NodeName{{"lb-0", addr("10.0.1.5")}}},
			golden: true, wantNodes: []string{"lb-0"}, wantVIP: "10.0.1.10", wantPrio: []int{100}, wantKind: config.HealthTCP,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Import(source(t, tc.haproxy), sources(t, tc.keepalived...), tc.opts)
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			if len(res.Configs) != len(tc.wantNodes) {
				t.Fatalf("%d configs, want %d", len(res.Configs), len(tc.wantNodes))
			}
			var digest string
			for i, nc := range res.Configs {
				cfg := parseGenerated(t, nc.Name+".hcl", nc.HCL, DefaultKeyFile)
				if cfg.Node.Name != tc.wantNodes[i] || cfg.Node.Priority != tc.wantPrio[i] {
					t.Errorf("node %d: %s priority %d, want %s priority %d", i, cfg.Node.Name, cfg.Node.Priority, tc.wantNodes[i], tc.wantPrio[i])
				}
				if len(cfg.VIPs) != 1 || cfg.VIPs[0].Address.String() != tc.wantVIP {
					t.Errorf("VIPs %v, want %s", cfg.VIPs, tc.wantVIP)
				}
				if cfg.Health.Kind != tc.wantKind {
					t.Errorf("health kind %s, want %s", cfg.Health.Kind, tc.wantKind)
				}
				if len(cfg.Peers) != len(tc.wantNodes)-1 {
					t.Errorf("%d peers, want %d", len(cfg.Peers), len(tc.wantNodes)-1)
				}
				if i == 0 {
					digest = cfg.Digest()
				} else if cfg.Digest() != digest {
					t.Errorf("node %s: cluster-wide digest differs from %s's", nc.Name, res.Configs[0].Name)
				}
				if tc.golden {
					golden(t, tc.name+"."+nc.Name+".hcl.golden", nc.HCL)
				}
			}
			for _, d := range res.Diagnostics {
				if d.File == "" || d.Line < 1 {
					t.Errorf("diagnostic without file:line: %v", d)
				}
			}
		})
	}
}

var _ = diag.Error
