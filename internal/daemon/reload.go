package daemon

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/probes"
)

// Reload: a new config applied to the running components, or rejected
// with nothing changed.

// reloaded notes a reload in the status ("" accepted, else why not).
func (d *Daemon) reloaded(rejected string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status.LastReload, d.status.LastReloadError = time.Now(), rejected
}

// reload re-reads the config: an invalid one is rejected with its
// diagnostics and nothing changes; a valid one is applied.
func (d *Daemon) reload(s *state) {
	cfg, diags := config.Load(d.opts.ConfigPath)
	if diags.HasErrors() || cfg == nil {
		var b bytes.Buffer
		_ = config.WriteDiagnostics(&b, diags, nil)
		var first []string
		for _, dg := range diags {
			if dg.Severity == hcl.DiagError {
				first = append(first, config.DiagnosticLine(dg))
			}
		}
		d.log.Error("config reload rejected; running state unchanged", "config", d.opts.ConfigPath, "diagnostics", b.String())
		d.record(EventReloadRejected, d.opts.ConfigPath, strings.Join(first, "; "))
		d.reloaded(strings.Join(first, "; "))
		return
	}
	if why := restartNeeded(s.cfg, cfg); why != "" {
		d.log.Error("config reload rejected; running state unchanged", "config", d.opts.ConfigPath, "reason", why+": restart the daemon to apply it")
		d.record(EventReloadRejected, d.opts.ConfigPath, why+" (needs a restart)")
		d.reloaded(why + " (needs a restart)")
		return
	}
	old := s.cfg
	d.mu.Lock()
	s.cfg = cfg
	d.mu.Unlock()
	s.sync.SetScope(syncVIPs(cfg), syncBackends(cfg))
	if err := d.installLease(s.run, s, cfg); err != nil {
		d.log.Error("installing the owner lease tables", "err", err)
	}
	if s.holding {
		d.renewLease(s)
	}
	// Probes: restart the monitor with the new targets and settings.
	d.restartMonitor(s)
	if err := s.cl.SetPeers(clusterPeers(cfg)); err != nil {
		d.log.Error("updating peers", "err", err)
	}
	d.applyPeerFilter(s)
	s.cl.SetPanicRouting(cfg.Balance.PanicRouting)
	if err := s.cl.SetKeys(cfg.Gossip.Keys); err != nil {
		d.log.Error("updating gossip keys", "err", err)
	}
	if !sameHeartbeat(old, cfg) {
		d.restartBeatLoop(s)
	}
	// Reconcile with the last healthy set restricted to the new backends
	// (new ones count as down until probed).
	healthy, drain := map[string]bool{}, map[string]bool{}
	for _, b := range cfg.Backends {
		healthy[b.Name], drain[b.Name] = s.programmed[b.Name], s.drained[b.Name]
	}
	d.reconcile(s, healthy, drain, true)
	d.record(EventReloadOK, d.opts.ConfigPath, "config digest "+cluster.ShortDigest(cfg.Digest()))
	d.reloaded("")
}

// restartBeatLoop restarts the beat loop with the new config (keys,
// peers, heartbeat settings), keeping this node live across the restart:
// the two loops cannot overlap (they share the heartbeat port), so the
// old loop's last view stands in for what the new one does not hear yet,
// for at most one detection time (view), and the new loop is refreshed at
// once (it sends no beat before its first refresh), so that the peers see
// a gap of one helper start, not of a decision tick.
func (d *Daemon) restartBeatLoop(s *state) {
	var prev heartbeat.View
	if s.beater != nil {
		prev = s.beater.View()
		// Tell the peers first: they keep this node live across the
		// pause in its beats (at most RestartGrace).
		a := heartbeat.Advert{Owner: s.last.Owner, Epoch: s.last.Epoch, Flags: heartbeat.FlagRestarting}
		if s.holding && !s.waiting {
			a.Flags |= heartbeat.FlagHolding
		}
		if err := s.beater.Refresh(a); err == nil {
			time.Sleep(restartAnnounce(s.cfg))
		}
		d.bridgeLease(s)
		s.beater.Close()
	}
	d.startBeater(s)
	if s.beater == nil {
		return
	}
	if !prev.Stale && prev.At != 0 {
		s.beatBridge = prev
		s.beatBridgeUntil = heartbeat.MonoNow().Add(bridgeTime(prev))
	}
	d.publish(s, s.last)
}

// RestartGrace is how long a peer whose last beat announced a restart of
// its beat loop stays live without beats: a helper start, with room for a
// loaded host.
const RestartGrace = 500 * time.Millisecond

// restartAnnounce is how long the old beat loop beats with
// FlagRestarting before it stops: three beat intervals, so that a beat
// with the flag reaches every peer despite a lost one.
func restartAnnounce(cfg *config.Config) time.Duration {
	iv := heartbeatConfig(cfg).Interval
	if iv <= 0 {
		iv = heartbeat.DefaultInterval
	}
	return 3 * iv
}

// bridgeTime is how long a restarted beat loop's predecessor's view may
// stand in: one detection time (the longer threshold; the restart itself
// takes a helper start, a few milliseconds).
func bridgeTime(v heartbeat.View) time.Duration {
	return max(v.Threshold, v.SlowThreshold)
}

// restartMonitor starts a probe monitor for the running config, then
// stops the old one (make before break). A monitor that does not start
// leaves the old one running, is reported (FaultProbes) and is tried again
// with backoff.
func (d *Daemon) restartMonitor(s *state) {
	oldStop, oldDone := s.monStop, s.monDone
	if err := d.startMonitor(s); err != nil {
		s.monRetry.failed(time.Now())
		d.log.Error("restarting the probes with the new config; the old ones keep running, retrying", "err", err,
			"failures", s.monRetry.failures, "retry_in", s.monRetry.backoff)
		d.setFault(probes.Finding{Check: probes.CheckCluster, Severity: probes.Warning, Code: FaultProbes,
			Message: fmt.Sprintf("the probes did not restart with the reloaded config (%d failures; retrying): the backends are probed with the previous settings", s.monRetry.failures),
			Detail:  err.Error(),
			Fixes:   []probes.Fix{{Text: "fix the file the error names, then reload (`systemctl reload epconsole`)"}}})
		return
	}
	if oldStop != nil {
		oldStop()
		<-oldDone
	}
	if s.monRetry.failures > 0 {
		d.log.Info("probes restarted after failures", "failures", s.monRetry.failures)
		d.clearFault(FaultProbes)
	}
	s.monRetry = retry{}
}
