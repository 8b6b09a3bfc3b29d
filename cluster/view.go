package cluster

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// MemberState is how the gossip layer sees a member.
type MemberState int

// Member states.
const (
	// StateUnknown: a configured peer never heard from.
	StateUnknown MemberState = iota
	// StateAlive: memberlist lists the member and it was heard recently.
	StateAlive
	// StateSuspect: memberlist still lists the member, but nothing was
	// heard from it directly (probe ack, its own gossip, state sync) for
	// longer than the suspect threshold. memberlist has no callback for its
	// own suspicion, so this is the cluster package's reading.
	StateSuspect
	// StateDead: memberlist declared the member failed.
	StateDead
	// StateLeft: the member left gracefully.
	StateLeft
)

var memberStateNames = [...]string{"unknown", "alive", "suspect", "dead", "left"}

// String returns the state's name ("alive", "dead", ...).
func (s MemberState) String() string {
	if s < 0 || int(s) >= len(memberStateNames) {
		return "invalid"
	}
	return memberStateNames[s]
}

// MarshalText encodes the state as its name (for the status JSON).
func (s MemberState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Meta is what a node publishes about itself in its memberlist metadata.
type Meta struct {
	// Name is the node's name (the same as its memberlist name).
	Name string
	// Priority orders owner candidates: higher wins (1..255).
	Priority int
	// Eligible: the node's own probes see at least one healthy backend and
	// its VIP interface is up.
	Eligible bool
	// Preempt: the node takes the VIP from a current owner of lower priority.
	Preempt bool
	// Owner is the member this node believes holds the VIP, from what it
	// hears directly; its own name when it claims the VIP. Empty: none.
	Owner string
	// Epoch is the epoch of Owner's claim, or the highest epoch the node
	// knows when Owner is empty.
	Epoch uint64
	// Version is the node's software version.
	Version string
	// Digest is the short config digest (ShortDigest of config.Digest).
	Digest string
	// BootID identifies the node's process start (random per start).
	BootID string
	// Leaving: the node is leaving the cluster gracefully (Cluster.Leave);
	// it is no candidate, and its departure is reported as a leave, not a
	// failure.
	Leaving bool
	// HandoffTo names the peer the owner hands the VIP to on an operator's
	// request (empty: none). Elect then elects that peer while it is a
	// live, eligible candidate, and the owner releases once its claim is
	// seen (make before break).
	HandoffTo string
	// Drained is the cluster-wide set of backends an operator drained,
	// comma-separated in config order, and DrainGen its generation: every
	// node adopts the set with the highest generation (then the greater
	// name's), so the last drain or undrain wins everywhere.
	Drained  string
	DrainGen uint64
	// NamedMessages: the node's binary sends and reads user messages that
	// name their sender (set by the cluster package itself, not by the
	// caller). A node without it runs the previous version: it is sent
	// the previous form, and its own unnamed messages are taken while it
	// is a member (a rolling upgrade).
	NamedMessages bool
	// SyncStream: the node takes the connection sync's persistent stream
	// on its gossip TCP port (stream.go; set by the cluster package
	// itself). A node without it is sent the sync as user messages.
	SyncStream bool
}

// Claims reports whether the node claims the VIP for itself.
func (m Meta) Claims() bool { return m.Owner != "" && m.Owner == m.Name }

// candidate reports whether the node offers to own the VIP.
func (m Meta) candidate() bool { return m.Eligible && !m.Leaving }

// ShortDigestLen is the length of a short config digest.
const ShortDigestLen = 16

// ShortDigest shortens a hex config digest (config.Config.Digest) to the
// ShortDigestLen characters published in Meta: 64 bits, plenty to tell
// configs apart, and small enough for memberlist's 512-byte metadata.
func ShortDigest(d string) string {
	if len(d) > ShortDigestLen {
		return d[:ShortDigestLen]
	}
	return d
}

// BackendView is one node's probe result for one backend, as gossiped.
type BackendView struct {
	// Name is the backend's name from the config.
	Name string
	// State is the probe state ("up", "down", ...), as the prober names it.
	State string
	// Latency is the last probe's duration.
	Latency time.Duration
	// Reason says why the backend is in State (gossiped up to
	// MaxReasonLen bytes).
	Reason string
	// Since is when the backend entered State.
	Since time.Time
}

// Member is one node as this node sees it.
type Member struct {
	Name string
	// Addr is the member's gossip address (zero if never heard from).
	Addr netip.AddrPort
	// Configured: the member is this node or one of its configured peers.
	// Only configured members count for the majority and can own the VIP.
	Configured bool
	// State is the gossip state.
	State MemberState
	// StateSince is when State last changed (zero if unknown).
	StateSince time.Time
	// Fresh is the liveness input of Elect: this node hears the member right
	// now. View fills it from the gossip state (alive); the daemon replaces
	// it with the heartbeat layer's verdict (View.WithLiveness). This node
	// is always fresh in its own View.
	Fresh bool
	// NoMajority: the member is fresh but says it does not hear a
	// majority: a partition is forming around it. Elect makes no new
	// claim meanwhile (what it sees of the other side may be a beat or two
	// from going stale too). The daemon sets it from the beats for at
	// most a short hold-off, so that a peer with a partial view cannot
	// block an election for long.
	NoMajority bool
	// Meta is the member's published metadata (zero if not yet known or
	// undecodable).
	Meta Meta
	// MetaErr says why the metadata could not be decoded ("" if fine).
	MetaErr string
	// Backends is the member's view of every backend, sorted by name.
	Backends []BackendView
	// LastSeen is when this node last heard from the member: a probe ack,
	// a push/pull with it, or news of its metadata (zero if never).
	LastSeen time.Time
	// RTT is the round trip of this node's last successful probe of the member.
	RTT time.Duration
}

// View is a snapshot of the whole cluster as one node sees it.
type View struct {
	// Self is the name of the node that took the snapshot.
	Self string
	// Peers are the names of all configured nodes, this one included, sorted.
	Peers []string
	// Members are all known and configured members, sorted by name.
	Members []Member
	// Taken is when the snapshot was taken.
	Taken time.Time
	// SuspectAfter is how long after its LastSeen an alive member is shown
	// as suspect (zero: not said).
	SuspectAfter time.Duration
	// PanicRouting: with no eligible member, Elect picks among the live,
	// not leaving ones (their backends are forwarded to unprobed, see
	// Elect); false: no member is elected then.
	PanicRouting bool
}

// Member returns the member called name.
func (v View) Member(name string) (Member, bool) {
	i, ok := slices.BinarySearchFunc(v.Members, name, func(m Member, n string) int { return strings.Compare(m.Name, n) })
	if !ok {
		// Views built by hand may be unsorted.
		i = slices.IndexFunc(v.Members, func(m Member) bool { return m.Name == name })
		if i < 0 {
			return Member{}, false
		}
	}
	return v.Members[i], true
}

// Liveness is what the heartbeat layer knows about one peer right now.
type Liveness struct {
	// Fresh: beats from the peer arrived within the threshold.
	Fresh bool
	// NoMajority: the peer is fresh and its beats say it does not hear a
	// majority itself (it is on the small side of a partition that is
	// forming). The caller keeps it only briefly (see Member.NoMajority).
	NoMajority bool
	// HasOwner: the latest beat carried the peer's owner belief (Owner,
	// Epoch), which is newer than its gossiped Meta.
	HasOwner bool
	Owner    string
	Epoch    uint64
	// Leaving: the peer's beats say it is stopping gracefully (sooner
	// than its gossiped Meta.Leaving); it then counts for nothing but
	// its own handoff (Elect).
	Leaving bool
}

// WithLiveness returns a copy of v whose members' Fresh (and, for fresh
// members whose beats carry it, owner belief and leaving) come from live, the
// heartbeat layer's verdict. Members without an entry in live keep theirs.
func (v View) WithLiveness(live map[string]Liveness) View {
	out := v
	out.Members = slices.Clone(v.Members)
	for i := range out.Members {
		m := &out.Members[i]
		l, ok := live[m.Name]
		if !ok {
			continue
		}
		m.Fresh = l.Fresh
		m.NoMajority = l.Fresh && l.NoMajority
		if l.Fresh && l.HasOwner {
			m.Meta.Owner, m.Meta.Epoch = l.Owner, l.Epoch
		}
		if l.Fresh && l.Leaving {
			m.Meta.Leaving = true
		}
	}
	return out
}
