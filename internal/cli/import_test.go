package cli

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/epconsole/epconsole/internal/config"
)

// importTestdata is testdata/import seen from this package.
const importTestdata = "../../testdata/import"

// importCase is one runbook variant in testdata/import: its files and the
// flags the import needs besides them.
type importCase struct {
	name       string
	haproxy    string
	keepalived []string
	flags      []string
	nodes      []string // the configs written, by node
}

var importCases = []importCase{
	{"unicast-pair", "haproxy-default-server-check.cfg", []string{"keepalived-unicast-master.conf", "keepalived-unicast-backup.conf"}, nil, []string{"lb-141", "lb-142"}},
	{"multicast-on-control-plane", "haproxy-vip-bind-inter.cfg", []string{"keepalived-multicast-master.conf", "keepalived-multicast-backup.conf"},
		[]string{"--node", "node-1=10.1.1.1", "--node", "node-2=10.1.1.2"}, []string{"node-1", "node-2"}},
	{"inline-blocks", "haproxy-tcp-check.cfg", []string{"keepalived-inline-blocks.conf"}, []string{"--node", "lb1=192.168.1.11"}, []string{"lb1"}},
	{"inline-blocks-tcplog", "haproxy-tcp-check-tcplog.cfg", []string{"keepalived-inline-blocks.conf"}, []string{"--node", "lb1=192.168.1.11"}, []string{"lb1"}},
	{"haproxy-only", "haproxy-global-tcp-check.cfg", nil, []string{"--vip", "10.0.1.10", "--interface", "ens5", "--node", "lb-0=10.0.1.5"}, []string{"lb-0"}},
	{"unknown-keywords", "unknown-keywords.cfg", []string{"unknown-keywords.conf"}, nil, []string{"lb-12"}},
}

func (tc importCase) args(dir string) []string {
	args := []string{"import", "--haproxy", filepath.Join(dir, tc.haproxy)}
	for _, k := range tc.keepalived {
		args = append(args, "--keepalived", filepath.Join(dir, k))
	}
	return append(args, tc.flags...)
}

// writeTestKey writes a gossip key file and returns its path.
func writeTestKey(t *testing.T, dir string) string {
	t.Helper()
	key := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return key
}

// TestImportEveryTestdataCase: every haproxy.cfg / keepalived.conf variant
// in testdata/import imports through the command (exit 0, one config per
// node under -o DIR), each written config passes `epconsole validate`,
// and the nodes' cluster-wide parts are the same (the config digest).
func TestImportEveryTestdataCase(t *testing.T) {
	used := map[string]bool{}
	for _, tc := range importCases {
		t.Run(tc.name, func(t *testing.T) {
			used[tc.haproxy] = true
			for _, k := range tc.keepalived {
				used[k] = true
			}
			tmp := t.TempDir()
			key := writeTestKey(t, tmp)
			out := filepath.Join(tmp, "out")
			// The trailing slash: a directory even for one node.
			code, stdout, stderr := runCLI(t, append(tc.args(importTestdata), "--key-file", key, "-o", out+"/")...)
			if code != 0 {
				t.Fatalf("import: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if l != "" && !regexp.MustCompile(`^\S+:\d+: (note|warning): `).MatchString(l) {
					t.Errorf("stderr line %q is not file:line: severity: message", l)
				}
			}
			var digest string
			for i, node := range tc.nodes {
				path := filepath.Join(out, node, "config.hcl")
				if !strings.Contains(stdout, "wrote "+path+" (node "+node+", ") {
					t.Errorf("stdout does not say it wrote %s:\n%s", path, stdout)
				}
				code, vout, verr := runCLI(t, "validate", "-c", path)
				if code != 0 || !strings.HasPrefix(vout, "OK: "+path+": ") {
					t.Errorf("validate -c %s: exit %d\n%s%s", path, code, vout, verr)
				}
				cfg, diags := config.Load(path)
				if diags.HasErrors() {
					t.Fatalf("%s: %v", path, diags)
				}
				if i == 0 {
					digest = cfg.Digest()
				} else if cfg.Digest() != digest {
					t.Errorf("%s: the cluster-wide parts differ from %s's", path, tc.nodes[0])
				}
			}
			entries, _ := os.ReadDir(out)
			if len(entries) != len(tc.nodes) {
				t.Errorf("%d entries in %s, want %d (one per node)", len(entries), out, len(tc.nodes))
			}
			if !strings.Contains(stdout, "next steps:\n  1. ") {
				t.Errorf("no next steps on stdout:\n%s", stdout)
			}
		})
	}
	// Every variant in testdata/import is in a case.
	files, _ := filepath.Glob(filepath.Join(importTestdata, "*.c*"))
	for _, f := range files {
		base := filepath.Base(f)
		if (strings.HasSuffix(base, ".cfg") || strings.HasSuffix(base, ".conf")) && !strings.HasPrefix(base, "broken-") && !used[base] {
			t.Errorf("testdata/import/%s is imported by no case", base)
		}
	}
}

// TestImportGoldenThroughCommand: the command writes exactly what the
// migrate package's goldens hold, to stdout for one node (diagnostics and
// next steps on stderr) and to DIR/<node>/config.hcl for several.
func TestImportGoldenThroughCommand(t *testing.T) {
	t.Chdir(importTestdata)
	golden := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range importCases {
		if tc.name != "inline-blocks" && tc.name != "haproxy-only" {
			continue
		}
		code, stdout, stderr := runCLI(t, tc.argsBare()...)
		if code != 0 || stdout != golden(tc.name+"."+tc.nodes[0]+".hcl.golden") {
			t.Errorf("%s to stdout: exit %d, stderr:\n%s\nstdout differs from the golden file:\n%s", tc.name, code, stderr, stdout)
		}
		if !strings.Contains(stderr, "next steps:\n") {
			t.Errorf("%s: no next steps on stderr:\n%s", tc.name, stderr)
		}
	}
	tc := importCases[0]
	out := filepath.Join(t.TempDir(), "out")
	if code, stdout, stderr := runCLI(t, append(tc.argsBare(), "-o", out)...); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	for _, n := range tc.nodes {
		got, err := os.ReadFile(filepath.Join(out, n, "config.hcl"))
		if err != nil || string(got) != golden(tc.name+"."+n+".hcl.golden") {
			t.Errorf("%s/%s/config.hcl differs from the golden file (%v):\n%s", out, n, err, got)
		}
	}
}

// argsBare is args with the files named as the goldens name them.
func (tc importCase) argsBare() []string {
	args := []string{"import", "--haproxy", tc.haproxy}
	for _, k := range tc.keepalived {
		args = append(args, "--keepalived", k)
	}
	return append(args, tc.flags...)
}

// TestImportBrokenInputs: inputs with errors exit 1, print each error as
// file:line: error: message and write nothing.
func TestImportBrokenInputs(t *testing.T) {
	cases := []struct{ haproxy, keepalived, want string }{
		{"haproxy-tcp-check.cfg", "broken-unterminated-brace.conf", "broken-unterminated-brace.conf:1: error: "},
		{"haproxy-tcp-check.cfg", "broken-bad-ip.conf", `broken-bad-ip.conf:3: error: `},
		{"broken-bad-server-ip.cfg", "keepalived-unicast-master.conf", `broken-bad-server-ip.cfg:6: error: `},
		{"broken-missing-backend.cfg", "keepalived-unicast-master.conf", "broken-missing-backend.cfg:3: error: default_backend"},
	}
	for _, tc := range cases {
		out := filepath.Join(t.TempDir(), "out")
		code, stdout, stderr := runCLI(t, "import", "--haproxy", filepath.Join(importTestdata, tc.haproxy),
			"--keepalived", filepath.Join(importTestdata, tc.keepalived), "-o", out)
		if code != 1 || stdout != "" || !strings.Contains(stderr, filepath.Join(importTestdata, tc.want)) || !strings.Contains(stderr, "nothing written") {
			t.Errorf("%s + %s: exit %d (want 1), stdout %q, stderr:\n%s\nwant %q", tc.haproxy, tc.keepalived, code, stdout, stderr, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s + %s: %s was written", tc.haproxy, tc.keepalived, out)
		}
	}
	// An input that cannot be read.
	code, _, stderr := runCLI(t, "import", "--haproxy", "/nonexistent/haproxy.cfg")
	if code != 1 || !strings.Contains(stderr, "/nonexistent/haproxy.cfg: no such file or directory") {
		t.Errorf("unreadable input: exit %d, stderr %q", code, stderr)
	}
}

// TestImportNeverOverwrites: an existing file is never replaced, and a
// refusal leaves no config half written.
func TestImportNeverOverwrites(t *testing.T) {
	tc := importCases[2] // one node
	dir := t.TempDir()
	file := filepath.Join(dir, "config.hcl")
	if code, _, stderr := runCLI(t, append(tc.args(importTestdata), "-o", file)...); code != 0 {
		t.Fatalf("-o FILE: exit %d\n%s", code, stderr)
	}
	first, _ := os.ReadFile(file)
	if !strings.Contains(string(first), `name        = "lb1"`) {
		t.Fatalf("-o FILE wrote:\n%s", first)
	}
	if err := os.WriteFile(file, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, append(tc.args(importTestdata), "-o", file)...)
	if got, _ := os.ReadFile(file); code != 1 || string(got) != "mine\n" || !strings.Contains(stderr, file+" exists; nothing is overwritten") {
		t.Errorf("second import to %s: exit %d, file now %q, stderr:\n%s", file, code, got, stderr)
	}

	// Several nodes into a directory where one node's config exists: no
	// file is written, not even the other node's.
	tc = importCases[0]
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(filepath.Join(out, "lb-142"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "lb-142", "config.hcl"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, append(tc.args(importTestdata), "-o", out)...)
	if code != 1 || !strings.Contains(stderr, filepath.Join(out, "lb-142", "config.hcl")+" exists") {
		t.Errorf("import into a directory with lb-142's config: exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "lb-141")); err == nil {
		t.Errorf("lb-141's config was written although the import refused")
	}
	if got, _ := os.ReadFile(filepath.Join(out, "lb-142", "config.hcl")); string(got) != "mine\n" {
		t.Errorf("lb-142's config was replaced: %q", got)
	}
}

// TestImportUsage: command lines the import cannot run exit 2 and say why.
func TestImportUsage(t *testing.T) {
	hp := filepath.Join(importTestdata, "haproxy-default-server-check.cfg")
	ka := []string{"--keepalived", filepath.Join(importTestdata, "keepalived-unicast-master.conf"), "--keepalived", filepath.Join(importTestdata, "keepalived-unicast-backup.conf")}
	notDir := filepath.Join(t.TempDir(), "x.hcl")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{"import"}, "--haproxy FILE is required"},
		{[]string{"import", hp, "x.conf"}, `unexpected argument "` + hp + `"`},
		{[]string{"import", "--haproxy", hp, "--node", "lb1"}, `invalid argument "lb1" for "--node" flag: "lb1": want NAME=ADDRESS`},
		{[]string{"import", "--haproxy", hp, "--node", "lb1=10.0.0.1", "--node", "lb1=10.0.0.2"}, "lb1 is named twice"},
		{[]string{"import", "--haproxy", hp, "--vip", "10.0.0.300"}, `invalid argument "10.0.0.300" for "--vip" flag: "10.0.0.300" is not an IP address`},
		{[]string{"import", "--haproxy", hp, "--frob"}, "flag provided but not defined: --frob"},
		{append([]string{"import", "--haproxy", hp}, ka...), "2 configs (lb-141, lb-142): name a directory with -o DIR"},
		{append([]string{"import", "--haproxy", hp, "-o", notDir}, ka...), "-o " + notDir + " is a file, but there are 2 configs"},
	}
	for _, tc := range tests {
		code, out, errs := runCLI(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.err) {
			t.Errorf("%q: exit %d (want 2)\nstdout %q\nstderr %q\nwant in stderr %q", tc.args, code, out, errs, tc.err)
		}
	}
}

// initArgs is an init command line for three LB nodes and three backends.
func initArgs(out, key string) []string {
	return []string{"init", "--vip", "198.18.0.100", "--interface", "eth0",
		"--peer", "lb1=198.18.0.11", "--peer", "lb2=198.18.0.12", "--peer", "lb3=198.18.0.13",
		"--backend", "cp1=198.18.0.21", "--backend", "cp2=198.18.0.22", "--backend", "cp3=198.18.0.23",
		"--dns-name", "k8s-api.example.internal", "--cluster-name", "prod-cp", "--key-file", key, "-o", out}
}

// nodeBlocks matches the node and peer blocks, the only node-specific
// parts of init's configs.
var nodeBlocks = regexp.MustCompile(`(?ms)^(node \{|peer "[^"]*" \{)$.*?^\}$\n`)

// TestInitWritesAClusterThatValidates: init writes every node's config and
// one gossip key (0600); each config passes `epconsole validate`, reads
// that key, and the configs are the same text outside their node and peer
// blocks; stdout names every file and the next steps.
func TestInitWritesAClusterThatValidates(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cluster")
	key := filepath.Join(out, "gossip.key")
	code, stdout, stderr := runCLI(t, initArgs(out, key)...)
	if code != 0 || stderr != "" {
		t.Fatalf("init: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	fi, err := os.Stat(key)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("gossip key %s: %v, mode %v (want 0600)", key, err, fi.Mode().Perm())
	}
	keyText, _ := os.ReadFile(key)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(keyText)))
	if err != nil || len(raw) != 32 {
		t.Errorf("gossip key %q is not 32 bytes in base64: %v", keyText, err)
	}
	var common, digest string
	for i, n := range []string{"lb1", "lb2", "lb3"} {
		path := filepath.Join(out, n, "config.hcl")
		if code, vout, verr := runCLI(t, "validate", "-c", path); code != 0 || vout != "OK: "+path+": cluster prod-cp, 1 VIP, 3 backends, 2 peers\n" {
			t.Errorf("validate -c %s: exit %d\n%s%s", path, code, vout, verr)
		}
		cfg, diags := config.Load(path)
		if diags.HasErrors() || cfg.Node.Name != n || len(cfg.Gossip.Keys) != 1 || !bytes.Equal(cfg.Gossip.Keys[0], raw) {
			t.Errorf("%s: node %s, %d keys, %v", path, cfg.Node.Name, len(cfg.Gossip.Keys), diags)
		}
		text, _ := os.ReadFile(path)
		if blocks := nodeBlocks.FindAllString(string(text), -1); len(blocks) != 3 {
			t.Errorf("%s: %d node and peer blocks, want 3:\n%s", path, len(blocks), text)
		}
		rest := nodeBlocks.ReplaceAllString(string(text), "")
		if i == 0 {
			common, digest = rest, cfg.Digest()
		} else if cfg.Digest() != digest {
			t.Errorf("%s: config digest %s, lb1's %s", path, cfg.Digest(), digest)
		} else if rest != common {
			t.Errorf("%s differs from lb1's config outside the node and peer blocks:\n%s\n--- lb1:\n%s", path, rest, common)
		}
		if !strings.Contains(stdout, "wrote "+path+" (node "+n+", 198.18.0.1") {
			t.Errorf("stdout does not name %s:\n%s", path, stdout)
		}
	}
	for _, want := range []string{
		"wrote " + key + " (mode 0600)",
		"copy " + filepath.Join(out, "<node>", "config.hcl") + " to /etc/epconsole/config.hcl on that node",
		"install -m 0600 gossip.key " + key,
		"epconsole validate",
		"start the service",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}

	// A second init into the same directory refuses and changes nothing.
	code, stdout, stderr = runCLI(t, initArgs(out, key)...)
	if now, _ := os.ReadFile(key); code != 1 || stdout != "" || !strings.Contains(stderr, " exists; nothing is overwritten") || !bytes.Equal(now, keyText) {
		t.Errorf("init into a written directory: exit %d, key changed %t, stdout %q, stderr %q", code, !bytes.Equal(now, keyText), stdout, stderr)
	}
}

// TestInitDualStack: an IPv4 and an IPv6 VIP, with backends of both
// families, make configs that validate.
func TestInitDualStack(t *testing.T) {
	out := t.TempDir()
	key := filepath.Join(out, "gossip.key")
	code, stdout, stderr := runCLI(t, "init", "--vip", "198.18.0.100", "--vip", "fd00:198:18::100", "--interface", "eth0",
		"--peer", "lb1=198.18.0.11", "--peer", "lb2=fd00:198:18::12", "--backend", "cp1=198.18.0.21", "--backend", "cp1-v6=fd00:198:18::21",
		"--key-file", key, "-o", out)
	if code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, n := range []string{"lb1", "lb2"} {
		path := filepath.Join(out, n, "config.hcl")
		if code, vout, verr := runCLI(t, "validate", "-c", path); code != 0 || vout != "OK: "+path+": cluster k8s-api, 2 VIPs, 2 backends, 1 peer\n" {
			t.Errorf("validate -c %s: exit %d\n%s%s", path, code, vout, verr)
		}
	}
}

// TestInitNeverOverwrites: one existing file (a node's config) makes init
// refuse before it writes anything, the key included.
func TestInitNeverOverwrites(t *testing.T) {
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, "lb3"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "lb3", "config.hcl"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, initArgs(out, "/etc/epconsole/gossip.key")...)
	if code != 1 || !strings.Contains(stderr, filepath.Join(out, "lb3", "config.hcl")+" exists") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Errorf("init wrote files although it refused: %v", entries)
	}
}

// TestInitUsage: missing or malformed flags exit 2 naming them; values
// that make no valid config exit 1 and write nothing.
func TestInitUsage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	full := initArgs(out, "/etc/epconsole/gossip.key")
	without := func(flag string) []string {
		var args []string
		for i := 0; i < len(full); i++ {
			if full[i] == flag {
				i++
				continue
			}
			args = append(args, full[i])
		}
		return args
	}
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{"init"}, "missing --vip, --interface, --peer, --backend, -o"},
		{without("-o"), "missing -o: init needs"},
		{without("--peer"), "missing --peer: init needs"},
		{append(slices.Clone(full), "--peer", "lb4"), `invalid argument "lb4" for "--peer" flag`},
		{append(slices.Clone(full), "--backend", "cp1=198.18.0.24"), `invalid argument "cp1=198.18.0.24" for "--backend" flag: cp1 is named twice`},
		{append(slices.Clone(full), "extra"), `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		code, stdout, errs := runCLI(t, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(errs, tc.err) {
			t.Errorf("%q: exit %d (want 2)\nstdout %q\nstderr %q\nwant in stderr %q", tc.args, code, stdout, errs, tc.err)
		}
	}
	// A VIP that is a backend's address makes no valid config.
	bad := slices.Clone(full)
	bad[slices.Index(bad, "198.18.0.100")] = "198.18.0.21"
	code, stdout, errs := runCLI(t, bad...)
	if code != 1 || stdout != "" || !strings.Contains(errs, "lb1/config.hcl:") || !strings.Contains(errs, "nothing written") {
		t.Errorf("VIP = a backend: exit %d (want 1), stdout %q, stderr %q", code, stdout, errs)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s was written", out)
	}
}

// TestImportInitHelp: import's and init's help name every flag in their
// usage lines, and the root's help lists both commands.
func TestImportInitHelp(t *testing.T) {
	a := &app{}
	for _, c := range []*struct {
		name string
		fs   *pflag.FlagSet
	}{{"import", newImportCmd(a).Flags()}, {"init", newInitCmd(a).Flags()}} {
		code, out, errs := runCLI(t, c.name, "-h")
		if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: epconsole "+c.name+" ") {
			t.Errorf("%s -h: exit %d, stderr %q, stdout:\n%s", c.name, code, errs, out)
			continue
		}
		synopsis := out[:strings.Index(out, "\n\n")]
		c.fs.VisitAll(func(f *pflag.Flag) {
			spelling := "--" + f.Name
			if f.Shorthand != "" {
				spelling += "|-" + f.Shorthand
			}
			if f.Name != "help" && !regexp.MustCompile(`[\[ ](`+spelling+`)\b`).MatchString(synopsis) {
				t.Errorf("%s: the usage lines do not name --%s:\n%s", c.name, f.Name, synopsis)
			}
		})
	}
	_, out, _ := runCLI(t, "--help")
	for _, want := range []string{"\n  import ", "\n  init "} {
		if !strings.Contains(out, want) {
			t.Errorf("the root help does not list%s:\n%s", want, out)
		}
	}
}
