package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/direct"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui"
)

// consoleLong is the console's help text.
const consoleLong = `The console: backends as every peer sees them, VIP ownership, TLS SANs,
etcd quorum, peers and events, live from this node's daemon over its
status socket (status.socket in config.hcl), with drain, undrain and VIP
handoff. Without a daemon it runs the probes itself and shows a direct,
read-only view of this host (no VIP owner, no peers). It is also what
` + "`epconsole`" + ` without a command runs, with the same flags.

With several sockets (peers' daemons whose sockets this host reaches, as
in the lab) the console follows the first that answers and, when that
daemon dies, falls over at once to the next, saying so in the status line
("via lb2 (lb1 unreachable)"). It stays there, as keepalived without
preemption keeps the VIP, until that daemon fails too; once the first one
answers again, r goes back to it.

Keys: ? help, tab or 1-6 switch views, / filter, enter details, q quit
(L lab drills in the lab, r back to the first daemon).
Needs a terminal; scripts use ` + "`epconsole check [--json]`" + `.`

// dialTimeout bounds the first contact with the daemon.
const dialTimeout = 3 * time.Second

// consoleOptions are console's parsed arguments.
type consoleOptions struct {
	configPath string
	socket     string
}

// newConsoleCmd is `epconsole console`.
func newConsoleCmd(a *app) *cobra.Command {
	var o consoleOptions
	cmd := &cobra.Command{
		Use:                   "console [-c config.hcl] [--socket path[,path...]]",
		Short:                 "the console (the default without a command): live from the daemon, or a direct view",
		Long:                  consoleLong,
		Annotations:           map[string]string{synopsisKey: "epconsole [console] [-c config.hcl] [--socket path[,path...]]"},
		Args:                  noArgs(""),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.code = runConsole(cmd.Context(), o, a.stdio)
			return nil
		},
	}
	consoleFlags(cmd.Flags(), &o)
	return cmd
}

// consoleFlags declares the console's flags, on `console` and on the
// root command alike.
func consoleFlags(fs *pflag.FlagSet, o *consoleOptions) {
	configFlag(fs, &o.configPath)
	fs.StringVar(&o.socket, "socket", "", "the daemon's status `socket` (default: status.socket in the config); several, comma-separated, to fall over between peers")
}

// runConsole is `epconsole` without a command and `epconsole console`.
func runConsole(ctx context.Context, o consoleOptions, stdio IO) int {
	if o.configPath == "" {
		o.configPath = defaultConfigPath()
	}
	// The console reads the daemon's socket; it never needs the gossip key.
	cfg, diags := config.Load(o.configPath, config.WithoutSecrets())
	if diags.HasErrors() {
		_ = config.WriteDiagnostics(stdio.Err, diags, nil)
		fmt.Fprintf(stdio.Err, "epconsole: cannot use config %s (epconsole validate -c %s)\n", o.configPath, o.configPath)
		return 1
	}
	if !terminal(stdio.In) || !terminal(stdio.Out) {
		fmt.Fprintln(stdio.Err, "epconsole: the console needs a terminal (stdin and stdout are not one); "+
			"in scripts use `epconsole check` (or `epconsole check --json`)")
		return 2
	}
	var eps []status.Endpoint
	for _, s := range strings.Split(o.socket, ",") {
		if s = strings.TrimSpace(s); s != "" {
			eps = append(eps, status.Endpoint{Socket: s})
		}
	}
	return console(ctx, cfg, eps, nil, stdio)
}

// Console is console for a program that brings its own daemons and
// drills: the lab binary runs it on the lab's peers' sockets (cfg nil:
// there is no direct view to fall back to).
func Console(ctx context.Context, cfg *config.Config, eps []status.Endpoint, drills tui.Drills, stdio IO) int {
	return console(ctx, cfg, eps, drills, stdio)
}

// console runs the TUI for cfg: live on the daemons at eps (status.socket
// when empty; several: a status.Failover over them, in order), or on a
// direct view when none answers. drills (nil but under a lab) are the
// lab's fault drills.
func console(ctx context.Context, cfg *config.Config, eps []status.Endpoint, drills tui.Drills, stdio IO) int {
	if len(eps) == 0 {
		eps = []status.Endpoint{{Socket: cfg.Status.Socket}}
	}
	socket := eps[0].Socket
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	var src interface {
		tui.Source
		tui.Actions
		Close()
	}
	var err error
	if len(eps) == 1 {
		var c *status.Client
		if c, err = status.Dial(dctx, socket); err == nil {
			src = c
		}
	} else {
		var f *status.Failover
		if f, err = status.DialFailover(dctx, eps); err == nil {
			src = f
		}
	}
	cancel()
	opts := tui.Options{Input: stdio.In, Output: stdio.Out, Drills: drills}
	switch {
	case err == nil:
		defer src.Close()
		opts.Source, opts.Actions = src, src
	case errors.Is(err, status.ErrNoDaemon) && cfg != nil:
		// No daemon: probe from here, read-only (no Actions).
		opts.Source = direct.New(cfg, direct.Options{Version: readVersion().Version, Socket: socket})
	case errors.Is(err, status.ErrPermission):
		fmt.Fprintf(stdio.Err, "epconsole: %v\n", err)
		return 1
	default:
		fmt.Fprintf(stdio.Err, "epconsole: %v\n(is the daemon hung? `epconsole check` probes without it)\n", err)
		return 1
	}
	if err := tui.Run(ctx, opts); err != nil {
		fmt.Fprintf(stdio.Err, "epconsole: %v\n", err)
		return 1
	}
	return 0
}

// terminal reports whether v is a terminal (an *os.File on a tty).
func terminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
