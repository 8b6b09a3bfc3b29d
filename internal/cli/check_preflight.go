package cli

import (
	"context"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/preflight"
	"github.com/epconsole/epconsole/probes"
)

// checkPreflight is the name of the host check; it runs only when named,
// since it judges the LB host it runs on, not the control plane.
const checkPreflight = probes.CheckPreflight

// runPreflight runs the host preflight (read-only) in netnsPath (empty:
// this process's namespace); its findings are check findings already.
func runPreflight(ctx context.Context, cfg *config.Config, netnsPath string) []probes.Finding {
	o := preflight.OptionsFromConfig(cfg)
	o.NetnsPath = netnsPath
	fs := preflight.Run(ctx, o)
	if fs == nil {
		fs = []probes.Finding{}
	}
	return fs
}
