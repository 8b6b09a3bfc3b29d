// Package daemon is `epconsole --daemon`: it wires the probes, the cluster
// and the dataplane of one LB node together.
//
// Data flows one way: the probe monitor's results give the healthy set,
// which the dataplane programs (the nftables tables are installed on every
// peer all the time) and the cluster gossips; the cluster's view, with the
// heartbeat's liveness laid over it, goes into cluster.Elect; the decision
// moves the VIP address (dataplane.VIP) and the kernel-side owner lease
// (dataplane.Lease), and is published back (metadata and beats).
//
// Run owns no signals: the caller cancels the context for a graceful stop
// (the VIP is handed over first) and sends on Options.Reload for a config
// reload. An invalid config on reload is rejected with its diagnostics and
// changes nothing.
package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/components"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/preflight"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
)

// Defaults of Options.
const (
	DefaultStartupWait    = 2 * time.Second
	DefaultHandoffTimeout = 3 * time.Second
	DefaultTick           = 25 * time.Millisecond
)

// Options configure the daemon.
type Options struct {
	// ConfigPath is the config.hcl to load (and reload).
	ConfigPath string
	// Logger receives the daemon's logs (default slog.Default()).
	Logger *slog.Logger
	// Version is the software version published to the peers.
	Version string
	// Reload: each receive reloads ConfigPath (SIGHUP).
	Reload <-chan struct{}
	// StartupWait bounds how long the daemon listens before it may claim
	// the VIP (it stops waiting once every configured peer is heard):
	// Elect cannot tell whether its view is complete.
	StartupWait time.Duration
	// HandoffTimeout bounds the wait for a successor on a graceful stop.
	HandoffTimeout time.Duration
	// EventLogSize is the number of events kept (DefaultEventLogSize).
	EventLogSize int
	// NoHeartbeat runs without the direct heartbeat: liveness comes from
	// gossip alone (about a second to notice a dead owner instead of tens
	// of milliseconds). For comparison runs that show what the heartbeat
	// is for, not for production.
	NoHeartbeat bool
	// NoConnSync switches the connection sync off (ctsync.go): the owner's
	// established flows then die when the VIP moves. For control runs that
	// show what the sync is for, not for production.
	NoConnSync bool
}

// Daemon is one running LB node. Its Events, Status, ClusterView, Probes
// and Heartbeat methods may be called while Run runs (the status API).
type Daemon struct {
	opts   Options
	log    *slog.Logger
	events *EventLog

	mu     sync.Mutex
	status Status
	st     *state // set while Run runs
	// ownerSince is when the VIP owner (as this node sees it) last changed.
	ownerSince time.Time
	lastOwner  string

	// The status API: the published snapshot, the running totals, the
	// connection counts, a nudge for the status loop and the operator's
	// actions for the decision loop.
	pub      *status.Publisher
	counters counters
	connMu   sync.Mutex
	conns    map[string]int
	poke     chan struct{}
	actCh    chan action

	// certKick asks the certificate check to run now: a backend presented
	// another certificate than before (certSeen, by backend).
	certKick chan struct{}
	certMu   sync.Mutex
	certSeen map[string]string
}

// Status is the daemon's own part of the status: what it decided and why.
type Status struct {
	Node         string    `json:"node"`
	Version      string    `json:"version"`
	Started      time.Time `json:"started"`
	ConfigPath   string    `json:"config_path"`
	ConfigDigest string    `json:"config_digest"`
	// Waiting: still in the startup wait (listening before any claim).
	Waiting bool `json:"waiting"`
	// Holding: the VIP address is on this host.
	Holding     bool `json:"holding"`
	Eligible    bool `json:"eligible"`
	InterfaceUp bool `json:"interface_up"`
	// Decision is the latest election result.
	Decision cluster.Decision `json:"decision"`
	// Healthy and Drain are the sets programmed into the dataplane.
	Healthy map[string]bool `json:"healthy"`
	Drain   map[string]bool `json:"drain"`
	// Heartbeat says whether the beat loop runs and at which priority.
	HeartbeatRunning  bool               `json:"heartbeat_running"`
	HeartbeatError    string             `json:"heartbeat_error,omitempty"`
	HeartbeatRealtime heartbeat.Realtime `json:"heartbeat_realtime"`
	// LastReload is when SIGHUP was last handled; LastReloadError why it
	// was rejected ("" if accepted).
	LastReload      time.Time `json:"last_reload,omitzero"`
	LastReloadError string    `json:"last_reload_error,omitempty"`
	// Preflight are the host checks made at start.
	Preflight []probes.Finding `json:"preflight,omitempty"`
	// Drained is the cluster-wide operator drain set (sorted) and its
	// generation; HandoffTo the peer an operator's handoff goes to.
	Drained   []string `json:"drained,omitempty"`
	DrainGen  uint64   `json:"drain_generation,omitempty"`
	HandoffTo string   `json:"handoff_to,omitempty"`
}

// Status returns the daemon's latest status (zero before Run started).
func (d *Daemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

// ClusterView returns the cluster view with the heartbeat's liveness laid
// over it, as the election sees it; false when Run is not running.
func (d *Daemon) ClusterView() (cluster.View, bool) {
	d.mu.Lock()
	if d.st == nil {
		d.mu.Unlock()
		return cluster.View{}, false
	}
	cl, name, beater := d.st.cl, d.st.cfg.Node.Name, d.st.beater
	d.mu.Unlock()
	v := cl.View()
	if beater != nil {
		v = v.WithLiveness(liveness(beater.View(), name, nil))
	}
	return v, true
}

// Probes returns the local probe monitor's snapshot; nil when Run is not
// running.
func (d *Daemon) Probes() []probes.BackendStatus {
	d.mu.Lock()
	var mon *probes.Monitor
	if d.st != nil {
		mon = d.st.mon
	}
	d.mu.Unlock()
	if mon == nil {
		return nil
	}
	return mon.Snapshot()
}

// Heartbeat returns the beat loop's view; false when it does not run.
func (d *Daemon) Heartbeat() (heartbeat.View, bool) {
	d.mu.Lock()
	var b *heartbeat.Beater
	if d.st != nil {
		b = d.st.beater
	}
	d.mu.Unlock()
	if b == nil {
		return heartbeat.View{}, false
	}
	return b.View(), true
}

// updateStatus copies the loop's state into the status (under the lock,
// which also guards the component pointers the accessors read).
func (d *Daemon) updateStatus(s *state) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &d.status
	st.Node, st.Version, st.Started, st.ConfigPath = s.cfg.Node.Name, d.opts.Version, s.started, d.opts.ConfigPath
	st.ConfigDigest = cluster.ShortDigest(s.cfg.Digest())
	st.Waiting, st.Holding, st.Eligible, st.InterfaceUp = s.waiting, s.holding, s.eligible, s.ifaceUp
	st.Decision, st.Healthy, st.Drain = s.last, s.programmed, s.drained
	st.Drained, st.DrainGen, st.HandoffTo = s.opDrain.Backends, s.opDrain.Generation, s.handoffTo
	if owner := s.last.Owner; !s.waiting && owner != d.lastOwner {
		if owner != "" {
			d.counters.add(func(c *status.Counters) { c.Failovers++ })
		}
		d.lastOwner, d.ownerSince = owner, time.Now()
	}
	defer d.pokeStatus()
	st.HeartbeatRunning, st.HeartbeatError = s.beater != nil && s.beatErr == nil, ""
	if s.beatErr != nil {
		st.HeartbeatError = s.beatErr.Error()
	}
	if s.beater != nil {
		st.HeartbeatRealtime = s.beater.Realtime()
	}
}

// New returns a daemon for opts; Run starts it.
func New(opts Options) *Daemon {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.StartupWait <= 0 {
		opts.StartupWait = DefaultStartupWait
	}
	if opts.HandoffTimeout <= 0 {
		opts.HandoffTimeout = DefaultHandoffTimeout
	}
	return &Daemon{opts: opts, log: opts.Logger, events: NewEventLog(opts.EventLogSize),
		pub:  status.NewPublisher(status.Snapshot{Schema: status.Schema, Source: SourceDaemon}),
		poke: make(chan struct{}, 1), actCh: make(chan action),
		certKick: make(chan struct{}, 1), certSeen: map[string]string{}}
}

// Run runs a daemon with opts until ctx ends; see Daemon.Run.
func Run(ctx context.Context, opts Options) error {
	return New(opts).Run(ctx)
}

// Events returns the event log, oldest first.
func (d *Daemon) Events() []Event { return d.events.Events() }

// record adds an event and logs it.
func (d *Daemon) record(kind EventKind, subject, message string) {
	d.events.Add(Event{Kind: kind, Subject: subject, Message: message})
	d.log.Info("event", "kind", string(kind), "subject", subject, "message", message)
}

// LoadError is returned by Run when the config cannot be loaded.
type LoadError struct {
	Path  string
	Diags hcl.Diagnostics
}

func (e *LoadError) Error() string {
	var lines []string
	for _, d := range e.Diags {
		if d.Severity == hcl.DiagError {
			lines = append(lines, config.DiagnosticLine(d))
		}
	}
	return fmt.Sprintf("config %s: %s", e.Path, strings.Join(lines, "; "))
}

func load(path string) (*config.Config, error) {
	cfg, diags := config.Load(path)
	if diags.HasErrors() || cfg == nil {
		return nil, &LoadError{Path: path, Diags: diags}
	}
	return cfg, nil
}

// state is what the decision loop owns.
type state struct {
	// noMajority: since when each peer's beats say it hears no majority.
	noMajority majorityWatch
	// beatKey is the heartbeat verdict last logged (noteHeartbeat).
	beatKey string

	cfg         *config.Config
	dp          *dataplane.Dataplane
	vip         *dataplane.VIP
	lease       *dataplane.Lease
	cl          *cluster.Cluster
	beater      *heartbeat.Beater
	beatErr     error
	beaterRetry time.Time
	mon         *probes.Monitor
	monStop     context.CancelFunc
	monDone     chan struct{}
	sync        *connSync // nil with Options.NoConnSync

	// run outlives the caller's ctx through the handoff; cancelled last.
	run context.Context

	reconciled bool
	programmed map[string]bool
	drained    map[string]bool
	ifaceUp    bool
	eligible   bool
	holding    bool
	// held are the VIP places this node put (or found) its address on.
	held     []dataplane.ServiceVIP
	started  time.Time
	waiting  bool
	leaving  bool
	last     cluster.Decision
	probeCh  chan struct{}
	eventsCh chan cluster.Event

	// opDrain is the operator's cluster-wide drain set (drain.go);
	// handoffTo the peer an operator's handoff goes to, asked at handoffAt.
	opDrain   DrainSet
	handoffTo string
	handoffAt time.Time
}

// Run loads the config, starts the probes, the cluster and the heartbeat,
// and runs the decision loop until ctx ends; then it hands the VIP over
// (bounded by Options.HandoffTimeout), leaves the cluster and returns nil.
// It returns an error when the config is invalid or a component cannot start.
func (d *Daemon) Run(ctx context.Context) error {
	cfg, err := load(d.opts.ConfigPath)
	if err != nil {
		return err
	}
	run, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	d.preflight(ctx, cfg)
	s := &state{
		cfg: cfg, run: run, started: time.Now(), waiting: true,
		probeCh: make(chan struct{}, 1), eventsCh: make(chan cluster.Event, 256),
		noMajority: majorityWatch{},
	}
	dpOpt := dataplane.WithLogger(d.log.With("component", "dataplane"))
	if s.dp, err = dataplane.New(dpOpt); err != nil {
		return fmt.Errorf("dataplane: %w", err)
	}
	defer s.dp.Close()
	if s.vip, err = dataplane.NewVIP(dpOpt); err != nil {
		return fmt.Errorf("VIP: %w", err)
	}
	defer s.vip.Close()
	if s.lease, err = dataplane.NewLease(dpOpt); err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	defer s.lease.Close()
	if err := s.lease.Install(run, dataplane.Addresses(components.VIPs(cfg))); err != nil {
		return fmt.Errorf("installing the owner lease tables: %w", err)
	}
	// A VIP address left by an earlier process: adopt it for now; the first
	// decision after the startup wait removes it unless this node is elected.
	for _, p := range components.VIPs(cfg) {
		if has, err := s.vip.Has(run, p.Interface, p.Addr); err == nil && has {
			s.held = append(s.held, p)
			s.holding = true
			d.log.Info("found the VIP on this host (earlier process); keeping it until the election says otherwise", "vip", p.Addr, "interface", p.Interface)
		}
	}
	s.ifaceUp = dataplane.InterfacesUp(components.VIPs(cfg))
	if s.opDrain, err = loadDrain(cfg.StateDir); err != nil {
		d.log.Error("drained backends not restored; starting with none drained", "err", err)
	} else if len(s.opDrain.Backends) > 0 {
		d.log.Info("drained backends restored", "backends", s.opDrain.Backends, "generation", s.opDrain.Generation, "file", cfg.StateDir+"/"+DrainFile)
	}

	if err := d.startMonitor(s); err != nil {
		return err
	}
	defer func() { s.monStop(); <-s.monDone }()

	ccfg := components.Cluster(cfg, d.opts.Version)
	ccfg.Events = s.eventsCh
	ccfg.Logger = d.log.With("component", "cluster")
	ccfg.Local.Eligible = false
	if s.cl, err = cluster.New(run, ccfg); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	defer s.cl.Shutdown()

	if !d.opts.NoConnSync {
		if s.sync, err = startConnSync(run, d.log.With("component", "connsync"), s.cl, cfg.Node.Name, dataplane.AddrPorts(components.VIPs(cfg))); err != nil {
			return err
		}
		defer s.sync.close()
		s.sync.setHolding(s.holding)
	}

	d.startBeater(s)
	defer func() {
		if s.beater != nil {
			s.beater.Close()
		}
	}()

	d.record(EventStarted, cfg.Node.Name, fmt.Sprintf("version %s, config digest %s", d.opts.Version, cluster.ShortDigest(cfg.Digest())))
	d.mu.Lock()
	d.st = s
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.st = nil
		d.mu.Unlock()
	}()
	// The status API serves through the handoff, and stops before Run returns.
	sctx, stopStatus := context.WithCancel(run)
	var swg sync.WaitGroup
	d.serveStatus(sctx, cfg, &swg)
	defer func() { stopStatus(); swg.Wait() }()
	d.loop(ctx, s)
	d.handoff(s)
	d.updateStatus(s)
	return nil
}

// preflight checks the host (forwarding, rp_filter, conntrack size,
// foreign firewall rules, the VIP interface) and logs what it finds, each
// with its fix. It refuses nothing: a finding may be about traffic this
// node never carries, and the operator decides.
func (d *Daemon) preflight(ctx context.Context, cfg *config.Config) {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fs := preflight.Run(pctx, preflight.OptionsFromConfig(cfg))
	bad := 0
	for _, f := range fs {
		lv := slog.LevelInfo
		switch f.Severity {
		case probes.OK:
			continue
		case probes.Critical:
			lv = slog.LevelError
		default:
			lv = slog.LevelWarn
		}
		bad++
		d.log.Log(ctx, lv, "preflight", "severity", f.Severity.String(), "code", f.Code, "subject", f.Subject, "message", f.Message, "fix", f.Fixes)
	}
	d.log.Info("preflight done", "findings", len(fs), "problems", bad)
	d.mu.Lock()
	d.status.Preflight = fs
	d.mu.Unlock()
}

func (d *Daemon) startMonitor(s *state) error {
	cfg := s.cfg
	ho := probes.HealthOptions{Kind: probes.Kind(cfg.Health.Kind), Path: cfg.Health.Path, Timeout: cfg.Health.Timeout}
	if cfg.TLS.CAFile != "" {
		b, err := config.ReadFile(cfg.TLS.CAFile)
		if err != nil {
			return fmt.Errorf("tls.ca_file: %w", err)
		}
		cs, err := probes.ParseCertificates(b)
		if err != nil {
			return fmt.Errorf("tls.ca_file %s: %w", cfg.TLS.CAFile, err)
		}
		p := x509.NewCertPool()
		for _, c := range cs {
			p.AddCert(c)
		}
		ho.RootCAs = p
	}
	if cfg.Health.ClientCertFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.Health.ClientCertFile, cfg.Health.ClientKeyFile)
		if err != nil {
			return fmt.Errorf("health client certificate: %w", err)
		}
		ho.ClientCert = &c
	}
	mon := probes.NewMonitor(probes.MonitorOptions{
		Targets: targets(cfg), Health: ho,
		Interval: cfg.Health.Interval, FastInterval: cfg.Health.FastInterval,
		Rise: cfg.Health.Rise, Fall: cfg.Health.Fall,
		Logger: d.log.With("component", "probes"),
		OnUpdate: func(u probes.Update) {
			d.counters.probeFailure(u.Result)
			d.certPresented(u.Result)
			select {
			case s.probeCh <- struct{}{}:
			default:
			}
		},
	})
	mctx, stop := context.WithCancel(s.run)
	done := make(chan struct{})
	go func() { defer close(done); _ = mon.Run(mctx) }()
	d.mu.Lock()
	s.mon, s.monStop, s.monDone = mon, stop, done
	d.mu.Unlock()
	return nil
}

func (d *Daemon) startBeater(s *state) {
	if d.opts.NoHeartbeat {
		d.mu.Lock()
		s.beater, s.beatErr = nil, errors.New("heartbeat switched off")
		d.mu.Unlock()
		d.log.Warn("heartbeat switched off; liveness from gossip only (slow failover)")
		return
	}
	hc := heartbeatConfig(s.cfg)
	hc.Logger = d.log.With("component", "heartbeat")
	b, err := heartbeat.Start(s.run, hc)
	if err != nil {
		// Liveness then comes from gossip alone (slower, but the VIP
		// still moves); the status says so.
		d.mu.Lock()
		s.beater, s.beatErr = nil, err
		d.mu.Unlock()
		d.log.Error("heartbeat not running; liveness from gossip only", "err", err)
		return
	}
	d.mu.Lock()
	s.beater, s.beatErr = b, nil
	d.mu.Unlock()
	rt := b.Realtime()
	d.log.Info("heartbeat running", "bind", hc.Bind, "interval", hc.Interval, "misses", hc.Misses,
		"realtime", rt.InEffect, "priority", rt.Priority, "reason", rt.Reason)
}

// restartBeater starts the beat loop again when it died (its view is then
// stale, and this node holds nothing), at most once a second. It reports
// whether a new loop runs.
func (d *Daemon) restartBeater(s *state) bool {
	if s.beater == nil || d.opts.NoHeartbeat {
		return false
	}
	select {
	case <-s.beater.Done():
	default:
		return false
	}
	if time.Since(s.beaterRetry) < time.Second {
		return false
	}
	s.beaterRetry = time.Now()
	d.log.Error("heartbeat loop ended; restarting it", "err", s.beater.Err())
	old := s.beater
	d.startBeater(s)
	if s.beater == nil {
		d.mu.Lock()
		s.beater = old // keep the stale view (nobody fresh) and retry later
		d.mu.Unlock()
		return false
	}
	return true
}

// loop is the decision loop; it returns when ctx ends.
func (d *Daemon) loop(ctx context.Context, s *state) {
	tick := time.NewTicker(DefaultTick)
	defer tick.Stop()
	leaseTick := time.NewTicker(dataplane.DefaultLeaseRenew)
	defer leaseTick.Stop()
	var beatChanges <-chan struct{}
	if s.beater != nil {
		beatChanges = s.beater.Changes()
	}
	d.onProbes(s)
	d.decide(s)
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.opts.Reload:
			d.reload(s)
			if s.beater != nil {
				beatChanges = s.beater.Changes()
			} else {
				beatChanges = nil
			}
		case <-s.probeCh:
			d.onProbes(s)
		case ev := <-s.eventsCh:
			d.onClusterEvent(ev)
		case a := <-d.actCh:
			a.reply <- d.onAction(s, a)
		case <-beatChanges:
		case <-leaseTick.C:
			d.renewLease(s)
			continue
		case <-tick.C:
			if up := dataplane.InterfacesUp(components.VIPs(s.cfg)); up != s.ifaceUp {
				s.ifaceUp = up
				d.log.Info("VIP interface", "up", up)
			}
			if d.restartBeater(s) {
				beatChanges = s.beater.Changes()
			}
		}
		d.decide(s)
	}
}

// onProbes applies the monitor's snapshot: dataplane, gossip, eligibility.
func (d *Daemon) onProbes(s *state) {
	healthy, drain, views, settled := health(s.mon.Snapshot())
	// A backend without a result yet (a restarted monitor after a reload)
	// keeps what is programmed.
	for _, v := range views {
		if v.State == probes.StateUnknown.String() {
			healthy[v.Name], drain[v.Name] = s.programmed[v.Name], s.drained[v.Name]
		}
	}
	if err := s.cl.SetBackends(views); err != nil && !errors.Is(err, cluster.ErrShutdown) {
		d.log.Warn("publishing backend views", "err", err)
	}
	// The first program waits until every backend had its first probe
	// (or a bound passed): reconciling with an empty healthy set would
	// cut the flows an earlier process left forwarding.
	if !s.reconciled && !settled && time.Since(s.started) < 2*s.cfg.Health.Timeout+time.Second {
		return
	}
	for _, v := range views {
		was, now := s.programmed[v.Name], healthy[v.Name]
		switch {
		case s.reconciled && was == now:
		case now:
			d.record(EventBackendUp, v.Name, v.State+": "+v.Reason)
		case s.reconciled || v.State != probes.StateUnknown.String():
			how := "dead"
			if drain[v.Name] {
				how = "draining"
			}
			d.record(EventBackendDown, v.Name, v.State+" ("+how+"): "+v.Reason)
		}
	}
	d.reconcile(s, healthy, drain, false)
}

func (d *Daemon) reconcile(s *state, healthy, drain map[string]bool, force bool) {
	drain = withDrained(drain, drainMap(s.opDrain, s.cfg))
	if s.reconciled && !force && sameSet(healthy, s.programmed) && sameSet(drain, s.drained) {
		return
	}
	t0 := time.Now()
	res, err := s.dp.Reconcile(s.run, components.Desired(s.cfg, healthy, drain))
	took := time.Since(t0)
	d.counters.add(func(c *status.Counters) {
		c.Reconciles++
		c.ReconcileTime += took
		c.LastReconcile = took
		if err != nil {
			c.ReconcileErrors++
		}
	})
	if err != nil {
		d.log.Error("programming the datapath", "err", err)
		return
	}
	s.reconciled = true
	s.programmed, s.drained = healthy, drain
	for _, f := range res.Families {
		d.log.Info("datapath", "family", f.Family, "vip", f.VIP, "action", string(f.Action),
			"slots", f.SlotsPerBackend, "cut", f.Cut, "flows_deleted", f.FlowsDeleted, "committed", res.Committed)
	}
}

func (d *Daemon) onClusterEvent(ev cluster.Event) {
	switch ev.Type {
	case cluster.EventJoin:
		d.record(EventPeerJoin, ev.Member, ev.Detail)
	case cluster.EventLeave:
		d.record(EventPeerLeave, ev.Member, ev.Detail)
	case cluster.EventFailed:
		d.record(EventPeerFailed, ev.Member, ev.Detail)
	case cluster.EventDigestMismatch:
		d.record(EventDigestMismatch, ev.Member, ev.Detail)
	case cluster.EventKeyMismatch:
		d.record(EventKeyMismatch, ev.Member, fmt.Sprintf("%s %s", ev.Addr, ev.Detail))
	case cluster.EventBackend:
		d.record(EventPeerBackend, ev.Member, fmt.Sprintf("%s %s %s", ev.Backend.Name, ev.Backend.State, ev.Backend.Reason))
	default:
		d.log.Debug("cluster event", "event", ev.String())
	}
}

// view is the cluster view with the heartbeat's liveness laid over it, and
// the gossip view under it.
func (d *Daemon) view(s *state) (live, gossip cluster.View) {
	v := s.cl.View()
	if s.beater == nil {
		return v, v
	}
	hv := s.beater.View()
	d.noteHeartbeat(s, hv)
	nm := s.noMajority.noMajority(hv, heartbeat.MonoNow(), 2*hv.Threshold)
	return v.WithLiveness(liveness(hv, s.cfg.Node.Name, nm)), v
}

// noteHeartbeat logs the heartbeat's verdict whenever it changes (who is
// fresh, beating, majority), with the beat loop's counters and each
// peer's last beat age: what tells a peer that stopped sending from a
// loop that was held up, or from beats the kernel delivered late.
func (d *Daemon) noteHeartbeat(s *state, hv heartbeat.View) {
	var fresh, missing []string
	for _, p := range hv.Peers {
		if p.Alive {
			fresh = append(fresh, p.Name)
		} else {
			missing = append(missing, p.Name)
		}
	}
	key := fmt.Sprintf("%v|%v|%v|%v|%v", hv.Stale, hv.Beating, hv.Majority, fresh, missing)
	if key == s.beatKey {
		return
	}
	first := s.beatKey == ""
	s.beatKey = key
	if first && len(missing) == 0 {
		return
	}
	now := heartbeat.MonoNow()
	ages := make(map[string]string, len(hv.Peers))
	for _, p := range hv.Peers {
		if p.Seen {
			ages[p.Name] = now.Sub(p.LastBeat).Round(100 * time.Microsecond).String()
		}
	}
	st := hv.Stats
	d.log.Info("heartbeat verdict", "fresh", fresh, "missing", missing, "majority", hv.Majority, "beating", hv.Beating,
		"stale", hv.Stale, "last_beat_age", ages, "report_age", now.Sub(hv.At).Round(100*time.Microsecond).String(),
		"loop_max_lateness", st.MaxLateness.String(), "loop_late_ticks", st.LateTicks, "sent", st.Sent,
		"send_errors", st.SendErrors, "received", st.Received, "accepted", st.Accepted, "reports_dropped", st.ReportsDropped)
}

// complete reports whether every configured peer is heard (fresh, with
// metadata) and past its own start: its gossiped metadata says eligible,
// or claims the VIP. The view then holds every claim there is, and peers
// starting together agree on the election instead of each claiming while
// the others still settle. The gossiped metadata is read, not the beats'
// owner belief laid over it: a claim travels in beats within milliseconds,
// its eligibility with gossip only later, and a claim whose eligibility is
// not yet visible looks like an ineligible owner to be replaced.
func complete(live, gossip cluster.View) bool {
	for _, name := range live.Peers {
		m, ok := live.Member(name)
		g, gok := gossip.Member(name)
		if !ok || !gok || !m.Fresh || g.Meta.Name == "" || !(g.Meta.Eligible || g.Meta.Claims()) {
			return false
		}
	}
	return true
}

// highestOtherEpoch is the highest epoch another member publishes.
func highestOtherEpoch(v cluster.View) uint64 {
	var e uint64
	for _, m := range v.Members {
		if m.Name != v.Self && m.Meta.Epoch > e {
			e = m.Meta.Epoch
		}
	}
	return e
}

// decide runs the election and carries its decision out.
func (d *Daemon) decide(s *state) {
	defer d.updateStatus(s)
	eligible := !s.leaving && s.ifaceUp && countHealthy(s.programmed) > 0 && s.reconciled
	if eligible != s.eligible {
		s.eligible = eligible
		d.log.Info("eligibility", "eligible", eligible, "healthy_backends", countHealthy(s.programmed), "interface_up", s.ifaceUp)
	}
	d.publish(s, s.last) // eligibility into the metadata before deciding
	v, gv := d.view(s)
	d.syncDrain(s, v)
	d.checkHandoff(s)
	dec := cluster.Elect(v, s.cfg.Node.Name)
	if !dec.Hold && dec.Owner != s.last.Owner && !s.waiting {
		// Our own published belief (the old owner) is part of the view;
		// once it is corrected, decide again rather than a tick later.
		s.last.Owner, s.last.Epoch = dec.Owner, dec.Epoch
		d.publish(s, s.last)
		v, gv = d.view(s)
		dec = cluster.Elect(v, s.cfg.Node.Name)
	}
	if s.waiting {
		if time.Since(s.started) < d.opts.StartupWait && !complete(v, gv) {
			// Learn the owner before claiming: publish only what we hear,
			// and no epoch of a claim we do not make.
			if dec.Hold || dec.Owner == s.cfg.Node.Name {
				dec.Owner, dec.Epoch = "", highestOtherEpoch(v)
			}
			dec.Hold = false
			s.last = dec
			d.publish(s, dec)
			return
		}
		s.waiting = false
		d.log.Info("startup wait over", "after", time.Since(s.started).Round(time.Millisecond), "view_complete", complete(v, gv))
		s.last = cluster.Decision{Reason: "startup wait"} // log the first real decision
	}
	// Logged whenever what it says changes, the reason included: losing
	// the majority may change nothing else (a follower that already had
	// no owner to follow) and must still show.
	if dec.Owner != s.last.Owner || dec.Reason != s.last.Reason || dec.Hold != s.last.Hold || dec.Elected != s.last.Elected || dec.Epoch != s.last.Epoch {
		d.log.Info("decision", "hold", dec.Hold, "owner", dec.Owner, "epoch", dec.Epoch, "elected", dec.Elected,
			"reason", dec.Reason, "quorum", dec.Quorum.String(), "mismatch", dec.Mismatch)
	}
	s.last = dec
	d.apply(s, dec)
	d.publish(s, dec)
}

// publish puts the decision's owner belief into the metadata and the beats.
func (d *Daemon) publish(s *state, dec cluster.Decision) {
	handoffTo := ""
	if s.holding {
		handoffTo = s.handoffTo
	}
	err := s.cl.SetLocal(cluster.Local{
		Priority: s.cfg.Node.Priority, Eligible: s.eligible, Preempt: s.cfg.Node.Preempt,
		Owner: dec.Owner, Epoch: dec.Epoch, Digest: s.cfg.Digest(),
		HandoffTo: handoffTo, Drained: s.opDrain.key(), DrainGen: s.opDrain.Generation,
	})
	if err != nil && !errors.Is(err, cluster.ErrShutdown) {
		d.log.Warn("publishing metadata", "err", err)
	}
	if s.beater != nil {
		a := heartbeat.Advert{Owner: dec.Owner, Epoch: dec.Epoch}
		if s.holding && !s.waiting {
			a.Flags |= heartbeat.FlagHolding
		}
		if s.leaving {
			a.Flags |= heartbeat.FlagLeaving
		}
		if err := s.beater.Refresh(a); err != nil && s.beatErr == nil {
			s.beatErr = err
			d.log.Error("heartbeat stopped", "err", err, "loop_err", s.beater.Err())
		}
	}
}

// apply moves the VIP address and the lease as dec says.
func (d *Daemon) apply(s *state, dec cluster.Decision) {
	switch {
	case dec.Hold && !s.holding:
		d.acquire(s, dec.Reason)
	case dec.Hold && s.holding:
		// Places may have changed with a reload.
		if !samePlaces(s.held, components.VIPs(s.cfg)) {
			d.release(s, "VIP configuration changed")
			d.acquire(s, dec.Reason)
		}
	case !dec.Hold && s.holding:
		d.release(s, dec.Reason)
	}
}

// samePlaces reports whether two VIP lists put the same addresses on the
// same interfaces (a changed port needs no move).
func samePlaces(a, b []dataplane.ServiceVIP) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Addr != b[i].Addr || a[i].Interface != b[i].Interface {
			return false
		}
	}
	return true
}

func (d *Daemon) acquire(s *state, reason string) {
	// Lease first: the announcements and ARP replies need it.
	if err := s.lease.Renew(s.run, dataplane.DefaultLeaseTTL); err != nil {
		d.log.Error("renewing the owner lease", "err", err)
	}
	s.sync.setHolding(true)
	places := components.VIPs(s.cfg)
	for _, p := range places {
		if err := s.vip.Add(s.run, p.Interface, p.Addr); err != nil {
			d.log.Error("adding the VIP", "vip", p.Addr, "interface", p.Interface, "err", err)
			continue
		}
		d.record(EventVIPAcquired, p.Addr.String(), reason)
	}
	s.held = places
	s.holding = true
}

func (d *Daemon) release(s *state, reason string) {
	for _, p := range s.held {
		if err := s.vip.Remove(s.run, p.Interface, p.Addr); err != nil {
			d.log.Error("removing the VIP", "vip", p.Addr, "interface", p.Interface, "err", err)
			continue
		}
		d.record(EventVIPReleased, p.Addr.String(), reason)
	}
	if err := s.lease.Drop(s.run); err != nil {
		d.log.Warn("dropping the owner lease", "err", err)
	}
	s.held = nil
	s.holding = false
	s.sync.setHolding(false)
}

// renewLease keeps the kernel-side lease alive while holding. Without a
// majority (or beats) the decision releases the VIP, so the lease follows.
func (d *Daemon) renewLease(s *state) {
	if !s.holding {
		return
	}
	if err := s.lease.Renew(s.run, dataplane.DefaultLeaseTTL); err != nil {
		d.log.Warn("renewing the owner lease", "err", err)
	}
}

// handoff hands the VIP over on a graceful stop, then leaves the cluster.
func (d *Daemon) handoff(s *state) {
	d.record(EventHandoff, s.cfg.Node.Name, fmt.Sprintf("graceful stop: holding the VIP %v, handing it over (at most %s)", s.holding, d.opts.HandoffTimeout))
	s.leaving = true
	// A stop during the startup wait: this process claimed nothing; an
	// address it found (an earlier process's) goes by the election now.
	s.waiting = false
	deadline := time.Now().Add(d.opts.HandoffTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	leaseTick := time.NewTicker(dataplane.DefaultLeaseRenew)
	for s.holding && time.Now().Before(deadline) {
		d.decide(s) // ineligible now: Elect keeps us until the successor's claim is seen
		if !s.holding {
			break
		}
		select {
		case <-tick.C:
		case <-leaseTick.C:
			d.renewLease(s)
		case ev := <-s.eventsCh:
			d.onClusterEvent(ev)
		}
	}
	tick.Stop()
	leaseTick.Stop()
	if s.holding {
		d.log.Warn("no successor claimed the VIP in time; releasing it anyway", "timeout", d.opts.HandoffTimeout)
		d.release(s, "graceful stop: no successor in time")
	}
	d.publish(s, cluster.Decision{Epoch: s.last.Epoch})
	lctx, cancel := context.WithTimeout(s.run, time.Second)
	defer cancel()
	if err := s.cl.Leave(lctx); err != nil {
		d.log.Warn("leaving the cluster", "err", err)
	}
	d.log.Info("stopped")
}

// reloaded notes a reload in the status ("" accepted, else why not).
func (d *Daemon) reloaded(rejected string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status.LastReload, d.status.LastReloadError = time.Now(), rejected
}

// reload re-reads the config: an invalid one is rejected with its
// diagnostics and nothing changes; a valid one is applied.
func (d *Daemon) reload(s *state) {
	cfg, diags := config.Load(d.opts.ConfigPath)
	if diags.HasErrors() || cfg == nil {
		var b bytes.Buffer
		_ = config.WriteDiagnostics(&b, diags, nil)
		var first []string
		for _, dg := range diags {
			if dg.Severity == hcl.DiagError {
				first = append(first, config.DiagnosticLine(dg))
			}
		}
		d.log.Error("config reload rejected; running state unchanged", "config", d.opts.ConfigPath, "diagnostics", b.String())
		d.record(EventReloadRejected, d.opts.ConfigPath, strings.Join(first, "; "))
		d.reloaded(strings.Join(first, "; "))
		return
	}
	if why := restartNeeded(s.cfg, cfg); why != "" {
		d.log.Error("config reload rejected; running state unchanged", "config", d.opts.ConfigPath, "reason", why+": restart the daemon to apply it")
		d.record(EventReloadRejected, d.opts.ConfigPath, why+" (needs a restart)")
		d.reloaded(why + " (needs a restart)")
		return
	}
	old := s.cfg
	d.mu.Lock()
	s.cfg = cfg
	d.mu.Unlock()
	s.sync.setVIPs(dataplane.AddrPorts(components.VIPs(cfg)))
	if err := s.lease.Install(s.run, dataplane.Addresses(components.VIPs(cfg))); err != nil {
		d.log.Error("installing the owner lease tables", "err", err)
	}
	if s.holding {
		d.renewLease(s)
	}
	// Probes: restart the monitor with the new targets and settings.
	s.monStop()
	<-s.monDone
	if err := d.startMonitor(s); err != nil {
		d.log.Error("restarting the probes; keeping the old ones' last view", "err", err)
	}
	var peers []cluster.Peer
	for _, p := range cfg.Peers {
		peers = append(peers, cluster.Peer{Name: p.Name, Addr: p.Address})
	}
	if err := s.cl.SetPeers(peers); err != nil {
		d.log.Error("updating peers", "err", err)
	}
	if err := s.cl.SetKeys(cfg.Gossip.Keys); err != nil {
		d.log.Error("updating gossip keys", "err", err)
	}
	if !sameHeartbeat(old, cfg) {
		if s.beater != nil {
			s.beater.Close()
		}
		d.startBeater(s)
	}
	// Reconcile with the last healthy set restricted to the new backends
	// (new ones count as down until probed).
	healthy, drain := map[string]bool{}, map[string]bool{}
	for _, b := range cfg.Backends {
		healthy[b.Name], drain[b.Name] = s.programmed[b.Name], s.drained[b.Name]
	}
	d.reconcile(s, healthy, drain, true)
	d.record(EventReloadOK, d.opts.ConfigPath, "config digest "+cluster.ShortDigest(cfg.Digest()))
	d.reloaded("")
}
