package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/testenv"
)

const (
	rulesFile     = "epconsole-alerts.yml"
	rulesTestFile = "epconsole-alerts_test.yml"
	dashboardFile = "epconsole-dashboard.json"
	metricsDoc    = "../../docs/metrics.md"
)

var installOnce sync.Once

// promtool returns the path of promtool. Under EPCONSOLE_REQUIRE_NETNS=1
// (CI) a missing promtool is installed from Debian's prometheus package,
// and still missing fails the test; elsewhere the test is skipped.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if !testenv.NetnsRequired() {
		t.Skip("promtool is not installed (apt-get install prometheus)")
	}
	installOnce.Do(func() {
		out, err := exec.Command("sh", "-c", "apt-get update && apt-get install -y --no-install-recommends prometheus").CombinedOutput()
		if err != nil {
			t.Logf("installing prometheus (for promtool): %v\n%s", err, out)
		}
	})
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("%s=1 and promtool is missing: apt-get install prometheus", testenv.RequireNetnsEnv)
	}
	return p
}

func runPromtool(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestAlertRulesPromtool(t *testing.T) {
	out := runPromtool(t, "check", "rules", rulesFile)
	t.Logf("%s", out)
	out = runPromtool(t, "test", "rules", rulesTestFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules did not report SUCCESS:\n%s", out)
	}
}

// rule is one alert of the rules file, read line by line (the file is
// ours and plain; promtool checks it is valid YAML and PromQL).
type rule struct {
	name, expr, forDur, severity, runbook, summary, description string
}

func readRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules []rule
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		if k == "- alert" {
			rules = append(rules, rule{name: v})
			continue
		}
		if len(rules) == 0 {
			continue
		}
		r := &rules[len(rules)-1]
		switch k {
		case "expr":
			r.expr = v
		case "for":
			r.forDur = v
		case "severity":
			r.severity = v
		case "runbook_url":
			r.runbook = v
		case "summary":
			r.summary = v
		case "description":
			r.description = v
		}
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no alerts", rulesFile)
	}
	return rules
}

var metricName = regexp.MustCompile(`\bepconsole_[a-z0-9_]+`)

// unknownMetrics returns the epconsole_ names in text that the daemon
// does not export (a histogram's _bucket, _sum and _count series count as
// its name).
func unknownMetrics(text string) []string {
	known := status.MetricNames()
	var bad []string
	for _, n := range metricName.FindAllString(text, -1) {
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suf); ok && slices.Contains([]string{status.ReconcileLatencyMetric, status.ClaimLatencyMetric, status.SyncLagMetric}, b) {
				base = b
			}
		}
		if !slices.Contains(known, base) && !slices.Contains(bad, n) {
			bad = append(bad, n)
		}
	}
	return bad
}

// TestAlertRules: every alert waits (for:), says how bad it is, links its
// runbook in docs/metrics.md, and queries only metrics the daemon exports;
// the promtool tests make every alert fire and stay quiet.
func TestAlertRules(t *testing.T) {
	doc, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(string(doc))
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	fires, quiet := alertTests(string(tests))
	rules := readRules(t)
	absent := false
	for _, r := range rules {
		if r.expr == "" || r.forDur == "" {
			t.Errorf("%s: expr %q, for %q: every alert needs both", r.name, r.expr, r.forDur)
		}
		if r.severity != "critical" && r.severity != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.name, r.severity)
		}
		if r.summary == "" || r.description == "" {
			t.Errorf("%s: needs a summary and a description", r.name)
		}
		file, anchor, _ := strings.Cut(r.runbook, "#")
		if file != "docs/metrics.md" || !anchors[anchor] {
			t.Errorf("%s: runbook_url %q is not a heading of docs/metrics.md", r.name, r.runbook)
		}
		if !strings.Contains(string(doc), "`"+r.name+"`") {
			t.Errorf("docs/metrics.md does not list the alert %s", r.name)
		}
		if bad := unknownMetrics(r.expr); len(bad) > 0 {
			t.Errorf("%s queries metrics the daemon does not export: %v", r.name, bad)
		}
		if fires[r.name] == 0 || quiet[r.name] == 0 {
			t.Errorf("%s: %d promtool tests see it fire and %d see it quiet; want both", r.name, fires[r.name], quiet[r.name])
		}
		absent = absent || strings.Contains(r.expr, "absent(")
	}
	if !absent {
		t.Errorf("no alert uses absent(): a silent daemon would alert nobody")
	}
	if bad := unknownMetrics(string(tests)); len(bad) > 0 {
		t.Errorf("%s feeds metrics the daemon does not export: %v", rulesTestFile, bad)
	}
}

// alertTests counts, per alert name, the promtool test cases that expect
// it to fire and those that expect it quiet.
func alertTests(text string) (fires, quiet map[string]int) {
	fires, quiet = map[string]int{}, map[string]int{}
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "alertname: ")
		if !ok || i+1 >= len(lines) {
			continue
		}
		switch strings.TrimSpace(lines[i+1]) {
		case "exp_alerts: []":
			quiet[name]++
		case "exp_alerts:":
			fires[name]++
		}
	}
	return fires, quiet
}

// headingAnchors returns the GitHub anchors of text's Markdown headings.
func headingAnchors(text string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile("[^a-z0-9 _-]")
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		out[strings.ReplaceAll(drop.ReplaceAllString(h, ""), " ", "-")] = true
	}
	return out
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) (title string, panels []panel) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string  `json:"title"`
		UID    string  `json:"uid"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	var flat []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			flat = append(flat, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return d.Title, flat
}

// TestDashboard: the dashboard parses, shows what an operator needs, and
// every query names only metrics the daemon exports.
func TestDashboard(t *testing.T) {
	title, panels := readDashboard(t)
	if title == "" {
		t.Errorf("the dashboard has no title")
	}
	var exprs []string
	for _, p := range panels {
		for _, q := range p.Targets {
			if q.Expr == "" {
				t.Errorf("panel %q has a target without a query", p.Title)
				continue
			}
			exprs = append(exprs, q.Expr)
			if bad := unknownMetrics(q.Expr); len(bad) > 0 {
				t.Errorf("panel %q queries metrics the daemon does not export: %v\n%s", p.Title, bad, q.Expr)
			}
		}
	}
	all := strings.Join(exprs, "\n")
	for _, need := range []string{
		"epconsole_vip_owner", "epconsole_peers_alive", "epconsole_backend_up",
		"epconsole_peer_heartbeat_age_seconds", "epconsole_reconcile_duration_seconds_bucket",
		"epconsole_vip_claim_duration_seconds_bucket", "epconsole_tls_seconds_to_expiry",
		"epconsole_etcd_quorum", "epconsole_etcd_members_healthy",
	} {
		if !strings.Contains(all, need) {
			t.Errorf("no panel queries %s", need)
		}
	}
}

// TestDashboardPromQL has promtool parse every dashboard query (as a
// recording rule, with Grafana's variables filled in).
func TestDashboardPromQL(t *testing.T) {
	_, panels := readDashboard(t)
	fill := strings.NewReplacer("$__rate_interval", "5m", "$job", "epconsole")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range panels {
		for _, q := range p.Targets {
			n++
			expr, _ := json.Marshal(fill.Replace(q.Expr)) // a JSON string is a YAML string
			fmt.Fprintf(&b, "      - record: dashboard:query%d\n        expr: %s\n", n, expr)
		}
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, "check", "rules", file)
}
