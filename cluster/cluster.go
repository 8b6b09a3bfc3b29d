package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/epconsole/epconsole/internal/floodlimit"
	"github.com/hashicorp/memberlist"
)

// ErrShutdown is returned by methods called after Shutdown.
var ErrShutdown = errors.New("cluster is shut down")

// Peer is another configured LB node.
type Peer struct {
	Name string
	Addr netip.AddrPort
}

// Local is the part of this node's metadata the daemon sets (SetLocal);
// name, version and boot ID are fixed for the life of a Cluster.
type Local struct {
	Priority int
	Eligible bool
	Preempt  bool
	// Owner and Epoch are the latest Decision's Owner and Epoch.
	Owner string
	Epoch uint64
	// Digest is the config digest; it is shortened with ShortDigest.
	Digest string
	// HandoffTo, Drained and DrainGen are published as in Meta.
	HandoffTo string
	Drained   string
	DrainGen  uint64
}

// Timers tune memberlist and the cluster's background loops. Zero fields
// take the value of DefaultTimers.
type Timers struct {
	// ProbeInterval / ProbeTimeout: memberlist's failure probes.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// SuspicionMult: memberlist suspects a node for
	// SuspicionMult * max(1, log10(N)) * ProbeInterval before declaring it dead.
	SuspicionMult int
	// GossipInterval: how often queued gossip (metadata, backend views) is sent.
	GossipInterval time.Duration
	// PushPullInterval: full state exchange with one random member.
	PushPullInterval time.Duration
	// TCPTimeout bounds memberlist's stream connections (join, push/pull).
	TCPTimeout time.Duration
	// SuspectAfter: a member not heard from directly for this long is shown
	// as suspect. Zero: 4 probe rounds, 4 * ProbeInterval * (members - 1).
	SuspectAfter time.Duration
	// RejoinMin / RejoinMax bound the backoff of the loop that joins
	// configured peers not currently alive (at start and after a partition).
	RejoinMin time.Duration
	RejoinMax time.Duration
	// LeaveTimeout bounds Leave when its context has no deadline.
	LeaveTimeout time.Duration
}

// DefaultTimers are for a LAN of a few LB nodes. memberlist keeps
// membership, metadata and backend views; the VIP's fast failure detection
// is the heartbeat's, so these favour a calm memberlist over speed:
// probes every 200 ms with a 100 ms ack timeout (LAN round trips are well
// under 1 ms; the margin is for a loaded 2-core host), suspicion
// multiplier 4 (a dead node is declared in about 1 s), gossip every
// 100 ms, a full push/pull every 5 s (backend views are small), and
// rejoin attempts backing off from 250 ms to 5 s.
func DefaultTimers() Timers {
	return Timers{
		ProbeInterval:    200 * time.Millisecond,
		ProbeTimeout:     100 * time.Millisecond,
		SuspicionMult:    4,
		GossipInterval:   100 * time.Millisecond,
		PushPullInterval: 5 * time.Second,
		TCPTimeout:       2 * time.Second,
		RejoinMin:        250 * time.Millisecond,
		RejoinMax:        5 * time.Second,
		LeaveTimeout:     2 * time.Second,
	}
}

func (t Timers) withDefaults() Timers {
	d := DefaultTimers()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&t.ProbeInterval, d.ProbeInterval)
	set(&t.ProbeTimeout, d.ProbeTimeout)
	set(&t.GossipInterval, d.GossipInterval)
	set(&t.PushPullInterval, d.PushPullInterval)
	set(&t.TCPTimeout, d.TCPTimeout)
	set(&t.RejoinMin, d.RejoinMin)
	set(&t.RejoinMax, d.RejoinMax)
	set(&t.LeaveTimeout, d.LeaveTimeout)
	if t.SuspicionMult <= 0 {
		t.SuspicionMult = d.SuspicionMult
	}
	if t.RejoinMax < t.RejoinMin {
		t.RejoinMax = t.RejoinMin
	}
	return t
}

// Config configures a Cluster.
type Config struct {
	// Name is this node's name, unique among the peers.
	Name string
	// Bind is the address:port memberlist listens on (TCP and UDP).
	Bind netip.AddrPort
	// Advertise is the address:port peers reach this node on (default Bind).
	Advertise netip.AddrPort
	// Peers are the other configured nodes; the cluster keeps joining the
	// ones that are not alive.
	Peers []Peer
	// Keys is the gossip keyring, primary first (16, 24 or 32 bytes each).
	// Gossip is always encrypted and authenticated; there is no plaintext mode.
	Keys [][]byte
	// Local is this node's initial metadata.
	Local Local
	// Version is the software version published in the metadata.
	Version string
	// Timers tune memberlist; zero fields take DefaultTimers.
	Timers Timers
	// Events receives cluster events; nil: none. Sends never block.
	Events chan<- Event
	// Logger receives the cluster's and memberlist's logs (default slog.Default()).
	Logger *slog.Logger
	// PanicRouting is carried into every View (View.PanicRouting): with
	// no eligible member, Elect picks among the live ones.
	PanicRouting bool
}

// Stats counts what the cluster dropped or rejected.
type Stats struct {
	// EventsDropped: events not delivered because Config.Events was full.
	EventsDropped uint64
	// KeyMismatches: gossip packets and streams rejected because they were
	// not encrypted with a key of the keyring.
	KeyMismatches uint64
	// DecodeErrors: metadata, messages or state that could not be decoded.
	DecodeErrors uint64
	// MembersRejected: alive messages and joins refused because the node
	// is no configured peer or not at its configured address.
	MembersRejected uint64
	// StateIgnored: metadata, backend views, drain sets, messages and
	// push/pull states ignored because their origin is no configured peer.
	StateIgnored uint64
}

// memberRec is what the cluster knows about another member.
type memberRec struct {
	name       string
	addr       netip.AddrPort
	state      MemberState
	stateSince time.Time
	meta       Meta
	metaErr    string
	lastSeen   time.Time
	rtt        time.Duration
}

// backendRec is one origin's view of one backend.
type backendRec struct {
	w        wireBackend
	received time.Time
}

// Cluster is this node's membership in the gossip cluster. Its methods are
// safe for concurrent use.
type Cluster struct {
	cfg    Config
	timers Timers
	log    *slog.Logger
	ml     *memberlist.Memberlist
	queue  *memberlist.TransmitLimitedQueue
	// keyring is the one memberlist uses (it has its own lock).
	keyring *memberlist.Keyring

	// mu guards everything below. Never call into memberlist while holding
	// it: memberlist calls the delegates with its own locks held.
	mu        sync.Mutex
	local     Meta
	metaBytes []byte
	peers     []Peer
	members   map[string]*memberRec
	backends  map[string]map[string]*backendRec // origin -> backend -> view
	lastSeq   uint64
	// drains is the newest drain record of each configured peer (drain.go).
	drains map[string]wireDrain

	// limiter bounds the events and logLimiter the log lines that
	// traffic from the network causes (floodlimit).
	limiter    *floodlimit.Limiter
	logLimiter *floodlimit.Limiter

	metaDirty chan struct{}
	// changes signals a change of the view (Changes).
	changes chan struct{}
	// joinWake wakes joinLoop: a member was declared dead or left, or
	// the configured peers changed.
	joinWake chan struct{}
	metaMu   sync.Mutex // serialises UpdateNode calls (metaLoop, Leave)
	lifeMu   sync.Mutex // serialises Leave and Shutdown
	left     atomic.Bool
	shut     atomic.Bool
	done     chan struct{}
	stopCtx  func() bool
	wg       sync.WaitGroup

	// streams takes the sync streams off the gossip TCP port (stream.go).
	streams *streamTransport

	// userMsg receives the payloads of SendTo (usermsg.go); nil: dropped.
	userMsg atomic.Pointer[func(from string, payload []byte)]

	// panicRouting is View.PanicRouting (Config.PanicRouting, SetPanicRouting).
	panicRouting atomic.Bool

	eventsDropped atomic.Uint64
	keyMismatches atomic.Uint64
	decodeErrors  atomic.Uint64
	rejected      atomic.Uint64
	ignored       atomic.Uint64
}

// New starts this node's memberlist, encrypted and authenticated with the
// keyring, and joins the configured peers in the background: a peer not
// alive is retried with a bounded backoff for as long as the Cluster runs,
// which also re-merges the cluster after a partition heals. New does not
// wait for a join. When ctx ends, the Cluster shuts down (without Leave).
func New(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !cfg.Bind.IsValid() {
		return nil, fmt.Errorf("cluster: bind address %v is not ip:port", cfg.Bind)
	}
	if !cfg.Advertise.IsValid() {
		cfg.Advertise = cfg.Bind
	}
	if cfg.Advertise.Addr().IsUnspecified() {
		return nil, fmt.Errorf("cluster: advertise address %v: set one peers can reach", cfg.Advertise)
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("cluster: no gossip key: gossip is always encrypted")
	}
	for i, k := range cfg.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("cluster: gossip key %d: %w", i+1, err)
		}
	}
	for _, p := range cfg.Peers {
		if p.Name == cfg.Name || p.Name == "" || !p.Addr.IsValid() {
			return nil, fmt.Errorf("cluster: bad peer %q at %v", p.Name, p.Addr)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Cluster{
		cfg:        cfg,
		timers:     cfg.Timers.withDefaults(),
		log:        cfg.Logger.With("component", "cluster", "node", cfg.Name),
		peers:      slices.Clone(cfg.Peers),
		members:    map[string]*memberRec{},
		backends:   map[string]map[string]*backendRec{},
		drains:     map[string]wireDrain{},
		limiter:    floodlimit.New(reportWindow, reportBurst, 0, nil),
		logLimiter: floodlimit.New(reportWindow, logReportBurst, 0, nil),
		metaDirty:  make(chan struct{}, 1),
		changes:    make(chan struct{}, 1),
		joinWake:   make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	c.panicRouting.Store(cfg.PanicRouting)
	var boot [8]byte
	if _, err := rand.Read(boot[:]); err != nil {
		return nil, fmt.Errorf("cluster: boot ID: %w", err)
	}
	c.local = Meta{Name: cfg.Name, Version: cut(cfg.Version, MaxVersionLen), BootID: hex.EncodeToString(boot[:])}
	c.local = c.local.with(cfg.Local)
	b, err := encodeMeta(c.local)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c.metaBytes = b

	keyring, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
	if err != nil {
		return nil, fmt.Errorf("cluster: keyring: %w", err)
	}
	c.keyring = keyring
	c.queue = &memberlist.TransmitLimitedQueue{NumNodes: c.numAlive, RetransmitMult: 4}

	t := c.timers
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr = cfg.Bind.Addr().String()
	mc.BindPort = int(cfg.Bind.Port())
	mc.AdvertiseAddr = cfg.Advertise.Addr().String()
	mc.AdvertisePort = int(cfg.Advertise.Port())
	mc.Keyring = keyring
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.SuspicionMult = t.SuspicionMult
	mc.GossipInterval = t.GossipInterval
	mc.PushPullInterval = t.PushPullInterval
	mc.TCPTimeout = t.TCPTimeout
	mc.GossipToTheDeadTime = 10 * t.ProbeInterval * time.Duration(t.SuspicionMult)
	mc.DeadNodeReclaimTime = 30 * time.Second // a node may come back with a new address
	mc.RetransmitMult = c.queue.RetransmitMult
	mc.Delegate = &delegate{c}
	mc.Events = &eventDelegate{c}
	mc.Ping = &pingDelegate{c}
	mc.Conflict = &conflictDelegate{c}
	mc.Alive = &aliveDelegate{c}
	mc.Merge = &mergeDelegate{c}
	mc.Logger = log.New(&logBridge{c}, "", 0)

	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger})
	if err != nil {
		return nil, fmt.Errorf("cluster: starting memberlist on %v: %w", cfg.Bind, err)
	}
	if mc.BindPort == 0 {
		mc.BindPort = nt.GetAutoBindPort()
		if mc.AdvertisePort == 0 {
			mc.AdvertisePort = mc.BindPort
		}
	}
	c.streams = newStreamTransport(nt, c.isPeerAddr)
	mc.Transport = c.streams
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = c.streams.Shutdown()
		return nil, fmt.Errorf("cluster: starting memberlist on %v: %w", cfg.Bind, err)
	}
	c.ml = ml
	c.log.Info("gossip started", "bind", cfg.Bind, "advertise", cfg.Advertise, "peers", len(cfg.Peers),
		"keys", len(cfg.Keys), "probe_interval", t.ProbeInterval, "probe_timeout", t.ProbeTimeout)

	c.wg.Add(3)
	go c.joinLoop()
	go c.metaLoop()
	go c.summaryLoop()
	c.lifeMu.Lock()
	c.stopCtx = context.AfterFunc(ctx, func() { _ = c.Shutdown() })
	c.lifeMu.Unlock()
	return c, nil
}

// with returns m with the settable fields from l.
func (m Meta) with(l Local) Meta {
	m.Priority, m.Eligible, m.Preempt = l.Priority, l.Eligible, l.Preempt
	m.Owner, m.Epoch, m.Digest = l.Owner, l.Epoch, ShortDigest(l.Digest)
	m.HandoffTo, m.Drained, m.DrainGen = l.HandoffTo, l.Drained, l.DrainGen
	return m
}

// Name is this node's name.
func (c *Cluster) Name() string { return c.cfg.Name }

// LocalMeta returns this node's current metadata.
func (c *Cluster) LocalMeta() Meta {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local
}

// SetLocal updates this node's metadata and gossips it (in the
// background; SetLocal does not wait for the network). Setting the same
// values again is free.
func (c *Cluster) SetLocal(l Local) error {
	if c.shut.Load() {
		return ErrShutdown
	}
	c.mu.Lock()
	m := c.local.with(l)
	if m == c.local {
		c.mu.Unlock()
		return nil
	}
	b, err := encodeMeta(m)
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("cluster: %w", err)
	}
	drainChanged := m.Drained != c.local.Drained || m.DrainGen != c.local.DrainGen
	c.local, c.metaBytes = m, b
	c.mu.Unlock()
	if drainChanged {
		c.queueDrain(wireDrain{Origin: m.Name, Gen: m.DrainGen, Set: m.Drained})
	}
	select {
	case c.metaDirty <- struct{}{}:
	default:
	}
	return nil
}

// metaLoop re-advertises the local node after SetLocal, coalescing changes.
func (c *Cluster) metaLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.metaDirty:
		}
		c.metaMu.Lock()
		if !c.left.Load() {
			// UpdateNode waits until the update was gossiped to someone,
			// or the timeout; either way it is queued. The wait is short
			// so that Shutdown is not held up.
			if err := c.ml.UpdateNode(max(5*c.timers.GossipInterval, 100*time.Millisecond)); err != nil && !c.shut.Load() {
				c.log.Debug("metadata update not yet gossiped", "err", err)
			}
		}
		c.metaMu.Unlock()
	}
}

// SetBackends replaces this node's backend views and gossips what changed:
// a state, reason or since change is broadcast at once; a latency-only
// change travels with the next push/pull. Backends no longer listed are
// withdrawn.
func (c *Cluster) SetBackends(views []BackendView) error {
	if c.shut.Load() {
		return ErrShutdown
	}
	for _, v := range views {
		if v.Name == "" || len(v.Name) > MaxNameLen {
			return fmt.Errorf("cluster: backend name %q: must be 1..%d bytes", v.Name, MaxNameLen)
		}
	}
	now := time.Now()
	var out []*broadcast
	c.mu.Lock()
	self := c.cfg.Name
	own := c.backends[self]
	if own == nil {
		own = map[string]*backendRec{}
		c.backends[self] = own
	}
	seen := map[string]bool{}
	for _, v := range views {
		seen[v.Name] = true
		old := own[v.Name]
		w := toWire(self, 0, v)
		if old != nil && !old.w.Gone && old.w.State == w.State && old.w.Reason == w.Reason &&
			old.w.Since == w.Since && old.w.Latency == w.Latency {
			continue
		}
		w.Seq = c.nextSeqLocked()
		own[v.Name] = &backendRec{w: w, received: now}
		if old == nil || old.w.Gone || old.w.State != w.State || old.w.Reason != w.Reason || old.w.Since != w.Since {
			if b, err := encodeBackendMsg(w); err == nil {
				out = append(out, newBroadcast(w, b))
			}
		}
	}
	for name, r := range own {
		if seen[name] || r.w.Gone {
			continue
		}
		w := wireBackend{Origin: self, Seq: c.nextSeqLocked(), Name: name, Gone: true}
		own[name] = &backendRec{w: w, received: now}
		if b, err := encodeBackendMsg(w); err == nil {
			out = append(out, newBroadcast(w, b))
		}
	}
	c.mu.Unlock()
	for _, b := range out {
		c.queue.QueueBroadcast(b)
	}
	return nil
}

// nextSeqLocked returns a sequence number for this node's backend views:
// the wall clock in nanoseconds, or one more than the last if the clock
// has not moved on, so a restarted node's views supersede its old ones.
func (c *Cluster) nextSeqLocked() uint64 {
	s := uint64(time.Now().UnixNano())
	if s <= c.lastSeq {
		s = c.lastSeq + 1
	}
	c.lastSeq = s
	return s
}

// SetPanicRouting sets View.PanicRouting (on a config reload).
func (c *Cluster) SetPanicRouting(on bool) { c.panicRouting.Store(on) }

// SetPeers replaces the configured peers (on a config reload). The join
// loop picks up new ones; peers no longer configured stay members until
// they leave, but no longer count as configured, their alive messages
// are refused and what they published (metadata, backend views, drain
// set) is forgotten.
func (c *Cluster) SetPeers(peers []Peer) error {
	for _, p := range peers {
		if p.Name == c.cfg.Name || p.Name == "" || !p.Addr.IsValid() {
			return fmt.Errorf("cluster: bad peer %q at %v", p.Name, p.Addr)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peers = slices.Clone(peers)
	select {
	case c.joinWake <- struct{}{}: // joinLoop: new peers to join
	default:
	}
	for name, r := range c.members {
		if err := c.admitLocked(name, r.addr); err != nil {
			r.meta, r.metaErr = Meta{}, "metadata ignored: "+err.Error()
			delete(c.backends, name)
			delete(c.drains, name)
		}
	}
	for name := range c.drains {
		if !c.isPeerLocked(name) {
			delete(c.drains, name)
		}
	}
	return nil
}

// SetKeys replaces the gossip keyring (on a config reload): new keys are
// installed, the first becomes primary, keys no longer listed are removed.
func (c *Cluster) SetKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return errors.New("cluster: no gossip key")
	}
	for i, k := range keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return fmt.Errorf("cluster: gossip key %d: %w", i+1, err)
		}
	}
	kr := c.keyring
	for _, k := range keys {
		if err := kr.AddKey(k); err != nil {
			return fmt.Errorf("cluster: installing gossip key: %w", err)
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return fmt.Errorf("cluster: switching primary gossip key: %w", err)
	}
	for _, old := range kr.GetKeys() {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return string(k) == string(old) }) {
			if err := kr.RemoveKey(old); err != nil {
				return fmt.Errorf("cluster: removing gossip key: %w", err)
			}
		}
	}
	return nil
}
