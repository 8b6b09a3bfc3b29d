package direct

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
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

	cfg, in := s.cfg, ReadInputs(s.cfg)
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
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
		OnUpdate: func(probes.Update) { poke() },
	})
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = mon.Run(ctx)
	}()
	slow := &slowResults{}
	go func() {
		defer wg.Done()
		s.slowLoop(ctx, in, slow, poke)
	}()

	start := time.Now()
	first := time.NewTimer(firstWait)
	defer first.Stop()
	// Unchanged snapshots are still sent once per health interval, so the
	// age the console shows is that of the last probe round.
	refresh := time.NewTicker(interval)
	defer refresh.Stop()
	var last *status.Snapshot
	var lastSent time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-first.C:
		case <-refresh.C:
		}
		res := Results{Backends: mon.Snapshot(), VIPHere: s.opts.VIPsHere(cfg.VIPs), LinksUp: s.opts.LinksUp(cfg.VIPs)}
		slow.mu.Lock()
		res.Certs, res.CertFindings, res.Etcd = slow.certs, slow.cf, slow.etcd
		ready := slow.done
		slow.mu.Unlock()
		for _, b := range res.Backends {
			ready = ready && !b.Last.Time.IsZero()
		}
		if last == nil && !ready && time.Since(start) < firstWait {
			continue
		}
		snap := Build(cfg, in, res, Meta{Version: s.opts.Version, Socket: s.opts.Socket, Time: s.opts.Now()})
		if last != nil && Same(*last, snap) && time.Since(lastSent) < interval {
			continue
		}
		last, lastSent = &snap, time.Now()
		if !emit(status.Update{Kind: status.SnapshotUpdate, Snapshot: &snap}) {
			return
		}
	}
}

// slowLoop runs the certificate and etcd checks every SlowInterval.
func (s *Source) slowLoop(ctx context.Context, in Inputs, slow *slowResults, poke func()) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		certs, cf := probes.Certificates(ctx, in.Targets, in.Certs)
		var rep *probes.EtcdReport
		if in.Etcd != nil {
			r := probes.Etcd(ctx, *in.Etcd)
			rep = &r
		}
		if ctx.Err() != nil {
			return
		}
		slow.mu.Lock()
		slow.done, slow.certs, slow.cf, slow.etcd = true, certs, cf, rep
		slow.mu.Unlock()
		poke()
		t.Reset(s.opts.SlowInterval)
	}
}

// Same reports whether two snapshots say the same thing: equal but for
// the time they were taken, probe latencies and etcd's moving counters
// (raft term and index, database size).
func Same(a, b status.Snapshot) bool {
	return reflect.DeepEqual(steady(a), steady(b))
}

func steady(s status.Snapshot) status.Snapshot {
	s.Generated = time.Time{}
	bs := make([]status.Backend, len(s.Backends))
	for i, b := range s.Backends {
		vs := make([]status.BackendView, len(b.Views))
		for j, v := range b.Views {
			v.Latency = 0
			vs[j] = v
		}
		b.Views = vs
		bs[i] = b
	}
	s.Backends = bs
	if s.Etcd != nil {
		e := *s.Etcd
		e.Members = make([]status.EtcdMember, len(s.Etcd.Members))
		for i, m := range s.Etcd.Members {
			m.RaftTerm, m.RaftIndex, m.DBSize = 0, 0, 0
			e.Members[i] = m
		}
		s.Etcd = &e
	}
	return s
}
