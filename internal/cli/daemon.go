package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/epconsole/epconsole/internal/daemon"
)

const daemonUsage = `usage: epconsole --daemon [-c config.hcl] [--log-level LEVEL] [--no-heartbeat] [--no-conn-sync]

Runs this LB node's agent: probes the backends, gossips with the peers,
elects the VIP owner, programs nftables and moves the VIP. Logs go to
stderr (JSON when stderr is not a terminal).
SIGHUP reloads the config (an invalid one is rejected, nothing changes);
SIGTERM or SIGINT hands the VIP to a peer, then leaves.

flags:
`

// runDaemon is `epconsole --daemon`; args are those after --daemon.
func runDaemon(ctx context.Context, args []string, stdio IO) int {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("c", "", "config file (default ./config.hcl if it exists, else "+systemConfig+")")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	noHeartbeat := fs.Bool("no-heartbeat", false, "liveness from gossip only (slow failover; for comparison runs, not production)")
	noConnSync := fs.Bool("no-conn-sync", false, "do not sync established connections to the peers (they die when the VIP moves; for comparison runs, not production)")
	usage := func(w io.Writer) {
		fmt.Fprint(w, daemonUsage)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdio.Out)
			return 0
		}
		fmt.Fprintf(stdio.Err, "epconsole --daemon: %v\n", err)
		usage(stdio.Err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stdio.Err, "epconsole --daemon: unexpected argument %q\n", fs.Arg(0))
		usage(stdio.Err)
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stdio.Err, "epconsole --daemon: --log-level %q: use debug, info, warn or error\n", *level)
		return 2
	}
	file := *path
	if file == "" {
		file = defaultConfigPath()
	}
	log := daemonLogger(stdio.Err, lv)
	if n, err := daemon.RaisePriority(daemon.DefaultNice); err != nil {
		log.Warn("daemon priority unchanged: claiming the VIP may wait behind other work on a busy host", "nice", daemon.DefaultNice, "err", err)
	} else {
		log.Info("daemon priority", "nice", daemon.DefaultNice, "threads", n)
	}

	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default: // a reload is pending already
				}
			}
		}
	}()

	err := daemon.Run(ctx, daemon.Options{ConfigPath: file, Logger: log, Version: Version, Reload: reload, NoHeartbeat: *noHeartbeat, NoConnSync: *noConnSync})
	if err != nil {
		log.Error("daemon failed", "err", err)
		return 1
	}
	return 0
}

// daemonLogger logs JSON when w is not a terminal, text otherwise.
func daemonLogger(w io.Writer, lv slog.Level) *slog.Logger {
	o := &slog.HandlerOptions{Level: lv}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return slog.New(slog.NewTextHandler(w, o))
	}
	return slog.New(slog.NewJSONHandler(w, o))
}
