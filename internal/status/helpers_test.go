package status

import (
	"context"
	"errors"
	"fmt"
	"github.com/epconsole/epconsole/probes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// childEnv makes the test binary act as a status client (see TestMain).
const childEnv = "EPCONSOLE_STATUS_TEST_CHILD_SOCKET"

// Exit codes of the child client.
const (
	childOK         = 0
	childPermission = 3
	childOther      = 4
)

func TestMain(m *testing.M) {
	if sock := os.Getenv(childEnv); sock != "" {
		os.Exit(runChild(sock))
	}
	os.Exit(m.Run())
}

// childDoEnv says what the child client does: "status" (the default),
// "events", "health" or "drain".
const childDoEnv = "EPCONSOLE_STATUS_TEST_CHILD_DO"

// runChild asks the daemon at sock for its status (or what childDoEnv
// says) and prints the outcome.
func runChild(sock string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := NewClient(sock)
	var err error
	switch os.Getenv(childDoEnv) {
	case "events":
		var evs []Event
		if evs, err = c.Events(ctx, time.Time{}); err == nil {
			fmt.Printf("events=%d uid=%d\n", len(evs), os.Getuid())
		}
	case "health":
		var h Health
		if h, err = c.Health(ctx); err == nil {
			fmt.Printf("role=%s actions=%v uid=%d\n", h.Role, h.Actions, os.Getuid())
		}
	case "drain":
		if err = c.Drain(ctx, "cp1"); err == nil {
			fmt.Printf("drained uid=%d\n", os.Getuid())
		}
	default:
		var s Snapshot
		if s, err = c.Status(ctx); err == nil {
			fmt.Printf("node=%s uid=%d\n", s.Node, os.Getuid())
		}
	}
	switch {
	case err == nil:
		return childOK
	case errors.Is(err, ErrPermission):
		fmt.Println(err)
		return childPermission
	default:
		fmt.Println(err)
		return childOther
	}
}

// sampleSnapshot returns a snapshot with every field set, distinct per n.
func sampleSnapshot(n int) Snapshot {
	t0 := time.Date(2026, 11, 24, 21, 0, n, 0, time.UTC)
	return Snapshot{
		Schema:    Schema,
		Generated: t0,
		Source:    "daemon",
		Cluster:   "prod",
		Node:      "lb1",
		Version:   fmt.Sprintf("v0.%d", n),
		VIPs: []VIP{
			{Address: "198.18.9.10", Interface: "eth0", Port: 6443, Owner: "lb1", OwnerSince: t0.Add(-time.Hour), Here: true},
			{Address: "fd00:198:18:9::10", Interface: "eth0", Port: 6443, Owner: "", Here: false},
		},
		Election: Election{Owner: "lb1", Epoch: uint64(7 + n), Elected: "lb1", Reason: "highest priority",
			QuorumPeers: 3, QuorumNeed: 2, QuorumHave: 3, QuorumRequired: true, QuorumPossible: true,
			Realtime: true, HeartbeatInterval: 5 * time.Millisecond, HeartbeatMisses: 4,
			ConfigDigest: "abc123", Mismatch: []string{"lb3"}},
		Peers: []Peer{
			{Name: "lb1", Address: "198.18.9.1:7946", Self: true, State: "alive", Fresh: true, Priority: 200, Eligible: true,
				Owner: "lb1", Epoch: 7, Version: "v0.1", Digest: "abc123", LastSeen: t0, RTT: 0},
			{Name: "lb2", Address: "198.18.9.2:7946", State: "alive", Fresh: true, Priority: 100, Eligible: true,
				Preempt: true, Owner: "lb1", Epoch: 7, Version: "v0.1", Digest: "abc123", LastSeen: t0, RTT: 300 * time.Microsecond},
			{Name: "lb3", Address: "198.18.9.3:7946", State: "dead", Priority: 50, Owner: "", Epoch: 6,
				Version: "v0.0", Digest: "ffff", LastSeen: t0.Add(-time.Minute), RTT: 0},
		},
		Backends: []Backend{
			{Name: "cp1", Address: "198.18.9.21:6443", Connections: 12 + n, Views: []BackendView{
				{Peer: "lb1", State: "up", Latency: 2 * time.Millisecond, Since: t0},
				{Peer: "lb2", State: "falling", Latency: 3 * time.Millisecond, Reason: "readyz: [-]etcd failed", Since: t0},
			}},
			{Name: "cp2", Address: "198.18.9.22:6443", Drained: true, Connections: 0, Views: []BackendView{
				{Peer: "lb1", State: "down", Latency: 0, Reason: "connect: connection refused", Since: t0},
				{Peer: "lb2", State: "rising", Latency: 4 * time.Millisecond, Since: t0},
			}},
		},
		Certificates: []Certificate{
			{Backend: "cp1", Subject: "CN=kube-apiserver", Issuer: "CN=kubernetes", NotAfter: t0.Add(30 * 24 * time.Hour),
				DaysLeft: 30, ChainOK: true, SANs: []SANCheck{{Name: "198.18.9.10", Present: true}, {Name: "k8s.example", Present: false}}},
			{Backend: "cp2", Error: "connect: connection refused"},
		},
		Etcd: &Etcd{
			Members: []EtcdMember{
				{Name: "cp1", ID: "8e9e05c52164694d", Endpoint: "https://198.18.9.21:2379", Leader: true, Healthy: true,
					RaftTerm: 3, RaftIndex: 1000, DBSize: 1 << 20, Version: "3.6.0"},
				{Name: "cp2", ID: "91bc3c398fb3c146", Endpoint: "https://198.18.9.22:2379", Error: "context deadline exceeded"},
				{Name: "cp3", ID: "fd422379fda50e48", Endpoint: "https://198.18.9.23:2379", Healthy: true, RaftTerm: 3, RaftIndex: 1000},
			},
			Alarms: []string{"NOSPACE"}, Quorum: 2, Healthy: 2, Tolerance: 0, Leader: "cp1", Severity: probes.Warning,
		},
		Verdicts: []AreaVerdict{
			{Area: "backends", Severity: probes.Warning, Summary: "1 of 2 backends up"},
			{Area: "tls", Severity: probes.Critical, Summary: "cp1 lacks k8s.example"},
			{Area: "etcd", Severity: probes.Warning, Summary: "no failure tolerance"},
			{Area: "cluster", Severity: probes.OK, Summary: "lb1 owns the VIP"},
		},
		Findings: Findings{
			{Check: probes.CheckTLS, Severity: probes.Critical, Subject: "cp1", Code: "tls-san-missing", Message: "k8s.example missing", Fixes: []probes.Fix{{Text: "reissue"}}},
			{Check: probes.CheckEtcd, Severity: probes.Warning, Code: "etcd-tolerance", Message: "no tolerance"},
		},
		Events: []Event{
			{Time: t0.Add(-time.Minute), Kind: "vip-acquired", Subject: "198.18.9.10", Message: "lb1 took the VIP"},
			{Time: t0, Kind: "backend-down", Subject: "cp2", Message: "connection refused"},
		},
		Counters: &Counters{
			Failovers:       uint64(2 + n),
			ProbeFailures:   map[string]uint64{"connect": 5, "readyz": uint64(3 + n)},
			Reconciles:      40,
			ReconcileErrors: 1,
			ReconcileTime:   800 * time.Millisecond,
			LastReconcile:   15 * time.Millisecond,
			SyncApplied:     uint64(100 + n),
			SyncResyncs:     1,
			SyncDropped:     map[string]uint64{"sender": 2, "vip": 1},
			SyncPeers:       []SyncPeer{{Peer: "lb2", Connected: true, Queue: 3}},
		},
	}
}

// socketPath returns a socket path in a fresh temporary directory.
func socketPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "run", "status.sock")
}

// startServer serves src on sock until the test ends (or stop is called).
func startServer(t *testing.T, opts ServerOptions) (stop func()) {
	t.Helper()
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return 5s after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

// next returns the next update, failing after within.
func next(t *testing.T, ch <-chan Update, within time.Duration) Update {
	t.Helper()
	select {
	case u, ok := <-ch:
		if !ok {
			t.Fatalf("update channel closed")
		}
		return u
	case <-time.After(within):
		t.Fatalf("no update within %v", within)
	}
	return Update{}
}
