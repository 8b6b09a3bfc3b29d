package daemon

import (
	"fmt"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/connsync"
)

// open starts the real components into s, in this order: the dataplane,
// the VIP, the owner lease (its tables installed), the probe monitor, the
// cluster, the connection sync and the heartbeat; it adopts a VIP address
// an earlier process left and restores the operator's drain set. It
// returns what closes them in the reverse order, to be called whether or
// not it failed (it closes what was opened).
func (d *Daemon) open(s *state) (closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	cfg, run := s.cfg, s.run
	dpOpt := dataplane.WithLogger(d.log.With("component", "dataplane"))
	// The flows of dead backends are cut by a worker, off this loop
	// (cutter.go), unless the environment asks for the inline cut.
	inline := inlineFlowCut()
	dp, err := dataplane.New(dpOpt, dataplane.WithConntrackFlush(inline))
	if err != nil {
		return closeAll, fmt.Errorf("dataplane: %w", err)
	}
	closers = append(closers, func() { dp.Close() })
	s.dp = dp
	if inline {
		d.log.Warn("flows of dead backends are cut on the decision loop (diagnostic)", "env", flowCutEnv+"=inline")
	} else {
		var stop func()
		s.dp, stop = d.startFlowCutter(run, dp)
		closers = append(closers, stop)
	}
	vip, err := dataplane.NewVIP(dpOpt)
	if err != nil {
		return closeAll, fmt.Errorf("VIP: %w", err)
	}
	closers = append(closers, func() { vip.Close() })
	s.vip = vip
	lease, err := dataplane.NewLease(dpOpt)
	if err != nil {
		return closeAll, fmt.Errorf("lease: %w", err)
	}
	closers = append(closers, func() { lease.Close() })
	s.lease = lease
	// Repeated announcements go out only while the lease is held: a
	// daemon paused between two of them wakes up silent.
	// With the beat-renewed lease, the kernel's gate decides alone.
	vip.SetAnnounceGate(func() bool { return lease.Held() || d.gate.held() || lease.BeatRenewed() })
	if err := d.installLease(run, s, cfg); err != nil {
		return closeAll, fmt.Errorf("installing the owner lease tables: %w", err)
	}
	d.adopt(s)
	pf, err := dataplane.NewPeerFilter(dpOpt)
	if err != nil {
		return closeAll, fmt.Errorf("peer filter: %w", err)
	}
	s.peers = pf
	closers = append(closers, func() { d.removePeerFilter(s); pf.Close() })
	d.applyPeerFilter(s)

	if err := d.startMonitor(s); err != nil {
		return closeAll, err
	}
	closers = append(closers, func() { s.monStop(); <-s.monDone })

	ccfg := clusterConfig(cfg, d.opts.Version)
	ccfg.Events = s.eventsCh
	ccfg.Logger = d.log.With("component", "cluster")
	ccfg.Local.Eligible = false
	cl, err := cluster.New(run, ccfg)
	if err != nil {
		return closeAll, fmt.Errorf("cluster: %w", err)
	}
	closers = append(closers, func() { cl.Shutdown() })
	s.cl = cl

	if !d.opts.NoConnSync {
		cs, err := connsync.Start(run, d.log.With("component", "connsync"), cl, cfg.Node.Name,
			connsync.Scope{VIPs: syncVIPs(cfg), Backends: syncBackends(cfg)})
		if err != nil {
			return closeAll, err
		}
		closers = append(closers, cs.Close)
		s.sync = cs
		s.sync.SetHolding(s.holding)
	}

	d.startBeater(s)
	closers = append(closers, func() {
		if s.beater != nil {
			s.beater.Close()
		}
	})
	return closeAll, nil
}

// adopt takes over what an earlier process left: a VIP address on this
// host (kept until the first decision after the startup wait, which
// removes it unless this node is elected) and the operator's drain set in
// state_dir; and it reads whether the VIP interfaces are up.
func (d *Daemon) adopt(s *state) {
	cfg := s.cfg
	for _, p := range vipPlaces(cfg) {
		if has, err := s.vip.Has(s.run, p.Interface, p.Addr); err == nil && has {
			s.held = append(s.held, p)
			s.holding, s.adopted = true, true
			d.log.Info("found the VIP on this host (earlier process); keeping it until the election says otherwise", "vip", p.Addr, "interface", p.Interface)
		}
	}
	s.ifaceUp = ifacesUp(cfg)
	var err error
	if s.opDrain, err = loadDrain(cfg.StateDir); err != nil {
		d.log.Error("drained backends not restored; starting with none drained", "err", err)
	} else if len(s.opDrain.Backends) > 0 {
		d.log.Info("drained backends restored", "backends", s.opDrain.Backends, "generation", s.opDrain.Generation, "file", cfg.StateDir+"/"+DrainFile)
	}
}
