package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

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

// runValidate checks a config file. Exit codes: 0 valid, 1 problems found
// (each printed to stdout as "file:line:col: message" plus the source
// snippet), 2 usage error.
func runValidate(_ context.Context, args []string, stdio IO) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage is printed below, to the right stream
	path := fs.String("c", "", "config file (default ./config.hcl if it exists, else "+systemConfig+")")
	usage := func(w io.Writer) {
		fmt.Fprint(w, `usage: epconsole validate [-c config.hcl]

Checks a config file and prints OK, or every problem as
file:line:col: message, followed by the source it points at.
Exit code 0: valid; 1: problems found; 2: usage error.

flags:
`)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdio.Out)
			return 0
		}
		fmt.Fprintf(stdio.Err, "epconsole validate: %v\n", err)
		usage(stdio.Err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stdio.Err, "epconsole validate: unexpected argument %q (the config file goes after -c)\n", fs.Arg(0))
		usage(stdio.Err)
		return 2
	}
	file := *path
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
