package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/epconsole/epconsole/internal/config"
)

// Config file locations tried when -c is not given, in order.
const (
	localConfig  = "config.hcl"
	systemConfig = "/etc/epconsole/config.hcl"
)

// defaultConfigPath is ./config.hcl when it exists, else the system path.
func defaultConfigPath() string {
	if _, err := os.Stat(localConfig); err == nil {
		return localConfig
	}
	return systemConfig
}

// newValidateCmd is `epconsole validate`. Exit codes: 0 valid, 1
// problems found (each printed to stdout as "file:line:col: message" plus
// the source snippet), 2 usage error.
func newValidateCmd(a *app) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate [-c config.hcl]",
		Short: "check config.hcl and print every problem as file:line:col",
		Long: `Checks a config file and prints OK, or every problem as
file:line:col: message, followed by the source it points at.
Exit code 0: valid; 1: problems found; 2: usage error.`,
		Args:                  noArgs(" (the config file goes after -c)"),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.code = runValidate(cmd.Context(), path, a.stdio)
			return nil
		},
	}
	configFlag(cmd.Flags(), &path)
	return cmd
}

// runValidate checks the config file at path (empty: defaultConfigPath).
func runValidate(_ context.Context, path string, stdio IO) int {
	file := path
	if file == "" {
		file = defaultConfigPath()
	}
	cfg, diags := config.Load(file)
	if err := config.WriteDiagnostics(stdio.Out, diags, nil); err != nil {
		fmt.Fprintf(stdio.Err, "epconsole validate: %v\n", err)
		return 1
	}
	if diags.HasErrors() {
		n := len(diags.Errs())
		noun := "problems"
		if n == 1 {
			noun = "problem"
		}
		fmt.Fprintf(stdio.Out, "%s: %d %s\n", file, n, noun)
		return 1
	}
	fmt.Fprintf(stdio.Out, "OK: %s: cluster %s, %s, %s, %s\n", file, cfg.ClusterName,
		plural(len(cfg.VIPs), "VIP"), plural(len(cfg.Backends), "backend"), plural(len(cfg.Peers), "peer"))
	return 0
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
