package status

import (
	"context"
	"fmt"
	"github.com/epconsole/epconsole/probes"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// expectedMetrics derives, independently of the collector, what each
// epconsole_ sample must be for s, keyed like sampleKey.
func expectedMetrics(s Snapshot) map[string]float64 {
	b01 := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	m := map[string]float64{}
	m[fmt.Sprintf(`epconsole_info{cluster=%q,node=%q,source=%q,version=%q}`, s.Cluster, s.Node, s.Source, s.Version)] = 1
	m["epconsole_snapshot_timestamp_seconds"] = float64(s.Generated.Unix())
	for _, b := range s.Backends {
		for _, v := range b.Views {
			up := v.State == "up" || v.State == "falling"
			m[fmt.Sprintf(`epconsole_backend_up{backend=%q,peer=%q}`, b.Name, v.Peer)] = b01(up)
			m[fmt.Sprintf(`epconsole_backend_latency_seconds{backend=%q,peer=%q}`, b.Name, v.Peer)] = float64(v.Latency) / float64(time.Second)
		}
		m[fmt.Sprintf(`epconsole_backend_drained{backend=%q}`, b.Name)] = b01(b.Drained)
		m[fmt.Sprintf(`epconsole_backend_connections{backend=%q}`, b.Name)] = float64(b.Connections)
	}
	for _, v := range s.VIPs {
		m[fmt.Sprintf(`epconsole_vip_owner{vip=%q}`, v.Address)] = b01(v.Here)
		m[fmt.Sprintf(`epconsole_vip_has_owner{vip=%q}`, v.Address)] = b01(v.Owner != "")
	}
	alive := 0
	for _, p := range s.Peers {
		m[fmt.Sprintf(`epconsole_peer_alive{peer=%q}`, p.Name)] = b01(p.State == "alive")
		m[fmt.Sprintf(`epconsole_peer_heartbeat_fresh{peer=%q}`, p.Name)] = b01(p.Fresh)
		if !p.LastSeen.IsZero() {
			m[fmt.Sprintf(`epconsole_peer_heartbeat_age_seconds{peer=%q}`, p.Name)] = s.Generated.Sub(p.LastSeen).Seconds()
		}
		if p.State == "alive" {
			alive++
		}
	}
	m["epconsole_peers"] = float64(len(s.Peers))
	m["epconsole_peers_alive"] = float64(alive)
	m["epconsole_election_quorum_need"] = float64(s.Election.QuorumNeed)
	m["epconsole_election_quorum_have"] = float64(s.Election.QuorumHave)
	m["epconsole_election_quorum_ok"] = b01(!s.Election.QuorumRequired || s.Election.QuorumHave >= s.Election.QuorumNeed)
	m["epconsole_election_epoch"] = float64(s.Election.Epoch)
	m["epconsole_heartbeat_realtime"] = b01(s.Election.Realtime)
	if s.Election.HeartbeatInterval > 0 {
		m["epconsole_heartbeat_interval_seconds"] = s.Election.HeartbeatInterval.Seconds()
		m["epconsole_heartbeat_miss_limit"] = float64(s.Election.HeartbeatMisses)
	}
	if s.Source == SourceDaemon {
		m["epconsole_heartbeat_running"] = b01(s.Election.HeartbeatRunning)
		m["epconsole_panic_routing"] = b01(s.Election.PanicRouting)
	}
	if k := s.Counters; k != nil {
		m["epconsole_heartbeat_failed_starts"] = float64(k.HeartbeatFailedStarts)
		m[`epconsole_heartbeat_dropped_total{reason="non_peer"}`] = float64(k.HeartbeatNonPeer)
		m[`epconsole_heartbeat_dropped_total{reason="other_cluster"}`] = float64(k.HeartbeatOtherCluster)
		m["epconsole_failovers_total"] = float64(k.Failovers)
		for r, n := range k.ProbeFailures {
			m[fmt.Sprintf(`epconsole_probe_failures_total{reason=%q}`, r)] = float64(n)
		}
		m["epconsole_reconciles_total"] = float64(k.Reconciles)
		m["epconsole_reconcile_errors_total"] = float64(k.ReconcileErrors)
		m["epconsole_reconcile_last_duration_seconds"] = k.LastReconcile.Seconds()
		m["epconsole_flow_cuts_total"] = float64(k.FlowCuts)
		m["epconsole_flow_cut_errors_total"] = float64(k.FlowCutErrors)
		m["epconsole_flows_cut_total"] = float64(k.FlowsCut)
		m["epconsole_flow_cut_seconds_total"] = k.FlowCutTime.Seconds()
		m["epconsole_sync_entries_applied_total"] = float64(k.SyncApplied)
		m["epconsole_sync_batches_sent_total"] = float64(k.SyncBatchesSent)
		m["epconsole_sync_wire_bytes_total"] = float64(k.SyncWireBytes)
		m["epconsole_sync_resyncs_total"] = float64(k.SyncResyncs)
		m["epconsole_sync_gap_repairs_total"] = float64(k.SyncGapRepairs)
		for r, n := range k.SyncDropped {
			m[fmt.Sprintf(`epconsole_sync_dropped_total{reason=%q}`, r)] = float64(n)
		}
		for _, p := range k.SyncPeers {
			m[fmt.Sprintf(`epconsole_sync_peer_queue{peer=%q}`, p.Peer)] = float64(p.Queue)
			m[fmt.Sprintf(`epconsole_sync_peer_connected{peer=%q}`, p.Peer)] = b01(p.Connected)
		}
		for name, h := range map[string]Histogram{
			"epconsole_reconcile_duration_seconds": k.ReconcileLatency,
			"epconsole_vip_claim_duration_seconds": k.ClaimLatency,
			"epconsole_sync_lag_seconds":           k.SyncLag,
		} {
			m[name+"_count"] = float64(h.Count)
			m[name+"_sum"] = h.Sum.Seconds()
			n := uint64(0)
			for i, le := range LatencyBuckets {
				n += h.Buckets[i]
				m[fmt.Sprintf(`%s_bucket{le=%q}`, name, fmt.Sprint(le.Seconds()))] = float64(n)
			}
			m[name+`_bucket{le="+Inf"}`] = float64(h.Count)
		}
	}
	for _, c := range s.Certificates {
		if c.NotAfter.IsZero() {
			continue
		}
		missing := 0
		for _, n := range c.SANs {
			if !n.Present {
				missing++
			}
		}
		m[fmt.Sprintf(`epconsole_tls_days_to_expiry{backend=%q}`, c.Backend)] = float64(c.DaysLeft)
		m[fmt.Sprintf(`epconsole_tls_not_after_timestamp_seconds{backend=%q}`, c.Backend)] = float64(c.NotAfter.Unix())
		m[fmt.Sprintf(`epconsole_tls_seconds_to_expiry{backend=%q}`, c.Backend)] = c.NotAfter.Sub(s.Generated).Seconds()
		m[fmt.Sprintf(`epconsole_tls_chain_ok{backend=%q}`, c.Backend)] = b01(c.ChainOK)
		m[fmt.Sprintf(`epconsole_tls_sans_missing{backend=%q}`, c.Backend)] = float64(missing)
	}
	if e := s.Etcd; e != nil {
		m["epconsole_etcd_members"] = float64(len(e.Members))
		m["epconsole_etcd_members_healthy"] = float64(e.Healthy)
		m["epconsole_etcd_quorum"] = float64(e.Quorum)
		m["epconsole_etcd_failure_tolerance"] = float64(e.Tolerance)
		m["epconsole_etcd_has_leader"] = b01(e.Leader != "")
		m["epconsole_etcd_alarms"] = float64(len(e.Alarms))
	}
	for _, v := range s.Verdicts {
		// The Nagios exit codes, as `epconsole check` exits.
		code := map[probes.Severity]float64{probes.OK: 0, probes.Warning: 1, probes.Critical: 2, probes.Unknown: 3}[v.Severity]
		m[fmt.Sprintf(`epconsole_area_severity{area=%q}`, v.Area)] = code
	}
	for _, sev := range []probes.Severity{probes.OK, probes.Warning, probes.Unknown, probes.Critical} {
		n := 0
		for _, f := range s.Findings {
			if f.Severity == sev {
				n++
			}
		}
		m[fmt.Sprintf(`epconsole_findings{severity=%q}`, sev.String())] = float64(n)
	}
	return m
}

// scrape fetches url and returns its epconsole_ samples, keyed
// name{label="value",...} with labels sorted, and the families.
func scrape(t *testing.T, url string) (map[string]float64, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v %s", resp.StatusCode, err, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing the scrape: %v\n%s", err, body)
	}
	got := map[string]float64{}
	add := func(name string, labels []*dto.LabelPair, v float64) {
		var ls []string
		for _, l := range labels {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		sort.Strings(ls)
		key := name
		if len(ls) > 0 {
			key += "{" + strings.Join(ls, ",") + "}"
		}
		if _, dup := got[key]; dup {
			t.Errorf("scrape: %s twice", key)
		}
		got[key] = v
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "epconsole_") {
			continue
		}
		for _, m := range f.Metric {
			switch f.GetType() {
			case dto.MetricType_GAUGE:
				add(name, m.Label, m.GetGauge().GetValue())
			case dto.MetricType_COUNTER:
				add(name, m.Label, m.GetCounter().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				add(name+"_count", m.Label, float64(h.GetSampleCount()))
				add(name+"_sum", m.Label, h.GetSampleSum())
				for _, b := range h.Bucket {
					le := fmt.Sprint(b.GetUpperBound())
					add(name+"_bucket", append(m.Label, &dto.LabelPair{Name: ptr("le"), Value: &le}), float64(b.GetCumulativeCount()))
				}
			default:
				t.Errorf("%s: unexpected type %v", name, f.GetType())
			}
		}
	}
	return got, fams
}

// compareMetrics reports every sample that differs, is missing or extra.
func compareMetrics(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("missing %s (want %v)", k, w)
		case g != w && !(approx(g, w)):
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s = %v", k, g)
		}
	}
}

func approx(a, b float64) bool {
	d := a - b
	return d < 1e-9 && d > -1e-9
}

func ptr[T any](v T) *T { return &v }

// withLatencies adds reconcile and claim latencies to s's counters.
func withLatencies(s Snapshot) Snapshot {
	c := *s.Counters
	for _, d := range []time.Duration{800 * time.Microsecond, 3 * time.Millisecond, 15 * time.Millisecond, 15 * time.Millisecond, 20 * time.Second} {
		c.ReconcileLatency.Observe(d)
	}
	c.ClaimLatency.Observe(4 * time.Millisecond)
	s.Counters = &c
	return s
}

func TestMetricsMatchSnapshot(t *testing.T) {
	snap := withLatencies(sampleSnapshot(1))
	pub := NewPublisher(snap)
	ms, err := ListenMetrics("127.0.0.1:0", pub, MetricsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ms.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metrics Serve: %v", err)
		}
	})
	url := "http://" + ms.Addr().String() + "/metrics"

	got, fams := scrape(t, url)
	compareMetrics(t, got, expectedMetrics(snap))
	if f := fams["epconsole_failovers_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("epconsole_failovers_total is a %v, want a counter", f.GetType())
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Errorf("no Go runtime metrics")
	}

	// Docs list every metric.
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatalf("docs/metrics.md: %v", err)
	}
	for name := range fams {
		if strings.HasPrefix(name, "epconsole_") && !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/metrics.md does not list %s", name)
		}
	}

	// The next scrape follows a new snapshot: a backend down, the VIP gone
	// to another peer, a peer dead, more failovers.
	next := sampleSnapshot(2)
	next.Backends[0].Views[0].State = "down"
	next.VIPs[0].Here, next.VIPs[0].Owner = false, "lb2"
	next.Peers[1].State = "suspect"
	next.Etcd.Leader = ""
	pub.Publish(next)
	got, _ = scrape(t, url)
	compareMetrics(t, got, expectedMetrics(next))
	for key, want := range map[string]float64{
		`epconsole_backend_up{backend="cp1",peer="lb1"}`: 0,
		`epconsole_vip_owner{vip="198.18.9.10"}`:         0,
		`epconsole_peers_alive`:                          1,
		`epconsole_failovers_total`:                      4,
		`epconsole_etcd_has_leader`:                      0,
	} {
		if got[key] != want {
			t.Errorf("after the change %s = %v, want %v", key, got[key], want)
		}
	}

	// A direct snapshot has no counters and no etcd: those are absent.
	direct := Snapshot{Schema: Schema, Source: "direct", Node: "lb1", Generated: time.Unix(1700000000, 0)}
	pub.Publish(direct)
	got, _ = scrape(t, url)
	compareMetrics(t, got, expectedMetrics(direct))
}

func TestCheckMetricsListen(t *testing.T) {
	tests := []struct {
		listen string
		allow  bool
		ok     bool
	}{
		{"127.0.0.1:9642", false, true},
		{"127.3.4.5:9642", false, true},
		{"[::1]:9642", false, true},
		{"localhost:9642", false, true},
		{":9642", false, false},
		{"0.0.0.0:9642", false, false},
		{"[::]:9642", false, false},
		{"198.18.0.1:9642", false, false},
		{"198.18.0.1:9642", true, true},
		{":9642", true, true},
		{"127.0.0.1", false, false},
		{"", true, false},
	}
	for _, tc := range tests {
		err := CheckMetricsListen(tc.listen, tc.allow)
		if (err == nil) != tc.ok {
			t.Errorf("CheckMetricsListen(%q, %v) = %v, want ok=%v", tc.listen, tc.allow, err, tc.ok)
		}
	}
	if _, err := ListenMetrics("0.0.0.0:0", NewPublisher(Snapshot{}), MetricsOptions{}); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("ListenMetrics on all addresses: err = %v, want refused", err)
	}
}

// TestAreaSeverityEncoding pins epconsole_area_severity to the Nagios exit
// codes, the encoding `epconsole check` exits with: an UNKNOWN area must
// read 3 and a CRITICAL one 2, as in every Nagios-fed dashboard.
func TestAreaSeverityEncoding(t *testing.T) {
	for _, tc := range []struct {
		sev  probes.Severity
		want float64
	}{
		{probes.OK, 0}, {probes.Warning, 1}, {probes.Critical, 2}, {probes.Unknown, 3},
	} {
		if got := float64(tc.sev.ExitCode()); got != tc.want {
			t.Fatalf("%v exits %v, want %v", tc.sev, got, tc.want)
		}
		s := Snapshot{Schema: Schema, Generated: time.Unix(1700000000, 0),
			Verdicts: []AreaVerdict{{Area: "tls", Severity: tc.sev}}}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(NewCollector(NewPublisher(s)))
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, f := range fams {
			if f.GetName() == "epconsole_area_severity" {
				found = true
				if got := f.Metric[0].GetGauge().GetValue(); got != tc.want {
					t.Errorf("area_severity for %v = %v, want %v", tc.sev, got, tc.want)
				}
			}
		}
		if !found {
			t.Errorf("%v: no epconsole_area_severity", tc.sev)
		}
	}
}

func TestHistogramObserve(t *testing.T) {
	var h Histogram
	for _, d := range []time.Duration{0, time.Millisecond, time.Millisecond + 1, 10 * time.Second, 11 * time.Second} {
		h.Observe(d)
	}
	if h.Count != 5 || h.Sum != 21*time.Second+2*time.Millisecond+1 {
		t.Errorf("count %d sum %v, want 5 and 21.002000001s", h.Count, h.Sum)
	}
	cum := h.Cumulative()
	for le, want := range map[float64]uint64{0.001: 2, 0.0025: 3, 5: 3, 10: 4} {
		if cum[le] != want {
			t.Errorf("le=%v: %d, want %d", le, cum[le], want)
		}
	}
	if len(cum) != len(LatencyBuckets) {
		t.Errorf("%d buckets, want %d", len(cum), len(LatencyBuckets))
	}
	// Copying Counters copies the histogram (no shared backing array).
	c := Counters{ReconcileLatency: h}
	d := c
	d.ReconcileLatency.Observe(time.Millisecond)
	if c.ReconcileLatency.Count != 5 || c.ReconcileLatency.Buckets[0] != 2 {
		t.Errorf("a copy's observation changed the original: %+v", c.ReconcileLatency)
	}
}

// TestMetricNames: MetricNames names exactly the families a full snapshot
// exports, and the registry accepts the collector (no clashing names).
func TestMetricNames(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(NewPublisher(withLatencies(sampleSnapshot(1)))))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fams {
		got = append(got, f.GetName())
	}
	sort.Strings(got)
	if want := MetricNames(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("exported families:\n%v\nMetricNames:\n%v", got, want)
	}
}
