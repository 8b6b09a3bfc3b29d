// Package status owns epconsole's one status model: the Snapshot the
// daemon serves on its unix socket and as metrics, and that the TUI and
// `check` read. It holds plain, JSON-ready values only (no behaviour of the
// cluster, probes or dataplane), so every reader sees the same truth. Its
// severities and findings are the probes package's (probes.Severity,
// probes.Finding); the facts derived from a snapshot (the cluster
// findings and verdict, split views) are computed here, once.
//
// The JSON form is versioned by Schema; fields are only ever added within
// a version. docs/status.md documents it.
//
// The package also serves the model: Server (HTTP over the daemon's unix
// socket, with a server-sent-event stream and the operator's actions),
// Client (for the TUI and `check`) and the Prometheus metrics derived from
// the current snapshot (docs/metrics.md). The daemon feeds all of them
// through a Publisher.
package status

import (
	"time"

	"github.com/epconsole/epconsole/probes"
)

// Schema is the version of the Snapshot JSON.
const Schema = "epconsole.status/v1"

// Sources of a snapshot (Snapshot.Source).
const (
	// SourceDaemon: the node's daemon made it, with the cluster view.
	SourceDaemon = "daemon"
	// SourceDirect: the reader ran the probes itself, without a daemon.
	SourceDirect = "direct"
)

// Snapshot is the whole truth about the endpoint as one node sees it.
type Snapshot struct {
	Schema string `json:"schema"`
	// Generated is when the snapshot was taken.
	Generated time.Time `json:"generated"`
	// Source says where it comes from: "daemon" (the node's daemon, with the
	// cluster view) or "direct" (probes run by the reader, no cluster view).
	Source string `json:"source"`
	// Cluster is config.hcl's cluster_name.
	Cluster string `json:"cluster"`
	// Node is the name of the node that made the snapshot.
	Node string `json:"node"`
	// Version is that node's software version.
	Version string `json:"version"`
	// VIPs are the virtual addresses with their owner.
	VIPs []VIP `json:"vips"`
	// Election is the owner election as this node sees it.
	Election Election `json:"election"`
	// Peers are all LB nodes, this one included, sorted by name.
	Peers []Peer `json:"peers"`
	// Backends are the apiservers in config order, each with every peer's view.
	Backends []Backend `json:"backends"`
	// Certificates are the TLS checks of each backend's certificate.
	Certificates []Certificate `json:"certificates"`
	// Etcd is the etcd quorum check (nil when etcd is not configured).
	Etcd *Etcd `json:"etcd,omitempty"`
	// Verdicts are one severity and one line per area: "backends", "tls",
	// "etcd", "cluster".
	Verdicts []AreaVerdict `json:"verdicts"`
	// Findings are the problems found, worst first, each with its fix.
	Findings Findings `json:"findings"`
	// Events are the most recent events, oldest first.
	Events []Event `json:"events"`
	// Counters are the daemon's running totals since it started (nil in a
	// "direct" snapshot). Metrics export them as counters.
	Counters *Counters `json:"counters,omitempty"`
}

// Counters are running totals kept by the daemon since it started; they
// only grow (a restart begins again at zero, as Prometheus expects).
type Counters struct {
	// Failovers counts the VIP owner changes this node has seen: a VIP
	// going to another owner, or to an owner after having none.
	Failovers uint64 `json:"failovers"`
	// ProbeFailures counts this node's failed backend probes by reason
	// (connect, tls, readyz, timeout, ...).
	ProbeFailures map[string]uint64 `json:"probe_failures,omitempty"`
	// Reconciles counts dataplane reconciles, ReconcileErrors the failed ones.
	Reconciles      uint64 `json:"reconciles"`
	ReconcileErrors uint64 `json:"reconcile_errors"`
	// ReconcileTime is the time spent in all reconciles, LastReconcile the
	// duration of the latest one.
	ReconcileTime time.Duration `json:"reconcile_time_ns"`
	LastReconcile time.Duration `json:"last_reconcile_ns"`
	// ReconcileLatency is the distribution of the reconciles' durations;
	// ClaimLatency that of VIP claims (from the decision to hold until the
	// lease is renewed and the VIP addresses are on the interfaces).
	ReconcileLatency Histogram `json:"reconcile_latency"`
	ClaimLatency     Histogram `json:"claim_latency"`
	// HeartbeatFailedStarts counts the beat loop's failed starts in a row
	// (0 while it runs); the daemon retries with a growing wait.
	HeartbeatFailedStarts uint64 `json:"heartbeat_failed_starts"`
	// HeartbeatNonPeer counts datagrams the beat loop dropped because
	// their source is not a configured peer; HeartbeatOtherCluster
	// authentic beats of another cluster name (since the loop started).
	HeartbeatNonPeer      uint64 `json:"heartbeat_non_peer_dropped"`
	HeartbeatOtherCluster uint64 `json:"heartbeat_other_cluster_dropped"`
	// FlowCuts counts the cuts of dead backends' flows (one per backend
	// and VIP), FlowCutErrors those that failed; FlowsCut the conntrack
	// entries they deleted and FlowCutTime the time they took (in the
	// daemon's cut worker, off the decision loop).
	FlowCuts      uint64        `json:"flow_cuts"`
	FlowCutErrors uint64        `json:"flow_cut_errors"`
	FlowsCut      uint64        `json:"flows_cut"`
	FlowCutTime   time.Duration `json:"flow_cut_time_ns"`
	// SyncLag is the distribution of the connection sync's lag on this
	// node: from a flow's change on the VIP owner (the owner's clock) to
	// its entry applied here (this node's clock), for entries that came
	// over a sync stream.
	SyncLag Histogram `json:"sync_lag"`
	// SyncApplied counts the synced entries applied to this node's table;
	// SyncBatchesSent the batches this node sent as the owner and
	// SyncWireBytes their bytes on the wire.
	SyncApplied     uint64 `json:"sync_applied"`
	SyncBatchesSent uint64 `json:"sync_batches_sent"`
	SyncWireBytes   uint64 `json:"sync_wire_bytes"`
	// SyncResyncs counts the full dumps this node sent to a peer (a peer
	// that joined or restarted, a takeover, lost events); SyncGapRepairs
	// the reconnects repaired by resending only the unacknowledged batches.
	SyncResyncs    uint64 `json:"sync_resyncs"`
	SyncGapRepairs uint64 `json:"sync_gap_repairs"`
	// SyncDropped counts what the sync did not apply or send, by reason
	// (docs/metrics.md lists them).
	SyncDropped map[string]uint64 `json:"sync_dropped,omitempty"`
	// SyncPeers are this node's sync streams to its peers while it owns
	// the VIP, with their queue depth now (not a running total).
	SyncPeers []SyncPeer `json:"sync_peers,omitempty"`
}

// SyncPeer is the VIP owner's sync stream to one peer.
type SyncPeer struct {
	Peer string `json:"peer"`
	// Connected: the stream is up.
	Connected bool `json:"connected"`
	// Queue counts the flows whose change waits to be sent plus the
	// entries sent and not yet acknowledged.
	Queue int `json:"queue"`
}

// VIP is one virtual address.
type VIP struct {
	Address   string `json:"address"`
	Interface string `json:"interface"`
	Port      uint16 `json:"port"`
	// Owner is the peer holding it ("" when none is known).
	Owner string `json:"owner"`
	// OwnerSince is when Owner took it (zero if unknown).
	OwnerSince time.Time `json:"owner_since"`
	// Here: the address is on this node's interface right now.
	Here bool `json:"here"`
}

// Election is the owner election as this node sees it.
type Election struct {
	Owner   string `json:"owner"`
	Epoch   uint64 `json:"epoch"`
	Elected string `json:"elected"`
	// Reason says why this node holds the VIP or not.
	Reason string `json:"reason"`
	// Quorum: configured peers (this node included), the majority needed,
	// how many are heard now, whether the rule applies (>= 3 peers) and
	// whether a majority is possible at all (not with 2 peers).
	QuorumPeers    int  `json:"quorum_peers"`
	QuorumNeed     int  `json:"quorum_need"`
	QuorumHave     int  `json:"quorum_have"`
	QuorumRequired bool `json:"quorum_required"`
	QuorumPossible bool `json:"quorum_possible"`
	// Realtime: the heartbeat runs at real-time priority (SCHED_FIFO).
	Realtime          bool          `json:"realtime"`
	HeartbeatInterval time.Duration `json:"heartbeat_interval_ns"`
	// HeartbeatRunning: this node's beat loop runs (daemon only);
	// HeartbeatError says why not (a busy port names it and its holder).
	HeartbeatRunning bool   `json:"heartbeat_running"`
	HeartbeatError   string `json:"heartbeat_error"`
	HeartbeatMisses  int    `json:"heartbeat_misses"`
	// ConfigDigest is this node's short config digest; Mismatch lists peers
	// whose digest differs from the cluster's reference digest.
	ConfigDigest string   `json:"config_digest"`
	Mismatch     []string `json:"mismatch,omitempty"`
	// PanicRouting: no backend passes this node's probes and
	// balance.panic_routing is on, so its datapath forwards new
	// connections to every backend (daemon only).
	PanicRouting bool `json:"panic_routing"`
}

// Peer is one LB node.
type Peer struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// Self: this is the node that made the snapshot.
	Self bool `json:"self"`
	// State is the gossip state: alive, suspect, dead, left or unknown.
	State string `json:"state"`
	// Fresh: its heartbeats arrive now.
	Fresh    bool   `json:"fresh"`
	Priority int    `json:"priority"`
	Eligible bool   `json:"eligible"`
	Preempt  bool   `json:"preempt"`
	Owner    string `json:"owner"`
	Epoch    uint64 `json:"epoch"`
	Version  string `json:"version"`
	Digest   string `json:"digest"`
	// LastSeen is when this node last heard from it.
	LastSeen time.Time     `json:"last_seen"`
	RTT      time.Duration `json:"rtt_ns"`
}

// Backend is one apiserver and what each peer sees of it.
type Backend struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// Drained: an operator drained it (no new connections, existing kept).
	Drained bool `json:"drained"`
	// Connections is the number of flows to it in this node's conntrack table.
	Connections int `json:"connections"`
	// Views are each peer's view, sorted by peer name.
	Views []BackendView `json:"views"`
}

// BackendView is one peer's view of one backend.
type BackendView struct {
	Peer string `json:"peer"`
	// State: up, down, rising, falling, unknown.
	State   string        `json:"state"`
	Latency time.Duration `json:"latency_ns"`
	// Reason says why (e.g. the failing /readyz checks).
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// Certificate is the TLS check of one backend's certificate.
type Certificate struct {
	Backend  string    `json:"backend"`
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft int       `json:"days_left"`
	// ChainOK: the chain verifies against the cluster CA.
	ChainOK bool `json:"chain_ok"`
	// SANs are the expected names (each VIP, each endpoint DNS name, the
	// backend's own address) and whether the certificate carries each.
	SANs  []SANCheck `json:"sans"`
	Error string     `json:"error,omitempty"`
}

// SANCheck is one expected subject alternative name.
type SANCheck struct {
	Name    string `json:"name"`
	Present bool   `json:"present"`
}

// Etcd is the etcd quorum check.
type Etcd struct {
	Members   []EtcdMember    `json:"members"`
	Alarms    []string        `json:"alarms,omitempty"`
	Quorum    int             `json:"quorum"`
	Healthy   int             `json:"healthy"`
	Tolerance int             `json:"tolerance"`
	Leader    string          `json:"leader,omitempty"`
	Severity  probes.Severity `json:"severity"`
}

// EtcdMember is one etcd member.
type EtcdMember struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	Endpoint  string `json:"endpoint"`
	Leader    bool   `json:"leader"`
	Healthy   bool   `json:"healthy"`
	RaftTerm  uint64 `json:"raft_term"`
	RaftIndex uint64 `json:"raft_index"`
	DBSize    int64  `json:"db_size"`
	Version   string `json:"version"`
	Error     string `json:"error,omitempty"`
}

// AreaVerdict is one area's verdict.
type AreaVerdict struct {
	Area     string          `json:"area"`
	Severity probes.Severity `json:"severity"`
	Summary  string          `json:"summary"`
}

// Event is one entry of the daemon's event log.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is one of the EventKind constants (eventkinds.go), or
	// peer-rejected.
	Kind    string `json:"kind"`
	Subject string `json:"subject,omitempty"`
	Message string `json:"message"`
}
