package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
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
}

const checkUsage = `usage: epconsole check [backends|tls|etcd|kubeconfig|preflight|all] [-c config.hcl] [--json]
                       [--wait-for ok|warning [--timeout 2m] [--every 2s]] [--kubeconfig file]

Probes the control plane named in config.hcl directly (read-only) and prints
a one-line summary, then one line per finding with its fix.

  backends    GET /readyz (or tcp/tls, per health.kind) on every backend
  tls         every apiserver certificate: chain to tls.ca_file, SANs for
              the VIPs and endpoint_dns_names, days to expiry, same CA
  etcd        member list, status, leader, alarms, quorum (etcd.endpoints)
  kubeconfig  the kubeconfig kubectl would use points at a VIP or endpoint
              DNS name and trusts the cluster CA
  preflight   this LB host: forwarding, rp_filter, conntrack table size,
              firewalls that would drop the forwarded traffic, the VIP
              interface (run it on each LB node; only when named)
  all         backends, tls, etcd and kubeconfig (default); etcd without
              endpoints and an absent kubeconfig are skipped

Exit codes (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (cannot decide,
e.g. config unreadable). --wait-for polls until the verdict is at least as
good as asked (ok, or warning = ok or warning) and exits 0/1 then, or with
the last verdict's code when --timeout passes. --json prints the
epconsole.check/v1 document described in docs/check.md.

flags:
`

func parseCheckArgs(args []string, stdio IO) (checkOptions, int, bool) {
	o := checkOptions{now: time.Now}
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.configPath, "c", "", "config file (default ./config.hcl if it exists, else "+systemConfig+")")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON (schema "+CheckSchema+")")
	waitFor := fs.String("wait-for", "", "poll until the verdict is `ok` or warning (or better)")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up waiting after this long (with --wait-for)")
	fs.DurationVar(&o.every, "every", 2*time.Second, "time between attempts (with --wait-for)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file to check (default: $KUBECONFIG, then ~/.kube/config)")
	usage := func(w io.Writer) {
		fmt.Fprint(w, checkUsage)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	bad := func(format string, a ...any) (checkOptions, int, bool) {
		fmt.Fprintf(stdio.Err, "epconsole check: "+format+"\n\n", a...)
		usage(stdio.Err)
		return o, int(probes.Unknown), false
	}
	// Flags may come before and after the check name.
	var names []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				usage(stdio.Out)
				return o, 0, false
			}
			return bad("%v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		names = append(names, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(names) > 1 {
		return bad("one check at a time, got %s", strings.Join(names, " "))
	}
	switch {
	case len(names) == 0 || names[0] == "all":
		o.what = checkOrder
	case slices.Contains(checkOrder, probes.Check(names[0])) || probes.Check(names[0]) == checkPreflight:
		o.what, o.explicit = []probes.Check{probes.Check(names[0])}, true
	default:
		return bad("unknown check %q (want backends, tls, etcd, kubeconfig, preflight or all)", names[0])
	}
	if *waitFor != "" {
		s, err := probes.ParseSeverity(*waitFor)
		if err != nil || (s != probes.OK && s != probes.Warning) {
			return bad("--wait-for %q: want ok or warning", *waitFor)
		}
		o.waitFor = &s
	}
	if o.timeout <= 0 || o.every <= 0 {
		return bad("--timeout and --every must be positive")
	}
	if o.configPath == "" {
		o.configPath = defaultConfigPath()
	}
	return o, 0, true
}

// runCheck implements `epconsole check`.
func runCheck(ctx context.Context, args []string, stdio IO) int {
	o, code, ok := parseCheckArgs(args, stdio)
	if !ok {
		return code
	}
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
