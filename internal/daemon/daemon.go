// Package daemon is `epconsole --daemon`: it wires the probes, the cluster
// and the dataplane of one LB node together.
//
// Data flows one way: the probe monitor's results give the healthy set,
// which the dataplane programs (the nftables tables are installed on every
// peer all the time) and the cluster gossips; the cluster's view, with the
// heartbeat's liveness laid over it, goes into cluster.Elect (and, at
// start, the startup-wait rules next to it); the decision moves the VIP
// address and the kernel-side owner lease, and is published back
// (metadata and beats).
//
// The decision loop acts through small interfaces (parts.go) that the
// real components satisfy (dataplane.Dataplane, VIP and Lease,
// cluster.Cluster, heartbeat.Beater, probes.Monitor, connsync.Sync); Run
// wires those (open.go), the unit tests fakes. One file per job:
// accessors.go (what the status API reads), workers.go (starting the
// probes and the beat loop), loop.go, wake.go (what wakes the loop
// between events), datapath.go (probes to the dataplane), view.go, ownership.go (decide, apply, acquire, release),
// handoff.go (graceful stop), reload.go, actions.go and drain.go (the
// operator's actions), components.go (the config projected onto the
// components), serve.go and snapshot.go (the status API).
//
// Run owns no signals: the caller cancels the context for a graceful stop
// (the VIP is handed over first) and sends on Options.Reload for a config
// reload. An invalid config on reload is rejected with its diagnostics and
// changes nothing.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/epconsole/epconsole/cluster"
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
	// EventFileMax is the size at which state_dir/events.jsonl is
	// rotated (DefaultEventFileMax).
	EventFileMax int64
	// NoHeartbeat runs without the direct heartbeat: liveness comes from
	// gossip alone (about a second to notice a dead owner instead of tens
	// of milliseconds). For comparison runs that show what the heartbeat
	// is for, not for production.
	NoHeartbeat bool
	// NoConnSync switches the connection sync off (internal/connsync): the owner's
	// established flows then die when the VIP moves. For control runs that
	// show what the sync is for, not for production.
	NoConnSync bool
	// NoHelperClaim keeps the VIP's claim in the daemon (claim.go): the
	// heartbeat helper reports who is alive and the daemon claims after
	// its verdict. For control runs.
	NoHelperClaim bool
	// HelperLease makes the heartbeat helper renew the owner lease on
	// every beat with a lease of twice the detection time, instead of the
	// daemon's dataplane.DefaultLeaseTTL every DefaultLeaseRenew (claim.go;
	// off by default: see docs/daemon.md).
	HelperLease bool
	// NoBeatLease makes the daemon renew the owner lease (150 ms, every
	// 30 ms) instead of the kernel renewing it from the heartbeats
	// (beatlease.go). For control runs.
	NoBeatLease bool
}

// Daemon is one running LB node. Its Events, Status, ClusterView, Probes
// and Heartbeat methods may be called while Run runs (the status API).
type Daemon struct {
	opts   Options
	log    *slog.Logger
	events *EventLog
	// history is the event history in state_dir (set by Run).
	history atomic.Pointer[History]
	// gate lets announcement repeats see the helper's lease (claim.go).
	gate claimGate
	// probesLater: a probe result that woke no decision pass arrived; the
	// loop's next timed pass applies it (wake.go onProbeUpdate).
	probesLater atomic.Bool

	mu     sync.Mutex
	status Status
	// shown is the status (and shownEvents the event total) as of the
	// last poke of the status producer (updateStatus).
	shown       Status
	shownEvents uint64
	// digest is the short digest of the config digestOf (updateStatus).
	digestOf *config.Config
	digest   string
	st       *state // set while Run runs
	// ownerSince is when the VIP owner (as this node sees it) last changed.
	ownerSince time.Time
	lastOwner  string
	// panicking: this node's datapath forwards in panic (notePanic; the
	// decision loop's).
	panicking bool

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

	// start starts the probe monitor and the beat loop (realStarters;
	// fakes in the tests).
	start starters
	// sd is what the service manager is told (notify.go).
	sd *sdState
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
		certKick: make(chan struct{}, 1), certSeen: map[string]string{},
		start: realStarters(), sd: newSDState()}
}

// Run runs a daemon with opts until ctx ends; see Daemon.Run.
func Run(ctx context.Context, opts Options) error {
	return New(opts).Run(ctx)
}

// record adds an event, keeps it in the history and logs it.
func (d *Daemon) record(kind EventKind, subject, message string) {
	e := Event{Time: time.Now(), Kind: kind, Subject: subject, Message: message}
	d.events.Add(e)
	d.keep(e)
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
	defer d.openHistory(cfg.StateDir)()
	d.preflight(ctx, cfg)
	s := newState(run, cfg)
	closeAll, err := d.open(s)
	defer closeAll()
	if err != nil {
		return err
	}

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
	d.notifyStopping()
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
