package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// runCLI runs epconsole with args and returns exit code, stdout, stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// TestValidateBadFiles: for every file in testdata/config/bad, validate
// exits 1 and prints exactly the expected diagnostic lines, each followed by
// a source snippet, then a count.
func TestValidateBadFiles(t *testing.T) {
	t.Chdir("../..")
	files, _ := filepath.Glob("testdata/config/bad/*.hcl")
	if len(files) < 15 {
		t.Fatalf("only %d bad files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".hcl") + ".want")
			if err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCLI(t, "validate", "-c", f)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if errOut != "" {
				t.Errorf("stderr: %s", errOut)
			}
			outLines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			// Diagnostic lines start with the file name; snippet lines are
			// indented; the last line is the count.
			var diagLines []string
			for i, l := range outLines[:len(outLines)-1] {
				if strings.HasPrefix(l, f+":") {
					diagLines = append(diagLines, l)
					if i+1 >= len(outLines)-1 || !strings.HasPrefix(outLines[i+1], "  ") || !strings.Contains(outLines[i+1], " | ") {
						t.Errorf("diagnostic %q is not followed by a source snippet", l)
					}
				} else if !strings.HasPrefix(l, "  ") {
					t.Errorf("unexpected output line %q", l)
				}
			}
			if got := strings.Join(diagLines, "\n") + "\n"; got != string(want) {
				t.Errorf("validate -c %s printed:\n%s\nwant:\n%s", f, got, want)
			}
			if last, wantLast := outLines[len(outLines)-1], f+": "+plural(len(diagLines), "problem"); last != wantLast {
				t.Errorf("last line %q, want %q", last, wantLast)
			}
		})
	}
}

func TestValidateGoodFiles(t *testing.T) {
	t.Chdir("../..")
	tests := []struct{ file, want string }{
		{"testdata/config/good/minimal.hcl", "OK: testdata/config/good/minimal.hcl: cluster minimal, 1 VIP, 1 backend, 0 peers\n"},
		{"testdata/config/good/dualstack.hcl", "OK: testdata/config/good/dualstack.hcl: cluster dual, 2 VIPs, 3 backends, 2 peers\n"},
		{"testdata/config/good/ipv6.hcl", "OK: testdata/config/good/ipv6.hcl: cluster v6-cp, 1 VIP, 2 backends, 1 peer\n"},
		{"testdata/config/good/files.hcl", "OK: testdata/config/good/files.hcl: cluster files, 1 VIP, 1 backend, 0 peers\n"},
	}
	for _, tc := range tests {
		code, out, errOut := runCLI(t, "validate", "-c", tc.file)
		if code != 0 || out != tc.want || errOut != "" {
			t.Errorf("validate -c %s: exit %d\nstdout %q\nstderr %q\nwant exit 0, stdout %q", tc.file, code, out, errOut, tc.want)
		}
	}
}

func TestValidateDefaultPath(t *testing.T) {
	key, err := filepath.Abs("../../testdata/config/gossip.key")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../testdata/config/good/minimal.hcl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	// No ./config.hcl: the system path is checked.
	code, out, _ := runCLI(t, "validate")
	if !strings.Contains(out, systemConfig) {
		t.Errorf("without ./config.hcl: exit %d, output %q does not name %s", code, out, systemConfig)
	}
	// With ./config.hcl: that file.
	cfg := strings.Replace(string(src), `"../gossip.key"`, `"`+key+`"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "config.hcl"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "validate")
	if want := "OK: config.hcl: cluster minimal, 1 VIP, 1 backend, 0 peers\n"; code != 0 || out != want {
		t.Errorf("with ./config.hcl: exit %d stdout %q stderr %q, want 0 %q", code, out, errOut, want)
	}
}

func TestValidateUsage(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		out, err string // substrings; "" = must be empty
	}{
		{[]string{"validate", "-h"}, 0, "usage: epconsole validate [-c config.hcl]", ""},
		{[]string{"validate", "--help"}, 0, "usage: epconsole validate", ""},
		{[]string{"validate", "-x"}, 2, "", "flag provided but not defined: -x"},
		{[]string{"validate", "/nonexistent/extra.hcl"}, 1, "/nonexistent/extra.hcl:1:1: Cannot read config file", ""},
		{[]string{"validate", "--offline", "--json", "/nonexistent/extra.hcl"}, 1, `"summary": "Cannot read config file"`, ""},
		{[]string{"validate", "-c", "/nonexistent/epconsole.hcl"}, 1, "/nonexistent/epconsole.hcl:1:1: Cannot read config file; /nonexistent/epconsole.hcl: no such file or directory.", ""},
	}
	for _, tc := range tests {
		code, out, errOut := runCLI(t, tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
		for _, c := range []struct{ got, want, name string }{{out, tc.out, "stdout"}, {errOut, tc.err, "stderr"}} {
			if c.want == "" && c.got != "" || !strings.Contains(c.got, c.want) {
				t.Errorf("%v: %s %q, want it to contain %q", tc.args, c.name, c.got, c.want)
			}
		}
	}
}

// clusterFiles writes the configs of a three-node cluster (lb1..lb3, as
// a.hcl, b.hcl and c.hcl) and their gossip key into a fresh directory and
// makes it the working directory. edit changes one node's source.
func clusterFiles(t *testing.T, edit map[string]func(string) string) {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("gossip.key", []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, f := range []string{"a.hcl", "b.hcl", "c.hcl"} {
		src := clusterNode(i + 1)
		if e, ok := edit[f]; ok {
			src = e(src)
		}
		if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// clusterNode is node lbN's config: every line is the same in the three
// files but the node block and the peers.
func clusterNode(n int) string {
	var b strings.Builder
	b.WriteString(`cluster_name = "prod-cp"

vip "198.18.0.100" {
  interface = "eth0"
}

node {
  name        = "lb` + strconv.Itoa(n) + `"
  gossip_bind = "198.18.0.1` + strconv.Itoa(n) + `:7946"
}
`)
	for p := 1; p <= 3; p++ {
		if p != n {
			fmt.Fprintf(&b, "peer \"lb%d\" {\n  address = \"198.18.0.1%d:7946\"\n}\n", p, p)
		}
	}
	b.WriteString(`
gossip {
  key_file = "gossip.key"
}

backend "cp1" {
  address = "198.18.0.21"
}
backend "cp2" {
  address = "198.18.0.22"
}
backend "cp3" {
  address = "198.18.0.23"
}
`)
	return b.String()
}

// TestValidateClusterFiles: validate a.hcl b.hcl c.hcl checks each file,
// then prints every cluster-wide difference with each file's value and
// line; exit 0 only when the files agree.
func TestValidateClusterFiles(t *testing.T) {
	replace := func(old, new string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				t.Fatalf("%q not in the source", old)
			}
			return strings.Replace(s, old, new, 1)
		}
	}
	swap23 := func(s string) string {
		return strings.NewReplacer(`backend "cp2" {`+"\n"+`  address = "198.18.0.22"`, `backend "cp3" {`+"\n"+`  address = "198.18.0.23"`,
			`backend "cp3" {`+"\n"+`  address = "198.18.0.23"`, `backend "cp2" {`+"\n"+`  address = "198.18.0.22"`).Replace(s)
	}
	tests := []struct {
		name  string
		edit  map[string]func(string) string
		diffs []string // the difference lines, in order; none: the files agree
	}{
		{name: "identical"},
		{name: "node-local settings differ", edit: map[string]func(string) string{
			"b.hcl": replace(`interface = "eth0"`, `interface = "bond0"`),
			"c.hcl": replace("key_file = \"gossip.key\"\n", "key_file = \"gossip.key\"\n  heartbeat_port = 7947\n"),
		}},
		{name: "explicit default", edit: map[string]func(string) string{
			"c.hcl": func(s string) string { return s + "balance {\n  seed = \"0x5eed\"\n}\n" },
		}},
		{name: "backend address", edit: map[string]func(string) string{"b.hcl": replace(`"198.18.0.22"`, `"198.18.0.32"`)},
			diffs: []string{`backend "cp2".address: a.hcl:26 198.18.0.22, b.hcl:26 198.18.0.32, c.hcl:26 198.18.0.22`}},
		{name: "backend order", edit: map[string]func(string) string{"c.hcl": swap23},
			diffs: []string{`backend order: a.hcl:22 [cp1, cp2, cp3], b.hcl:22 [cp1, cp2, cp3], c.hcl:22 [cp1, cp3, cp2]`}},
		{name: "backend missing", edit: map[string]func(string) string{"a.hcl": replace("backend \"cp3\" {\n  address = \"198.18.0.23\"\n}\n", "")},
			diffs: []string{`backend "cp3": a.hcl (none), b.hcl:28 198.18.0.23:6443, c.hcl:28 198.18.0.23:6443`}},
		{name: "backend port", edit: map[string]func(string) string{"a.hcl": replace(`"198.18.0.21"`, "\"198.18.0.21\"\n  port = 6444")},
			diffs: []string{`backend "cp1".port: a.hcl:24 6444, b.hcl 6443 (default), c.hcl 6443 (default)`}},
		{name: "seed and VIP", edit: map[string]func(string) string{
			"b.hcl": func(s string) string { return s + "balance {\n  seed = 7\n}\n" },
			"c.hcl": replace(`vip "198.18.0.100"`, `vip "198.18.0.101"`),
		}, diffs: []string{
			`vip (IPv4).address: a.hcl:3 198.18.0.100, b.hcl:3 198.18.0.100, c.hcl:3 198.18.0.101`,
			`balance.seed: a.hcl 24301 (default), b.hcl:32 7, c.hcl 24301 (default)`,
		}},
		{name: "cluster name and heartbeat", edit: map[string]func(string) string{
			"a.hcl": replace(`"prod-cp"`, `"prod"`),
			"b.hcl": replace("key_file = \"gossip.key\"\n", "key_file = \"gossip.key\"\n  heartbeat_misses = 10\n"),
		}, diffs: []string{
			`cluster_name: a.hcl:1 "prod", b.hcl:1 "prod-cp", c.hcl:1 "prod-cp"`,
			`gossip.heartbeat_misses: a.hcl 5 (default), b.hcl:20 10, c.hcl 5 (default)`,
		}},
		{name: "peer address", edit: map[string]func(string) string{"c.hcl": replace(`"198.18.0.12:7946"`, `"198.18.0.42:7946"`)},
			diffs: []string{`peer "lb2".address: b.hcl:9 198.18.0.12:7946 (node.gossip_bind), c.hcl:15 198.18.0.42:7946`}},
		{name: "peer missing", edit: map[string]func(string) string{"a.hcl": replace("peer \"lb3\" {\n  address = \"198.18.0.13:7946\"\n}\n", "")},
			diffs: []string{`peer "lb3": c.hcl:8 lb3 (node.name), a.hcl (none)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clusterFiles(t, tc.edit)
			code, out, errOut := runCLI(t, "validate", "a.hcl", "b.hcl", "c.hcl")
			if errOut != "" {
				t.Errorf("stderr: %s", errOut)
			}
			var got []string
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "OK: ") || strings.HasPrefix(l, "  ") || strings.Contains(l, " between a.hcl") || l == "" {
					continue
				}
				got = append(got, l)
			}
			if !slices.Equal(got, tc.diffs) {
				t.Errorf("differences:\n%s\nwant:\n%s\nfull output:\n%s", strings.Join(got, "\n"), strings.Join(tc.diffs, "\n"), out)
			}
			wantCode := 0
			if len(tc.diffs) > 0 {
				wantCode = 1
			}
			if code != wantCode {
				t.Errorf("exit %d, want %d\n%s", code, wantCode, out)
			}
			if len(tc.diffs) == 0 && !strings.Contains(out, "OK: a.hcl, b.hcl, c.hcl agree on the cluster-wide settings (digest ") {
				t.Errorf("no agreement line:\n%s", out)
			}
		})
	}
}

// TestValidateClusterOutput pins the whole output of the three-file
// example in docs/config.md: one deliberate difference.
func TestValidateClusterOutput(t *testing.T) {
	clusterFiles(t, map[string]func(string) string{"b.hcl": func(s string) string { return strings.Replace(s, `"198.18.0.22"`, `"198.18.0.32"`, 1) }})
	code, out, _ := runCLI(t, "validate", "-c", "a.hcl", "b.hcl", "c.hcl")
	want := `OK: a.hcl: cluster prod-cp, 1 VIP, 3 backends, 2 peers
OK: b.hcl: cluster prod-cp, 1 VIP, 3 backends, 2 peers
OK: c.hcl: cluster prod-cp, 1 VIP, 3 backends, 2 peers
1 difference between a.hcl, b.hcl, c.hcl:
backend "cp2".address: a.hcl:26 198.18.0.22, b.hcl:26 198.18.0.32, c.hcl:26 198.18.0.22
  It is part of the config digest: make it the same in every file, or peers map flows differently and a mismatched peer is not picked as owner.
`
	if code != 1 || out != want {
		t.Errorf("exit %d, output:\n%s\nwant exit 1 and:\n%s", code, out, want)
	}
}

// TestValidateOffline: --offline checks a config whose key, certificate
// and CA files are not on this host (CI); without it they are errors.
func TestValidateOffline(t *testing.T) {
	clusterFiles(t, map[string]func(string) string{
		"a.hcl": func(s string) string {
			return strings.Replace(s, `key_file = "gossip.key"`, `key_file = "/etc/epconsole/no-such.key"`, 1) +
				"tls {\n  ca_file = \"/etc/kubernetes/pki/no-such-ca.crt\"\n}\n" +
				"etcd {\n  endpoints = [\"https://198.18.0.21:2379\"]\n  ca_file = \"no-such-etcd-ca.crt\"\n  cert_file = \"no-such.crt\"\n  key_file = \"no-such.key\"\n}\n" +
				"health {\n  client_cert_file = \"no-such-probe.crt\"\n  client_key_file = \"no-such-probe.key\"\n}\n"
		},
	})
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// A key others can read is also not looked at offline.
	if err := os.Chmod("gossip.key", 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "validate", "--offline", "a.hcl", "b.hcl", "c.hcl")
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "OK: a.hcl:") || !strings.Contains(out, "OK: a.hcl, b.hcl, c.hcl agree") {
		t.Errorf("--offline: exit %d\n%s%s", code, out, errOut)
	}
	// Offline still checks values and the pairing of certificate and key.
	if err := os.WriteFile("d.hcl", []byte(strings.Replace(clusterNode(1), `"198.18.0.21"`, `"127.0.0.1"`, 1)+
		"etcd {\n  cert_file = \"no-such.crt\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "validate", "--offline", "d.hcl")
	if code != 1 || !strings.Contains(out, "Unusable IP address") || !strings.Contains(out, "Certificate without key") {
		t.Errorf("--offline on a bad file: exit %d\n%s", code, out)
	}
	// Without --offline: every missing file, and the lax key mode, are errors.
	code, out, _ = runCLI(t, "validate", "a.hcl", "b.hcl")
	for _, want := range []string{
		"a.hcl:19:14: Cannot read gossip key file; /etc/epconsole/no-such.key: no such file or directory.",
		"Cannot read CA file; tls.ca_file: /etc/kubernetes/pki/no-such-ca.crt",
		"Cannot read certificate; etcd.cert_file",
		"Cannot read key; health.client_key_file",
		"b.hcl:19:14: Gossip key file open to others; gossip.key has mode 0644: group and others may read or change it",
		"chmod 600 " + filepath.Join(dir, "gossip.key"),
		"a.hcl: 7 problems",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("without --offline: output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("without --offline: exit %d, want 1", code)
	}
}

// TestValidateJSON: --json prints one array of objects with file, line,
// column, severity, summary and detail: each file's problems and warnings,
// and each difference between the files as an error whose summary is the
// setting's path.
func TestValidateJSON(t *testing.T) {
	clusterFiles(t, map[string]func(string) string{
		"b.hcl": func(s string) string { return strings.Replace(s, `"198.18.0.22"`, `"198.18.0.32"`, 1) },
	})
	if err := os.WriteFile("bad.hcl", []byte(strings.Replace(clusterNode(1), `interface = "eth0"`, `interface = "eth0"`+"\n  port = 0", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	type diag struct {
		File     *string `json:"file"`
		Line     *int    `json:"line"`
		Column   *int    `json:"column"`
		Severity *string `json:"severity"`
		Summary  *string `json:"summary"`
		Detail   *string `json:"detail"`
	}
	parse := func(t *testing.T, out string) []diag {
		t.Helper()
		var ds []diag
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ds); err != nil {
			t.Fatalf("not a JSON array of diagnostics: %v\n%s", err, out)
		}
		for _, d := range ds {
			if d.File == nil || d.Line == nil || d.Column == nil || d.Severity == nil || d.Summary == nil || d.Detail == nil {
				t.Errorf("diagnostic lacks a field: %s", out)
			} else if *d.Severity != "error" && *d.Severity != "warning" {
				t.Errorf("severity %q", *d.Severity)
			}
		}
		return ds
	}

	code, out, _ := runCLI(t, "validate", "--json", "a.hcl", "b.hcl", "c.hcl", "bad.hcl")
	ds := parse(t, out)
	if code != 1 || len(ds) != 2 {
		t.Fatalf("exit %d, %d diagnostics, want 1 and 2:\n%s", code, len(ds), out)
	}
	if d := ds[0]; *d.File != "bad.hcl" || *d.Line != 5 || *d.Column != 10 || *d.Severity != "error" || *d.Summary != "Port out of range" {
		t.Errorf("first diagnostic %s:%d:%d %s %s", *d.File, *d.Line, *d.Column, *d.Severity, *d.Summary)
	}
	want := `backend "cp2".address`
	if d := ds[1]; *d.File != "b.hcl" || *d.Line != 26 || *d.Column != 13 || *d.Severity != "error" || *d.Summary != want ||
		!strings.Contains(*d.Detail, "a.hcl:26 198.18.0.22, b.hcl:26 198.18.0.32, c.hcl:26 198.18.0.22") {
		t.Errorf("difference %s:%d:%d %s %q %q", *d.File, *d.Line, *d.Column, *d.Severity, *d.Summary, *d.Detail)
	}

	code, out, _ = runCLI(t, "validate", "--json", "a.hcl", "c.hcl")
	if ds := parse(t, out); code != 0 || len(ds) != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("agreeing files: exit %d, output %q, want 0 and []", code, out)
	}
}

// TestValidateHostChecks: a VIP that is already an address of this host
// is a warning (exit 0), not looked for with --offline.
func TestValidateHostChecks(t *testing.T) {
	clusterFiles(t, nil)
	onHost := func() (map[netip.Addr]string, error) {
		return map[netip.Addr]string{netip.MustParseAddr("198.18.0.100"): "eth0", netip.MustParseAddr("198.18.0.11"): "eth0"}, nil
	}
	for _, offline := range []bool{false, true} {
		var out, errb bytes.Buffer
		code := runValidate(context.Background(), validateOptions{files: []string{"a.hcl"}, offline: offline, hostAddrs: onHost}, IO{Out: &out, Err: &errb})
		warned := strings.Contains(out.String(), "a.hcl:3:5: warning: VIP already on this host; VIP 198.18.0.100 is already an address of this host (on eth0).") &&
			strings.Contains(out.String(), "ip addr del 198.18.0.100/32 dev eth0")
		if code != 0 || warned == offline || !strings.Contains(out.String(), "OK: a.hcl") {
			t.Errorf("offline=%v: exit %d, warned %v\n%s%s", offline, code, warned, out.String(), errb.String())
		}
	}
}
