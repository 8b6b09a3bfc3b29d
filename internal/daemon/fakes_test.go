package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/probes"
)

// The fakes the decision loop's unit tests wire instead of the kernel's
// and the network's components: each records its calls, in order, in one
// shared log, so a test can say what was done and in which order.

type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf(format, args...))
}

func (l *callLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

func (l *callLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = nil
}

// index is the position of the first call with prefix, or -1.
func (l *callLog) index(prefix string) int {
	return slices.IndexFunc(l.get(), func(c string) bool { return strings.HasPrefix(c, prefix) })
}

type fakeVIP struct {
	log    *callLog
	on     map[string]bool // "iface addr"
	addErr error
}

func (f *fakeVIP) Add(_ context.Context, iface string, addr netip.Addr) error {
	f.log.add("vip.Add %s %s", iface, addr)
	if f.addErr != nil {
		return f.addErr
	}
	f.on[iface+" "+addr.String()] = true
	return nil
}

func (f *fakeVIP) Remove(_ context.Context, iface string, addr netip.Addr) error {
	f.log.add("vip.Remove %s %s", iface, addr)
	delete(f.on, iface+" "+addr.String())
	return nil
}

func (f *fakeVIP) Has(_ context.Context, iface string, addr netip.Addr) (bool, error) {
	return f.on[iface+" "+addr.String()], nil
}

type fakeLease struct{ log *callLog }

func (f *fakeLease) Install(_ context.Context, vips []netip.Addr) error {
	f.log.add("lease.Install %v", vips)
	return nil
}

func (f *fakeLease) Renew(context.Context, time.Duration) error {
	f.log.add("lease.Renew")
	return nil
}

func (f *fakeLease) Drop(context.Context) error {
	f.log.add("lease.Drop")
	return nil
}

func (f *fakeLease) Remove(context.Context) error {
	f.log.add("lease.Remove")
	return nil
}

type fakeDatapath struct {
	log  *callLog
	want []dataplane.Desired
	err  error
}

func (f *fakeDatapath) Reconcile(_ context.Context, want dataplane.Desired) (dataplane.Result, error) {
	f.log.add("dp.Reconcile healthy=%v drain=%v", trueKeys(want.Healthy), trueKeys(want.Drain))
	f.want = append(f.want, want)
	return dataplane.Result{}, f.err
}

// trueKeys are a set's true entries, sorted.
func trueKeys(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// fakeCluster is the gossip view: this node's metadata is what it last
// published (SetLocal), the other members are set by the test.
type fakeCluster struct {
	log      *callLog
	self     string
	peers    []string // configured, self included
	local    cluster.Meta
	others   map[string]cluster.Member
	locals   []cluster.Local
	backends [][]cluster.BackendView
	// onSetLocal (if set) runs after each SetLocal: a peer reacting.
	onSetLocal func(l cluster.Local)
	// panicRouting is View.PanicRouting.
	panicRouting bool
	// changes is Changes (nil: never); views counts the View calls (one
	// or two a decision pass).
	changes chan struct{}
	views   atomic.Int64
}

func newFakeCluster(log *callLog, cfg *config.Config) *fakeCluster {
	f := &fakeCluster{log: log, self: cfg.Node.Name, peers: []string{cfg.Node.Name}, others: map[string]cluster.Member{},
		local: cluster.Meta{Name: cfg.Node.Name, Priority: cfg.Node.Priority}, panicRouting: cfg.Balance.PanicRouting}
	for _, p := range cfg.Peers {
		f.peers = append(f.peers, p.Name)
	}
	slices.Sort(f.peers)
	return f
}

// peer sets another member: fresh and eligible as said, with its claim.
func (f *fakeCluster) peer(name string, priority int, fresh, eligible bool, owner string, epoch uint64) {
	f.others[name] = cluster.Member{Name: name, Configured: slices.Contains(f.peers, name), State: cluster.StateAlive, Fresh: fresh,
		Meta: cluster.Meta{Name: name, Priority: priority, Eligible: eligible, Owner: owner, Epoch: epoch}}
}

func (f *fakeCluster) View() cluster.View {
	f.views.Add(1)
	v := cluster.View{Self: f.self, Peers: slices.Clone(f.peers), Taken: time.Now(), PanicRouting: f.panicRouting}
	v.Members = append(v.Members, cluster.Member{Name: f.self, Configured: true, State: cluster.StateAlive, Fresh: true, Meta: f.local})
	for _, m := range f.others {
		v.Members = append(v.Members, m)
	}
	slices.SortFunc(v.Members, func(a, b cluster.Member) int { return strings.Compare(a.Name, b.Name) })
	return v
}

func (f *fakeCluster) SetLocal(l cluster.Local) error {
	m := &f.local
	m.Priority, m.Eligible, m.Preempt = l.Priority, l.Eligible, l.Preempt
	m.Owner, m.Epoch, m.Digest = l.Owner, l.Epoch, cluster.ShortDigest(l.Digest)
	m.HandoffTo, m.Drained, m.DrainGen = l.HandoffTo, l.Drained, l.DrainGen
	f.locals = append(f.locals, l)
	if f.onSetLocal != nil {
		f.onSetLocal(l)
	}
	return nil
}

func (f *fakeCluster) last() cluster.Local { return f.locals[len(f.locals)-1] }

func (f *fakeCluster) SetBackends(views []cluster.BackendView) error {
	f.backends = append(f.backends, views)
	return nil
}

func (f *fakeCluster) SetPeers(peers []cluster.Peer) error {
	var names []string
	for _, p := range peers {
		names = append(names, p.Name+"="+p.Addr.String())
	}
	f.log.add("cluster.SetPeers %v", names)
	return nil
}

func (f *fakeCluster) SetPanicRouting(on bool) { f.panicRouting = on }

func (f *fakeCluster) Changes() <-chan struct{} { return f.changes }

func (f *fakeCluster) SetKeys(keys [][]byte) error {
	f.log.add("cluster.SetKeys %d", len(keys))
	return nil
}

func (f *fakeCluster) Leave(context.Context) error {
	f.log.add("cluster.Leave")
	return nil
}

type fakeSync struct{ log *callLog }

func (f *fakeSync) SetHolding(on bool) { f.log.add("sync.SetHolding %v", on) }

func (f *fakeSync) SetScope(vips, _ []netip.AddrPort) { f.log.add("sync.SetScope %v", vips) }

// fakeMonitor is a probe monitor whose snapshot the test sets.
type fakeMonitor struct {
	opts    probes.MonitorOptions
	mu      sync.Mutex
	snap    []probes.BackendStatus
	stopped chan struct{}
}

func (f *fakeMonitor) Run(ctx context.Context) error {
	<-ctx.Done()
	close(f.stopped)
	return nil
}

func (f *fakeMonitor) Snapshot() []probes.BackendStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.snap)
}

func (f *fakeMonitor) set(snap ...probes.BackendStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap = snap
}

// fakeBeat is a beat loop that hears nobody (its view leaves the gossip
// view as it is) and records its adverts.
type fakeBeat struct {
	log     *callLog
	cfg     heartbeat.Config
	changes chan struct{}
	done    chan struct{}
}

func (f *fakeBeat) View() heartbeat.View { return heartbeat.View{Threshold: 20 * time.Millisecond} }
func (f *fakeBeat) Refresh(a heartbeat.Advert) error {
	f.log.add("beat.Refresh owner=%s epoch=%d flags=%v", a.Owner, a.Epoch, a.Flags)
	return nil
}
func (f *fakeBeat) Changes() <-chan struct{}     { return f.changes }
func (f *fakeBeat) Done() <-chan struct{}        { return f.done }
func (f *fakeBeat) Err() error                   { return nil }
func (f *fakeBeat) Realtime() heartbeat.Realtime { return heartbeat.Realtime{} }
func (f *fakeBeat) Close() error {
	f.log.add("beat.Close %s", f.cfg.Bind)
	return nil
}

// rig is a daemon wired to fakes, with its loop state.
type rig struct {
	d        *Daemon
	s        *state
	log      *callLog
	vip      *fakeVIP
	dp       *fakeDatapath
	cl       *fakeCluster
	monitors []*fakeMonitor
	beats    []*fakeBeat
	// links is the link subscription (a test sends a change).
	links chan struct{}
}

func (r *rig) mon() *fakeMonitor { return r.monitors[len(r.monitors)-1] }

// testConfigSource is testConfig's config.hcl; the key file is "k".
const testConfigSource = `cluster_name = "t"
vip "198.18.5.100" {
  interface = "eth0"
}
node {
  name        = "lb1"
  gossip_bind = "198.18.5.11:7946"
}
peer "lb2" {
  address = "198.18.5.12:7946"
}
peer "lb3" {
  address = "198.18.5.13:8000"
}
gossip {
  key_file = "k"
}
backend "cp1" {
  address = "198.18.5.21"
}
backend "cp2" {
  address = "198.18.5.22"
  port = 8443
}
`

const testGossipKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"

// writeConfig writes src (and the gossip key) into dir and returns the
// config's path.
func writeConfig(t *testing.T, dir, src string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "k"), []byte(testGossipKey), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newRig loads testConfigSource (written to a temporary directory) and
// wires a daemon's loop state to fakes; the probe monitor and the beat
// loop run (fakes) as Run would start them.
func newRig(t *testing.T, opts Options) *rig {
	t.Helper()
	opts.ConfigPath = writeConfig(t, t.TempDir(), testConfigSource)
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg, err := load(opts.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateDir = t.TempDir()
	r := &rig{d: New(opts), log: &callLog{}, links: make(chan struct{})}
	r.d.start = starters{
		monitor: func(o probes.MonitorOptions) prober {
			m := &fakeMonitor{opts: o, stopped: make(chan struct{})}
			r.monitors = append(r.monitors, m)
			return m
		},
		heartbeat: func(_ context.Context, hc heartbeat.Config) (beatLoop, error) {
			b := &fakeBeat{log: r.log, cfg: hc, changes: make(chan struct{}), done: make(chan struct{})}
			r.beats = append(r.beats, b)
			r.log.add("beat.Start %s", hc.Bind)
			return b, nil
		},
		links: func(context.Context, func(error)) (<-chan struct{}, error) { return r.links, nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r.s = newState(ctx, cfg)
	r.vip = &fakeVIP{log: r.log, on: map[string]bool{}}
	r.dp = &fakeDatapath{log: r.log}
	r.cl = newFakeCluster(r.log, cfg)
	r.s.vip, r.s.lease, r.s.dp, r.s.cl, r.s.sync = r.vip, &fakeLease{log: r.log}, r.dp, r.cl, &fakeSync{log: r.log}
	r.s.ifaceUp = true
	if err := r.d.startMonitor(r.s); err != nil {
		t.Fatal(err)
	}
	r.d.startBeater(r.s)
	r.d.st = r.s
	t.Cleanup(func() { r.s.monStop(); <-r.s.monDone })
	r.log.reset()
	return r
}

// eligible makes the rig's node eligible: both backends programmed
// healthy, the interface up, past its startup wait.
func (r *rig) eligible() {
	r.s.reconciled, r.s.programmed, r.s.drained = true, map[string]bool{"cp1": true, "cp2": true}, map[string]bool{}
	r.s.ifaceUp, r.s.waiting = true, false
}

// hold makes the rig's node the holder of the VIP with epoch.
func (r *rig) hold(epoch uint64) {
	p := vipPlaces(r.s.cfg)
	for _, x := range p {
		r.vip.on[x.Interface+" "+x.Addr.String()] = true
	}
	r.s.held, r.s.holding = p, true
	r.s.last = cluster.Decision{Hold: true, Owner: r.s.cfg.Node.Name, Epoch: epoch}
}

// events are the recorded events of kind, as "subject: message".
func (r *rig) events(kind EventKind) []string {
	var out []string
	for _, e := range r.d.Events() {
		if e.Kind == kind {
			out = append(out, e.Subject+": "+e.Message)
		}
	}
	return out
}

var errFake = errors.New("fake failure")
