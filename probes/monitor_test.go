package probes_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/standin"
	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/probes/probetest"
)

// defaultMonitor has config.hcl's health defaults: interval 1s,
// fast_interval 200ms, timeout 500ms, rise 2, fall 2.
func defaultMonitor(f *probetest.Fixture, targets []probes.Target, updates chan<- probes.Update) *probes.Monitor {
	return probes.NewMonitor(probes.MonitorOptions{
		Targets:      targets,
		Health:       probes.HealthOptions{Kind: probes.KindHTTPS, Timeout: 500 * time.Millisecond, RootCAs: f.CA.Pool()},
		Interval:     time.Second,
		FastInterval: 200 * time.Millisecond,
		Rise:         2,
		Fall:         2,
		OnUpdate: func(u probes.Update) {
			select {
			case updates <- u:
			default: // never block the prober
			}
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

// waitState waits for backend to reach state and returns the updates seen
// for it on the way (bounded by limit).
func waitState(t testing.TB, updates <-chan probes.Update, backend string, state probes.State, limit time.Duration) []probes.Update {
	t.Helper()
	deadline := time.After(limit)
	var seen []probes.Update
	for {
		select {
		case u := <-updates:
			if u.Result.Backend != backend {
				continue
			}
			seen = append(seen, u)
			if u.Tracker.State == state {
				return seen
			}
		case <-deadline:
			t.Fatalf("%s did not reach %s within %v; saw %v", backend, state, limit, states(seen))
		}
	}
}

func states(us []probes.Update) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Tracker.State.String())
	}
	return out
}

func TestMonitorDefaults(t *testing.T) {
	f := probetest.NewFixture(t)
	a := f.Backend(t, "cp1", backendIP(1), probetest.Healthy)
	b := f.Backend(t, "cp2", backendIP(2), probetest.Healthy)
	c := f.Backend(t, "cp3", backendIP(3), probetest.Forbidden)
	targets := []probes.Target{{Name: "cp1", Address: a.Addr}, {Name: "cp2", Address: b.Addr}, {Name: "cp3", Address: c.Addr}}
	updates := make(chan probes.Update, 1024)
	m := defaultMonitor(f, targets, updates)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v", err)
		}
	})

	// The first result is decisive.
	waitState(t, updates, "cp2", probes.StateUp, 2*time.Second)

	// Stopped backend (port refuses): up -> falling -> down.
	b.Stop()
	stopped := time.Now()
	seen := waitState(t, updates, "cp2", probes.StateDown, 4*time.Second)
	detect := time.Since(stopped)
	if got := states(seen); !slices.Equal(got, []string{"falling", "down"}) {
		t.Errorf("stopped backend went through %v, want [falling down]", got)
	}
	// fall-1 probes at the fast interval, not the steady one.
	if gap := seen[1].Result.Time.Sub(seen[0].Result.Time); gap >= 900*time.Millisecond {
		t.Errorf("probes %v apart while falling; want the fast interval (200ms)", gap)
	}
	t.Logf("stopped backend: down after %v (interval 1s, fast_interval 200ms, timeout 500ms, fall 2)", detect.Round(time.Millisecond))

	// Back: down -> rising -> up, at the fast interval.
	b.Restart(t)
	restarted := time.Now()
	seen = waitState(t, updates, "cp2", probes.StateUp, 4*time.Second)
	if got := states(seen); !slices.Equal(got[len(got)-2:], []string{"rising", "up"}) {
		t.Errorf("restarted backend went through %v, want ... rising up", got)
	}
	t.Logf("restarted backend: up after %v", time.Since(restarted).Round(time.Millisecond))

	// Hung backend (answers too late): down by timeouts.
	b.Server.SetBehavior(standin.Behavior{Delay: 5 * time.Second})
	hung := time.Now()
	seen = waitState(t, updates, "cp2", probes.StateDown, 5*time.Second)
	t.Logf("hung backend: down after %v (%s)", time.Since(hung).Round(time.Millisecond), seen[len(seen)-1].Result.Error)

	// All the while, the healthy one and the 403 one never left rotation.
	for _, s := range m.Snapshot() {
		switch s.Target.Name {
		case "cp1", "cp3":
			if s.Tracker.State != probes.StateUp {
				t.Errorf("%s is %s, want up", s.Target.Name, s.Tracker.State)
			}
		case "cp2":
			if s.Tracker.State != probes.StateDown || s.Last.Outcome != probes.OutcomeFail {
				t.Errorf("cp2 snapshot %+v", s)
			}
		}
	}
	if s := m.Snapshot()[2]; s.Last.Outcome != probes.OutcomeReadinessUnknown || !s.Tracker.Serving() {
		t.Errorf("403 backend: %s, serving %v; want readiness-unknown and serving", s.Last.Outcome, s.Tracker.Serving())
	}
}

// BenchmarkDetectDown measures, with the default health settings, the
// time from stopping a backend (its port then refuses) to the state
// machine reporting it down. The stop happens at a random point of the
// probe interval. Run: go test -run '^$' -bench DetectDown -benchtime 10x ./probes/
func BenchmarkDetectDown(b *testing.B) {
	for _, mode := range []string{"stopped", "hung"} {
		b.Run(mode, func(b *testing.B) {
			f := probetest.NewFixture(b)
			be := f.Backend(b, "cp1", backendIP(1), probetest.Healthy)
			updates := make(chan probes.Update, 1024)
			m := defaultMonitor(f, []probes.Target{{Name: "cp1", Address: be.Addr}}, updates)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go m.Run(ctx)
			var total, worst time.Duration
			for i := 0; i < b.N; i++ {
				waitState(b, updates, "cp1", probes.StateUp, 5*time.Second)
				time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
				start := time.Now()
				if mode == "stopped" {
					be.Stop()
				} else {
					be.Server.SetBehavior(standin.Behavior{Delay: 10 * time.Second})
				}
				waitState(b, updates, "cp1", probes.StateDown, 5*time.Second)
				d := time.Since(start)
				total += d
				worst = max(worst, d)
				if mode == "stopped" {
					be.Restart(b)
				}
				be.Server.SetBehavior(standin.Behavior{})
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-down")
			b.ReportMetric(float64(worst.Milliseconds()), "ms-worst")
			b.ReportMetric(0, "ns/op")
		})
	}
}
