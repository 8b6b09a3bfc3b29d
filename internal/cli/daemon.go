package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/epconsole/epconsole/internal/daemon"
)

// daemonLong is the daemon's help text.
const daemonLong = `Runs this LB node's agent: probes the backends, gossips with the peers,
elects the VIP owner, programs nftables and moves the VIP. Logs go to
stderr (JSON when stderr is not a terminal).
SIGHUP reloads the config (an invalid one is rejected, nothing changes);
SIGTERM or SIGINT hands the VIP to a peer, then leaves.`

// daemonOptions are the daemon's parsed arguments.
type daemonOptions struct {
	configPath  string
	level       slog.Level
	noHeartbeat bool
	noConnSync  bool
	noClaim     bool
	helperLease bool
	noBeatLease bool
}

// newDaemonCmd is `epconsole daemon`, also spelled `epconsole --daemon`.
func newDaemonCmd(a *app) *cobra.Command {
	o := daemonOptions{level: slog.LevelInfo}
	cmd := &cobra.Command{
		Use:   "daemon [-c config.hcl] [--log-level LEVEL] [--no-heartbeat] [--no-conn-sync] [--no-helper-claim] [--helper-lease] [--no-beat-lease]",
		Short: "this LB node's agent: probes, gossip, VIP election, nftables, the VIP (also --daemon)",
		Long:  daemonLong,
		Annotations: map[string]string{synopsisKey: "epconsole --daemon [-c config.hcl] [--log-level LEVEL] [--no-heartbeat] [--no-conn-sync] [--no-helper-claim] [--helper-lease] [--no-beat-lease]\n" +
			"epconsole daemon ...   (the same)"},
		Args:                  noArgs(""),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.code = runDaemon(cmd.Context(), o, a.stdio)
			return nil
		},
	}
	fs := cmd.Flags()
	configFlag(fs, &o.configPath)
	fs.Var(logLevel{&o.level}, "log-level", "log `level`: debug, info, warn or error")
	fs.BoolVar(&o.noHeartbeat, "no-heartbeat", false, "liveness from gossip only (slow failover; for comparison runs, not production)")
	fs.BoolVar(&o.noConnSync, "no-conn-sync", false, "do not sync established connections to the peers (they die when the VIP moves; for comparison runs, not production)")
	fs.BoolVar(&o.noClaim, "no-helper-claim", false, "the daemon claims the VIP after the heartbeat helper's verdict reaches it, instead of the helper claiming where it sees the owner gone (slower failover; for comparison runs, not production)")
	fs.BoolVar(&o.helperLease, "helper-lease", false, "the heartbeat helper renews a short owner lease (twice the detection time) on every beat instead of the beat-renewed lease (experimental: its renewals wait for the daemon's nftables commits)")
	fs.BoolVar(&o.noBeatLease, "no-beat-lease", false, "the daemon renews a 150 ms owner lease every 30 ms instead of the kernel renewing a lease of one detection time from each heartbeat saying this node holds the VIP (a paused owner then answers ARP up to 150 ms beside its successor; for comparison runs, not production)")
	return cmd
}

// logLevel is --log-level: a slog.Level by its name.
type logLevel struct{ l *slog.Level }

func (v logLevel) String() string { return strings.ToLower(v.l.String()) }
func (v logLevel) Type() string   { return "level" }

func (v logLevel) Set(s string) error {
	if err := v.l.UnmarshalText([]byte(s)); err != nil {
		return errors.New("use debug, info, warn or error")
	}
	return nil
}

// runDaemon is `epconsole daemon`: it runs until ctx ends.
func runDaemon(ctx context.Context, o daemonOptions, stdio IO) int {
	file := o.configPath
	if file == "" {
		file = defaultConfigPath()
	}
	log := daemonLogger(stdio.Err, o.level)
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

	err := daemon.Run(ctx, daemon.Options{ConfigPath: file, Logger: log, Version: readVersion().Version, Reload: reload, NoHeartbeat: o.noHeartbeat, NoConnSync: o.noConnSync, NoHelperClaim: o.noClaim, HelperLease: o.helperLease, NoBeatLease: o.noBeatLease})
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
