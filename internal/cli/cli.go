// Package cli wires epconsole's subcommands. It is importable so tests can
// run commands with their own writers; cmd/epconsole only calls Run.
package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
)

// IO is where a command reads and writes; tests swap in buffers.
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// command is one subcommand. run returns the process exit code.
type command struct {
	name  string
	short string
	run   func(ctx context.Context, args []string, stdio IO) int
}

// commands lists every subcommand; each lives in its own file.
func commands() []command {
	return []command{
		{"console", "the console (the default without a command): live from the daemon, or a direct view", runConsole},
		{"check", "probe backends, certificates, etcd and kubeconfig; Nagios exit codes", runCheck},
		{"validate", "check config.hcl and print every problem as file:line:col", runValidate},
		{"version", "print the version", runVersion},
	}
}

// Version is set at build time with -ldflags "-X .../internal/cli.Version=...".
var Version = "dev"

// Run runs epconsole with args (without the program name) and returns the
// exit code.
func Run(ctx context.Context, args []string, stdio IO) int {
	if len(args) == 0 {
		return runConsole(ctx, nil, stdio)
	}
	name := args[0]
	switch name {
	case "-h", "--help", "help":
		usage(stdio.Out)
		return 0
	case "--daemon", "-daemon":
		return runDaemon(ctx, args[1:], stdio)
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args[1:], stdio)
		}
	}
	fmt.Fprintf(stdio.Err, "epconsole: unknown command %q\n\n", name)
	usage(stdio.Err)
	return 2
}

func usage(w io.Writer) {
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	var b strings.Builder
	b.WriteString("usage: epconsole [console] [-c config.hcl]   (the console)\n       epconsole <command> [flags]\n       epconsole --daemon [-c config.hcl]\n\ncommands:\n")
	for _, c := range cs {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.short)
	}
	b.WriteString("\nRun `epconsole <command> -h` for a command's flags.\n")
	io.WriteString(w, b.String())
}

func runVersion(_ context.Context, _ []string, stdio IO) int {
	fmt.Fprintln(stdio.Out, "epconsole", Version)
	return 0
}
