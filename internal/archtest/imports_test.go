package archtest

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/epconsole/epconsole"

// rule forbids packages matching from to import packages matching to
// (both relative to the module root; a trailing /... matches the package
// and everything below it).
type rule struct {
	from, to []string
	except   []string // importers exempt from the rule
	allow    []string // imports the rule still allows
	why      string
}

// labCode is the demo's and the tests' code: never in the shipping binary.
var labCode = []string{"internal/testenv", "probes/probetest", "internal/standin", "internal/netlab", "internal/pki",
	"internal/embedetcd", "internal/lab", "internal/labcli", "internal/chaos"}

var rules = []rule{
	{from: []string{"probes"}, to: []string{"..."}, allow: []string{"probes"}, why: "probes is the leaf: it imports nothing of ours"},
	{from: []string{"dataplane/..."}, to: []string{"cluster/...", "probes/...", "internal/config", "internal/daemon/...", "internal/status/...", "tui/..."},
		why: "dataplane programs the kernel from values it is handed; it knows nothing of election, probes or config"},
	{from: []string{"cluster/..."}, to: []string{"internal/config", "internal/daemon/...", "internal/status/...", "internal/direct/...", "tui/...", "internal/cli/..."},
		why: "cluster decides from values it is handed; the config reaches it through the adapter"},
	{from: []string{"..."}, to: []string{"tui/..."}, except: []string{"tui/...", "cmd/...", "internal/cli", "internal/labcli"},
		why: "only the command layer opens the console"},
	{from: []string{"tui/..."}, to: []string{"..."}, allow: []string{"tui/...", "internal/status/...", "probes"},
		why: "the console reads the status model only"},
	{from: []string{"internal/status"}, to: []string{"internal/daemon/...", "internal/direct/...", "cluster/...", "dataplane/...", "tui/...", "internal/cli/..."},
		why: "the status model is read by the console and check; it depends on none of them"},
	{from: []string{"..."}, to: labCode,
		except: append([]string{"cmd/epconsole-lab", "internal/bench", "internal/drills", "internal/e2e"}, labCode...),
		why:    "lab and test code is reached only from the lab binary and tests"},
}

func match(pat, pkg string) bool {
	if pat == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pat, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pat
}

// forbids reports whether r forbids package from importing package to.
func forbids(r rule, from, to string) bool {
	return matchAny(r.from, from) && matchAny(r.to, to) && !matchAny(r.except, from) && !matchAny(r.allow, to)
}

func matchAny(pats []string, pkg string) bool {
	for _, p := range pats {
		if match(p, pkg) {
			return true
		}
	}
	return false
}

func root(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// goList runs go list in the module root and returns its output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = root(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// ours turns a full import path into one relative to the module, or "".
func ours(path string) string {
	if path == module {
		return "."
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	return rel
}

// imports maps each of our packages to the packages of ours it imports
// (non-test files only: tests may reach for harnesses).
func imports(t *testing.T) map[string][]string {
	graph := map[string][]string{}
	for _, l := range goList(t, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...") {
		f := strings.Fields(l)
		from := ours(f[0])
		graph[from] = nil
		for _, imp := range f[1:] {
			if to := ours(imp); to != "" {
				graph[from] = append(graph[from], to)
			}
		}
	}
	return graph
}

func TestImportRules(t *testing.T) {
	graph := imports(t)
	for from, tos := range graph {
		for _, to := range tos {
			for _, r := range rules {
				if forbids(r, from, to) {
					t.Errorf("%s imports %s: %s (see docs/architecture.md)", from, to, r.why)
				}
			}
		}
	}
}

func TestRulesCanFail(t *testing.T) {
	// The rules must catch a forbidden edge: a fabricated graph with one.
	cases := []struct{ from, to string }{
		{"dataplane", "cluster"},
		{"probes", "internal/config"},
		{"internal/daemon", "tui"},
		{"cluster", "internal/config"},
		{"internal/daemon", "internal/netlab"},
		{"tui", "internal/daemon"},
	}
	allowed := []struct{ from, to string }{
		{"tui", "internal/status"},
		{"internal/cli", "tui"},
		{"internal/drills", "internal/netlab"},
		{"probes", "probes"},
	}
	for _, c := range allowed {
		for _, r := range rules {
			if forbids(r, c.from, c.to) {
				t.Errorf("rule %q forbids %s -> %s, which the package map allows", r.why, c.from, c.to)
			}
		}
	}
	for _, c := range cases {
		hit := false
		for _, r := range rules {
			hit = hit || forbids(r, c.from, c.to)
		}
		if !hit {
			t.Errorf("no rule forbids %s -> %s", c.from, c.to)
		}
	}
}

// TestShippingBinaryHasNoLab: the binary on every LB node links no test or
// lab code (the demo is cmd/epconsole-lab).
func TestShippingBinaryHasNoLab(t *testing.T) {
	forbidden := []string{"testing", "go.etcd.io/etcd/server/", "go.etcd.io/raft/", "go.etcd.io/bbolt"}
	for _, p := range labCode {
		forbidden = append(forbidden, module+"/"+p)
	}
	deps := goList(t, "-deps", "./cmd/epconsole")
	if len(deps) == 0 {
		t.Fatal("go list -deps ./cmd/epconsole listed nothing")
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f)) || strings.HasPrefix(d, f+"/") {
				t.Errorf("cmd/epconsole links %s", d)
			}
		}
	}
	t.Logf("cmd/epconsole links %d packages", len(deps))
}
