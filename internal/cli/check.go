package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/epconsole/epconsole/internal/config"
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
	// flows and newFlowsPerSecond are the load `check preflight` sizes
	// the conntrack table for (0: its defaults; check_preflight.go).
	flows, newFlowsPerSecond int
}

// runCheck implements `epconsole check` with its parsed options.
func runCheck(ctx context.Context, o checkOptions, stdio IO) int {
	// check never gossips: it does not open the gossip key, which a
	// monitoring user cannot (and must not) read.
	cfg, diags := config.Load(o.configPath, config.WithoutSecrets())
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
