package daemon

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/config"
)

// The owner lease renewed by the heartbeats (dataplane.LeaseBeats, the
// default): the kernel refreshes the lease from every beat the helper
// sends saying this node holds the VIP, for one detection time. The daemon
// opens the lease when it claims (one commit, before the address and its
// announcement) and drops it when it releases; it renews nothing on a
// timer. With Options.NoBeatLease, Options.HelperLease or
// Options.NoHeartbeat, the lease is the arp / ip6 one renewed by the
// daemon every dataplane.DefaultLeaseRenew (renewLease).

// beatLeaser is the part of *dataplane.Lease that switches it to the
// beat-renewed tables (the tests' fake lease has none).
type beatLeaser interface {
	SetBeats(*dataplane.LeaseBeats) error
}

// leaseBeats is the beat-renewed lease for cfg, nil when the daemon
// renews the lease itself.
func (d *Daemon) leaseBeats(cfg *config.Config) *dataplane.LeaseBeats {
	if d.opts.NoBeatLease || d.opts.HelperLease || d.opts.NoHeartbeat {
		return nil
	}
	places := vipPlaces(cfg)
	if len(places) == 0 {
		return nil
	}
	hc := heartbeatConfig(cfg)
	interval := hc.Interval
	if interval <= 0 {
		interval = heartbeat.DefaultInterval
	}
	b := &dataplane.LeaseBeats{
		TTL:   heartbeat.DetectionTime(interval, hc.Misses),
		Match: heartbeat.OwnerBeatMatch(hc.Self),
	}
	for _, p := range places {
		if !slices.Contains(b.Devices, p.Interface) {
			b.Devices = append(b.Devices, p.Interface)
		}
	}
	b.GateDevices = len(b.Devices)
	var peers []netip.Addr
	for _, p := range hc.Peers {
		peers = append(peers, p.Addr.Addr())
		if !slices.Contains(b.Ports, p.Addr.Port()) {
			b.Ports = append(b.Ports, p.Addr.Port())
		}
	}
	devs, err := dataplane.BeatDevices(peers, dataplane.WithLogger(d.log.With("component", "dataplane")))
	if err != nil {
		d.log.Warn("finding the interfaces the beats leave on; the beat-renewed lease watches the VIP's interfaces only", "err", err)
	}
	for _, dev := range devs {
		if !slices.Contains(b.Devices, dev) {
			b.Devices = append(b.Devices, dev)
		}
	}
	if len(b.Ports) == 0 {
		return nil // no peer: nothing beats
	}
	return b
}

// installLease installs the owner lease tables for cfg: the beat-renewed
// ones when leaseBeats says so. It records the beat-renewed lease's length
// in s.beatLease (0: the daemon renews).
func (d *Daemon) installLease(ctx context.Context, s *state, cfg *config.Config) error {
	s.beatLease = 0
	b := d.leaseBeats(cfg)
	if bl, ok := s.lease.(beatLeaser); ok {
		if err := bl.SetBeats(b); err != nil {
			d.log.Error("the beat-renewed owner lease; the daemon renews the lease instead", "err", err)
			b = nil
			bl.SetBeats(nil)
		}
	} else {
		b = nil
	}
	if err := s.lease.Install(ctx, leaseVIPs(cfg)); err != nil {
		return err
	}
	if b != nil {
		s.beatLease = b.TTL
	}
	return nil
}

// bridgeLease keeps a held beat-renewed lease open across a restart of
// the beat loop (whose beats pause for one helper start): one renewal for
// RestartGrace, as long as the peers keep this node live for; the new
// loop's beats shorten it again to one detection time.
func (d *Daemon) bridgeLease(s *state) {
	if s.beatLease == 0 || !s.holding || s.waiting {
		return
	}
	if err := s.lease.Renew(s.run, RestartGrace); err != nil {
		d.log.Warn("renewing the owner lease across the heartbeat helper's restart", "err", err)
	}
}

// leaseTicker wakes the loop to renew the lease: a ticker every
// dataplane.DefaultLeaseRenew when the daemon renews it, none (a nil
// channel) when the beats do.
type leaseTicker struct {
	C <-chan time.Time
	t *time.Ticker
}

func (d *Daemon) newLeaseTicker(s *state) leaseTicker {
	if s.beatLease > 0 {
		return leaseTicker{}
	}
	t := time.NewTicker(dataplane.DefaultLeaseRenew)
	return leaseTicker{C: t.C, t: t}
}

// Stop stops the ticker, if any.
func (t leaseTicker) Stop() {
	if t.t != nil {
		t.t.Stop()
	}
}
