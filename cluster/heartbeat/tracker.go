package heartbeat

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of the liveness rules.
const (
	// DefaultInterval is how often every peer beats to every peer.
	DefaultInterval = 3 * time.Millisecond
	// DefaultMisses is how many intervals without a fresh beat declare a
	// peer gone (5 x 3 ms = 15 ms): two beats lost in a row (a 9 ms gap)
	// plus the worst send lateness measured under saturation, 1 % loss
	// and a junk flood (3.6 ms) stay 2.4 ms under it (docs/daemon.md,
	// "Heartbeat under load").
	DefaultMisses = 5
	// SlowMissesFactor multiplies Misses for a sender whose beat loop does
	// not run at real-time priority (it did not set FlagRealtime): its
	// beats jitter with the scheduler, so it is given twice as long
	// (10 x 3 ms = 30 ms by default).
	SlowMissesFactor = 2
	// MaxPeers bounds the configured peers (not counting this node).
	MaxPeers = 15
	// retiredBoots is how many earlier boot IDs per peer are remembered
	// and refused.
	retiredBoots = 8
)

// DefaultDetectionTime is how long after a real-time peer's last beat
// it is seen gone with the default interval and misses.
const DefaultDetectionTime = DefaultMisses * DefaultInterval

// DetectionTime is how long after a real-time peer's last fresh beat the
// peer is seen gone: interval × misses (0 for either: its default). The
// beat loop decides at that moment (loop.go's schedule), so it is also
// the failover's detection time; whatever follows the detection in time
// (the owner lease, the claim) takes its length from here.
func DetectionTime(interval time.Duration, misses int) time.Duration {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if misses <= 0 {
		misses = DefaultMisses
	}
	return time.Duration(misses) * interval
}

// Verdict is what the Tracker did with a beat.
type Verdict uint8

// Verdicts of Tracker.Observe.
const (
	// Accepted: a fresh beat, recorded.
	Accepted Verdict = iota
	// Replayed: the sequence number is not above the last one seen for the
	// same boot ID.
	Replayed
	// OldBoot: the boot ID is one the peer used before and replaced.
	OldBoot
	// UnknownSender: the sender is not a configured peer.
	UnknownSender
	// FromSelf: the sender is this node (a peer address points back here).
	FromSelf
)

// String names the verdict.
func (v Verdict) String() string {
	switch v {
	case Accepted:
		return "accepted"
	case Replayed:
		return "replayed"
	case OldBoot:
		return "old boot ID"
	case UnknownSender:
		return "unknown sender"
	case FromSelf:
		return "from self"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// PeerState is what the Tracker knows about one peer.
type PeerState struct {
	Name string
	ID   NodeID
	// Seen is true once a beat of the peer was accepted.
	Seen bool
	// LastBeat is when the last fresh beat was accepted.
	LastBeat Mono
	// Boot and Seq are the boot ID and sequence number of the last fresh
	// beat.
	Boot, Seq uint64
	// Flags, Owner and Epoch are the claims of the last fresh beat.
	Flags Flags
	Owner NodeID
	Epoch uint64

	retired  [retiredBoots]uint64 // earlier boot IDs, refused from now on
	nRetired int                  // total retired; the ring holds the last retiredBoots
}

// Claim is the owner a live peer believes in.
type Claim struct {
	Peer  string
	Owner NodeID
	Epoch uint64
	// Holding: the peer says it holds the VIP itself.
	Holding bool
}

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	// Self is this node's name.
	Self string
	// Peers are the other configured nodes' names (at most MaxPeers).
	Peers []string
	// Interval is the beat interval (0: DefaultInterval).
	Interval time.Duration
	// Misses is the threshold in intervals for a real-time sender
	// (0: DefaultMisses).
	Misses int
	// SlowMisses is the threshold in intervals for a sender without
	// real-time priority (0: SlowMissesFactor * Misses).
	SlowMisses int
}

func (c TrackerConfig) withDefaults() TrackerConfig {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Misses <= 0 {
		c.Misses = DefaultMisses
	}
	if c.SlowMisses <= 0 {
		c.SlowMisses = SlowMissesFactor * c.Misses
	}
	return c
}

// Tracker holds the liveness of the configured peers, decided from fresh
// beats. It is pure: every method takes the current time. It is not safe
// for concurrent use.
//
// Replay rule, per sender:
//   - the first authentic beat of a sender is accepted;
//   - with the same boot ID as the last fresh beat, a beat is fresh only
//     when its sequence number is higher;
//   - a different boot ID means the sender's loop restarted: it is accepted,
//     with any sequence number, unless it is one of the sender's last
//     retiredBoots boot IDs, which are refused for good (so a recorded
//     stream of an earlier incarnation cannot be replayed after a restart).
//
// The rule holds for the lifetime of one Tracker: a restarted receiver
// forgets what it saw, and then accepts one authentic (recorded) stream
// until the sender's current beats overtake it. Beats carry no wall-clock
// time on purpose: peers' clocks are not trusted to agree.
//
// Alive: a peer is alive while its last fresh beat is no older than
// Misses intervals (SlowMisses when that beat lacked FlagRealtime).
type Tracker struct {
	cfg   TrackerConfig
	self  NodeID
	peers []PeerState
	// maxGap is the longest time between two fresh beats of one peer
	// (same boot ID), as the loop saw them arrive.
	maxGap time.Duration
	// resumed and stalled: the loop's last stall (Stalled) ended at
	// resumed and is credited for stalled; it began at stallFrom.
	resumed, stallFrom Mono
	stalled            time.Duration
}

// MaxStallCredit bounds the time a stall of this node's own loop is not
// counted against its peers (Stalled): a longer pause is a fault of its
// own, and the peers are judged afresh.
const MaxStallCredit = time.Second

// Stalled records that this node's loop did not run for d up to now (it
// woke d after its deadline). Time this node itself did not run is no
// evidence against its peers: a peer whose last fresh beat came before
// now is judged as if the stall had not happened (its age less d, at most
// MaxStallCredit), until its next fresh beat. When the whole host stalls
// (a VM descheduled, every CPU held in the kernel), every loop on it wakes
// late at once and none of the peers had a chance to beat meanwhile;
// without the credit each would declare the others gone. Only a peer
// silent since the stall began (its last beat arrived before it, or
// within one interval after) gets the credit: beats count from when the
// kernel received them, so a peer whose beats arrived during this node's
// stall is judged by them, and one that stopped beating during it is
// seen gone on time.
func (t *Tracker) Stalled(now Mono, d time.Duration) {
	t.resumed, t.stalled, t.stallFrom = now, min(d, MaxStallCredit), now.Add(-d)
}

// MaxGap returns the longest time between two fresh beats of one peer
// (same boot ID) seen so far.
func (t *Tracker) MaxGap() time.Duration { return t.maxGap }

// NewTracker checks cfg and returns a Tracker with no peer seen yet.
func NewTracker(cfg TrackerConfig) (*Tracker, error) {
	cfg = cfg.withDefaults()
	if cfg.Self == "" {
		return nil, errors.New("heartbeat: empty node name")
	}
	if len(cfg.Peers) > MaxPeers {
		return nil, fmt.Errorf("heartbeat: %d peers, at most %d", len(cfg.Peers), MaxPeers)
	}
	t := &Tracker{cfg: cfg, self: IDOf(cfg.Self), peers: make([]PeerState, len(cfg.Peers))}
	ids := map[NodeID]string{t.self: cfg.Self}
	for i, name := range cfg.Peers {
		id := IDOf(name)
		if other, dup := ids[id]; dup {
			if other == name {
				return nil, fmt.Errorf("heartbeat: node %q listed twice", name)
			}
			return nil, fmt.Errorf("heartbeat: nodes %q and %q have the same ID %v; rename one", other, name, id)
		}
		ids[id] = name
		t.peers[i] = PeerState{Name: name, ID: id}
	}
	return t, nil
}

// Len returns the number of configured peers.
func (t *Tracker) Len() int { return len(t.peers) }

// Peer returns the state of peer i (in configuration order).
func (t *Tracker) Peer(i int) PeerState { return t.peers[i] }

// Index returns the position of the named peer, or -1.
func (t *Tracker) Index(name string) int {
	for i := range t.peers {
		if t.peers[i].Name == name {
			return i
		}
	}
	return -1
}

func (t *Tracker) indexOf(id NodeID) int {
	for i := range t.peers {
		if t.peers[i].ID == id {
			return i
		}
	}
	return -1
}

// Observe applies the replay rule to an authentic beat received at now and
// records it when it is fresh.
func (t *Tracker) Observe(b *Beat, now Mono) Verdict {
	if b.Sender == t.self {
		return FromSelf
	}
	i := t.indexOf(b.Sender)
	if i < 0 {
		return UnknownSender
	}
	p := &t.peers[i]
	switch {
	case !p.Seen:
	case b.Boot == p.Boot:
		if b.Seq <= p.Seq {
			return Replayed
		}
		if g := now.Sub(p.LastBeat); g > t.maxGap {
			t.maxGap = g
		}
	default:
		for k := 0; k < min(p.nRetired, retiredBoots); k++ {
			if p.retired[k] == b.Boot {
				return OldBoot
			}
		}
		p.retired[p.nRetired%retiredBoots] = p.Boot
		p.nRetired++
	}
	p.Seen = true
	p.LastBeat = now
	p.Boot, p.Seq = b.Boot, b.Seq
	p.Flags, p.Owner, p.Epoch = b.Flags, b.Owner, b.Epoch
	return Accepted
}

// Threshold returns how long peer i stays alive after a fresh beat.
func (t *Tracker) Threshold(i int) time.Duration {
	return thresholdFor(t.cfg, t.peers[i].Flags)
}

func thresholdFor(cfg TrackerConfig, f Flags) time.Duration {
	if f&FlagRealtime != 0 {
		return DetectionTime(cfg.Interval, cfg.Misses)
	}
	return time.Duration(cfg.SlowMisses) * cfg.Interval
}

// alive reports whether peer i had a fresh beat within its threshold.
func (t *Tracker) alive(i int, now Mono) bool {
	p := &t.peers[i]
	if !p.Seen {
		return false
	}
	age := now.Sub(p.LastBeat)
	if age < 0 {
		return false
	}
	if p.LastBeat < t.resumed && p.LastBeat <= t.stallFrom.Add(t.cfg.Interval) {
		age = max(0, age-t.stalled) // the gap holds this node's own stall
	}
	return age <= t.Threshold(i)
}

// Alive reports whether the named peer had a fresh beat within its
// threshold. Unknown names are not alive.
func (t *Tracker) Alive(peer string, now Mono) bool {
	i := t.Index(peer)
	return i >= 0 && t.alive(i, now)
}

// AliveCount returns how many peers are alive (this node not counted).
func (t *Tracker) AliveCount(now Mono) int {
	n := 0
	for i := range t.peers {
		if t.alive(i, now) {
			n++
		}
	}
	return n
}

// Majority reports whether this node, counting itself, holds fresh beats
// from a majority of the configured nodes (itself and its peers).
func (t *Tracker) Majority(now Mono) bool {
	return IsMajority(1+t.AliveCount(now), 1+len(t.peers))
}

// IsMajority reports whether alive nodes out of configured are more than
// half: floor(configured/2)+1 or more.
func IsMajority(alive, configured int) bool {
	return configured > 0 && alive > configured/2
}

// Claims appends to dst the claims of live peers that believe in an owner
// (Owner != 0), in configuration order, and returns the extended slice.
// With enough capacity in dst it does not allocate.
func (t *Tracker) Claims(now Mono, dst []Claim) []Claim {
	for i := range t.peers {
		p := &t.peers[i]
		if p.Owner == 0 || !t.alive(i, now) {
			continue
		}
		dst = append(dst, Claim{Peer: p.Name, Owner: p.Owner, Epoch: p.Epoch, Holding: p.Flags&FlagHolding != 0})
	}
	return dst
}
