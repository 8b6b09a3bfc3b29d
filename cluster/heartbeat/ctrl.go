package heartbeat

import (
	"encoding/binary"
	"errors"
	"time"
)

// The control channel between the daemon and its beat loop is a
// SOCK_SEQPACKET socket pair: one message per record, never split or
// merged. Set-up messages (the loop's configuration, the loop's hello) are
// JSON; the records exchanged while running have a fixed layout in host
// byte order (both ends are on the same host) and are built without
// allocating.
const (
	msgRefresh byte = 1 // daemon -> loop: liveness token + advert
	msgReport  byte = 2 // loop -> daemon: liveness verdict and counters

	refreshSize      = 32
	reportHeaderSize = 32 + statsSize
	peerRecordSize   = 48
	statsSize        = 17 * 8
	maxReportSize    = reportHeaderSize + MaxPeers*peerRecordSize
)

var hostOrder = binary.LittleEndian // both ends run on this host; fixed for tests

// refresh is the daemon's liveness token and what it wants advertised.
//
//	0 type, 1 flags, 2..7 zero, 8 owner (8), 16 epoch (8), 24 sent at (8)
//
// The token's age counts from when the daemon sent it (the clock is
// shared), so a loop that reads it late does not take it for a fresh one.
type refresh struct {
	flags  Flags
	owner  NodeID
	epoch  uint64
	sentAt Mono
}

func (r *refresh) encode(dst *[refreshSize]byte) {
	*dst = [refreshSize]byte{}
	dst[0], dst[1] = msgRefresh, byte(r.flags&advertFlags)
	hostOrder.PutUint64(dst[8:], uint64(r.owner))
	hostOrder.PutUint64(dst[16:], r.epoch)
	hostOrder.PutUint64(dst[24:], uint64(r.sentAt))
}

func (r *refresh) decode(b []byte) bool {
	if len(b) != refreshSize || b[0] != msgRefresh {
		return false
	}
	r.flags = Flags(b[1]) & advertFlags
	r.owner = NodeID(hostOrder.Uint64(b[8:]))
	r.epoch = hostOrder.Uint64(b[16:])
	r.sentAt = Mono(hostOrder.Uint64(b[24:]))
	return true
}

// Stats are the beat loop's counters since it started.
type Stats struct {
	// Ticks counts timer expiries handled.
	Ticks uint64
	// Sent and SendErrors count datagrams handed to the kernel, and
	// refused by it (no route, full buffer).
	Sent, SendErrors uint64
	// Received counts datagrams read; Accepted the fresh beats among them.
	Received, Accepted uint64
	// Malformed: wrong size, magic, version or zero fields.
	Malformed uint64
	// BadMAC: no key of the keyring authenticates the datagram (a peer
	// with another gossip key, or forgery).
	BadMAC uint64
	// Replayed: sequence number not above the last one of the boot ID.
	Replayed uint64
	// OldBoot: a boot ID the sender used before.
	OldBoot uint64
	// Unknown: authentic, but from a node not configured here (or from
	// this node itself).
	Unknown uint64
	// LateTicks counts ticks handled a whole interval or more late: beats
	// were skipped, and the time the loop did not run was not counted
	// against the peers (Tracker.Stalled).
	LateTicks uint64
	// MaxLateness is the worst delay between a timer deadline and the loop
	// running for it: the scheduling latency the beats saw.
	MaxLateness time.Duration
	// ReportsDropped counts reports the daemon did not read in time.
	ReportsDropped uint64
	// NonPeer counts datagrams dropped because their source address is
	// not a configured peer's (read, not authenticated, not counted
	// against the peers' budget). Received includes them.
	NonPeer uint64
	// OtherCluster counts authentic beats of another cluster (version 2
	// with another cluster name, the same key): ignored.
	OtherCluster uint64
	// MaxBeatGap is the longest time between two fresh beats of one peer
	// (same boot ID), as the loop saw them arrive: the peer's sending
	// gaps, the network's and this loop's own lateness together.
	MaxBeatGap time.Duration
	// MaxRxDelay is the longest a fresh beat waited in the socket, from
	// the kernel's receipt to the loop's wake-up that read it.
	MaxRxDelay time.Duration
}

func (s *Stats) encode(dst []byte) {
	v := [statsSize / 8]uint64{s.Ticks, s.Sent, s.SendErrors, s.Received, s.Accepted, s.Malformed,
		s.BadMAC, s.Replayed, s.OldBoot, s.Unknown, s.LateTicks, uint64(s.MaxLateness), s.ReportsDropped, s.NonPeer, s.OtherCluster, uint64(s.MaxBeatGap), uint64(s.MaxRxDelay)}
	for i, x := range v {
		hostOrder.PutUint64(dst[8*i:], x)
	}
}

func (s *Stats) decode(b []byte) {
	var v [statsSize / 8]uint64
	for i := range v {
		v[i] = hostOrder.Uint64(b[8*i:])
	}
	*s = Stats{Ticks: v[0], Sent: v[1], SendErrors: v[2], Received: v[3], Accepted: v[4], Malformed: v[5],
		BadMAC: v[6], Replayed: v[7], OldBoot: v[8], Unknown: v[9], LateTicks: v[10],
		MaxLateness: time.Duration(v[11]), ReportsDropped: v[12], NonPeer: v[13], OtherCluster: v[14],
		MaxBeatGap: time.Duration(v[15]), MaxRxDelay: time.Duration(v[16])}
}

// report is the loop's verdict at one instant.
//
//	header: 0 type, 1 bits (beating, majority, realtime), 2 peers,
//	        3..7 zero, 8 at, 16 own boot ID, 24 own last sequence,
//	        32 stats (17 x 8)
//	peer:   0 bits (seen, alive), 1 flags, 2..7 zero, 8 last beat,
//	        16 boot, 24 seq, 32 owner, 40 epoch
type report struct {
	at       Mono
	beating  bool // the daemon's token is fresh: the loop sends beats
	majority bool
	realtime bool
	lease    bool // the loop renews the owner lease and it runs (claim.go)
	boot     uint64
	seq      uint64
	stats    Stats
	peers    []peerReport
}

type peerReport struct {
	seen, alive bool
	flags       Flags
	lastBeat    Mono
	boot, seq   uint64
	owner       NodeID
	epoch       uint64
}

const (
	bitBeating  = 1
	bitMajority = 2
	bitRealtime = 4
	bitLease    = 8
	bitSeen     = 1
	bitAlive    = 2
)

func boolBit(b bool, bit byte) byte {
	if b {
		return bit
	}
	return 0
}

// encode writes r into dst, which must hold reportSize(len(r.peers)) bytes,
// and returns the message.
func (r *report) encode(dst []byte) []byte {
	n := reportHeaderSize + len(r.peers)*peerRecordSize
	m := dst[:n]
	clear(m[:8])
	m[0] = msgReport
	m[1] = boolBit(r.beating, bitBeating) | boolBit(r.majority, bitMajority) | boolBit(r.realtime, bitRealtime) | boolBit(r.lease, bitLease)
	m[2] = byte(len(r.peers))
	hostOrder.PutUint64(m[8:], uint64(r.at))
	hostOrder.PutUint64(m[16:], r.boot)
	hostOrder.PutUint64(m[24:], r.seq)
	r.stats.encode(m[32:])
	for i := range r.peers {
		p := &r.peers[i]
		rec := m[reportHeaderSize+i*peerRecordSize:]
		clear(rec[:8])
		rec[0] = boolBit(p.seen, bitSeen) | boolBit(p.alive, bitAlive)
		rec[1] = byte(p.flags)
		hostOrder.PutUint64(rec[8:], uint64(p.lastBeat))
		hostOrder.PutUint64(rec[16:], p.boot)
		hostOrder.PutUint64(rec[24:], p.seq)
		hostOrder.PutUint64(rec[32:], uint64(p.owner))
		hostOrder.PutUint64(rec[40:], p.epoch)
	}
	return m
}

var errBadReport = errors.New("heartbeat: malformed report from the beat loop")

// decode reads a report for exactly len(r.peers) peers.
func (r *report) decode(b []byte) error {
	if len(b) < reportHeaderSize || b[0] != msgReport || int(b[2]) != len(r.peers) ||
		len(b) != reportHeaderSize+len(r.peers)*peerRecordSize {
		return errBadReport
	}
	r.beating, r.majority, r.realtime = b[1]&bitBeating != 0, b[1]&bitMajority != 0, b[1]&bitRealtime != 0
	r.lease = b[1]&bitLease != 0
	r.at = Mono(hostOrder.Uint64(b[8:]))
	r.boot = hostOrder.Uint64(b[16:])
	r.seq = hostOrder.Uint64(b[24:])
	r.stats.decode(b[32:])
	for i := range r.peers {
		rec := b[reportHeaderSize+i*peerRecordSize:]
		r.peers[i] = peerReport{
			seen:     rec[0]&bitSeen != 0,
			alive:    rec[0]&bitAlive != 0,
			flags:    Flags(rec[1]),
			lastBeat: Mono(hostOrder.Uint64(rec[8:])),
			boot:     hostOrder.Uint64(rec[16:]),
			seq:      hostOrder.Uint64(rec[24:]),
			owner:    NodeID(hostOrder.Uint64(rec[32:])),
			epoch:    hostOrder.Uint64(rec[40:]),
		}
	}
	return nil
}

// sameVerdict reports whether two reports say the same about liveness and
// claims (times, sequence numbers and counters aside).
func sameVerdict(a, b *report) bool {
	if a.beating != b.beating || a.majority != b.majority || a.realtime != b.realtime || a.lease != b.lease || len(a.peers) != len(b.peers) {
		return false
	}
	for i := range a.peers {
		p, q := &a.peers[i], &b.peers[i]
		if p.seen != q.seen || p.alive != q.alive || p.flags != q.flags || p.owner != q.owner || p.epoch != q.epoch || p.boot != q.boot {
			return false
		}
	}
	return true
}
