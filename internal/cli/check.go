package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/epconsole/epconsole/internal/components"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/direct"
	"github.com/epconsole/epconsole/probes"
)

// CheckSchema names the version of `check --json`'s output (docs/check.md).
const CheckSchema = "epconsole.check/v1"

// checkOrder is the order checks run and print in.
var checkOrder = []probes.Check{probes.CheckBackends, probes.CheckTLS, probes.CheckEtcd, probes.CheckKubeconfig}

// checkOptions are check's parsed arguments.
type checkOptions struct {
	configPath string
	// what lists the requested checks; explicit is false for `all`, where
	// an unconfigured etcd or an absent kubeconfig is skipped, not UNKNOWN.
	what       []probes.Check
	explicit   bool
	json       bool
	waitFor    *probes.Severity
	timeout    time.Duration
	every      time.Duration
	kubeconfig string
	now        func() time.Time
	// netnsPath is where `check preflight` looks (empty: this process's
	// own namespace); tests point it at a lab host.
	netnsPath string
}

// runCheck implements `epconsole check` with its parsed options.
func runCheck(ctx context.Context, o checkOptions, stdio IO) int {
	cfg, diags := config.Load(o.configPath)
	if diags.HasErrors() {
		r := checkReport{Schema: CheckSchema, Config: o.configPath, CheckedAt: o.now().UTC()}
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				r.Findings = append(r.Findings, probes.Finding{Check: "config", Severity: probes.Unknown, Code: "config-unreadable",
					Message: config.DiagnosticLine(d),
					Fixes:   []probes.Fix{{Text: "epconsole validate -c " + o.configPath}}})
			}
		}
		r.finish()
		r.Summary = fmt.Sprintf("cannot use config %s: %d error(s)", o.configPath, len(r.Findings))
		r.write(stdio.Out, o.json)
		return r.ExitCode
	}
	return checkConfig(ctx, cfg, o, stdio)
}

// checkConfig runs the checks against a loaded config, once or until the
// --wait-for verdict, writes the report and returns the exit code.
func checkConfig(ctx context.Context, cfg *config.Config, o checkOptions, stdio IO) int {
	if o.waitFor == nil {
		r := gather(ctx, cfg, o)
		r.write(stdio.Out, o.json)
		return r.ExitCode
	}
	start := time.Now()
	deadline := start.Add(o.timeout)
	for attempt := 1; ; attempt++ {
		r := gather(ctx, cfg, o)
		reached := waitReached(r.Status, *o.waitFor)
		left := time.Until(deadline)
		if reached || left < o.every || ctx.Err() != nil {
			r.Wait = &waitResult{For: *o.waitFor, Reached: reached, Attempts: attempt,
				TimeoutSeconds: o.timeout.Seconds(), ElapsedSeconds: time.Since(start).Round(time.Millisecond).Seconds()}
			r.write(stdio.Out, o.json)
			return r.ExitCode
		}
		fmt.Fprintf(stdio.Err, "waiting for %s (attempt %d, %s left): %s\n", *o.waitFor, attempt, left.Round(time.Second), r.headline())
		select {
		case <-ctx.Done():
		case <-time.After(o.every):
		}
	}
}

// waitReached reports whether verdict is at least as good as target: OK
// reaches ok; OK or WARNING reach warning.
func waitReached(verdict, target probes.Severity) bool {
	switch target {
	case probes.OK:
		return verdict == probes.OK
	case probes.Warning:
		return verdict == probes.OK || verdict == probes.Warning
	}
	return false
}

// checkReport is the epconsole.check/v1 document (docs/check.md).
type checkReport struct {
	Schema    string           `json:"schema"`
	Status    probes.Severity  `json:"status"`
	ExitCode  int              `json:"exit_code"`
	Summary   string           `json:"summary"`
	Config    string           `json:"config"`
	Cluster   string           `json:"cluster,omitempty"`
	CheckedAt time.Time        `json:"checked_at"`
	Checks    checkSections    `json:"checks"`
	Findings  []probes.Finding `json:"findings"`
	Wait      *waitResult      `json:"wait,omitempty"`
}

type checkSections struct {
	Backends   *backendsSection   `json:"backends,omitempty"`
	TLS        *tlsSection        `json:"tls,omitempty"`
	Etcd       *etcdSection       `json:"etcd,omitempty"`
	Kubeconfig *kubeconfigSection `json:"kubeconfig,omitempty"`
	Preflight  *preflightSection  `json:"preflight,omitempty"`
	Cluster    *clusterSection    `json:"cluster,omitempty"`
}

// sectionHead is what every check section starts with.
type sectionHead struct {
	Status  probes.Severity `json:"status"`
	Summary string          `json:"summary"`
	// Skipped: the check was not configured and not asked for by name.
	Skipped  bool             `json:"skipped,omitempty"`
	findings []probes.Finding // section's findings, in probe order
}

type backendsSection struct {
	sectionHead
	Kind     probes.Kind           `json:"kind"`
	Backends []probes.HealthResult `json:"backends"`
}

type tlsSection struct {
	sectionHead
	Certificates []probes.CertReport `json:"certificates"`
}

type etcdSection struct {
	sectionHead
	*probes.EtcdReport
}

type kubeconfigSection struct {
	sectionHead
	*probes.KubeconfigReport
}

type waitResult struct {
	For            probes.Severity `json:"for"`
	Reached        bool            `json:"reached"`
	Attempts       int             `json:"attempts"`
	TimeoutSeconds float64         `json:"timeout_seconds"`
	ElapsedSeconds float64         `json:"elapsed_seconds"`
}

// gather runs the requested checks (in parallel) and folds the verdict.
func gather(ctx context.Context, cfg *config.Config, o checkOptions) checkReport {
	r := checkReport{Schema: CheckSchema, Config: cfg.File, Cluster: cfg.ClusterName, CheckedAt: o.now().UTC()}
	in := direct.ReadInputs(cfg)

	var wg sync.WaitGroup
	run := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	for _, c := range o.what {
		switch c {
		case probes.CheckBackends:
			run(func() { r.Checks.Backends = checkBackends(ctx, in) })
		case probes.CheckTLS:
			run(func() { r.Checks.TLS = checkTLS(ctx, in) })
		case probes.CheckEtcd:
			run(func() { r.Checks.Etcd = checkEtcd(ctx, in, o.explicit) })
		case probes.CheckKubeconfig:
			run(func() {
				r.Checks.Kubeconfig = checkKubeconfig(cfg, in.Targets, in.ClusterCA, o.kubeconfig, o.explicit || o.kubeconfig != "")
			})
		case checkPreflight:
			run(func() { r.Checks.Preflight = runPreflightCheck(ctx, cfg, o.netnsPath) }) // check_preflight.go
		}
	}
	wg.Wait()
	var parts []string
	for _, s := range r.Checks.heads() {
		s.head.Status = probes.Summarize(s.head.findings).Severity
		r.Findings = append(r.Findings, s.head.findings...)
		parts = append(parts, s.name+": "+s.head.Summary)
	}
	r.finish()
	r.Summary = strings.Join(parts, "; ")
	if !o.explicit {
		addCluster(ctx, cfg, &r) // check_cluster.go
	}
	return r
}

type namedHead struct {
	name string
	head *sectionHead
}

// heads lists the sections present, in check order.
func (c *checkSections) heads() []namedHead {
	var out []namedHead
	if c.Backends != nil {
		out = append(out, namedHead{"backends", &c.Backends.sectionHead})
	}
	if c.TLS != nil {
		out = append(out, namedHead{"tls", &c.TLS.sectionHead})
	}
	if c.Etcd != nil {
		out = append(out, namedHead{"etcd", &c.Etcd.sectionHead})
	}
	if c.Kubeconfig != nil {
		out = append(out, namedHead{"kubeconfig", &c.Kubeconfig.sectionHead})
	}
	if c.Preflight != nil {
		out = append(out, namedHead{"preflight", &c.Preflight.sectionHead})
	}
	return out
}

// finish orders the findings worst first and sets status and exit code.
func (r *checkReport) finish() {
	r.Findings = probes.Problems(r.Findings)
	if r.Findings == nil {
		r.Findings = []probes.Finding{}
	}
	r.Status = probes.Summarize(r.Findings).Severity
	r.ExitCode = r.Status.ExitCode()
}

func (r *checkReport) headline() string {
	s := "EPCONSOLE " + r.Status.String() + " - "
	if r.Cluster != "" {
		s += r.Cluster + ": "
	}
	return s + r.Summary
}

// write prints the report: JSON, or the summary line, one line per
// finding, and how a wait ended.
func (r *checkReport) write(w io.Writer, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		_ = enc.Encode(r)
		return
	}
	var b strings.Builder
	b.WriteString(r.headline())
	b.WriteString("\n")
	for _, f := range r.Findings {
		b.WriteString(f.Line())
		b.WriteString("\n")
	}
	if r.Wait != nil {
		if r.Wait.Reached {
			fmt.Fprintf(&b, "reached %s after %d attempt(s) in %.1fs\n", r.Wait.For, r.Wait.Attempts, r.Wait.ElapsedSeconds)
		} else {
			fmt.Fprintf(&b, "timed out after %.0fs waiting for %s (%d attempts)\n", r.Wait.TimeoutSeconds, r.Wait.For, r.Wait.Attempts)
		}
	}
	_, _ = io.WriteString(w, b.String())
}

func checkBackends(ctx context.Context, in direct.Inputs) *backendsSection {
	s := &backendsSection{Kind: in.Health.Kind}
	s.findings = append(s.findings, in.Problems[probes.CheckBackends]...)
	s.Backends = make([]probes.HealthResult, len(in.Targets))
	var wg sync.WaitGroup
	for i, t := range in.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Backends[i] = probes.Probe(ctx, t, in.Health)
		}()
	}
	wg.Wait()
	s.findings = append(s.findings, probes.JudgeBackends(s.Backends)...)
	s.Summary = direct.BackendsSummary(s.Kind, s.Backends)
	return s
}

func checkTLS(ctx context.Context, in direct.Inputs) *tlsSection {
	s := &tlsSection{}
	s.findings = append(s.findings, in.Problems[probes.CheckTLS]...)
	var fs []probes.Finding
	s.Certificates, fs = probes.Certificates(ctx, in.Targets, in.Certs)
	s.findings = append(s.findings, fs...)
	s.Summary = direct.TLSSummary(s.Certificates, fs, in.CAFileSet)
	return s
}

func checkEtcd(ctx context.Context, in direct.Inputs, explicit bool) *etcdSection {
	s := &etcdSection{}
	if !in.EtcdConfigured {
		s.Summary, s.Skipped = "not configured (etcd.endpoints is empty)", true
		if explicit {
			s.Skipped = false
			s.findings = []probes.Finding{{Check: probes.CheckEtcd, Severity: probes.Unknown, Code: "etcd-not-configured",
				Message: "etcd.endpoints is empty", Fixes: []probes.Fix{{Text: `set etcd { endpoints = ["https://<node>:2379", ...] ca_file cert_file key_file } in config.hcl`}}}}
		}
		return s
	}
	if in.Etcd == nil {
		s.findings = in.Problems[probes.CheckEtcd]
		s.Summary = "credentials unreadable"
		return s
	}
	rep := probes.Etcd(ctx, *in.Etcd)
	s.EtcdReport = &rep
	s.findings = rep.Findings
	s.Summary = direct.EtcdSummary(rep)
	return s
}

func checkKubeconfig(cfg *config.Config, targets []probes.Target, ca []*x509.Certificate, path string, explicit bool) *kubeconfigSection {
	ko := probes.KubeconfigOptions{Path: path, DNSNames: cfg.EndpointDNSNames, Port: config.DefaultPort, Backends: targets,
		ClusterCA: ca, ClusterCAFile: cfg.TLS.CAFile}
	for i, v := range components.VIPs(cfg) {
		ko.VIPs = append(ko.VIPs, v.AddrPort())
		if i == 0 && v.Port != 0 {
			ko.Port = v.Port
		}
	}
	rep := probes.Kubeconfig(ko)
	s := &kubeconfigSection{KubeconfigReport: &rep}
	if !rep.Found && rep.Error == "" && !explicit {
		s.Summary, s.Skipped = "skipped: no kubeconfig found ($KUBECONFIG, ~/.kube/config)", true
		return s
	}
	s.findings = rep.Findings
	switch {
	case rep.Error != "" || !rep.Found:
		s.Summary = "unreadable"
	case rep.Server == "":
		s.Summary = "no usable context"
	default:
		s.Summary = fmt.Sprintf("%s -> %s (%s)", rep.Context, rep.Server, rep.PointsAt)
		if rep.Backend != "" {
			s.Summary = fmt.Sprintf("%s -> %s (%s %s)", rep.Context, rep.Server, rep.PointsAt, rep.Backend)
		}
		switch {
		case rep.CAMatches:
			s.Summary += ", trusts the cluster CA"
		case len(ca) > 0:
			s.Summary += ", does not trust the cluster CA"
		}
	}
	return s
}
