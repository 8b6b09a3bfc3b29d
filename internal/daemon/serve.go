package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/components"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/direct"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/status/produce"
	"github.com/epconsole/epconsole/probes"
)

// Timers of the status loop.
const (
	// DefaultStatusTick is the longest time between two rounds of the
	// status loop: the decision loop asks for a round on every change it
	// sees (pokeStatus), so the tick only shows what changes by time (ages,
	// latencies, counts).
	DefaultStatusTick = time.Second
	// statusHostMaxAge is how old a reading of the VIPs on this host a
	// round may show (the decision loop's poke after it moved the VIP
	// reads them again).
	statusHostMaxAge = 50 * time.Millisecond
	// DefaultRepublish: a snapshot is published at least this often even
	// when nothing changed (fresh last-seen times and latencies).
	DefaultRepublish = 5 * time.Second
	// DefaultConnInterval is the time between conntrack counts of the
	// connections per backend.
	DefaultConnInterval = 5 * time.Second
	// DefaultSlowInterval is the time between certificate checks; a
	// backend presenting another certificate is checked at once.
	DefaultSlowInterval = 60 * time.Second
	// DefaultEtcdInterval is the time between etcd quorum checks (as cheap
	// as `etcdctl endpoint status`; a lost quorum must show within
	// seconds).
	DefaultEtcdInterval = 5 * time.Second
)

// counters are the daemon's running totals (status.Counters).
type counters struct {
	mu sync.Mutex
	c  status.Counters
}

func (c *counters) add(f func(*status.Counters)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.c)
}

func (c *counters) get() status.Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.c
	out.ProbeFailures = cloneCounts(c.c.ProbeFailures)
	return out
}

// probeFailure counts a failed probe by its reason: "timeout" a counted
// timeout (at any stage), "late" one not counted because this node ran
// late (probes.Discount), else the stage that failed.
func (c *counters) probeFailure(r probes.HealthResult) {
	if r.Outcome != probes.OutcomeFail {
		return
	}
	reason := probeFailureReason(r)
	c.add(func(s *status.Counters) {
		if s.ProbeFailures == nil {
			s.ProbeFailures = map[string]uint64{}
		}
		s.ProbeFailures[reason]++
	})
}

// probeFailureReason is the reason a failed probe is counted under.
func probeFailureReason(r probes.HealthResult) string {
	switch {
	case r.Discounted:
		return "late"
	case r.Cause == probes.CauseTimeout:
		return "timeout"
	case r.Stage == probes.StageDone || r.Stage == probes.StageHTTP:
		return "readyz"
	case r.Stage == "":
		return "error"
	}
	return string(r.Stage)
}

// Snapshot returns the daemon's current status snapshot (the one the
// socket and the metrics serve); zero before Run starts serving.
func (d *Daemon) Snapshot() status.Snapshot {
	return d.pub.Snapshot()
}

// serveStatus runs the status producer, the socket and the metrics until ctx
// ends. Failing to listen is logged, never fatal: the endpoint matters
// more than its status page.
func (d *Daemon) serveStatus(ctx context.Context, cfg *config.Config, wg *sync.WaitGroup) {
	wg.Add(2)
	go func() { defer wg.Done(); d.connLoop(ctx) }()
	go func() { defer wg.Done(); d.produceStatus(ctx) }()

	srv, err := status.NewServer(status.ServerOptions{
		Socket: cfg.Status.Socket, Source: d.pub, Actions: actions{d}, History: d.history.Load(),
		SocketGroup: cfg.Status.SocketGroup, OperatorGroup: cfg.Status.OperatorGroup,
		Logger: d.log.With("component", "status"),
	})
	if err != nil {
		d.log.Error("status socket not served", "socket", cfg.Status.Socket, "err", err)
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ctx); err != nil {
				d.log.Error("status socket", "err", err)
			}
		}()
		d.log.Info("status socket", "socket", srv.Socket())
	}

	if cfg.Status.MetricsListen == "" {
		d.log.Info("metrics off (status.metrics_listen is empty)")
		return
	}
	// A non-loopback metrics_listen is only ever there because config.hcl
	// says so (the default is loopback): honour it, and say so.
	nonLoop := status.CheckMetricsListen(cfg.Status.MetricsListen, false) != nil
	if nonLoop {
		d.log.Warn("metrics served beyond loopback, as status.metrics_listen says: anyone who reaches it learns the cluster's layout", "listen", cfg.Status.MetricsListen)
	}
	ms, err := status.ListenMetrics(cfg.Status.MetricsListen, d.pub, status.MetricsOptions{
		AllowNonLoopback: true, Logger: d.log.With("component", "metrics")})
	if err != nil {
		d.log.Error("metrics not served", "listen", cfg.Status.MetricsListen, "err", err)
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := ms.Serve(ctx); err != nil {
			d.log.Error("metrics", "err", err)
		}
	}()
	d.log.Info("metrics", "listen", ms.Addr().String())
}

// config returns the running config (nil when Run is not running).
func (d *Daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st == nil {
		return nil
	}
	return d.st.cfg
}

// certPresented notes the certificate a probe saw and asks for a
// certificate check now when a backend presents another one than before
// (a reissued apiserver certificate: its SANs and expiry are news).
func (d *Daemon) certPresented(r probes.HealthResult) {
	if r.CertSHA256 == "" {
		return
	}
	d.certMu.Lock()
	prev := d.certSeen[r.Backend]
	d.certSeen[r.Backend] = r.CertSHA256
	d.certMu.Unlock()
	if prev == "" || prev == r.CertSHA256 {
		return
	}
	d.record(EventCertChanged, r.Backend, fmt.Sprintf("presents another certificate (sha256 %s…, was %s…): checking it now", r.CertSHA256[:12], prev[:12]))
	select {
	case d.certKick <- struct{}{}:
	default:
	}
}

// every runs fn with the running config at once, then every interval,
// until ctx ends.
func (d *Daemon) every(ctx context.Context, interval time.Duration, fn func(*config.Config)) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if cfg := d.config(); cfg != nil {
			fn(cfg)
		}
		if ctx.Err() != nil {
			return
		}
		t.Reset(interval)
	}
}

// connLoop counts the connections per backend in conntrack.
func (d *Daemon) connLoop(ctx context.Context) {
	ct, err := dataplane.NewConntrack(dataplane.WithLogger(d.log.With("component", "conntrack")))
	if err != nil {
		d.log.Warn("connections per backend not counted", "err", err)
		return
	}
	defer ct.Close()
	d.every(ctx, DefaultConnInterval, func(cfg *config.Config) {
		counts, err := countConns(ctx, ct, cfg)
		if err != nil && ctx.Err() == nil {
			d.log.Debug("counting connections", "err", err)
		}
		d.connMu.Lock()
		d.conns = counts
		d.connMu.Unlock()
	})
}

// countConns counts the conntrack flows to each VIP by the backend they
// were DNATed to (a kernel-filtered dump per VIP).
func countConns(ctx context.Context, ct *dataplane.Conntrack, cfg *config.Config) (map[string]int, error) {
	var vips []netip.AddrPort
	for _, v := range components.VIPs(cfg) {
		vips = append(vips, v.AddrPort())
	}
	bySrc, err := ct.CountByReplySource(ctx, vips)
	counts := map[string]int{}
	for _, b := range cfg.Backends {
		if n := bySrc[b.AddrPort()]; n > 0 {
			counts[b.Name] += n
		}
	}
	return counts, err
}

// produceStatus runs the one status producer with the daemon's state:
// a round every DefaultStatusTick or when poked (the VIPs on this host
// read through one kept netlink socket), published when it says
// something new (or DefaultRepublish passed); certificates checked every
// DefaultSlowInterval and when certPresented asks, etcd every
// DefaultEtcdInterval.
func (d *Daemon) produceStatus(ctx context.Context) {
	vipsHere := direct.VIPsHere
	if h, err := direct.NewHost(); err != nil {
		d.log.Warn("reading the VIPs on this host with a netlink socket per read", "err", err)
	} else {
		defer h.Close()
		vipsHere = h.VIPsHere
	}
	produce.Run(ctx, produce.Options{
		Config: d.config, Probes: d.Probes, VIPsHere: vipsHere, HostMaxAge: statusHostMaxAge, Daemon: d.snapshotState,
		Version: d.opts.Version,
		Wake:    d.poke, Tick: DefaultStatusTick, Republish: DefaultRepublish,
		CertInterval: DefaultSlowInterval, EtcdInterval: DefaultEtcdInterval, CertKick: d.certKick,
		Publish: func(s status.Snapshot) bool { d.pub.Publish(s); return true },
	})
}

// pokeStatus asks the status producer for a snapshot now.
func (d *Daemon) pokeStatus() {
	select {
	case d.poke <- struct{}{}:
	default:
	}
}

// actions carries out the operator's actions in the decision loop.
type actions struct{ d *Daemon }

func (a actions) Drain(ctx context.Context, backend string) error {
	return a.d.act(ctx, action{kind: actDrain, name: backend})
}

func (a actions) Undrain(ctx context.Context, backend string) error {
	return a.d.act(ctx, action{kind: actUndrain, name: backend})
}

// Handoff asks the loop to hand the VIP to peer, then waits (at most
// HandoffTimeout plus a second) until this node sees peer as the owner.
func (a actions) Handoff(ctx context.Context, peer string) error {
	d := a.d
	if err := d.act(ctx, action{kind: actHandoff, name: peer}); err != nil {
		return err
	}
	deadline := time.Now().Add(d.opts.HandoffTimeout + time.Second)
	for time.Now().Before(deadline) {
		st := d.Status()
		if st.Decision.Owner == peer && !st.Holding {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return status.Conflictf("handoff to %s did not complete within %s: this node keeps the VIP (see the events)", peer, d.opts.HandoffTimeout)
}

type actKind int

const (
	actDrain actKind = iota + 1
	actUndrain
	actHandoff
)

type action struct {
	kind  actKind
	name  string
	reply chan error
}

// act hands an action to the decision loop and waits for its answer.
func (d *Daemon) act(ctx context.Context, a action) error {
	a.reply = make(chan error, 1)
	select {
	case d.actCh <- a:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(5 * time.Second):
		return fmt.Errorf("the daemon's decision loop did not take the request in 5s")
	}
	select {
	case err := <-a.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func cloneCounts(m map[string]uint64) map[string]uint64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
