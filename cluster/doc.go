// Package cluster owns the peer group of LB nodes: membership and gossip
// over hashicorp/memberlist, and the election of the VIP owner.
//
// Two halves, kept apart as metallb keeps "who should announce" apart from
// announcing:
//
//   - Elect is a pure, deterministic function of a View: which member owns
//     the VIP, whether this node should hold it, with which epoch, and why.
//     It measures nothing; liveness (Member.Fresh) is an input that the
//     heartbeat layer supplies (View.WithLiveness). Next to it, the
//     startup-wait rules (startup.go) are pure too: when a node that has
//     just started may claim (StartupWaitOver, ViewComplete) and what it
//     publishes until then (StartupDecision, HighestOtherEpoch).
//   - Cluster wraps memberlist, encrypted and authenticated with the gossip
//     keyring. Each node publishes its Meta (name, priority, eligibility,
//     preempt, owner belief and epoch, software version, short config
//     digest, boot ID) as memberlist node metadata, and its backend probe
//     results (BackendView) and the operator's drain set through
//     broadcasts and push/pull state, so every node holds every peer's
//     view of every backend. View returns a snapshot of all of it.
//     Membership is bound to the configuration (admit.go): only configured
//     peers at their configured addresses are admitted, and only their
//     state counts. Reports caused by network traffic (key mismatches,
//     refused members) are limited (internal/floodlimit).
//
// memberlist keeps membership, metadata and probe results; it is not the
// failure detector that moves the VIP (the heartbeat is: a dead owner must
// be noticed in tens of milliseconds without flapping). Cluster acts on
// nothing: the daemon carries Elect's Decision out (the VIP address and
// the owner lease).
package cluster
