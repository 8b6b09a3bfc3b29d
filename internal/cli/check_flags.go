package cli

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/epconsole/epconsole/probes"
)

// checkLong is check's help text.
const checkLong = `Probes the control plane named in config.hcl directly (read-only) and prints
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
e.g. config unreadable or a usage error). --wait-for polls until the verdict
is at least as good as asked (ok, or warning = ok or warning) and exits 0/1
then, or with the last verdict's code when --timeout passes. --json prints
the epconsole.check/v1 document described in docs/check.md.`

// checkUsageExit is check's exit code for a usage error: Nagios UNKNOWN.
const checkUsageExit = int(probes.Unknown)

// newCheckCmd is `epconsole check`; run gets the parsed options.
func newCheckCmd(a *app, run func(context.Context, checkOptions, IO) int) *cobra.Command {
	o := checkOptions{now: time.Now}
	cmd := &cobra.Command{
		Use:   "check [backends|tls|etcd|kubeconfig|preflight|all] [-c config.hcl] [--json]",
		Short: "probe backends, certificates, etcd and kubeconfig; Nagios exit codes",
		Long:  checkLong,
		Annotations: map[string]string{synopsisKey: "epconsole check [backends|tls|etcd|kubeconfig|preflight|all] [-c config.hcl] [--json]\n" +
			"                [--wait-for ok|warning [--timeout 2m] [--every 2s]] [--kubeconfig file]\n" +
			"                [--flows N] [--new-flows-per-second N]"},
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.finish(args); err != nil {
				return err
			}
			a.code = run(cmd.Context(), o, a.stdio)
			return nil
		},
	}
	cmd.SetFlagErrorFunc(flagError(checkUsageExit))
	fs := cmd.Flags()
	configFlag(fs, &o.configPath)
	fs.BoolVar(&o.json, "json", false, "print the result as JSON (schema "+CheckSchema+")")
	fs.Var(waitFor{&o.waitFor}, "wait-for", "poll until the `verdict` is ok or warning (or better)")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up waiting after this long (with --wait-for)")
	fs.DurationVar(&o.every, "every", 2*time.Second, "time between attempts (with --wait-for)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig `file` to check (default: $KUBECONFIG, then ~/.kube/config)")
	preflightFlags(fs, &o) // check_preflight.go
	return cmd
}

// finish completes o from the positional arguments (at most one check
// name) and checks what the flags alone cannot.
func (o *checkOptions) finish(names []string) error {
	bad := func(format string, a ...any) error { return usagef(checkUsageExit, format, a...) }
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
	if o.timeout <= 0 || o.every <= 0 {
		return bad("--timeout and --every must be positive")
	}
	if o.flows < 0 || o.newFlowsPerSecond < 0 {
		return bad("--flows and --new-flows-per-second must not be negative")
	}
	if o.configPath == "" {
		o.configPath = defaultConfigPath()
	}
	return nil
}

// waitFor is --wait-for: the verdict to wait for, ok or warning.
type waitFor struct{ s **probes.Severity }

func (v waitFor) Type() string { return "verdict" }

func (v waitFor) String() string {
	if *v.s == nil {
		return ""
	}
	return strings.ToLower((*v.s).String())
}

func (v waitFor) Set(text string) error {
	s, err := probes.ParseSeverity(text)
	if err != nil || (s != probes.OK && s != probes.Warning) {
		return errors.New("want ok or warning")
	}
	*v.s = &s
	return nil
}
