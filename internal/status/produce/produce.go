// Package produce is epconsole's one status producer: the loop that runs
// the certificate and etcd checks beside the probe monitor, gathers a
// round of results (and the daemon's state, on a node running one),
// builds the snapshot with the pure build package and publishes it when
// it says something new. The daemon (its socket and metrics) and the
// direct view (the console without a daemon) both run it; they differ
// only in Options.
package produce

import (
	"context"
	"sync"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/status/build"
	"github.com/epconsole/epconsole/probes"
)

// Options say where a round's results come from, how often to look and
// where snapshots go.
type Options struct {
	// Config returns the running config; nil skips the round (not running
	// yet). It may change (a reload): the inputs are read again.
	Config func() *config.Config
	// Probes returns the probe monitor's states, in backend order.
	Probes func() []probes.BackendStatus
	// VIPsHere says which VIPs are on this host; LinksUp which VIP links
	// are up (nil: not read). Both ask the kernel (netlink), so a round
	// within HostMaxAge of the last reading reuses it.
	VIPsHere func([]config.VIP) []bool
	LinksUp  func([]config.VIP) []bool
	// HostMaxAge is how old a reading of VIPsHere and LinksUp a round
	// may reuse (0: half a Tick).
	HostMaxAge time.Duration
	// Daemon returns the daemon's state for the round; nil (the func)
	// means there is no daemon: the snapshots are the direct view.
	Daemon func() *build.Daemon
	// Version and Socket are said in the snapshot (build.Meta).
	Version string
	Socket  string
	// Now is the snapshots' clock (time.Now when nil).
	Now func() time.Time

	// Wake asks for a round now (a probe changed state); nil: never.
	Wake <-chan struct{}
	// Tick is the longest time between rounds.
	Tick time.Duration
	// Republish: an unchanged snapshot is published again after this
	// long, so readers see it is current.
	Republish time.Duration
	// FirstWait bounds how long the first snapshot waits for every
	// backend's first probe and the first certificate and etcd checks (0:
	// it does not wait).
	FirstWait time.Duration
	// CertInterval and EtcdInterval are the times between certificate and
	// etcd checks; CertKick asks for a certificate check now (nil: never).
	CertInterval time.Duration
	EtcdInterval time.Duration
	CertKick     <-chan struct{}

	// Publish delivers a snapshot; false stops the producer.
	Publish func(status.Snapshot) bool
}

// checks are the latest certificate and etcd checks.
type checks struct {
	mu                  sync.Mutex
	certsDone, etcdDone bool
	certs               []probes.CertReport
	cf                  []probes.Finding
	etcd                *probes.EtcdReport
}

// Run produces snapshots until ctx ends or Publish says stop.
func Run(ctx context.Context, o Options) {
	if o.Now == nil {
		o.Now = time.Now
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	done := make(chan struct{}, 1)
	poke := func() {
		select {
		case done <- struct{}{}:
		default:
		}
	}
	c := &checks{}
	wg.Add(2)
	go func() {
		defer wg.Done()
		every(ctx, o.Config, o.CertInterval, o.CertKick, func(in build.Inputs) {
			certs, cf := probes.Certificates(ctx, in.Targets, in.Certs)
			if ctx.Err() != nil {
				return
			}
			c.mu.Lock()
			c.certsDone, c.certs, c.cf = true, certs, cf
			c.mu.Unlock()
			poke()
		})
	}()
	go func() {
		defer wg.Done()
		every(ctx, o.Config, o.EtcdInterval, nil, func(in build.Inputs) {
			var rep *probes.EtcdReport
			if in.Etcd != nil {
				r := probes.Etcd(ctx, *in.Etcd)
				rep = &r
			}
			if ctx.Err() != nil {
				return
			}
			c.mu.Lock()
			c.etcdDone, c.etcd = true, rep
			c.mu.Unlock()
			poke()
		})
	}()
	publishLoop(ctx, o, c, done)
}

// publishLoop builds a snapshot on every wake, check result and tick, and
// publishes it when it says something new or Republish passed.
func publishLoop(ctx context.Context, o Options, c *checks, done <-chan struct{}) {
	start := time.Now()
	var first <-chan time.Time
	if o.FirstWait > 0 {
		t := time.NewTimer(o.FirstWait)
		defer t.Stop()
		first = t.C
	}
	tick := time.NewTicker(o.Tick)
	defer tick.Stop()
	var in inputs
	var last *status.Snapshot
	var lastAt time.Time
	var host hostState
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.Wake:
		case <-done:
		case <-first:
		case <-tick.C:
		}
		cfg := o.Config()
		if cfg == nil {
			continue
		}
		res := build.Results{Backends: o.Probes()}
		res.VIPHere, res.LinksUp = host.read(o, cfg)
		c.mu.Lock()
		res.Certs, res.CertFindings, res.Etcd = c.certs, c.cf, c.etcd
		ready := c.certsDone && c.etcdDone
		c.mu.Unlock()
		for _, b := range res.Backends {
			ready = ready && !b.Last.Time.IsZero()
		}
		if last == nil && !ready && time.Since(start) < o.FirstWait {
			continue
		}
		var d *build.Daemon
		if o.Daemon != nil {
			d = o.Daemon()
		}
		snap := build.Build(cfg, in.of(cfg), res, build.Meta{Version: o.Version, Socket: o.Socket, Time: o.Now()}, d)
		if last != nil && build.Same(*last, snap) && time.Since(lastAt) < o.Republish {
			continue
		}
		if !o.Publish(snap) {
			return
		}
		last, lastAt = &snap, time.Now()
	}
}

// hostState is the last reading of the VIPs and links on this host.
type hostState struct {
	cfg             *config.Config
	at              time.Time
	vipHere, linkUp []bool
}

// read returns which VIPs are here and which links are up, asking the
// kernel again when the config changed or HostMaxAge (half a Tick) passed
// since the last reading: every tick's round reads, a wake-up soon after
// does not.
func (h *hostState) read(o Options, cfg *config.Config) (vipHere, linkUp []bool) {
	maxAge := o.HostMaxAge
	if maxAge <= 0 {
		maxAge = o.Tick / 2
	}
	if h.cfg == cfg && !h.at.IsZero() && time.Since(h.at) < maxAge {
		return h.vipHere, h.linkUp
	}
	h.cfg, h.at, h.vipHere, h.linkUp = cfg, time.Now(), nil, nil
	if o.VIPsHere != nil {
		h.vipHere = o.VIPsHere(cfg.VIPs)
	}
	if o.LinksUp != nil {
		h.linkUp = o.LinksUp(cfg.VIPs)
	}
	return h.vipHere, h.linkUp
}

// inputs are the probes' inputs of one config, read once per config.
type inputs struct {
	cfg *config.Config
	in  build.Inputs
}

func (x *inputs) of(cfg *config.Config) build.Inputs {
	if cfg != x.cfg {
		x.cfg, x.in = cfg, build.ReadInputs(cfg)
	}
	return x.in
}

// every runs fn with the running config's inputs at once, then every
// interval and whenever kick asks, until ctx ends.
func every(ctx context.Context, config func() *config.Config, interval time.Duration, kick <-chan struct{}, fn func(build.Inputs)) {
	var in inputs
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
		if cfg := config(); cfg != nil {
			fn(in.of(cfg))
		}
		if ctx.Err() != nil {
			return
		}
		t.Reset(interval)
	}
}
