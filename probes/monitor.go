package probes

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// MonitorOptions configure a Monitor.
type MonitorOptions struct {
	// Targets are the backends, in config order.
	Targets []Target
	// Health says how each probe is made.
	Health HealthOptions
	// Interval is the time between probe starts of a settled backend
	// (default 1s); FastInterval the time while it is Rising or Falling
	// (default Interval/4, HAProxy's fastinter).
	Interval     time.Duration
	FastInterval time.Duration
	// Rise and Fall as in HAProxy (default 2 and 2).
	Rise, Fall int
	// DeadAfter and AuthOnlyAfter as in Params (default 10s each).
	DeadAfter, AuthOnlyAfter time.Duration
	// LateFraction discounts a timed-out probe that this process ran late
	// by more than this fraction of the timeout (see Discount): it is
	// re-probed at FastInterval and not counted. Default 0.25; negative
	// turns discounting off.
	LateFraction float64
	// Prober makes one probe (default Probe); tests inject results.
	Prober func(ctx context.Context, t Target, o HealthOptions) HealthResult
	// OnUpdate, if set, is called after every probe, from that backend's
	// goroutine; it must return quickly (hand off to a channel if needed).
	// A discounted probe is reported too (Result.Discounted, the state
	// unchanged).
	OnUpdate func(Update)
	// Logger logs state changes (default slog.Default()).
	Logger *slog.Logger
}

// Update is one probe result with the state machine's step.
type Update struct {
	Result   HealthResult
	Previous Tracker
	Tracker  Tracker
}

// Changed reports whether the step changed the state.
func (u Update) Changed() bool { return u.Previous.State != u.Tracker.State }

// BackendStatus is a backend's current state and last probe result.
type BackendStatus struct {
	Target  Target  `json:"target"`
	Tracker Tracker `json:"tracker"`
	// Last is the last counted probe result (a discounted one is not).
	Last HealthResult `json:"last"`
	// Since is when the backend entered its current state.
	Since time.Time `json:"since"`
	// Lateness is how late this process was with the latest probe,
	// counted or discounted (HealthResult.Lateness); MaxLateness the most
	// since the monitor started.
	Lateness    time.Duration `json:"-"`
	MaxLateness time.Duration `json:"-"`
	// Discounted counts the timed-out probes not counted because this
	// process ran too late to judge the backend by them.
	Discounted uint64 `json:"discounted,omitempty"`
}

// Discount reports whether r is a timeout this process is to blame for:
// the probe timed out, and it started late or observed its result late by
// more than fraction of the timeout (fraction <= 0: never). Such a result
// says nothing about the backend: on a loaded LB host the probe's own
// timer and goroutines run late, and counting it would mark healthy
// backends down.
func Discount(r HealthResult, timeout time.Duration, fraction float64) bool {
	return fraction > 0 && r.Cause == CauseTimeout && float64(r.Lateness()) > fraction*float64(timeout)
}

// Monitor probes every backend on its interval until its context ends and
// keeps each one's rise/fall state.
type Monitor struct {
	opts MonitorOptions

	mu     sync.Mutex
	status []BackendStatus
}

// NewMonitor fills defaults and prepares a monitor; Run starts it.
func NewMonitor(opts MonitorOptions) *Monitor {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.FastInterval <= 0 {
		opts.FastInterval = opts.Interval / 4
	}
	if opts.Rise <= 0 {
		opts.Rise = 2
	}
	if opts.Fall <= 0 {
		opts.Fall = 2
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LateFraction == 0 {
		opts.LateFraction = 0.25
	}
	if opts.Prober == nil {
		opts.Prober = Probe
	}
	m := &Monitor{opts: opts, status: make([]BackendStatus, len(opts.Targets))}
	for i, t := range opts.Targets {
		m.status[i] = BackendStatus{Target: t}
	}
	return m
}

// Run probes all backends until ctx ends; it returns ctx's error.
func (m *Monitor) Run(ctx context.Context) error {
	if len(m.opts.Targets) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	var wg sync.WaitGroup
	for i := range m.opts.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.loop(ctx, i)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// Snapshot returns every backend's state, in target order.
func (m *Monitor) Snapshot() []BackendStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]BackendStatus(nil), m.status...)
}

func (m *Monitor) loop(ctx context.Context, i int) {
	t := m.opts.Targets[i]
	timeout := m.opts.Health.withDefaults().Timeout
	due := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		res := m.opts.Prober(ctx, t, m.opts.Health)
		if ctx.Err() != nil {
			return // cancelled mid-probe: the result says nothing about the backend
		}
		res.StartLateness = max(start.Sub(due), 0)
		res.LatenessMS = float64(res.Lateness().Microseconds()) / 1000
		if Discount(res, timeout, m.opts.LateFraction) {
			res.Discounted = true
			u := m.discount(i, res)
			m.opts.Logger.Debug("probe timed out while this LB ran late: not counted, probing again", "backend", t.Name,
				"lateness", res.Lateness().String(), "timeout", timeout.String())
			if m.opts.OnUpdate != nil {
				m.opts.OnUpdate(u)
			}
			due = time.Now().Add(m.opts.FastInterval)
			timer.Reset(m.opts.FastInterval)
			continue
		}
		u := m.step(i, res)
		if u.Changed() {
			m.opts.Logger.Info("backend state changed", "backend", t.Name, "address", t.Address.String(),
				"from", u.Previous.Condition(), "to", u.Tracker.Condition(),
				"outcome", string(res.Outcome), "error", res.Error)
		}
		if m.opts.OnUpdate != nil {
			m.opts.OnUpdate(u)
		}
		next := m.opts.Interval
		if u.Tracker.Transitioning() {
			next = m.opts.FastInterval
		}
		wait := max(next-time.Since(start), 0)
		due = time.Now().Add(wait)
		timer.Reset(wait)
	}
}

// discount records a discounted result; the state stays as it is.
func (m *Monitor) discount(i int, res HealthResult) Update {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.status[i]
	s.Discounted++
	s.Lateness = res.Lateness()
	s.MaxLateness = max(s.MaxLateness, s.Lateness)
	return Update{Result: res, Previous: s.Tracker, Tracker: s.Tracker}
}

func (m *Monitor) step(i int, res HealthResult) Update {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.status[i]
	u := Update{Result: res, Previous: s.Tracker}
	u.Tracker = Step(s.Tracker, res, Params{Rise: m.opts.Rise, Fall: m.opts.Fall,
		DeadAfter: m.opts.DeadAfter, AuthOnlyAfter: m.opts.AuthOnlyAfter})
	s.Tracker, s.Last = u.Tracker, res
	s.Lateness = res.Lateness()
	s.MaxLateness = max(s.MaxLateness, s.Lateness)
	if u.Changed() || s.Since.IsZero() {
		s.Since = res.Time
	}
	return u
}
