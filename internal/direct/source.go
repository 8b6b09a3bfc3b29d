// Package direct looks at the control plane without a daemon: it runs the
// probes of config.hcl in the calling process (read-only) and feeds their
// results through the one status producer (internal/status/produce), so
// the console shows the same screens with or without `epconsole --daemon`.
// A direct snapshot has no cluster view: the VIP owner and the peers are
// not known, only whether a VIP address sits on this host's interface
// right now.
package direct

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/status/build"
	"github.com/epconsole/epconsole/internal/status/produce"
	"github.com/epconsole/epconsole/probes"
)

// Defaults of Options.
const (
	// DefaultSlowInterval is the time between certificate and etcd checks.
	DefaultSlowInterval = 10 * time.Second
	// firstWait bounds how long the first snapshot waits for every
	// backend's first probe and the first certificate and etcd checks.
	firstWait = 3 * time.Second
)

// Options configure a Source.
type Options struct {
	// Version is this program's version, shown in the snapshot.
	Version string
	// Socket is the daemon's status socket that did not answer (shown).
	Socket string
	// Interval overrides health.interval (0: the config's); the fast
	// interval is the config's, at most Interval.
	Interval time.Duration
	// SlowInterval is the time between certificate and etcd checks
	// (DefaultSlowInterval when 0).
	SlowInterval time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger receives the probes' logs (discarded when nil: the console
	// owns the terminal).
	Logger *slog.Logger
	// VIPsHere says which VIPs are on this host (VIPsHere, netlink, when
	// nil).
	VIPsHere func([]config.VIP) []bool
	// LinksUp says which VIPs' links are up (LinksUp, netlink, when nil).
	LinksUp func([]config.VIP) []bool
}

// Source runs the probes of a config in this process and delivers a
// direct snapshot at start and on every change: a backend's state or
// reason, a certificate, etcd, a VIP arriving or leaving this host (and
// an unchanged one once per health interval, to show it is current). It
// satisfies the TUI's Source. It changes nothing anywhere.
type Source struct {
	cfg  *config.Config
	opts Options
}

// New returns a Source for cfg; probing starts with Subscribe.
func New(cfg *config.Config, opts Options) *Source {
	if opts.SlowInterval <= 0 {
		opts.SlowInterval = DefaultSlowInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.VIPsHere == nil {
		opts.VIPsHere = VIPsHere
	}
	if opts.LinksUp == nil {
		opts.LinksUp = LinksUp
	}
	return &Source{cfg: cfg, opts: opts}
}

// Subscribe probes until ctx ends, then closes the channel. It sends
// status.Connected at once, then snapshots (status.SnapshotUpdate).
func (s *Source) Subscribe(ctx context.Context) <-chan status.Update {
	out := make(chan status.Update)
	go func() {
		defer close(out)
		s.run(ctx, out)
	}()
	return out
}

// slowResults are the latest certificate and etcd checks.
type slowResults struct {
	mu    sync.Mutex
	done  bool
	certs []probes.CertReport
	cf    []probes.Finding
	etcd  *probes.EtcdReport
}

func (s *Source) run(ctx context.Context, out chan<- status.Update) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	emit := func(u status.Update) bool {
		select {
		case out <- u:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !emit(status.Update{Kind: status.Connected}) {
		return
	}

	cfg := s.cfg
	in := build.ReadInputs(cfg)
	wake := make(chan struct{}, 1)
	interval, fast := cfg.Health.Interval, cfg.Health.FastInterval
	if s.opts.Interval > 0 {
		interval = s.opts.Interval
	}
	if fast <= 0 || fast > interval {
		fast = interval
	}
	mon := probes.NewMonitor(probes.MonitorOptions{
		Targets: in.Targets, Health: in.Health, Interval: interval, FastInterval: fast,
		Rise: cfg.Health.Rise, Fall: cfg.Health.Fall, Logger: s.opts.Logger,
		OnUpdate: func(probes.Update) {
			select {
			case wake <- struct{}{}:
			default:
			}
		},
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = mon.Run(ctx)
	}()
	// Unchanged snapshots are still sent once per health interval, so the
	// age the console shows is that of the last probe round.
	produce.Run(ctx, produce.Options{
		Config: func() *config.Config { return cfg }, Probes: mon.Snapshot,
		VIPsHere: s.opts.VIPsHere, LinksUp: s.opts.LinksUp,
		Version: s.opts.Version, Socket: s.opts.Socket, Now: s.opts.Now,
		Wake: wake, Tick: interval, Republish: interval, FirstWait: firstWait,
		CertInterval: s.opts.SlowInterval, EtcdInterval: s.opts.SlowInterval,
		Publish: func(snap status.Snapshot) bool {
			return emit(status.Update{Kind: status.SnapshotUpdate, Snapshot: &snap})
		},
	})
}
