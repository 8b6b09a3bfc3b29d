package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/epconsole/epconsole/internal/config"
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
		Logger: d.log.With("component", "probes"),
		OnUpdate: func(u probes.Update) {
			d.counters.probeFailure(u.Result)
			d.certPresented(u.Result)
			select {
			case s.probeCh <- struct{}{}:
			default:
			}
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

func (d *Daemon) startBeater(s *state) {
	if d.opts.NoHeartbeat {
		d.mu.Lock()
		s.beater, s.beatErr = nil, errors.New("heartbeat switched off")
		d.mu.Unlock()
		d.log.Warn("heartbeat switched off; liveness from gossip only (slow failover)")
		return
	}
	hc := heartbeatConfig(s.cfg)
	hc.Logger = d.log.With("component", "heartbeat")
	b, err := d.start.heartbeat(s.run, hc)
	if err != nil {
		// Liveness then comes from gossip alone (slower, but the VIP
		// still moves); the status says so.
		d.mu.Lock()
		s.beater, s.beatErr = nil, err
		d.mu.Unlock()
		d.log.Error("heartbeat not running; liveness from gossip only", "err", err)
		return
	}
	d.mu.Lock()
	s.beater, s.beatErr = b, nil
	d.mu.Unlock()
	rt := b.Realtime()
	d.log.Info("heartbeat running", "bind", hc.Bind, "interval", hc.Interval, "misses", hc.Misses,
		"realtime", rt.InEffect, "priority", rt.Priority, "reason", rt.Reason)
}

// restartBeater starts the beat loop again when it died (its view is then
// stale, and this node holds nothing), at most once a second. It reports
// whether a new loop runs.
func (d *Daemon) restartBeater(s *state) bool {
	if s.beater == nil || d.opts.NoHeartbeat {
		return false
	}
	select {
	case <-s.beater.Done():
	default:
		return false
	}
	if time.Since(s.beaterRetry) < time.Second {
		return false
	}
	s.beaterRetry = time.Now()
	d.log.Error("heartbeat loop ended; restarting it", "err", s.beater.Err())
	old := s.beater
	d.startBeater(s)
	if s.beater == nil {
		d.mu.Lock()
		s.beater = old // keep the stale view (nobody fresh) and retry later
		d.mu.Unlock()
		return false
	}
	return true
}
