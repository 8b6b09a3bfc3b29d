// Package heartbeat is the direct liveness signal between epconsole's LB
// peers: every peer sends every peer a small authenticated datagram every
// few milliseconds, and a peer whose beats stop for a few intervals is
// declared gone. memberlist keeps membership, metadata and probe results;
// this package decides who is alive and who holds a majority, fast.
//
// It has three layers:
//
//   - the wire format (Beat, Keyring): a fixed 68-byte datagram (version
//     2) with the sender, its boot ID, a sequence number, the owner it
//     believes in, that owner's epoch and the cluster, under a truncated
//     HMAC-SHA256 whose key is derived from each gossip key with HKDF.
//     Version 1 (60 bytes, no cluster) is still read, and sent to a peer
//     that sends it. Sealing and opening do not allocate.
//   - the liveness tracker (Tracker): pure, with an injected clock. It drops
//     replays, records the last fresh beat of every peer and answers Alive,
//     Majority and the claims peers make. Time during which this node's own
//     loop did not run (a late tick) is not counted against its peers
//     (Tracker.Stalled): a stall of the whole host is no peer's death.
//   - the beat loop: a small helper process (this same binary, executed
//     from a descriptor of the daemon's binary opened at start, so an
//     in-place upgrade does not change it; see RunHelper) at SCHED_FIFO
//     priority with GOMAXPROCS=1, waiting in a raw ppoll (the Go runtime
//     leaves its only P alone) on an absolute-deadline timerfd (and the
//     daemon closing its control socket); at each tick it reads the
//     daemon's messages and the beats that arrived, each judged by when
//     the kernel received it (SO_TIMESTAMPNS), so a beat that waited in
//     the socket through a pause is not fresh. It beats only while the daemon's liveness
//     token is fresh (Beater.Refresh), so a hung daemon stops beating, and it
//     dies with its parent. It reads datagrams from the configured peers'
//     addresses only (others are counted and dropped before any other
//     work), and it drops every capability once at real-time priority.
//     Start runs it and returns the daemon's side, a Beater, whose View
//     says who is alive.
//
// All times that cross the process boundary are readings of CLOCK_MONOTONIC
// (Mono), the one clock the daemon and the helper share.
package heartbeat
