package heartbeat

// The beat loop's configuration (Config, Peer), what the daemon asks its
// beats to say (Advert) and the liveness picture it reads back (View).

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// Defaults of Config.
const (
	// DefaultTokenRefresh is how often the daemon should call
	// Beater.Refresh.
	DefaultTokenRefresh = 50 * time.Millisecond
	// DefaultTokenTTL is how long one Refresh keeps the loop beating: a
	// daemon that stops refreshing (hung, deadlocked) stops beating after
	// this long, and its peers declare it gone one threshold later. (A
	// crashed daemon is seen at once: the helper exits when its control
	// socket closes.) It was 200 ms: with both cores saturated the daemon,
	// at normal priority, sometimes missed it and the owner's beats
	// stopped, a false failover in 1 of 3 saturation drills; at 1 s, 0 of 5.
	// The daemon renews it from a keeper thread at real-time priority as
	// long as its decision loop makes progress (internal/daemon keeper.go).
	DefaultTokenTTL = time.Second
	// DefaultReportInterval is how often the loop reports to the daemon
	// when nothing changed (a change is reported at the tick that sees it).
	DefaultReportInterval = 20 * time.Millisecond
	// staleReports is how many report intervals without a report make the
	// daemon's view stale.
	staleReports = 3
	// startTimeout bounds Start when ctx has no deadline.
	startTimeout = 10 * time.Second
	// stopTimeout bounds waiting for the helper to exit on Close before it
	// is killed.
	stopTimeout = 2 * time.Second
	// RecvBuffer is the receive buffer asked for the heartbeat socket
	// (SO_RCVBUFFORCE, so net.core.rmem_max does not cap it; SO_RCVBUF
	// without CAP_NET_ADMIN). The kernel charges a datagram's whole buffer
	// (about 1 KiB for a 60-byte datagram), so this holds a few thousand
	// datagrams: a burst of junk that arrives while the loop waits for its
	// next tick does not push the peers' beats out.
	RecvBuffer = 4 << 20
	// dscpCS6 is the traffic class of the beats (network control, as VRRP).
	dscpCS6 = 0xc0
)

// TestAnySourceEnv, set to 1 in the daemon's environment, makes the beat
// loop read datagrams from any source against the peers' budget, as
// releases before the source check did. It exists for the flood drill's
// control run only; never set it in production.
const TestAnySourceEnv = "EPCONSOLE_TEST_HEARTBEAT_ANY_SOURCE"

// Peer is another LB node: its name and the address its heartbeat socket
// listens on.
type Peer struct {
	Name string
	Addr netip.AddrPort
}

// Config configures Start.
type Config struct {
	// Self is this node's name.
	Self string
	// Cluster is the cluster's name: beats carry it (datagram version 2),
	// and beats of another cluster are ignored (Stats.OtherCluster).
	Cluster string
	// Bind is the local address and port of the heartbeat socket. Peers
	// must be of the same address family.
	Bind netip.AddrPort
	// Peers are the other configured nodes (at most MaxPeers).
	Peers []Peer
	// Keys is the gossip keyring, primary first: beats are sealed with the
	// key derived from the primary and accepted under any of them.
	Keys [][]byte
	// Interval is the beat interval (0: DefaultInterval).
	Interval time.Duration
	// Misses is the threshold, in intervals, for a peer running at real-time
	// priority (0: DefaultMisses).
	Misses int
	// SlowMisses is the threshold for a peer without real-time priority
	// (0: SlowMissesFactor * Misses).
	SlowMisses int
	// TokenTTL is how long a Refresh keeps the loop beating
	// (0: DefaultTokenTTL).
	TokenTTL time.Duration
	// ReportInterval is how often the loop reports when nothing changed
	// (0: DefaultReportInterval).
	ReportInterval time.Duration
	// NoRealtime keeps the helper at normal priority.
	NoRealtime bool
	// Priority is the SCHED_FIFO priority (0: DefaultPriority).
	Priority int
	// InProcess runs the loop on a locked goroutine of this process
	// instead of a helper process: same loop, same control channel, no
	// real-time priority. For tests.
	InProcess bool
	// Executable is the binary started as the helper (default: this
	// process's own executable as it was when RunHelper ran first, even
	// if the file was replaced since; main must call RunHelper).
	Executable string
	// Stderr receives the helper's error output (default os.Stderr).
	Stderr io.Writer
	// Logger logs starts, stops and failures (default slog.Default()).
	Logger *slog.Logger

	// Claim switches the helper's claim and its renewal of the owner
	// lease on (claim.go; nil: off, the daemon does both).
	Claim *ClaimConfig

	// credential runs the helper as another user (tests: without
	// CAP_SYS_NICE).
	credential *syscall.Credential
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Misses <= 0 {
		c.Misses = DefaultMisses
	}
	if c.SlowMisses <= 0 {
		c.SlowMisses = SlowMissesFactor * c.Misses
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.ReportInterval <= 0 {
		c.ReportInterval = DefaultReportInterval
	}
	if c.Priority <= 0 {
		c.Priority = DefaultPriority
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Advert is what the daemon wants its beats to say.
type Advert struct {
	// Owner is the VIP owner this node believes in ("" none).
	Owner string
	// Epoch is the epoch of that owner's claim.
	Epoch uint64
	// Flags: FlagHolding and FlagLeaving; other bits are the loop's.
	Flags Flags
}

// View is the daemon's picture of liveness, from the loop's latest report.
type View struct {
	// Self is this node's name; Boot the loop's boot ID.
	Self string
	Boot uint64
	// At is when the loop made the report (the loop's clock, which is this
	// process's clock too).
	At Mono
	// Stale: no report for staleReports report intervals; the loop is
	// stuck or gone, so every peer counts as dead and Majority is false.
	Stale bool
	// Beating: the liveness token is fresh and the loop sends beats.
	Beating bool
	// Majority: this node holds fresh beats from a majority of the
	// configured nodes (itself included).
	Majority bool
	// Realtime says whether the loop runs at real-time priority.
	Realtime Realtime
	// Threshold and SlowThreshold are how long a peer stays alive after a
	// beat, when that peer runs at real-time priority and when it does not.
	Threshold, SlowThreshold time.Duration
	// Peers in configuration order.
	Peers []PeerView
	// Stats are the loop's counters.
	Stats Stats
}

// PeerView is one peer as the loop sees it.
type PeerView struct {
	Name string
	Addr netip.AddrPort
	// Alive: a fresh beat within the peer's threshold.
	Alive bool
	// Seen: a beat was accepted since the loop started.
	Seen bool
	// LastBeat is when the last fresh beat arrived.
	LastBeat Mono
	// Boot and Seq identify the last fresh beat.
	Boot, Seq uint64
	// Flags, Owner (name, "" none; the ID in hex when not a configured
	// node), OwnerID and Epoch are the peer's claims.
	Flags   Flags
	Owner   string
	OwnerID NodeID
	Epoch   uint64
	// Realtime: the peer's loop runs at real-time priority (short
	// threshold).
	Realtime bool
}

// Peer returns the named peer's view and whether it is configured.
func (v View) Peer(name string) (PeerView, bool) {
	for _, p := range v.Peers {
		if p.Name == name {
			return p, true
		}
	}
	return PeerView{}, false
}
