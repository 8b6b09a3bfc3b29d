package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
)

// The probe monitor and the heartbeat's beat loop: starting them, and
// starting them again (a reload, a beat loop that died).

func (d *Daemon) startMonitor(s *state) error {
	cfg := s.cfg
	ho := probes.HealthOptions{Kind: probes.Kind(cfg.Health.Kind), Path: cfg.Health.Path, Timeout: cfg.Health.Timeout}
	if cfg.TLS.CAFile != "" {
		b, err := config.ReadFile(cfg.TLS.CAFile)
		if err != nil {
			return fmt.Errorf("tls.ca_file: %w", err)
		}
		cs, err := probes.ParseCertificates(b)
		if err != nil {
			return fmt.Errorf("tls.ca_file %s: %w", cfg.TLS.CAFile, err)
		}
		p := x509.NewCertPool()
		for _, c := range cs {
			p.AddCert(c)
		}
		ho.RootCAs = p
	}
	if cfg.Health.ClientCertFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.Health.ClientCertFile, cfg.Health.ClientKeyFile)
		if err != nil {
			return fmt.Errorf("health client certificate: %w", err)
		}
		ho.ClientCert = &c
	}
	mon := d.start.monitor(probes.MonitorOptions{
		Targets: targets(cfg), Health: ho,
		Interval: cfg.Health.Interval, FastInterval: cfg.Health.FastInterval,
		Rise: cfg.Health.Rise, Fall: cfg.Health.Fall,
		LateFraction: probeLateFraction(),
		Logger:       d.log.With("component", "probes"),
		OnUpdate: func(u probes.Update) {
			d.counters.probeFailure(u.Result)
			d.certPresented(u.Result)
			d.onProbeUpdate(s, u) // wake.go
		},
	})
	mctx, stop := context.WithCancel(s.run)
	done := make(chan struct{})
	go func() { defer close(done); _ = mon.Run(mctx) }()
	d.mu.Lock()
	s.mon, s.monStop, s.monDone = mon, stop, done
	d.mu.Unlock()
	return nil
}

// Retry pacing of a beat loop that failed to start or died: the first
// retry after beatRetryMin, doubling up to beatRetryMax, until one start
// succeeds. A busy heartbeat port is retried for as long as it is busy.
const (
	beatRetryMin = 100 * time.Millisecond
	beatRetryMax = 5 * time.Second
	// beatRetryLogEvery: after the first failure, one failed retry in so
	// many is logged as an error (about once a minute at the longest
	// wait), the others at debug level.
	beatRetryLogEvery = 12
)

// beatRetry paces the restarts of the beat loop.
type beatRetry struct {
	at       time.Time     // no attempt before
	wait     time.Duration // the wait after the next failure
	failures int           // failed starts in a row
	restart  time.Time     // the last restart of a loop that died
}

// failed schedules the next attempt and reports whether to log this
// failure as an error.
func (r *beatRetry) failed(now time.Time) bool {
	r.failures++
	if r.wait < beatRetryMin {
		r.wait = beatRetryMin
	}
	r.at = now.Add(r.wait)
	r.wait = min(2*r.wait, beatRetryMax)
	return r.failures == 1 || r.failures%beatRetryLogEvery == 0
}

// startBeater starts the beat loop into s. When it fails, s.beater is nil
// and s.beatErr says why, and restartBeater tries again later.
func (d *Daemon) startBeater(s *state) {
	if d.opts.NoHeartbeat {
		d.mu.Lock()
		s.beater, s.beatErr = nil, errors.New(status.HeartbeatSwitchedOff)
		d.mu.Unlock()
		d.log.Warn("heartbeat switched off; liveness from gossip only (slow failover)")
		return
	}
	hc := heartbeatConfig(s.cfg)
	hc.Logger = d.log.With("component", "heartbeat")
	hc.Claim = d.claimConfig(s, hc)
	b, err := d.start.heartbeat(s.run, hc)
	if err != nil {
		// Liveness then comes from gossip alone (slower, but the VIP
		// still moves); the status says so, and the start is retried.
		d.mu.Lock()
		s.beater, s.beatErr = nil, err
		logIt := s.beatRetry.failed(time.Now())
		d.mu.Unlock()
		if logIt {
			d.log.Error("heartbeat not running; liveness from gossip only; retrying", "err", err,
				"failed_starts", s.beatRetry.failures, "next_try_in", time.Until(s.beatRetry.at).Round(time.Millisecond))
		} else {
			d.log.Debug("heartbeat start failed again", "err", err, "failed_starts", s.beatRetry.failures)
		}
		return
	}
	failures := s.beatRetry.failures
	d.mu.Lock()
	s.beater, s.beatErr, s.beatRetry = b, nil, beatRetry{restart: s.beatRetry.restart}
	d.mu.Unlock()
	d.claimStarted(s, hc.Claim)
	rt := b.Realtime()
	d.log.Info("heartbeat running", "bind", hc.Bind, "interval", hc.Interval, "misses", hc.Misses,
		"realtime", rt.InEffect, "priority", rt.Priority, "reason", rt.Reason, "after_failed_starts", failures)
}

// restartBeater starts the beat loop again when it died (its view is then
// stale, and this node holds nothing; at most once a second) or never
// started (its port was busy), paced by s.beatRetry. It reports whether a new loop runs.
func (d *Daemon) restartBeater(s *state) bool {
	if d.opts.NoHeartbeat {
		return false
	}
	if s.beater != nil {
		select {
		case <-s.beater.Done():
		default:
			return false
		}
		if s.beatRetry.failures == 0 {
			// It died while running: restarted at most once a second
			// (a loop that keeps dying does not spin), then paced.
			if time.Since(s.beatRetry.restart) < time.Second {
				return false
			}
			s.beatRetry.restart = time.Now()
			d.log.Error("heartbeat loop ended; restarting it", "err", s.beater.Err())
		}
	} else if s.beatErr == nil {
		return false
	}
	if time.Now().Before(s.beatRetry.at) {
		return false
	}
	old := s.beater
	d.startBeater(s)
	if s.beater == nil {
		if old != nil {
			d.mu.Lock()
			s.beater = old // keep the stale view (nobody fresh) and retry later
			d.mu.Unlock()
		}
		return false
	}
	return true
}
