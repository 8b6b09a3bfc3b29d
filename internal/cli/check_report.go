package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/epconsole/epconsole/internal/components"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/status/build"
	"github.com/epconsole/epconsole/probes"
)

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
	// perf is the Nagios perfdata of the text output (perfdata.go).
	perf []perfDatum
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
	findings []probes.Finding // the section's problems, worst first
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

type preflightSection struct {
	sectionHead
	Checked int `json:"checked"`
}

type waitResult struct {
	For            probes.Severity `json:"for"`
	Reached        bool            `json:"reached"`
	Attempts       int             `json:"attempts"`
	TimeoutSeconds float64         `json:"timeout_seconds"`
	ElapsedSeconds float64         `json:"elapsed_seconds"`
}

// gather runs the requested checks (in parallel), builds the status
// snapshot of their results with the one builder (as the console and the
// daemon do) and renders the report from it; `check all` adds the
// daemon's cluster view (check_cluster.go).
func gather(ctx context.Context, cfg *config.Config, o checkOptions) checkReport {
	in := build.ReadInputs(cfg)
	res, kube := probeChecks(ctx, cfg, in, o)
	snap := build.Build(cfg, in, res, build.Meta{Time: o.now()}, nil)
	r := reportOf(snap, in, res, kube, o)
	r.Config = cfg.File
	if !o.explicit {
		addCluster(ctx, cfg, &r) // check_cluster.go
	}
	return r
}

// probeChecks runs the probes of the requested checks once, in parallel.
// The kubeconfig report is also returned apart: the snapshot leaves it out
// when no kubeconfig exists and none was asked for (the check is skipped).
func probeChecks(ctx context.Context, cfg *config.Config, in build.Inputs, o checkOptions) (build.Results, *probes.KubeconfigReport) {
	var res build.Results
	var kube *probes.KubeconfigReport
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
			res.Backends = make([]probes.BackendStatus, len(in.Targets))
			for i, t := range in.Targets {
				run(func() { res.Backends[i] = probes.BackendStatus{Target: t, Last: probes.Probe(ctx, t, in.Health)} })
			}
		case probes.CheckTLS:
			run(func() { res.Certs, res.CertFindings = probes.Certificates(ctx, in.Targets, in.Certs) })
		case probes.CheckEtcd:
			if in.Etcd != nil {
				run(func() {
					rep := probes.Etcd(ctx, *in.Etcd)
					res.Etcd = &rep
				})
			}
		case probes.CheckKubeconfig:
			rep := probes.Kubeconfig(kubeconfigOptions(cfg, in, o.kubeconfig))
			kube = &rep
			if rep.Found || rep.Error != "" || o.explicit || o.kubeconfig != "" {
				res.Kubeconfig = &rep
			}
		case probes.CheckPreflight:
			run(func() { res.Preflight = runPreflight(ctx, cfg, o) }) // check_preflight.go
		}
	}
	wg.Wait()
	return res, kube
}

// kubeconfigOptions is what the kubeconfig check expects: a VIP (with its
// port) or an endpoint DNS name, the cluster CA.
func kubeconfigOptions(cfg *config.Config, in build.Inputs, path string) probes.KubeconfigOptions {
	ko := probes.KubeconfigOptions{Path: path, DNSNames: cfg.EndpointDNSNames, Port: config.DefaultPort, Backends: in.Targets,
		ClusterCA: in.ClusterCA, ClusterCAFile: cfg.TLS.CAFile}
	for i, v := range components.VIPs(cfg) {
		ko.VIPs = append(ko.VIPs, v.AddrPort())
		if i == 0 && v.Port != 0 {
			ko.Port = v.Port
		}
	}
	return ko
}

// reportOf renders the requested checks' sections from the snapshot: each
// section's status, summary and findings are its area's verdict and
// findings; its details are the probes' own reports.
func reportOf(snap status.Snapshot, in build.Inputs, res build.Results, kube *probes.KubeconfigReport, o checkOptions) checkReport {
	r := checkReport{Schema: CheckSchema, Cluster: snap.Cluster, CheckedAt: snap.Generated}
	head := func(c probes.Check) sectionHead {
		v, _ := snap.Verdict(c)
		return sectionHead{Status: v.Severity, Summary: v.Summary, findings: snap.Findings.Of(c)}
	}
	var parts []string
	add := func(name string, h sectionHead) {
		r.Findings = append(r.Findings, h.findings...)
		parts = append(parts, name+": "+h.Summary)
	}
	for _, c := range o.what {
		switch c {
		case probes.CheckBackends:
			s := &backendsSection{sectionHead: head(c), Kind: in.Health.Kind, Backends: make([]probes.HealthResult, len(res.Backends))}
			for i, b := range res.Backends {
				s.Backends[i] = b.Last
			}
			r.Checks.Backends = s
			add("backends", s.sectionHead)
		case probes.CheckTLS:
			r.Checks.TLS = &tlsSection{sectionHead: head(c), Certificates: res.Certs}
			add("tls", r.Checks.TLS.sectionHead)
		case probes.CheckEtcd:
			r.Checks.Etcd = etcdOf(snap, in, res, o.explicit)
			add("etcd", r.Checks.Etcd.sectionHead)
		case probes.CheckKubeconfig:
			s := &kubeconfigSection{sectionHead: head(c), KubeconfigReport: kube}
			if res.Kubeconfig == nil {
				s.sectionHead = sectionHead{Summary: "skipped: no kubeconfig found ($KUBECONFIG, ~/.kube/config)", Skipped: true}
			}
			r.Checks.Kubeconfig = s
			add("kubeconfig", s.sectionHead)
		case probes.CheckPreflight:
			r.Checks.Preflight = &preflightSection{sectionHead: head(c), Checked: len(res.Preflight)}
			add("preflight", r.Checks.Preflight.sectionHead)
		}
	}
	r.finish()
	r.Summary = strings.Join(parts, "; ")
	r.perf = checkPerf(o.what, in, res)
	return r
}

// etcdOf is the etcd section: skipped when etcd is not configured, or
// UNKNOWN when it was asked for by name.
func etcdOf(snap status.Snapshot, in build.Inputs, res build.Results, explicit bool) *etcdSection {
	if !in.EtcdConfigured {
		s := &etcdSection{sectionHead: sectionHead{Summary: "not configured (etcd.endpoints is empty)", Skipped: !explicit}}
		if explicit {
			s.findings = []probes.Finding{{Check: probes.CheckEtcd, Severity: probes.Unknown, Code: "etcd-not-configured",
				Message: "etcd.endpoints is empty", Fixes: []probes.Fix{{Text: `set etcd { endpoints = ["https://<node>:2379", ...] ca_file cert_file key_file } in config.hcl`}}}}
			s.Status = probes.Unknown
		}
		return s
	}
	v, _ := snap.Verdict(probes.CheckEtcd)
	return &etcdSection{sectionHead: sectionHead{Status: v.Severity, Summary: v.Summary, findings: snap.Findings.Of(probes.CheckEtcd)}, EtcdReport: res.Etcd}
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
	b.WriteString(perfLine(r.perf))
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
