package probes_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/standin"
	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/probes/probetest"
)

// lateProber passes its first probe, then times out every probe with the
// given timer lateness (this process observing the timeout that late),
// counting the probes.
type lateProber struct {
	late  time.Duration
	count atomic.Int64
}

func (p *lateProber) probe(_ context.Context, t probes.Target, o probes.HealthOptions) probes.HealthResult {
	r := probes.HealthResult{Backend: t.Name, Address: t.Address, Kind: probes.KindHTTPS, Time: time.Now()}
	if p.count.Add(1) == 1 {
		r.Outcome, r.Stage, r.StatusCode = probes.OutcomePass, probes.StageDone, 200
		return r
	}
	r.Outcome, r.Stage, r.Cause, r.Error = probes.OutcomeFail, probes.StageHTTP, probes.CauseTimeout, "context deadline exceeded"
	r.TimerLateness = p.late
	return r
}

// TestMonitorDiscountsLateTimeouts: a timeout observed long after its
// deadline (this LB ran late, not the backend) is re-probed and not
// counted; the same timeouts observed on time count and take the backend
// down. Lateness is injected: no timing here.
func TestMonitorDiscountsLateTimeouts(t *testing.T) {
	const timeout = 10 * time.Second // the prober never waits; a long timeout keeps real start lateness far below a quarter of it
	for _, tc := range []struct {
		name     string
		late     time.Duration
		fraction float64
		wantDown bool
	}{
		{name: "late timeouts are discounted", late: 5 * time.Second, wantDown: false},
		{name: "control: on-time timeouts count", late: 0, wantDown: true},
		{name: "control: discounting off", late: 5 * time.Second, fraction: -1, wantDown: true},
		{name: "lateness below the fraction counts", late: time.Second, wantDown: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &lateProber{late: tc.late}
			var downs atomic.Int64
			m := probes.NewMonitor(probes.MonitorOptions{
				Targets:  []probes.Target{{Name: "cp1"}},
				Health:   probes.HealthOptions{Timeout: timeout},
				Interval: time.Millisecond, FastInterval: time.Millisecond, Rise: 2, Fall: 2,
				LateFraction: tc.fraction, Prober: p.probe,
				OnUpdate: func(u probes.Update) {
					if u.Tracker.State == probes.StateDown {
						downs.Add(1)
					}
				},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = m.Run(ctx) }()
			for deadline := time.Now().Add(10 * time.Second); p.count.Load() < 20 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			<-done
			s := m.Snapshot()[0]
			t.Logf("%d probes: %s, %d discounted, max lateness %v", p.count.Load(), s.Tracker.Condition(), s.Discounted, s.MaxLateness)
			if p.count.Load() < 20 {
				t.Fatalf("only %d probes in 10s", p.count.Load())
			}
			if got := downs.Load() > 0; got != tc.wantDown {
				t.Errorf("marked down %v, want %v (state %s)", got, tc.wantDown, s.Tracker.Condition())
			}
			if !tc.wantDown && (s.Discounted < 10 || s.MaxLateness < tc.late) {
				t.Errorf("discounted %d probes, max lateness %v; want the late ones counted as discounted with their lateness", s.Discounted, s.MaxLateness)
			}
		})
	}
}

func TestDiscount(t *testing.T) {
	timeout := 500 * time.Millisecond
	to := probes.HealthResult{Cause: probes.CauseTimeout}
	late := func(r probes.HealthResult, start, timer time.Duration) probes.HealthResult {
		r.StartLateness, r.TimerLateness = start, timer
		return r
	}
	tests := []struct {
		desc string
		r    probes.HealthResult
		frac float64
		want bool
	}{
		{"on time: counts", late(to, 0, 0), 0.25, false},
		{"timer fired late: discounted", late(to, 0, 200*time.Millisecond), 0.25, true},
		{"started late: discounted", late(to, 200*time.Millisecond, 0), 0.25, true},
		{"a little late: counts", late(to, 50*time.Millisecond, 100*time.Millisecond), 0.25, false},
		{"refused is never discounted", late(probes.HealthResult{Cause: probes.CauseRefused}, time.Second, 0), 0.25, false},
		{"unready is never discounted", late(probes.HealthResult{Cause: probes.CauseUnready}, time.Second, 0), 0.25, false},
		{"discounting off", late(to, time.Second, time.Second), -1, false},
	}
	for _, tc := range tests {
		if got := probes.Discount(tc.r, timeout, tc.frac); got != tc.want {
			t.Errorf("%s: Discount = %v, want %v", tc.desc, got, tc.want)
		}
	}
}

// TestMonitorForbidden: a backend that answers nothing but 403 is up,
// judged by its TLS handshake, and `check`'s finding says so with the fix;
// a restarting backend's 403s and 500s never make it rise, only its 200s.
func TestMonitorForbidden(t *testing.T) {
	f := probetest.NewFixture(t)
	forbidden := f.Backend(t, "cp4", backendIP(4), probetest.Forbidden)
	restart := f.Backend(t, "cp5", backendIP(5), probetest.Healthy)
	updates := make(chan probes.Update, 1024)
	m := defaultMonitor(f, []probes.Target{{Name: "cp4", Address: forbidden.Addr}, {Name: "cp5", Address: restart.Addr}}, updates)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitState(t, updates, "cp4", probes.StateUp, 5*time.Second)
	waitState(t, updates, "cp5", probes.StateUp, 5*time.Second) // an up backend reports every interval
	s := m.Snapshot()[0]
	if !s.Tracker.Serving() || !s.Tracker.AuthOnly || s.Last.StatusCode != 403 {
		t.Fatalf("forbidden-only backend: %s (status %d); want up, judged by TLS", s.Tracker.Condition(), s.Last.StatusCode)
	}
	fs := probes.JudgeBackends([]probes.HealthResult{s.Last})
	if len(fs) != 1 || fs[0].Severity != probes.Warning || !strings.Contains(fs[0].Line(), "TLS handshake") ||
		!strings.Contains(fs[0].Line(), "health.client_cert_file") {
		t.Errorf("finding for a forbidden-only backend: %v; want one WARNING saying it is judged by TLS, naming health.client_cert_file", fs)
	}

	// cp5 restarts: refused, then 403 (RBAC not loaded yet), then 500
	// (not ready), then 200.
	restart.Stop()
	waitState(t, updates, "cp5", probes.StateDown, 5*time.Second)
	restart.Server.SetBehavior(standin.Behavior{AnonymousStatus: 403})
	restart.Restart(t)
	var seen []probes.Update
	collect := func(d time.Duration) {
		for end := time.After(d); ; {
			select {
			case u := <-updates:
				if u.Result.Backend == "cp5" {
					seen = append(seen, u)
				}
			case <-end:
				return
			}
		}
	}
	collect(1500 * time.Millisecond)
	restart.Server.SetBehavior(standin.Behavior{Unready: true})
	collect(1000 * time.Millisecond)
	var codes []int
	for _, u := range seen {
		codes = append(codes, u.Result.StatusCode)
		if u.Tracker.State == probes.StateRising || u.Tracker.Serving() {
			t.Errorf("after %v: %s on a %d", codes, u.Tracker.Condition(), u.Result.StatusCode)
		}
	}
	if !slices.Contains(codes, 403) || !slices.Contains(codes, 500) {
		t.Errorf("status codes seen %v; want 403s then 500s", codes)
	}
	restart.Server.SetBehavior(standin.Behavior{})
	waitState(t, updates, "cp5", probes.StateUp, 5*time.Second)
	t.Logf("restart sequence: %v, then 200s: up", codes)
}
