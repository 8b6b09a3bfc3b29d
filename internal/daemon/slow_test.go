package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/standin"
	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/probes/probetest"
)

// TestSlowDrainsRefusedDies probes real stand-in apiservers (on
// 127.0.21.0/24) with a real monitor and folds its snapshot as the daemon
// does: a backend that turns slow (its /readyz outlasts the probe timeout)
// goes down draining, its established flows kept; one whose port refuses
// goes down dead, its flows cut; a healthy one stays up.
func TestSlowDrainsRefusedDies(t *testing.T) {
	f := probetest.NewFixture(t)
	ip := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 21, i}) }
	ok := f.Backend(t, "sd1", ip(1), probetest.Healthy)
	slow := f.Backend(t, "sd2", ip(2), probetest.Healthy)
	gone := f.Backend(t, "sd3", ip(3), probetest.Healthy)
	m := probes.NewMonitor(probes.MonitorOptions{
		Targets: []probes.Target{{Name: ok.Name, Address: ok.Addr}, {Name: slow.Name, Address: slow.Addr}, {Name: gone.Name, Address: gone.Addr}},
		Health:  probes.HealthOptions{Kind: probes.KindHTTPS, Timeout: 300 * time.Millisecond, RootCAs: f.CA.Pool()},
		// Every probe counts: this test is about the verdict, not this
		// host's load.
		Interval: 200 * time.Millisecond, FastInterval: 100 * time.Millisecond, Rise: 2, Fall: 2, LateFraction: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor := func(what string, cond func([]probes.BackendStatus) bool) []probes.BackendStatus {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if snap := m.Snapshot(); cond(snap) {
				return snap
			}
		}
		t.Fatalf("%s: not within 15s; snapshot %+v", what, m.Snapshot())
		return nil
	}
	waitFor("all up", func(s []probes.BackendStatus) bool {
		return s[0].Tracker.State == probes.StateUp && s[1].Tracker.State == probes.StateUp && s[2].Tracker.State == probes.StateUp
	})
	slow.Server.SetBehavior(standin.Behavior{Delay: probetest.SlowDelay})
	gone.Stop()
	snap := waitFor("slow and gone down", func(s []probes.BackendStatus) bool {
		return s[1].Tracker.State == probes.StateDown && s[2].Tracker.State == probes.StateDown
	})
	healthy, drain, views, _ := health(snap)
	t.Logf("views: %+v", views)
	if !healthy[ok.Name] || healthy[slow.Name] || healthy[gone.Name] {
		t.Errorf("healthy %v, want only %s", healthy, ok.Name)
	}
	if !drain[slow.Name] {
		t.Errorf("the slow backend (%s: %s, last %s %q) is dead: its flows would be cut; want it draining",
			slow.Name, snap[1].Tracker.Condition(), snap[1].Last.Stage, snap[1].Last.Error)
	}
	if drain[gone.Name] {
		t.Errorf("the refusing backend (%s: %s) drains; want it dead (its flows cut)", gone.Name, snap[2].Tracker.Condition())
	}
	if c := snap[1].Tracker.Condition(); c != "down (slow, draining)" {
		t.Errorf("slow backend's condition %q", c)
	}
}
