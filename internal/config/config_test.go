package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// repoRoot is where config.hcl and testdata/ live, seen from this package.
const repoRoot = "../.."

// productionFiles maps the production paths the sample config.hcl names to
// test data, so the sample is checked in full (keys and certificates parsed)
// without touching /etc.
var productionFiles = map[string]string{
	"/etc/epconsole/gossip.key":                     "testdata/config/gossip.key",
	"/etc/kubernetes/pki/ca.crt":                    "testdata/config/ca.crt",
	"/etc/kubernetes/pki/etcd/ca.crt":               "testdata/config/ca.crt",
	"/etc/kubernetes/pki/apiserver-etcd-client.crt": "testdata/config/client.crt",
	"/etc/kubernetes/pki/apiserver-etcd-client.key": "testdata/config/client.key",
}

func readProductionFile(t *testing.T) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		td, ok := productionFiles[p]
		if !ok {
			t.Errorf("sample config reads unexpected file %s", p)
			return nil, fs.ErrNotExist
		}
		return ReadFile(filepath.Join(repoRoot, td))
	}
}

func lines(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		out = append(out, DiagnosticLine(d))
	}
	return out
}

func TestSampleConfigIsValid(t *testing.T) {
	c, diags := Load(filepath.Join(repoRoot, "config.hcl"), WithReadFile(readProductionFile(t)))
	if len(diags) > 0 {
		t.Fatalf("sample config.hcl has problems:\n%s", strings.Join(lines(diags), "\n"))
	}
	if c.ClusterName != "prod-cp" || len(c.VIPs) != 1 || len(c.Backends) != 3 || len(c.Peers) != 2 {
		t.Errorf("sample: cluster %q, %d VIPs, %d backends, %d peers; want prod-cp, 1, 3, 2", c.ClusterName, len(c.VIPs), len(c.Backends), len(c.Peers))
	}
	if len(c.Gossip.Keys) != 2 || len(c.Gossip.Keys[0]) != 32 {
		t.Errorf("sample keyring: %d keys, want the test key file's 2 with a 32-byte primary", len(c.Gossip.Keys))
	}
	if len(c.Etcd.Endpoints) != 3 || c.Etcd.CertFile == "" || c.TLS.CAFile != "/etc/kubernetes/pki/ca.crt" {
		t.Errorf("sample etcd/tls: %+v %+v", c.Etcd, c.TLS)
	}
}

// TestSampleShowsEveryOption keeps the sample complete: every argument and
// block of the schema appears in config.hcl (commented-out lines do not count).
func TestSampleShowsEveryOption(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot, "config.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, "config.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	present := map[string]bool{}
	var walk func(prefix string, b *hclsyntax.Body)
	walk = func(prefix string, b *hclsyntax.Body) {
		for name := range b.Attributes {
			present[prefix+name] = true
		}
		for _, blk := range b.Blocks {
			present[prefix+blk.Type] = true
			walk(prefix+blk.Type+".", blk.Body)
		}
	}
	walk("", f.Body.(*hclsyntax.Body))
	for _, opt := range schemaOptions() {
		if !present[opt] {
			t.Errorf("config.hcl does not show option %s", opt)
		}
	}
}

// TestDocsDescribeEveryOption keeps docs/config.md complete.
func TestDocsDescribeEveryOption(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range schemaOptions() {
		if !strings.Contains(string(doc), "`"+opt+"`") {
			t.Errorf("docs/config.md does not describe `%s`", opt)
		}
	}
}

// schemaOptions lists every argument and block of the schema as a dotted
// path ("health.timeout"), read from the raw types' hcl tags.
func schemaOptions() []string {
	var out []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, kind, _ := strings.Cut(f.Tag.Get("hcl"), ",")
			switch kind {
			case "":
				if name != "" {
					out = append(out, prefix+name)
				}
			case "block":
				out = append(out, prefix+name)
				et := f.Type
				for et.Kind() == reflect.Slice || et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				walk(prefix+name+".", et)
			}
		}
	}
	walk("", reflect.TypeFor[rawConfig]())
	return out
}

func TestMinimalConfigDefaults(t *testing.T) {
	path := filepath.Join(repoRoot, "testdata/config/good/minimal.hcl")
	c, diags := Load(path)
	if len(diags) > 0 {
		t.Fatalf("%s:\n%s", path, strings.Join(lines(diags), "\n"))
	}
	keyFile, _ := filepath.Abs(filepath.Join(repoRoot, "testdata/config/gossip.key"))
	want := &Config{
		File:        path,
		ClusterName: "minimal",
		VIPs:        []VIP{{Address: netip.MustParseAddr("198.18.6.100"), Interface: "eth0", Port: 6443}},
		Node: Node{
			Name:            "lb1",
			GossipBind:      netip.MustParseAddrPort("198.18.6.11:7946"),
			GossipAdvertise: netip.MustParseAddrPort("198.18.6.11:7946"),
			Priority:        100,
		},
		Gossip: Gossip{
			KeyFile:           keyFile,
			HeartbeatInterval: 3 * time.Millisecond,
			HeartbeatMisses:   5,
			HeartbeatPort:     7947,
			PeerFilter:        true,
			Keys:              c.Gossip.Keys, // checked below
		},
		Backends: []Backend{{Name: "cp1", Address: netip.MustParseAddr("198.18.6.21"), Port: 6443}},
		Health: Health{
			Kind: HealthHTTPS, Path: "/readyz",
			Interval: time.Second, FastInterval: 200 * time.Millisecond, Timeout: 500 * time.Millisecond,
			Rise: 2, Fall: 2,
		},
		TLS:      TLS{ExpiryWarnDays: 30, ExpiryCritDays: 7},
		Status:   Status{Socket: "/run/epconsole/status.sock", MetricsListen: "127.0.0.1:9642"},
		Balance:  Balance{Mode: BalanceConnection, Seed: 0x5eed, Slots: 1021, PanicRouting: true},
		StateDir: "/var/lib/epconsole",
	}
	got := *c
	got.src = nil // positions: TestClusterWide
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("minimal config:\n got %+v\nwant %+v", c, want)
	}
	if len(c.Gossip.Keys) != 2 || len(c.Gossip.Keys[0]) != 32 || len(c.Gossip.Keys[1]) != 16 {
		t.Errorf("keyring from testdata/config/gossip.key: %d keys", len(c.Gossip.Keys))
	}
}

func TestGoodConfigs(t *testing.T) {
	abs := func(p string) string {
		a, err := filepath.Abs(filepath.Join(repoRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	checks := map[string]func(t *testing.T, c *Config){
		"minimal.hcl": func(t *testing.T, c *Config) {},
		"ipv6.hcl": func(t *testing.T, c *Config) {
			if v := c.VIPs[0]; v.Address != netip.MustParseAddr("fd00:198:18:6::100") || v.Port != 443 || v.Interface != "lb0" {
				t.Errorf("VIP %+v", v)
			}
			if c.Node.GossipBind != netip.MustParseAddrPort("[::]:7946") || c.Node.GossipAdvertise != netip.MustParseAddrPort("[fd00:198:18:6::11]:7946") {
				t.Errorf("node %+v", c.Node)
			}
			if c.Peers[0].Address != netip.MustParseAddrPort("[fd00:198:18:6::12]:7946") {
				t.Errorf("peer without port: %v, want the default port 7946", c.Peers[0].Address)
			}
			if c.Backends[1].Port != 8443 || !c.Node.Preempt || c.Node.Priority != 200 || c.Health.Kind != HealthTLS {
				t.Errorf("config %+v", c)
			}
		},
		"dualstack.hcl": func(t *testing.T, c *Config) {
			if len(c.VIPs) != 2 || c.Balance.Seed != 0x1234 || c.Balance.Mode != BalanceSource || c.Balance.Slots != 65521 {
				t.Errorf("VIPs %v balance %+v", c.VIPs, c.Balance)
			}
			names := []string{}
			for _, b := range c.Backends {
				names = append(names, b.Name)
			}
			if !slices.Equal(names, []string{"cp1", "cp1-v6", "cp2"}) {
				t.Errorf("backends %v, want config order", names)
			}
		},
		"files.hcl": func(t *testing.T, c *Config) {
			if c.Health.ClientCertFile != abs("testdata/config/client.crt") || c.Etcd.KeyFile != abs("testdata/config/client.key") ||
				c.TLS.CAFile != abs("testdata/config/ca.crt") || c.Status.Socket != abs("testdata/config/good/status.sock") {
				t.Errorf("relative paths not resolved against the config's directory: %+v %+v %+v %+v", c.Health, c.Etcd, c.TLS, c.Status)
			}
			if c.Status.MetricsListen != "" {
				t.Errorf("metrics_listen = \"\" should turn metrics off, got %q", c.Status.MetricsListen)
			}
		},
	}
	files, _ := filepath.Glob(filepath.Join(repoRoot, "testdata/config/good/*.hcl"))
	if len(files) < len(checks) {
		t.Fatalf("found %d good files, want at least %d", len(files), len(checks))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, diags := Load(f)
			if len(diags) > 0 {
				t.Fatalf("%s:\n%s", f, strings.Join(lines(diags), "\n"))
			}
			check, ok := checks[filepath.Base(f)]
			if !ok {
				t.Fatalf("no expectations for %s: add them to TestGoodConfigs", f)
			}
			check(t, c)
		})
	}
}

// TestBadConfigs loads every file in testdata/config/bad and compares its
// diagnostics, as `validate` prints their first lines, with the .want file
// next to it, exactly. Paths are relative to the repository root, as in
// `epconsole validate -c testdata/config/bad/x.hcl` run from there.
func TestBadConfigs(t *testing.T) {
	t.Chdir(repoRoot)
	files, _ := filepath.Glob("testdata/config/bad/*.hcl")
	wants, _ := filepath.Glob("testdata/config/bad/*.want")
	if len(files) < 15 {
		t.Fatalf("only %d bad files", len(files))
	}
	if len(wants) != len(files) {
		t.Errorf("%d .hcl files but %d .want files: every mistake needs both", len(files), len(wants))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".hcl"), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".hcl") + ".want")
			if err != nil {
				t.Fatal(err)
			}
			c, diags := Load(f)
			if c != nil || !diags.HasErrors() {
				t.Fatalf("Load(%s) = %v, %v; want no config and errors", f, c, diags)
			}
			for _, d := range diags {
				if d.Subject == nil || d.Subject.Filename != f || d.Subject.Start.Line < 1 || d.Subject.Start.Column < 1 {
					t.Errorf("diagnostic without a usable subject: %+v", d)
				}
			}
			got := strings.Join(lines(diags), "\n") + "\n"
			if got != string(want) {
				t.Errorf("Load(%s) diagnostics:\n%s\nwant:\n%s", f, got, want)
			}
		})
	}
}

// memFiles serves files from memory to Parse.
func memFiles(files map[string]string) Option {
	return WithReadFile(func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	})
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// base is a valid config; the check table edits it.
const base = `cluster_name = "t"
vip "198.18.6.100" {
  interface = "eth0"
}
node {
  name        = "lb1"
  gossip_bind = "198.18.6.11:7946"
}
peer "lb2" {
  address = "198.18.6.12:7946"
}
gossip {
  key_file = "k"
}
backend "cp1" {
  address = "198.18.6.21"
}
`

// TestChecks covers the checks the bad files do not, on sources in memory.
func TestChecks(t *testing.T) {
	files := map[string]string{
		"/cfg/k":          mustRead(t, "testdata/config/gossip.key"),
		"/cfg/ca.crt":     mustRead(t, "testdata/config/ca.crt"),
		"/cfg/client.crt": mustRead(t, "testdata/config/client.crt"),
		"/cfg/client.key": mustRead(t, "testdata/config/client.key"),
		"/cfg/empty.key":  "# only a comment\n\n",
		"/cfg/not.pem":    "hello\n",
	}
	tests := []struct {
		desc string
		src  string // the whole source; "" = base
		want string // the first diagnostic, "line:col: summary"; "" = valid
	}{
		{"base is valid", "", ""},
		{"bind to any address needs advertise", strings.Replace(base, `gossip_bind = "198.18.6.11:7946"`, `gossip_bind = "0.0.0.0:7946"`, 1), "7:17: gossip_advertise needed"},
		{"bind to any with advertise", strings.Replace(base, `gossip_bind = "198.18.6.11:7946"`, "gossip_bind = \"0.0.0.0:7946\"\ngossip_advertise = \"198.18.6.11\"", 1), ""},
		{"advertise unspecified", strings.Replace(base, `gossip_bind = "198.18.6.11:7946"`, "gossip_bind = \"0.0.0.0:7946\"\ngossip_advertise = \"0.0.0.0\"", 1), "8:20: Unusable address"},
		{"gossip port 0", strings.Replace(base, `"198.18.6.11:7946"`, `"198.18.6.11:0"`, 1), "7:17: Port out of range"},
		{"gossip host name", strings.Replace(base, `"198.18.6.11:7946"`, `"lb1.example:7946"`, 1), "7:17: Invalid address"},
		{"duplicate peer name", base + "peer \"lb2\" {\n  address = \"198.18.6.13\"\n}\n", "18:6: Duplicate peer"},
		{"peer without address", base + "peer \"lb3\" {\n}\n", "18:1: Missing peer address"},
		{"missing gossip_bind", strings.Replace(base, `gossip_bind = "198.18.6.11:7946"`, ``, 1), "5:1: Missing gossip_bind"},
		{"no node block", strings.Replace(strings.Replace(base, "node {\n  name        = \"lb1\"\n  gossip_bind = \"198.18.6.11:7946\"\n}\n", "", 1), "peer \"lb2\" {\n  address = \"198.18.6.12:7946\"\n}\n", "", 1), "1:1: Missing node block"},
		{"duplicate node block", base + "node {\n  name = \"x\"\n}\n", "18:1: Duplicate node block"},
		{"missing cluster_name", strings.Replace(base, `cluster_name = "t"`, ``, 1), "1:1: Missing cluster_name"},
		{"bad cluster_name", strings.Replace(base, `cluster_name = "t"`, `cluster_name = "prod cp"`, 1), "1:16: Invalid cluster_name"},
		{"null value", strings.Replace(base, `cluster_name = "t"`, `cluster_name = null`, 1), "1:16: Null value"},
		{"variables not allowed", strings.Replace(base, `cluster_name = "t"`, `cluster_name = var.name`, 1), "1:16: Variables not allowed"},
		{"bool as string", strings.Replace(base, `gossip_bind = "198.18.6.11:7946"`, "gossip_bind = \"198.18.6.11:7946\"\npreempt = \"yes\"", 1), "8:11: Wrong type"},
		{"fractional priority", strings.Replace(base, `gossip_bind = "198.18.6.11:7946"`, "gossip_bind = \"198.18.6.11:7946\"\npriority = 1.5", 1), "8:12: Not a whole number"},
		{"dns name is an IP", `endpoint_dns_names = ["198.18.6.100"]` + "\n" + base, "1:23: IP address in endpoint_dns_names"},
		{"bad dns name", `endpoint_dns_names = ["ok.example", "bad_name.example"]` + "\n" + base, "1:37: Invalid DNS name"},
		{"duplicate dns name", `endpoint_dns_names = ["a.example", "A.example."]` + "\n" + base, "1:36: Duplicate DNS name"},
		{"dns names not a list", `endpoint_dns_names = "a.example"` + "\n" + base, "1:22: Wrong type"},
		{"empty state_dir", `state_dir = ""` + "\n" + base, "1:13: Empty state_dir"},
		{"bad interface name", strings.Replace(base, `interface = "eth0"`, `interface = "a/b"`, 1), "3:15: Invalid interface name"},
		{"multicast VIP", strings.Replace(base, `vip "198.18.6.100"`, `vip "239.1.1.1"`, 1), "2:5: Unusable IP address"},
		{"zoned VIP", strings.Replace(base, `vip "198.18.6.100"`, `vip "fd00::1%eth0"`, 1), "2:5: Unusable IP address"},
		{"mapped VIP", strings.Replace(base, `vip "198.18.6.100"`, `vip "::ffff:198.18.6.100"`, 1), "2:5: Unusable IP address"},
		{"VIP is a peer address", strings.Replace(base, `vip "198.18.6.100"`, `vip "198.18.6.12"`, 1), "2:5: VIP is a node address"},
		{"vip without label", strings.Replace(base, `vip "198.18.6.100" {`, `vip {`, 1), "2:5: Missing address for vip"},
		{"IPv6 VIP without IPv6 backend", base + "vip \"fd00:198:18:6::100\" {\n  interface = \"eth0\"\n}\n", "18:5: VIP without backends of its family"},
		{"loopback backend", base + "backend \"cp2\" {\n  address = \"127.0.0.1\"\n}\n", "19:13: Unusable IP address"},
		{"same backend address, other port", base + "backend \"cp2\" {\n  address = \"198.18.6.21\"\n  port = 6444\n}\n", ""},
		{"backend without address", base + "backend \"cp2\" {\n}\n", "18:1: Missing backend address"},
		{"bad backend name", base + "backend \"-cp2\" {\n  address = \"198.18.6.22\"\n}\n", "18:9: Invalid backend name"},
		{"empty key file", strings.Replace(base, `key_file = "k"`, `key_file = "empty.key"`, 1), "13:14: Invalid gossip key file"},
		{"empty key_file", strings.Replace(base, `key_file = "k"`, `key_file = ""`, 1), "13:14: Empty gossip key_file"},
		{"default key file missing", strings.Replace(base, `key_file = "k"`, ``, 1), "12:1: Cannot read gossip key file"},
		{"interval shorter than default timeout", base + "health {\n  interval = \"300ms\"\n}\n", "19:14: Health timeout not below interval"},
		{"interval shorter than default fast_interval", base + "health {\n  interval = \"150ms\"\n  timeout = \"100ms\"\n}\n", "19:14: Health fast_interval above interval"},
		{"client cert and key", base + "health {\n  client_cert_file = \"client.crt\"\n  client_key_file = \"client.key\"\n}\n", ""},
		{"client key without cert", base + "health {\n  client_key_file = \"client.key\"\n}\n", "19:21: Key without certificate"},
		{"client cert not matching key", base + "health {\n  client_cert_file = \"ca.crt\"\n  client_key_file = \"client.key\"\n}\n", "19:22: Unusable certificate and key"},
		{"client cert unreadable", base + "health {\n  client_cert_file = \"nope.crt\"\n  client_key_file = \"client.key\"\n}\n", "19:22: Cannot read certificate"},
		{"CA not PEM", base + "tls {\n  ca_file = \"not.pem\"\n}\n", "19:13: Invalid CA file"},
		{"bad SAN", base + "tls {\n  extra_sans = [\"10.96.0.1\", \"not a name\"]\n}\n", "19:30: Invalid SAN"},
		{"crit days defaulted above warn", base + "tls {\n  expiry_warn_days = 5\n}\n", "19:22: Expiry thresholds reversed"},
		{"etcd endpoint without scheme", base + "etcd {\n  endpoints = [\"198.18.6.21:2379\"]\n}\n", "19:16: Invalid etcd endpoint"},
		{"etcd endpoint with path", base + "etcd {\n  endpoints = [\"https://198.18.6.21:2379/v3\"]\n}\n", "19:16: Invalid etcd endpoint"},
		{"duplicate etcd endpoint", base + "etcd {\n  endpoints = [\"https://198.18.6.21:2379\", \"http://198.18.6.21:2379\"]\n}\n", "19:44: Duplicate etcd endpoint"},
		{"etcd key without cert", base + "etcd {\n  key_file = \"client.key\"\n}\n", "19:14: Key without certificate"},
		{"etcd complete", base + "etcd {\n  endpoints = [\"https://198.18.6.21:2379\"]\n  ca_file = \"ca.crt\"\n  cert_file = \"client.crt\"\n  key_file = \"client.key\"\n}\n", ""},
		{"socket path too long", base + "status {\n  socket = \"/run/" + strings.Repeat("x", 120) + ".sock\"\n}\n", "19:12: Socket path too long"},
		{"empty socket", base + "status {\n  socket = \"\"\n}\n", "19:12: Empty status socket"},
		{"metrics host name", base + "status {\n  metrics_listen = \"metrics.example:9642\"\n}\n", "19:20: Invalid metrics_listen"},
		{"metrics without address", base + "status {\n  metrics_listen = \":9642\"\n}\n", "19:20: metrics_listen without an address"},
		{"metrics on every IPv4 address, written out", base + "status {\n  metrics_listen = \"0.0.0.0:9642\"\n}\n", ""},
		{"metrics on every address, written out", base + "status {\n  metrics_listen = \"[::]:9642\"\n}\n", ""},
		{"metrics on localhost", base + "status {\n  metrics_listen = \"localhost:9642\"\n}\n", ""},
		{"metrics on one address", base + "status {\n  metrics_listen = \"198.18.6.11:9642\"\n}\n", ""},
		{"loopback VIP", strings.Replace(base, `vip "198.18.6.100"`, `vip "127.0.0.53"`, 1), "2:5: Loopback VIP"},
		{"loopback IPv6 VIP", base + "vip \"::1\" {\n  interface = \"lo\"\n}\n", "18:5: Loopback VIP"},
		{"seed too large", base + "balance {\n  seed = 4294967296\n}\n", "19:10: Invalid balance seed"},
		{"seed negative", base + "balance {\n  seed = -1\n}\n", "19:10: Invalid balance seed"},
		{"seed hex string", base + "balance {\n  seed = \"0xffffffff\"\n}\n", ""},
		{"slots too small", base + "balance {\n  slots = 13\n}\n", "19:11: Value out of range"},
		{"conntrack load", base + "conntrack {\n  expected_flows = 2000\n  new_flows_per_second = 200\n}\n", ""},
		{"conntrack flows negative", base + "conntrack {\n  expected_flows = -5\n}\n", "19:20: Value out of range"},
		{"conntrack rate quoted", base + "conntrack {\n  new_flows_per_second = \"2000\"\n}\n", "19:26: Wrong type"},
		// Huge literals: the message must not spell out a hundred million
		// digits (which took minutes before; found by FuzzParse).
		{"huge priority", strings.Replace(base, `gossip_bind = "198.18.6.11:7946"`, "gossip_bind = \"198.18.6.11:7946\"\npriority = 1e99999999", 1), "8:12: Value out of range"},
		{"tiny fraction", strings.Replace(base, `gossip_bind = "198.18.6.11:7946"`, "gossip_bind = \"198.18.6.11:7946\"\npriority = -1e-99999999", 1), "8:12: Not a whole number"},
		{"huge port", strings.Replace(base, `interface = "eth0"`, "interface = \"eth0\"\nport = -1e99999999", 1), "4:8: Port out of range"},
		{"huge seed", base + "balance {\n  seed = 1e99999999\n}\n", "19:10: Invalid balance seed"},
		{"slots prime at the bounds", base + "balance {\n  slots = 17\n}\n", ""},
		{"heartbeat port is the gossip port", strings.Replace(base, `key_file = "k"`, "key_file = \"k\"\nheartbeat_port = 7946", 1), "14:18: Heartbeat port is the gossip port"},
		{"heartbeat port 0", strings.Replace(base, `key_file = "k"`, "key_file = \"k\"\nheartbeat_port = 0", 1), "14:18: Port out of range"},
		{"heartbeat port set", strings.Replace(base, `key_file = "k"`, "key_file = \"k\"\nheartbeat_port = 9000", 1), ""},
		{"no default heartbeat port", strings.Replace(base, `"198.18.6.11:7946"`, `"198.18.6.11:65535"`, 1), "12:1: No default heartbeat_port"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			src := tc.src
			if src == "" {
				src = base
			}
			c, diags := Parse([]byte(src), "/cfg/config.hcl", memFiles(files))
			if tc.want == "" {
				if len(diags) > 0 {
					t.Fatalf("want valid, got:\n%s", strings.Join(lines(diags), "\n"))
				}
				if c == nil {
					t.Fatal("no config and no diagnostics")
				}
				return
			}
			if c != nil || len(diags) == 0 {
				t.Fatalf("want %q, got a valid config", tc.want)
			}
			d := diags[0]
			got := fmt.Sprintf("%d:%d: %s", d.Subject.Start.Line, d.Subject.Start.Column, d.Summary)
			if got != tc.want {
				t.Errorf("first diagnostic %q, want %q; all:\n%s", got, tc.want, strings.Join(lines(diags), "\n"))
			}
			if d.Detail == "" {
				t.Errorf("diagnostic %q has no detail saying how to fix it", got)
			}
		})
	}
}

func TestRelativePathsResolveAgainstConfigDir(t *testing.T) {
	var asked []string
	read := WithReadFile(func(p string) ([]byte, error) {
		asked = append(asked, p)
		return nil, errors.New("not here")
	})
	Parse([]byte(base), filepath.Join("some", "dir", "config.hcl"), read)
	Parse([]byte(strings.Replace(base, `"k"`, `"/abs/k"`, 1)), filepath.Join("some", "dir", "config.hcl"), read)
	want := []string{filepath.Join("some", "dir", "k"), "/abs/k"}
	if !slices.Equal(asked, want) {
		t.Errorf("key files read: %q, want %q", asked, want)
	}
}

// TestNoKeyMaterialInOutput: neither diagnostics nor a printed Config show
// key bytes.
func TestNoKeyMaterialInOutput(t *testing.T) {
	secret := "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXh4eA==" // a valid-looking line
	bad := "S3VwZXJTZWNyZXRLZXlNYXRlcmlhbA!!"
	for _, content := range []string{secret + "\n" + bad + "\n", "AAAA" + secret[4:10] + "\n"} {
		_, diags := Parse([]byte(base), "/cfg/config.hcl", memFiles(map[string]string{"/cfg/k": content}))
		if !diags.HasErrors() {
			t.Fatalf("key file %q accepted", content)
		}
		var b strings.Builder
		if err := WriteDiagnostics(&b, diags, map[string][]byte{"/cfg/config.hcl": []byte(base)}); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{secret, bad, secret[4:10]} {
			if strings.Contains(b.String(), s) {
				t.Errorf("diagnostics quote key material %q:\n%s", s, b.String())
			}
		}
	}
	c, diags := Parse([]byte(base), "/cfg/config.hcl", memFiles(map[string]string{"/cfg/k": mustRead(t, "testdata/config/gossip.key")}))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	printed := fmt.Sprintf("%v %+v %#v %s", c, c, c, c.Gossip.Keys)
	for _, k := range c.Gossip.Keys {
		if strings.Contains(printed, string(k)) || strings.Contains(printed, fmt.Sprint([]byte(k))) || strings.Contains(printed, fmt.Sprintf("%#v", []byte(k))) {
			t.Errorf("printing a Config shows key material: %s", printed)
		}
	}
	if !strings.Contains(printed, "keyring(2 keys)") {
		t.Errorf("printed keyring: %s", printed)
	}
}

func TestReadFileRefusesSpecialFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadFile(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("ReadFile(fifo) succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFile blocked on a FIFO")
	}
	if _, err := ReadFile("/dev/zero"); err == nil {
		t.Error("ReadFile(/dev/zero) succeeded")
	}
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, make([]byte, maxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(big); err == nil {
		t.Error("ReadFile of a file over 1 MiB succeeded")
	}
}

func TestLoadMissingFile(t *testing.T) {
	c, diags := Load("/nonexistent/epconsole/config.hcl")
	if c != nil || len(diags) != 1 {
		t.Fatalf("got %v %v", c, diags)
	}
	want := "/nonexistent/epconsole/config.hcl:1:1: Cannot read config file; /nonexistent/epconsole/config.hcl: no such file or directory. Pass the right file with -c, or create it from the sample config.hcl."
	if got := DiagnosticLine(diags[0]); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestWriteDiagnostics(t *testing.T) {
	src := "cluster_name = \"t\"\nhealth {\n\ttimeout = \"5 s\"\n}\n"
	_, diags := Parse([]byte(src), "c.hcl", memFiles(nil))
	var i int
	for i = range diags {
		if diags[i].Summary == "Invalid duration" {
			break
		}
	}
	var b strings.Builder
	if err := WriteDiagnostics(&b, diags[i:i+1], map[string][]byte{"c.hcl": []byte(src)}); err != nil {
		t.Fatal(err)
	}
	want := `c.hcl:3:12: Invalid duration; health.timeout = "5 s" is not a duration: write a number with a unit (ns, us, ms, s, m, h), like "500ms" or "2s".
  3 | 	timeout = "5 s"
    | 	          ^^^^^
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	// A subject spanning lines underlines each; a missing source shows no snippet.
	rng := hcl.Range{Filename: "c.hcl", Start: hcl.Pos{Line: 2, Column: 1, Byte: 19}, End: hcl.Pos{Line: 3, Column: 3, Byte: 29}}
	b.Reset()
	WriteDiagnostics(&b, hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "S", Detail: "D\nmore", Subject: &rng}, {Severity: hcl.DiagError, Summary: "T", Subject: &hcl.Range{Filename: "gone.hcl"}}}, map[string][]byte{"c.hcl": []byte(src), "gone.hcl": nil})
	want = "c.hcl:2:1: warning: S; D more\n  2 | health {\n    | ^^^^^^^^\n  3 | \ttimeout = \"5 s\"\n    | ^\ngone.hcl:0:0: T\n"
	if b.String() != want {
		t.Errorf("got:\n%q\nwant:\n%q", b.String(), want)
	}
}

func mkfifo(p string) error { return syscall.Mkfifo(p, 0o600) }
