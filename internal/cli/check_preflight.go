package cli

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/preflight"
	"github.com/epconsole/epconsole/probes"
)

// checkPreflight is the name of the host check; it runs only when named,
// since it judges the LB host it runs on, not the control plane.
const checkPreflight = probes.CheckPreflight

// preflightFlags adds the load the conntrack-size check sizes the table
// for: the concurrent flows and the peak rate of new (and as many closed)
// flows, whose entries stay in TIME_WAIT for two minutes on the owner and,
// synced, on every peer.
func preflightFlags(fs *pflag.FlagSet, o *checkOptions) {
	fs.IntVar(&o.flows, "flows", 0, fmt.Sprintf("concurrent flows through the VIP the conntrack table must hold (preflight; default conntrack.expected_flows, else %d)", preflight.DefaultExpectedFlows))
	fs.IntVar(&o.newFlowsPerSecond, "new-flows-per-second", 0, "peak new (and as many closed) flows a second, e.g. a rolling restart of the nodes; each closed flow keeps its entry for 120 s (preflight; default conntrack.new_flows_per_second, else 0: not counted)")
}

// runPreflight runs the host preflight (read-only) in o.netnsPath
// (empty: this process's namespace) for the load in o; its findings are
// check findings already.
func runPreflight(ctx context.Context, cfg *config.Config, o checkOptions) []probes.Finding {
	po := preflight.OptionsFromConfig(cfg)
	po.NetnsPath = o.netnsPath
	// The flags win over the config's conntrack block.
	if o.flows > 0 {
		po.ExpectedFlows = o.flows
	}
	if o.newFlowsPerSecond > 0 {
		po.NewFlowsPerSecond = o.newFlowsPerSecond
	}
	fs := preflight.Run(ctx, po)
	if fs == nil {
		fs = []probes.Finding{}
	}
	return fs
}
