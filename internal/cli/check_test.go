package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/standin"
	"github.com/epconsole/epconsole/internal/status/build"
	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/probes/probetest"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/check")

// Stand-ins of these tests live on 127.0.36.1..9, etcd on 127.0.36.21.
func checkIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 36, byte(i)}) }

const checkGoldenDir = "../../testdata/check"

// checkHCL writes a config.hcl (and its gossip key) into dir. Backends are
// 198.18.3.11 and .12: config.hcl refuses loopback backends, so tests that
// probe backends replace them with the stand-ins after parsing.
func checkHCL(t *testing.T, dir, extra string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "gossip.key"), []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `cluster_name       = "test-cp"
endpoint_dns_names = ["k8s-api.test"]

vip "198.18.3.100" {
  interface = "eth0"
}

node {
  name        = "lb1"
  gossip_bind = "198.18.3.31:7946"
}

gossip {
  key_file = "gossip.key"
}

backend "cp1" {
  address = "198.18.3.11"
}
backend "cp2" {
  address = "198.18.3.12"
}
` + extra
	p := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// standinConfig is config.hcl's defaults with the fixture's CA, backends
// replaced by the given stand-ins.
func standinConfig(t *testing.T, f *probetest.Fixture, extra string, bs ...*probetest.Backend) *config.Config {
	t.Helper()
	dir := t.TempDir()
	p := checkHCL(t, dir, fmt.Sprintf("tls {\n  ca_file = %q\n}\n%s", f.CAFile, extra))
	cfg, diags := config.Load(p)
	if diags.HasErrors() {
		t.Fatalf("test config: %v", diags)
	}
	cfg.File = "config.hcl"
	cfg.Backends = nil
	for _, b := range bs {
		cfg.Backends = append(cfg.Backends, config.Backend{Name: b.Name, Address: b.Addr.Addr(), Port: b.Addr.Port()})
	}
	return cfg
}

var (
	portRE     = regexp.MustCompile(`(127\.0\.36\.\d+):\d+`)
	memberIDRE = regexp.MustCompile(`memberID:\d+`)
	// A probe's latency in the perfdata (latency_cp1=0.0012s;...).
	perfLatencyRE = regexp.MustCompile(`\b(latency_[^=\s]+)=[0-9.]+s`)
	// Values that change from run to run; the JSON golden holds a projection.
	volatileKeys = map[string]bool{
		"checked_at": true, "time": true, "latency_ms": true, "lateness_ms": true, "not_before": true, "not_after": true,
		"raft_term": true, "raft_index": true, "raft_applied_index": true, "db_size_bytes": true,
		"db_size_in_use_bytes": true, "db_size_quota_bytes": true, "id": true, "leader": true,
		"member_id": true, "issuer_id": true, "alarm_error": true, "elapsed_seconds": true,
	}
)

func normalize(t *testing.T, out string, asJSON bool, dirs ...string) string {
	t.Helper()
	for _, d := range dirs {
		out = strings.ReplaceAll(out, d, "$DIR")
	}
	out = portRE.ReplaceAllString(out, "$1:PORT")
	out = memberIDRE.ReplaceAllString(out, "memberID:ID")
	out = perfLatencyRE.ReplaceAllString(out, "${1}=LATENCYs")
	if !asJSON {
		return out
	}
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if volatileKeys[k] && e != nil && e != "" {
					x[k] = "<volatile>"
				} else {
					x[k] = walk(e)
				}
			}
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		}
		return v
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(walk(v)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join(checkGoldenDir, name)
	if *updateGolden {
		if err := os.MkdirAll(checkGoldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run Check -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./internal/cli -run Check -update rewrites it):\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// checkJSONValid decodes the JSON document and checks its invariants.
func checkJSONValid(t *testing.T, out string, code int) {
	t.Helper()
	var doc struct {
		Schema   string           `json:"schema"`
		Status   probes.Severity  `json:"status"`
		ExitCode int              `json:"exit_code"`
		Findings []probes.Finding `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("bad JSON: %v", err)
	}
	if doc.Schema != CheckSchema || doc.ExitCode != code || doc.Status.ExitCode() != code {
		t.Errorf("schema %q status %v exit_code %d, process exit %d", doc.Schema, doc.Status, doc.ExitCode, code)
	}
	if probes.Summarize(doc.Findings).Severity != doc.Status {
		t.Errorf("status %v is not the worst finding's", doc.Status)
	}
}

// runChecked runs check on a constructed config (text and JSON) and
// compares both with golden files.
func runChecked(t *testing.T, cfg *config.Config, args []string, name string, want probes.Severity) {
	t.Helper()
	for _, asJSON := range []bool{false, true} {
		a := args
		if asJSON {
			a = append(append([]string{}, args...), "--json")
		}
		o, _, ok := parseCheckArgs(a, IO{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}})
		if !ok {
			t.Fatalf("bad args %v", a)
		}
		var out, errb bytes.Buffer
		code := checkConfig(context.Background(), cfg, o, IO{Out: &out, Err: &errb})
		if code != want.ExitCode() {
			t.Errorf("json=%v: exit %d, want %d\n%s", asJSON, code, want.ExitCode(), out.String())
		}
		ext := ".txt"
		if asJSON {
			ext = ".json"
			checkJSONValid(t, out.String(), code)
		} else if first, _, _ := strings.Cut(out.String(), "\n"); !strings.HasPrefix(first, "EPCONSOLE "+want.String()+" - ") {
			t.Errorf("first line %q is not the %v summary", first, want)
		}
		golden(t, name+ext, normalize(t, out.String(), asJSON))
	}
}

func TestCheckBackendsAndTLS(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "absent")) // kubeconfig: skipped
	f := probetest.NewFixture(t)
	ok := f.Backend(t, "cp1", checkIP(1), probetest.Healthy)
	want := map[probetest.Case]probes.Severity{
		probetest.Healthy:       probes.OK,
		probetest.Unready:       probes.Warning,  // one of two down, failing check named
		probetest.Slow:          probes.Warning,  // timeout
		probetest.Refused:       probes.Warning,  // down, certificate unreadable
		probetest.SANMissingVIP: probes.Critical, // clients through the VIP refuse it
		probetest.SANMissingDNS: probes.Critical,
		probetest.Expiring:      probes.Critical, // 3 days < expiry_crit_days 7
		probetest.OtherCA:       probes.Critical, // chain does not verify
		probetest.Forbidden:     probes.Warning,  // readiness unknown, not down
	}
	for i, c := range probetest.AllCases {
		b := f.Backend(t, "cp"+fmt.Sprint(i+2), checkIP(i+2), c)
		cfg := standinConfig(t, f, "", ok, b)
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			runChecked(t, cfg, []string{"all"}, "backends-"+string(c), want[c])
		})
	}
	t.Run("all-down", func(t *testing.T) {
		t.Parallel()
		b := f.Backend(t, "cp1", checkIP(20), probetest.Refused)
		runChecked(t, standinConfig(t, f, "", b), []string{"backends"}, "backends-all-down", probes.Critical)
	})
	t.Run("forbidden-with-client-cert", func(t *testing.T) {
		t.Parallel()
		b := f.Backend(t, "cp1", checkIP(19), probetest.Forbidden)
		cfg := standinConfig(t, f, fmt.Sprintf("health {\n  client_cert_file = %q\n  client_key_file = %q\n}\n", f.ClientCertFile, f.ClientKeyFile), b)
		runChecked(t, cfg, []string{"backends"}, "backends-forbidden-client-cert", probes.OK)
	})
}

func TestCheckEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded etcd cluster")
	}
	cl := probetest.StartEtcd(t, checkIP(21), 3)
	cl.MakeLeader(t, 0)
	dir := t.TempDir()
	cfgPath := checkHCL(t, dir, fmt.Sprintf("etcd {\n  endpoints = [%q, %q, %q]\n  ca_file   = %q\n  cert_file = %q\n  key_file  = %q\n}\n",
		cl.ClientURLs[0], cl.ClientURLs[1], cl.ClientURLs[2], cl.CAFile, cl.CertFile, cl.KeyFile))
	run := func(t *testing.T, name string, want probes.Severity) {
		t.Helper()
		for _, asJSON := range []bool{false, true} {
			args := []string{"check", "etcd", "-c", cfgPath}
			ext := ".txt"
			if asJSON {
				args, ext = append(args, "--json"), ".json"
			}
			code, out, errOut := runCLI(t, args...)
			if code != want.ExitCode() {
				t.Errorf("exit %d, want %d\n%s%s", code, want.ExitCode(), out, errOut)
			}
			if asJSON {
				checkJSONValid(t, out, code)
			}
			golden(t, "etcd-"+name+ext, normalize(t, out, asJSON, dir))
		}
	}
	t.Run("healthy", func(t *testing.T) { run(t, "healthy", probes.OK) })
	t.Run("nospace", func(t *testing.T) {
		cl.Alarm(t, 1, true)
		run(t, "nospace", probes.Critical)
		cl.Alarm(t, 1, false)
	})
	t.Run("one-stopped", func(t *testing.T) {
		cl.Stop(2)
		run(t, "one-stopped", probes.Warning)
	})
	t.Run("two-stopped", func(t *testing.T) {
		cl.Stop(1)
		// Wait (bounded) until the survivor has noticed it lost the leader.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			r := probes.Etcd(context.Background(), probes.EtcdOptions{Endpoints: cl.ClientURLs[:1], TLS: cl.ClientTLS, Timeout: time.Second})
			if len(r.Members) == 3 && r.Members[0].Reachable && r.Members[0].Leader == "" {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		run(t, "two-stopped", probes.Critical)
	})
	t.Run("not-configured", func(t *testing.T) {
		p := checkHCL(t, t.TempDir(), "")
		code, out, _ := runCLI(t, "check", "etcd", "-c", p)
		if code != 3 || !strings.Contains(out, "etcd.endpoints is empty") {
			t.Errorf("exit %d:\n%s", code, out)
		}
		// In `all`, an unconfigured etcd is skipped, not UNKNOWN.
		o, _, _ := parseCheckArgs([]string{"all", "-c", p}, IO{Err: &bytes.Buffer{}})
		cfg, _ := config.Load(p)
		in := build.ReadInputs(cfg)
		if s := etcdOf(build.Build(cfg, in, build.Results{}, build.Meta{}, nil), in, build.Results{}, o.explicit); !s.Skipped || len(s.findings) != 0 {
			t.Errorf("all: etcd section %+v", s)
		}
	})
}

func TestCheckKubeconfig(t *testing.T) {
	f := probetest.NewFixture(t)
	cfgPath := checkHCL(t, f.Dir, fmt.Sprintf("tls {\n  ca_file = %q\n}\n", f.CAFile))
	tests := []struct {
		name string
		file string // --kubeconfig (testdata name), or
		env  string // KUBECONFIG
		want probes.Severity
	}{
		{name: "vip", file: "vip.yaml", want: probes.OK},
		{name: "dns", env: "dns.yaml", want: probes.OK},
		{name: "node", file: "node.yaml", want: probes.Warning},
		{name: "wrong-ca", file: "wrong-ca.yaml", want: probes.Critical},
		{name: "missing", file: "absent.yaml", want: probes.Unknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			place := func(n string) string {
				if n == "absent.yaml" {
					return filepath.Join(f.Dir, n)
				}
				return f.Kubeconfig(t, filepath.Join("../../testdata/kubeconfig", n))
			}
			args := []string{"check", "kubeconfig", "-c", cfgPath}
			if tc.file != "" {
				args = append(args, "--kubeconfig", place(tc.file))
				t.Setenv("KUBECONFIG", filepath.Join(f.Dir, "not-this-one"))
			} else {
				t.Setenv("KUBECONFIG", place(tc.env))
			}
			for _, asJSON := range []bool{false, true} {
				a, ext := args, ".txt"
				if asJSON {
					a, ext = append(append([]string{}, args...), "--json"), ".json"
				}
				code, out, errOut := runCLI(t, a...)
				if code != tc.want.ExitCode() {
					t.Errorf("exit %d, want %d\n%s%s", code, tc.want.ExitCode(), out, errOut)
				}
				if asJSON {
					checkJSONValid(t, out, code)
				}
				golden(t, "kubeconfig-"+tc.name+ext, normalize(t, out, asJSON, f.Dir))
			}
		})
	}
}

func TestCheckConfigUnreadable(t *testing.T) {
	dir := t.TempDir()
	for _, asJSON := range []bool{false, true} {
		args, ext := []string{"check", "-c", filepath.Join(dir, "nope.hcl")}, ".txt"
		if asJSON {
			args, ext = append(args, "--json"), ".json"
		}
		code, out, _ := runCLI(t, args...)
		if code != 3 {
			t.Errorf("exit %d, want 3 (UNKNOWN)\n%s", code, out)
		}
		golden(t, "config-unreadable"+ext, normalize(t, out, asJSON, dir))
	}
}

func TestCheckWaitFor(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "absent"))
	f := probetest.NewFixture(t)
	unready := f.Backend(t, "cp1", checkIP(11), probetest.Unready)
	refused := f.Backend(t, "cp2", checkIP(12), probetest.Refused)

	t.Run("reached", func(t *testing.T) {
		cfg := standinConfig(t, f, "", unready)
		o, _, _ := parseCheckArgs([]string{"backends", "--wait-for", "ok", "--timeout", "20s", "--every", "200ms"}, IO{})
		// The node becomes ready a moment after the wait starts.
		go func() {
			time.Sleep(700 * time.Millisecond)
			unready.Server.SetBehavior(standin.Behavior{})
		}()
		var out, errb bytes.Buffer
		start := time.Now()
		code := checkConfig(context.Background(), cfg, o, IO{Out: &out, Err: &errb})
		if code != 0 || !strings.Contains(out.String(), "reached OK after") || time.Since(start) > 10*time.Second {
			t.Errorf("exit %d after %v:\n%s", code, time.Since(start), out.String())
		}
		if !strings.Contains(errb.String(), "waiting for OK (attempt 1") {
			t.Errorf("no progress on stderr: %q", errb.String())
		}
		unready.Server.SetBehavior(standin.Behavior{Unready: true})
	})
	t.Run("timed-out", func(t *testing.T) {
		cfg := standinConfig(t, f, "", unready)
		o, _, _ := parseCheckArgs([]string{"backends", "--wait-for", "ok", "--timeout", "1s", "--every", "200ms", "--json"}, IO{})
		var out bytes.Buffer
		start := time.Now()
		code := checkConfig(context.Background(), cfg, o, IO{Out: &out, Err: &bytes.Buffer{}})
		var doc checkReport
		if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		// One backend, unready: the endpoint is dark, CRITICAL.
		if code != 2 || doc.Wait == nil || doc.Wait.Reached || doc.Wait.Attempts < 2 || time.Since(start) > 5*time.Second {
			t.Errorf("exit %d after %v, wait %+v", code, time.Since(start), doc.Wait)
		}
	})
	t.Run("warning-not-reached-by-critical", func(t *testing.T) {
		cfg := standinConfig(t, f, "", refused)
		o, _, _ := parseCheckArgs([]string{"backends", "--wait-for", "warning", "--timeout", "600ms", "--every", "200ms"}, IO{})
		var out bytes.Buffer
		code := checkConfig(context.Background(), cfg, o, IO{Out: &out, Err: &bytes.Buffer{}})
		if code != 2 || !strings.Contains(out.String(), "timed out after") {
			t.Errorf("exit %d:\n%s", code, out.String())
		}
	})
}

func TestWaitReached(t *testing.T) {
	tests := []struct {
		verdict, target probes.Severity
		want            bool
	}{
		{probes.OK, probes.OK, true},
		{probes.Warning, probes.OK, false},
		{probes.OK, probes.Warning, true},
		{probes.Warning, probes.Warning, true},
		{probes.Critical, probes.Warning, false},
		{probes.Unknown, probes.Warning, false},
		{probes.Unknown, probes.OK, false},
	}
	for _, tc := range tests {
		if got := waitReached(tc.verdict, tc.target); got != tc.want {
			t.Errorf("waitReached(%v, %v) = %v", tc.verdict, tc.target, got)
		}
	}
}

func TestCheckArgs(t *testing.T) {
	tests := []struct {
		args     []string
		ok       bool
		code     int
		what     string
		explicit bool
		// flows, rate: --flows and --new-flows-per-second
		flows, rate int
	}{
		{args: nil, ok: true, what: "backends,tls,etcd,kubeconfig"},
		{args: []string{"all", "--json"}, ok: true, what: "backends,tls,etcd,kubeconfig"},
		{args: []string{"--json", "tls", "-c", "x.hcl"}, ok: true, what: "tls", explicit: true},
		{args: []string{"etcd", "--wait-for", "warning", "--timeout", "5s"}, ok: true, what: "etcd", explicit: true},
		{args: []string{"-h"}, code: 0},
		{args: []string{"disks"}, code: 3},
		{args: []string{"tls", "etcd"}, code: 3},
		{args: []string{"--wait-for", "critical"}, code: 3},
		{args: []string{"--timeout", "0s"}, code: 3},
		{args: []string{"--frobnicate"}, code: 3},
		{args: []string{"preflight", "--flows", "50000", "--new-flows-per-second", "2000"}, ok: true, what: "preflight", explicit: true, flows: 50000, rate: 2000},
		{args: []string{"preflight", "--new-flows-per-second", "-1"}, code: 3},
		{args: []string{"preflight", "--flows", "many"}, code: 3},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		o, code, ok := parseCheckArgs(tc.args, IO{Out: &out, Err: &errb})
		if ok != tc.ok || (!ok && code != tc.code) {
			t.Errorf("%v: ok %v code %d, want %v %d (%s)", tc.args, ok, code, tc.ok, tc.code, errb.String())
			continue
		}
		if !ok {
			if tc.code == 0 && !strings.Contains(out.String(), "usage: epconsole check") {
				t.Errorf("%v: no usage on stdout", tc.args)
			}
			continue
		}
		var what []string
		for _, c := range o.what {
			what = append(what, string(c))
		}
		if strings.Join(what, ",") != tc.what || o.explicit != tc.explicit {
			t.Errorf("%v: what %v explicit %v", tc.args, what, o.explicit)
		}
		if o.flows != tc.flows || o.newFlowsPerSecond != tc.rate {
			t.Errorf("%v: flows %d rate %d, want %d %d", tc.args, o.flows, o.newFlowsPerSecond, tc.flows, tc.rate)
		}
	}
}
