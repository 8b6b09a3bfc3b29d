package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/epconsole/epconsole/probes"
)

// metric is one metric the snapshot collector exports.
type metric struct {
	name string
	desc *prometheus.Desc
	typ  prometheus.ValueType
}

func newMetric(name, help string, typ prometheus.ValueType, labels ...string) metric {
	return metric{name: "epconsole_" + name, desc: prometheus.NewDesc("epconsole_"+name, help, labels, nil), typ: typ}
}

// Histograms the collector exports, by name.
const (
	ReconcileLatencyMetric = "epconsole_reconcile_duration_seconds"
	ClaimLatencyMetric     = "epconsole_vip_claim_duration_seconds"
	SyncLagMetric          = "epconsole_sync_lag_seconds"
)

// MetricNames returns the name of every metric family NewCollector
// exports (each histogram once, without its _bucket, _sum and _count
// series), sorted. The alert rules and the dashboard that ship with
// epconsole are checked against it.
func MetricNames() []string {
	c := NewCollector(nil).(*snapshotCollector)
	names := []string{ReconcileLatencyMetric, ClaimLatencyMetric, SyncLagMetric}
	for _, m := range c.metrics() {
		names = append(names, m.name)
	}
	slices.Sort(names)
	return names
}

// snapshotCollector derives every metric from the snapshot current at
// scrape time, so a scrape never disagrees with GET /v1/status.
type snapshotCollector struct {
	src Provider

	info, snapshotTime                                metric
	backendUp, backendLatency, drained, connections   metric
	vipOwner, vipOwned                                metric
	peers, peersAlive, peerAlive                      metric
	peerFresh, peerHeartbeatAge, hbInterval, hbLimit  metric
	quorumNeed, quorumHave, quorumOK, epoch, realtime metric
	heartbeatRunning, heartbeatFailedStarts           metric
	heartbeatDropped                                  metric
	panicRouting                                      metric
	failovers, probeFailures                          metric
	reconciles, reconcileErrors, reconcileLast        metric
	flowCuts, flowCutErrors, flowsCut, flowCutTime    metric
	tlsDays, tlsNotAfter, tlsChainOK, tlsSANsMissing  metric
	tlsSeconds                                        metric
	etcdMembers, etcdHealthy, etcdQuorum, etcdLeader  metric
	etcdTolerance, etcdAlarms                         metric
	areaSeverity, findings                            metric
	reconcileLatency, claimLatency                    *prometheus.Desc
	syncApplied, syncSent, syncWireBytes, syncResyncs metric
	syncGapRepairs, syncDropped                       metric
	syncPeerQueue, syncPeerConnected                  metric
	syncLag                                           *prometheus.Desc
}

// NewCollector returns a Prometheus collector of src's snapshots.
// docs/metrics.md lists its metrics.
func NewCollector(src Provider) prometheus.Collector {
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	return &snapshotCollector{
		src:            src,
		info:           newMetric("info", "The node's identity; always 1.", g, "cluster", "node", "version", "source"),
		snapshotTime:   newMetric("snapshot_timestamp_seconds", "When the exported snapshot was taken (Unix time).", g),
		backendUp:      newMetric("backend_up", "1 if the peer sees the backend in service (state up or falling), else 0.", g, "backend", "peer"),
		backendLatency: newMetric("backend_latency_seconds", "The latest probe latency of the backend as the peer measured it.", g, "backend", "peer"),
		drained:        newMetric("backend_drained", "1 if an operator drained the backend (no new connections).", g, "backend"),
		connections:    newMetric("backend_connections", "Flows to the backend in this node's conntrack table.", g, "backend"),
		vipOwner:       newMetric("vip_owner", "1 if the VIP is on this node right now, else 0.", g, "vip"),
		vipOwned:       newMetric("vip_has_owner", "1 if this node knows an owner of the VIP, else 0.", g, "vip"),
		peers:          newMetric("peers", "LB peers this node knows of, itself included.", g),
		peersAlive:     newMetric("peers_alive", "LB peers in gossip state alive, this node included.", g),
		peerAlive:      newMetric("peer_alive", "1 if the peer is in gossip state alive, else 0.", g, "peer"),
		peerFresh:      newMetric("peer_heartbeat_fresh", "1 if the peer's heartbeats arrive now (within heartbeat_miss_limit intervals), else 0.", g, "peer"),
		peerHeartbeatAge: newMetric("peer_heartbeat_age_seconds",
			"Seconds since this node last heard from the peer, at the snapshot's time.", g, "peer"),
		hbInterval:       newMetric("heartbeat_interval_seconds", "The configured heartbeat interval.", g),
		hbLimit:          newMetric("heartbeat_miss_limit", "Missed heartbeats that declare a peer gone (gossip.heartbeat_misses).", g),
		quorumNeed:       newMetric("election_quorum_need", "Peers needed for a majority (the configured peers, this one included).", g),
		quorumHave:       newMetric("election_quorum_have", "Peers this node hears from now, itself included.", g),
		quorumOK:         newMetric("election_quorum_ok", "1 if the election has the majority it needs (always 1 with fewer than 3 peers).", g),
		epoch:            newMetric("election_epoch", "The ownership epoch this node knows.", g),
		realtime:         newMetric("heartbeat_realtime", "1 if the heartbeat runs at real-time priority (SCHED_FIFO).", g),
		heartbeatRunning: newMetric("heartbeat_running", "1 if this node's heartbeat beat loop runs (daemon only).", g),
		heartbeatFailedStarts: newMetric("heartbeat_failed_starts",
			"Failed starts of the beat loop in a row (a busy heartbeat port); 0 while it runs.", g),
		heartbeatDropped: newMetric("heartbeat_dropped_total",
			"Datagrams the beat loop dropped since it started: non_peer (source not a configured peer), other_cluster (another cluster name).", c, "reason"),
		panicRouting: newMetric("panic_routing",
			"1 if no backend passes this node's probes and it forwards new connections to every backend (balance.panic_routing; daemon only).", g),
		failovers:     newMetric("failovers_total", "VIP owner changes this node has seen since its daemon started.", c),
		probeFailures: newMetric("probe_failures_total", "Failed backend probes of this node, by reason.", c, "reason"),
		reconciles:    newMetric("reconciles_total", "Dataplane (nftables) reconciles since the daemon started.", c),
		reconcileErrors: newMetric("reconcile_errors_total",
			"Dataplane (nftables) reconciles that failed.", c),
		reconcileLast: newMetric("reconcile_last_duration_seconds", "How long the latest dataplane reconcile took.", g),
		flowCuts:      newMetric("flow_cuts_total", "Cuts of a dead backend's established flows (one per backend and VIP).", c),
		flowCutErrors: newMetric("flow_cut_errors_total", "Cuts of a dead backend's flows that failed.", c),
		flowsCut:      newMetric("flows_cut_total", "Conntrack entries of dead backends the cuts deleted.", c),
		flowCutTime:   newMetric("flow_cut_seconds_total", "Time the cuts of dead backends' flows took (in the cut worker, off the decision loop).", c),
		reconcileLatency: prometheus.NewDesc(ReconcileLatencyMetric,
			"How long dataplane (nftables) reconciles took.", nil, nil),
		claimLatency: prometheus.NewDesc(ClaimLatencyMetric,
			"How long VIP claims took (owner lease renewed, VIP addresses added).", nil, nil),
		tlsDays: newMetric("tls_days_to_expiry",
			"Deprecated (removed in the next release): use epconsole_tls_seconds_to_expiry. Whole days until the backend's serving certificate expires (negative: expired).", g, "backend"),
		tlsSeconds:     newMetric("tls_seconds_to_expiry", "Seconds from the snapshot's time until the backend's serving certificate expires (negative: expired).", g, "backend"),
		tlsNotAfter:    newMetric("tls_not_after_timestamp_seconds", "When the backend's serving certificate expires (Unix time).", g, "backend"),
		tlsChainOK:     newMetric("tls_chain_ok", "1 if the backend's certificate chains to the cluster CA.", g, "backend"),
		tlsSANsMissing: newMetric("tls_sans_missing", "Expected names (VIPs, endpoint DNS names, own address) missing from the certificate.", g, "backend"),
		etcdMembers:    newMetric("etcd_members", "etcd members in the member list.", g),
		etcdHealthy:    newMetric("etcd_members_healthy", "etcd members that answer their status.", g),
		etcdQuorum:     newMetric("etcd_quorum", "etcd members needed for quorum (floor(N/2)+1).", g),
		etcdTolerance:  newMetric("etcd_failure_tolerance", "How many more etcd members may fail without losing quorum.", g),
		etcdLeader:     newMetric("etcd_has_leader", "1 if etcd has a leader.", g),
		etcdAlarms:     newMetric("etcd_alarms", "Active etcd alarms.", g),
		areaSeverity:   newMetric("area_severity", "The area's verdict as its Nagios exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", g, "area"),
		findings:       newMetric("findings", "Findings of the snapshot by severity.", g, "severity"),
		syncApplied:    newMetric("sync_entries_applied_total", "Connection-sync entries applied to this node's conntrack table.", c),
		syncSent:       newMetric("sync_batches_sent_total", "Connection-sync batches this node sent as the VIP owner.", c),
		syncWireBytes:  newMetric("sync_wire_bytes_total", "Bytes of the connection-sync batches this node sent, as on the wire.", c),
		syncResyncs:    newMetric("sync_resyncs_total", "Full dumps of the synced flows this node sent to a peer.", c),
		syncGapRepairs: newMetric("sync_gap_repairs_total", "Sync stream reconnects repaired by resending only the unacknowledged batches.", c),
		syncDropped: newMetric("sync_dropped_total",
			"Connection-sync entries or batches not applied or not sent, by reason (sender, vip, backend, snat, mark, state, op, decode, queue-full, ...).", c, "reason"),
		syncPeerQueue:     newMetric("sync_peer_queue", "While this node owns the VIP: flows waiting for the peer plus entries it has not acknowledged.", g, "peer"),
		syncPeerConnected: newMetric("sync_peer_connected", "While this node owns the VIP: 1 if its sync stream to the peer is up.", g, "peer"),
		syncLag: prometheus.NewDesc(SyncLagMetric,
			"Connection-sync lag: from a flow's change on the VIP owner to its entry applied on this node.", nil, nil),
	}
}

func (c *snapshotCollector) metrics() []metric {
	return []metric{c.info, c.snapshotTime, c.backendUp, c.backendLatency, c.drained,
		c.connections, c.vipOwner, c.vipOwned, c.peers, c.peersAlive, c.peerAlive,
		c.peerFresh, c.peerHeartbeatAge, c.hbInterval, c.hbLimit, c.tlsSeconds,
		c.quorumNeed, c.quorumHave, c.quorumOK, c.epoch, c.realtime, c.heartbeatRunning, c.heartbeatFailedStarts, c.heartbeatDropped, c.failovers,
		c.panicRouting,
		c.probeFailures, c.reconciles, c.reconcileErrors, c.reconcileLast, c.tlsDays,
		c.flowCuts, c.flowCutErrors, c.flowsCut, c.flowCutTime,
		c.tlsNotAfter, c.tlsChainOK, c.tlsSANsMissing, c.etcdMembers, c.etcdHealthy,
		c.etcdQuorum, c.etcdTolerance, c.etcdLeader, c.etcdAlarms, c.areaSeverity, c.findings,
		c.syncApplied, c.syncSent, c.syncWireBytes, c.syncResyncs, c.syncGapRepairs, c.syncDropped,
		c.syncPeerQueue, c.syncPeerConnected}
}

// Describe implements prometheus.Collector.
func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics() {
		ch <- m.desc
	}
	ch <- c.reconcileLatency
	ch <- c.claimLatency
	ch <- c.syncLag
}

// BackendInService reports whether a backend view's state counts as in
// service: up, or falling (failing, but not yet as often as fall says).
func BackendInService(state string) bool {
	return state == "up" || state == "falling"
}

// Collect implements prometheus.Collector.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	seen := make(map[string]bool)
	emit := func(m metric, v float64, labels ...string) {
		// A snapshot with a repeated name would make the scrape fail:
		// keep the first.
		key := fmt.Sprint(m.desc, labels)
		if seen[key] {
			return
		}
		seen[key] = true
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, v, labels...)
	}
	emit(c.info, 1, s.Cluster, s.Node, s.Version, s.Source)
	if !s.Generated.IsZero() {
		emit(c.snapshotTime, float64(s.Generated.UnixNano())/1e9)
	}
	for _, b := range s.Backends {
		for _, v := range b.Views {
			emit(c.backendUp, b01(BackendInService(v.State)), b.Name, v.Peer)
			emit(c.backendLatency, v.Latency.Seconds(), b.Name, v.Peer)
		}
		emit(c.drained, b01(b.Drained), b.Name)
		emit(c.connections, float64(b.Connections), b.Name)
	}
	for _, v := range s.VIPs {
		emit(c.vipOwner, b01(v.Here), v.Address)
		emit(c.vipOwned, b01(v.Owner != ""), v.Address)
	}
	alive := 0
	for _, p := range s.Peers {
		a := p.State == "alive"
		if a {
			alive++
		}
		emit(c.peerAlive, b01(a), p.Name)
		emit(c.peerFresh, b01(p.Fresh), p.Name)
		if !p.LastSeen.IsZero() && !s.Generated.IsZero() {
			emit(c.peerHeartbeatAge, max(s.Generated.Sub(p.LastSeen), 0).Seconds(), p.Name)
		}
	}
	emit(c.peers, float64(len(s.Peers)))
	emit(c.peersAlive, float64(alive))
	e := s.Election
	emit(c.quorumNeed, float64(e.QuorumNeed))
	emit(c.quorumHave, float64(e.QuorumHave))
	emit(c.quorumOK, b01(!e.QuorumRequired || e.QuorumHave >= e.QuorumNeed))
	emit(c.epoch, float64(e.Epoch))
	emit(c.realtime, b01(e.Realtime))
	if e.HeartbeatInterval > 0 {
		emit(c.hbInterval, e.HeartbeatInterval.Seconds())
		emit(c.hbLimit, float64(e.HeartbeatMisses))
	}
	if s.Source == SourceDaemon {
		emit(c.heartbeatRunning, b01(e.HeartbeatRunning))
		emit(c.panicRouting, b01(e.PanicRouting))
	}
	if k := s.Counters; k != nil {
		emit(c.heartbeatFailedStarts, float64(k.HeartbeatFailedStarts))
		emit(c.heartbeatDropped, float64(k.HeartbeatNonPeer), "non_peer")
		emit(c.heartbeatDropped, float64(k.HeartbeatOtherCluster), "other_cluster")
		emit(c.failovers, float64(k.Failovers))
		for reason, n := range k.ProbeFailures {
			emit(c.probeFailures, float64(n), reason)
		}
		emit(c.reconciles, float64(k.Reconciles))
		emit(c.reconcileErrors, float64(k.ReconcileErrors))
		emit(c.reconcileLast, k.LastReconcile.Seconds())
		emit(c.flowCuts, float64(k.FlowCuts))
		emit(c.flowCutErrors, float64(k.FlowCutErrors))
		emit(c.flowsCut, float64(k.FlowsCut))
		emit(c.flowCutTime, k.FlowCutTime.Seconds())
		ch <- constHistogram(c.reconcileLatency, k.ReconcileLatency)
		ch <- constHistogram(c.claimLatency, k.ClaimLatency)
		ch <- constHistogram(c.syncLag, k.SyncLag)
		emit(c.syncApplied, float64(k.SyncApplied))
		emit(c.syncSent, float64(k.SyncBatchesSent))
		emit(c.syncWireBytes, float64(k.SyncWireBytes))
		emit(c.syncResyncs, float64(k.SyncResyncs))
		emit(c.syncGapRepairs, float64(k.SyncGapRepairs))
		for reason, n := range k.SyncDropped {
			emit(c.syncDropped, float64(n), reason)
		}
		for _, p := range k.SyncPeers {
			emit(c.syncPeerQueue, float64(p.Queue), p.Peer)
			emit(c.syncPeerConnected, b01(p.Connected), p.Peer)
		}
	}
	for _, t := range s.Certificates {
		if t.NotAfter.IsZero() {
			continue // no certificate was read
		}
		missing := 0
		for _, san := range t.SANs {
			if !san.Present {
				missing++
			}
		}
		emit(c.tlsDays, float64(t.DaysLeft), t.Backend)
		emit(c.tlsNotAfter, float64(t.NotAfter.Unix()), t.Backend)
		if !s.Generated.IsZero() {
			emit(c.tlsSeconds, t.NotAfter.Sub(s.Generated).Seconds(), t.Backend)
		}
		emit(c.tlsChainOK, b01(t.ChainOK), t.Backend)
		emit(c.tlsSANsMissing, float64(missing), t.Backend)
	}
	if et := s.Etcd; et != nil {
		emit(c.etcdMembers, float64(len(et.Members)))
		emit(c.etcdHealthy, float64(et.Healthy))
		emit(c.etcdQuorum, float64(et.Quorum))
		emit(c.etcdTolerance, float64(et.Tolerance))
		emit(c.etcdLeader, b01(et.Leader != ""))
		emit(c.etcdAlarms, float64(len(et.Alarms)))
	}
	for _, v := range s.Verdicts {
		emit(c.areaSeverity, float64(v.Severity.ExitCode()), v.Area)
	}
	bySev := map[probes.Severity]int{probes.OK: 0, probes.Warning: 0, probes.Unknown: 0, probes.Critical: 0}
	for _, f := range s.Findings {
		bySev[f.Severity]++
	}
	for _, sev := range []probes.Severity{probes.OK, probes.Warning, probes.Unknown, probes.Critical} {
		emit(c.findings, float64(bySev[sev]), sev.String())
	}
}

func constHistogram(d *prometheus.Desc, h Histogram) prometheus.Metric {
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), h.Cumulative())
}

func b01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// MetricsHandler serves src's snapshot as Prometheus metrics, with the Go
// runtime and process metrics of the daemon alongside.
func MetricsHandler(src Provider) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// MetricsOptions configure ListenMetrics.
type MetricsOptions struct {
	// AllowNonLoopback permits an address other than loopback; without
	// it such an address is refused, since the metrics tell anyone who
	// can reach them the cluster's layout.
	AllowNonLoopback bool
	// Logger (nil: discard).
	Logger *slog.Logger
}

// CheckMetricsListen returns an error unless listen is "host:port" with
// a loopback host (an IP of 127.0.0.0/8 or ::1, or localhost), or
// allowNonLoopback is set.
func CheckMetricsListen(listen string, allowNonLoopback bool) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("metrics listen address %q: %w", listen, err)
	}
	if allowNonLoopback {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("metrics listen address %q is not a loopback address: metrics would be reachable from the network; use 127.0.0.1:PORT, or allow it explicitly", listen)
}

// MetricsServer serves /metrics over HTTP.
type MetricsServer struct {
	ln   net.Listener
	http *http.Server
}

// ListenMetrics listens on listen ("ip:port") for Prometheus scrapes of
// src's snapshots at /metrics; a non-loopback address is refused unless
// opts.AllowNonLoopback.
func ListenMetrics(listen string, src Provider, opts MetricsOptions) (*MetricsServer, error) {
	if err := CheckMetricsListen(listen, opts.AllowNonLoopback); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", MetricsHandler(src))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "epconsole metrics are at /metrics")
	})
	return &MetricsServer{ln: ln, http: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}, nil
}

// Addr returns the address the server listens on.
func (m *MetricsServer) Addr() net.Addr { return m.ln.Addr() }

// Serve answers scrapes until ctx ends, then stops (waiting up to
// DefaultShutdownTimeout for scrapes in flight).
func (m *MetricsServer) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- m.http.Serve(m.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), DefaultShutdownTimeout)
	defer cancel()
	err := m.http.Shutdown(sctx)
	if err != nil {
		m.http.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("metrics: stopping: %w", err)
	}
	return nil
}

// ServeMetrics is ListenMetrics followed by Serve: it serves scrapes on
// listen until ctx ends.
func ServeMetrics(ctx context.Context, listen string, src Provider, opts MetricsOptions) error {
	m, err := ListenMetrics(listen, src, opts)
	if err != nil {
		return err
	}
	return m.Serve(ctx)
}
