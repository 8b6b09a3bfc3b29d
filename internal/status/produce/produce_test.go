package produce_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/status/build"
	"github.com/epconsole/epconsole/internal/status/produce"
	"github.com/epconsole/epconsole/probes"
)

// testConfig has one backend on a loopback port nothing listens on, so
// the certificate check ends at once (refused) without leaving the host.
func testConfig() *config.Config {
	return &config.Config{ClusterName: "c", Node: config.Node{Name: "lb1"},
		VIPs:     []config.VIP{{Address: netip.MustParseAddr("198.18.6.100"), Interface: "eth0", Port: 6443}},
		Backends: []config.Backend{{Name: "cp1", Address: netip.MustParseAddr("127.0.0.1"), Port: 1}}}
}

// probeFeed is a stand-in monitor: its state is set by the test.
type probeFeed struct {
	mu    sync.Mutex
	state probes.State
	at    time.Time
}

func (p *probeFeed) set(s probes.State) {
	p.mu.Lock()
	p.state, p.at = s, time.Now()
	p.mu.Unlock()
}

func (p *probeFeed) snapshot() []probes.BackendStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := probes.OutcomePass
	if !(probes.Tracker{State: p.state}).Serving() {
		out = probes.OutcomeFail
	}
	return []probes.BackendStatus{{Target: probes.Target{Name: "cp1"}, Tracker: probes.Tracker{State: p.state},
		Last: probes.HealthResult{Backend: "cp1", Outcome: out, Time: p.at}}}
}

// start runs the producer with o completed by the test's feed, and
// returns the published snapshots.
func start(t *testing.T, o produce.Options, feed *probeFeed) <-chan status.Snapshot {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan status.Snapshot, 100)
	cfg := testConfig()
	o.Config = func() *config.Config { return cfg }
	o.Probes = feed.snapshot
	if o.CertInterval == 0 {
		o.CertInterval, o.EtcdInterval = time.Hour, time.Hour
	}
	if o.Publish == nil {
		o.Publish = func(s status.Snapshot) bool { out <- s; return true }
	}
	done := make(chan struct{})
	go func() { defer close(done); produce.Run(ctx, o) }()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

func next(t *testing.T, ch <-chan status.Snapshot, within time.Duration) status.Snapshot {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(within):
		t.Fatalf("no snapshot within %v", within)
	}
	return status.Snapshot{}
}

func backendState(s status.Snapshot) string {
	if len(s.Backends) == 0 || len(s.Backends[0].Views) == 0 {
		return ""
	}
	return s.Backends[0].Views[0].State
}

// TestRunPublishesChanges: the first round is published, a probe change
// woken by Wake is published at once, an unchanged round is not.
func TestRunPublishesChanges(t *testing.T) {
	feed := &probeFeed{}
	feed.set(probes.StateUp)
	wake := make(chan struct{}, 1)
	ch := start(t, produce.Options{Wake: wake, Tick: time.Hour, Republish: time.Hour}, feed)

	s := next(t, ch, 5*time.Second)
	for s.Certificates == nil || len(s.Certificates) == 0 {
		s = next(t, ch, 5*time.Second) // the certificate check's result is news
	}
	if s.Source != status.SourceDirect || backendState(s) != "up" {
		t.Fatalf("first snapshot: source %q backend %q", s.Source, backendState(s))
	}
	if v, _ := s.Verdict(probes.CheckCluster); v.Severity != probes.Unknown {
		t.Errorf("no daemon, cluster verdict %+v", v)
	}

	wake <- struct{}{}
	select {
	case s := <-ch:
		t.Errorf("an unchanged round was published: %+v", s.Verdicts)
	case <-time.After(200 * time.Millisecond):
	}

	feed.set(probes.StateDown)
	wake <- struct{}{}
	if s := next(t, ch, time.Second); backendState(s) != "down" {
		t.Errorf("after the change: backend %q, want down", backendState(s))
	}
}

// TestRunRepublish: an unchanged snapshot is published again once per
// Republish, not on every tick.
func TestRunRepublish(t *testing.T) {
	feed := &probeFeed{}
	feed.set(probes.StateUp)
	ch := start(t, produce.Options{Tick: 10 * time.Millisecond, Republish: 150 * time.Millisecond}, feed)
	next(t, ch, 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	for len(ch) > 0 { // the certificate check's result
		<-ch
	}
	begin := time.Now()
	n := 0
	for time.Since(begin) < 750*time.Millisecond {
		select {
		case <-ch:
			n++
		case <-time.After(10 * time.Millisecond):
		}
	}
	if n < 3 || n > 6 {
		t.Errorf("%d snapshots in 750 ms with a 150 ms republish and a 10 ms tick, want about 5", n)
	}
}

// TestRunFirstWait: the first snapshot waits for the backends' first
// probe, at most FirstWait.
func TestRunFirstWait(t *testing.T) {
	feed := &probeFeed{} // never probed: a zero Last
	begin := time.Now()
	ch := start(t, produce.Options{Tick: 20 * time.Millisecond, Republish: time.Hour, FirstWait: 300 * time.Millisecond}, feed)
	next(t, ch, 5*time.Second)
	if took := time.Since(begin); took < 250*time.Millisecond {
		t.Errorf("the first snapshot came after %v, before the first probe or FirstWait (300 ms)", took)
	}
}

// TestRunDaemon: with the daemon's state the snapshots are the daemon's,
// without the "no daemon" finding; Publish saying stop ends Run.
func TestRunDaemon(t *testing.T) {
	feed := &probeFeed{}
	feed.set(probes.StateUp)
	got := make(chan status.Snapshot, 1)
	ch := start(t, produce.Options{Tick: 10 * time.Millisecond, Republish: time.Hour,
		Daemon: func() *build.Daemon {
			return &build.Daemon{Decision: clusterDecision("lb1"), Eligible: true}
		},
		Publish: func(s status.Snapshot) bool { got <- s; return false }}, feed)
	_ = ch
	s := next(t, got, 5*time.Second)
	if s.Source != status.SourceDaemon || s.Election.Owner != "lb1" || s.Counters == nil {
		t.Errorf("source %q owner %q counters %v", s.Source, s.Election.Owner, s.Counters)
	}
	for _, f := range s.Findings {
		if f.Code == build.CodeNoDaemon {
			t.Error("a daemon's snapshot says there is no daemon")
		}
	}
	select {
	case <-got:
		t.Error("published after Publish said stop")
	case <-time.After(100 * time.Millisecond):
	}
}

func clusterDecision(owner string) cluster.Decision {
	return cluster.Decision{Owner: owner, Elected: owner, Reason: "owner"}
}
