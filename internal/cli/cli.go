// Package cli wires epconsole's subcommands. It is importable so tests can
// run commands with their own writers; cmd/epconsole only calls Run.
//
// Every command is a github.com/spf13/cobra command whose flags are
// declared once, with pflag, on the command itself (new*Cmd in each
// command's file); the root command is the console.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// IO is where a command reads and writes; tests swap in buffers.
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// Exit codes every command shares; check's own are the Nagios codes.
const (
	exitOK    = 0
	exitUsage = 2
)

// app is one run of epconsole: where its commands read and write, and
// the exit code the command that ran chose.
type app struct {
	stdio IO
	code  int
}

// Run runs epconsole with args (without the program name) and returns the
// exit code.
func Run(ctx context.Context, args []string, stdio IO) int {
	a := &app{stdio: stdio}
	return a.execute(ctx, newCLI(a), daemonAlias(args))
}

// newCLI is the root command with every subcommand.
func newCLI(a *app) *cobra.Command {
	return newRoot(a,
		newConsoleCmd(a),
		newCheckCmd(a, runCheck),
		newValidateCmd(a),
		newDaemonCmd(a),
		newStatusCmd(a),
		newDrainCmd(a),
		newUndrainCmd(a),
		newHandoffCmd(a),
		newCompletionCmd(a),
		newManCmd(a),
		newVersionCmd(a),
		newKeygenCmd(a), newUninstallCmd(a),
		newEventsCmd(a),
		newLabCmd(a),
		newImportCmd(a), newInitCmd(a),
	)
}

// daemonAlias turns `epconsole --daemon ...` (how systemd units, the lab
// and the drills start a node's agent) into `epconsole daemon ...`.
func daemonAlias(args []string) []string {
	if len(args) > 0 && (args[0] == "--daemon" || args[0] == "-daemon") {
		return append([]string{"daemon"}, args[1:]...)
	}
	return args
}

// execute runs root with args and returns the exit code: the one the
// command chose, or its usage error's code.
func (a *app) execute(ctx context.Context, root *cobra.Command, args []string) int {
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	root.SetIn(a.stdio.In)
	root.SetOut(a.stdio.Out)
	root.SetErr(a.stdio.Err)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return a.code
	}
	if cmd == nil {
		cmd = root
	}
	fmt.Fprintf(a.stdio.Err, "%s: %s\nRun '%s --help' for usage.\n", cmd.CommandPath(), strings.TrimRight(err.Error(), "\n"), cmd.CommandPath())
	var ue usageError
	if errors.As(err, &ue) {
		return ue.code
	}
	return exitUsage // cobra's own: an unknown command
}

// newRoot is `epconsole`: the console (its flags are console's), with
// cmds as subcommands.
func newRoot(a *app, cmds ...*cobra.Command) *cobra.Command {
	var (
		o           consoleOptions
		showVersion bool
	)
	root := &cobra.Command{
		Use:   "epconsole [console] [-c config.hcl] [--socket path[,path...]]",
		Short: "one HA endpoint for a Kubernetes control plane, and a console that tells the truth about it",
		Annotations: map[string]string{synopsisKey: "epconsole [console] [-c config.hcl] [--socket path[,path...]]   (the console)\n" +
			"epconsole <command> [flags]\n" +
			"epconsole --daemon [-c config.hcl]   (the same as epconsole daemon)\n" +
			"epconsole --version"},
		Args:                       nil, // unknown commands get cobra's "did you mean" suggestions
		SilenceErrors:              true,
		SilenceUsage:               true,
		DisableFlagsInUseLine:      true,
		SuggestionsMinimumDistance: 2,
		// `epconsole completion bash|zsh|fish` is completion.go's (only the
		// shells we test); cobra's hidden __complete answers the scripts.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				writeVersion(a.stdio.Out, readVersion())
				return nil
			}
			a.code = runConsole(cmd.Context(), o, a.stdio)
			return nil
		},
	}
	consoleFlags(root.Flags(), &o)
	root.Flags().BoolVarP(&showVersion, "version", "v", false, "print the version, commit, build date and Go version")
	root.SetFlagErrorFunc(flagError(exitUsage))
	root.SetHelpFunc(func(c *cobra.Command, _ []string) { writeHelp(c.OutOrStdout(), c) })
	root.AddCommand(cmds...)
	return root
}

// newLabCmd is `epconsole lab`: the demo left this binary (it links an
// etcd server and stand-in apiservers no LB node needs), so it says
// where the demo is now and exits 2.
func newLabCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:                "lab",
		Short:              "moved: the demo is its own binary (go run ./cmd/epconsole-lab)",
		DisableFlagParsing: true, // every old lab command line gets the pointer
		RunE: func(_ *cobra.Command, args []string) error {
			line := strings.TrimSpace("go run ./cmd/epconsole-lab " + strings.Join(args, " "))
			fmt.Fprintf(a.stdio.Err, "epconsole lab: the demo is not part of the epconsole binary; "+
				"it lives in its own binary, from a source checkout (as root):\n  %s\n", line)
			a.code = exitUsage
			return nil
		},
	}
}
