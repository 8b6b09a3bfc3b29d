package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/probes"
)

// The components the decision loop acts through, each behind the small
// interface the loop needs. Run wires the real ones (open); the unit tests
// wire fakes that record the calls, so that the decisions are tested
// without root and without a kernel.

// vipAnnouncer puts the VIP address on this host and takes it off. Add
// and Remove are idempotent; Add announces the address (gratuitous ARP /
// unsolicited NA). *dataplane.VIP is one.
type vipAnnouncer interface {
	Add(ctx context.Context, iface string, addr netip.Addr) error
	Remove(ctx context.Context, iface string, addr netip.Addr) error
	Has(ctx context.Context, iface string, addr netip.Addr) (bool, error)
}

// ownerLease is the kernel-side owner lease: while it runs, this host
// answers ARP / neighbour solicitations for the VIP. Remove deletes its
// tables (the gate) on a graceful stop. *dataplane.Lease is one.
type ownerLease interface {
	Install(ctx context.Context, vips []netip.Addr) error
	Renew(ctx context.Context, ttl time.Duration) error
	Drop(ctx context.Context) error
	Remove(ctx context.Context) error
}

// datapath programs the forwarding rules (VIP -> healthy backends) and
// cuts the flows of dead backends. *dataplane.Dataplane is one.
type datapath interface {
	Reconcile(ctx context.Context, want dataplane.Desired) (dataplane.Result, error)
}

// peerCluster is the gossip membership: the view of every peer, and this
// node's published state (metadata, backend views) and peer list.
// *cluster.Cluster is one.
type peerCluster interface {
	View() cluster.View
	SetLocal(l cluster.Local) error
	SetBackends(views []cluster.BackendView) error
	SetPeers(peers []cluster.Peer) error
	SetKeys(keys [][]byte) error
	SetPanicRouting(on bool)
	Leave(ctx context.Context) error
	// Changes signals a change of View heard from the network.
	Changes() <-chan struct{}
}

// beatLoop is the heartbeat's beat loop: the peers' liveness, and this
// node's owner belief sent in its beats. *heartbeat.Beater is one.
type beatLoop interface {
	View() heartbeat.View
	Refresh(a heartbeat.Advert) error
	Changes() <-chan struct{}
	Done() <-chan struct{}
	Err() error
	Realtime() heartbeat.Realtime
	Close() error
}

// prober is the probe monitor of the backends. *probes.Monitor is one.
type prober interface {
	Run(ctx context.Context) error
	Snapshot() []probes.BackendStatus
}

// connSyncer is the connection sync: it streams this node's flows through
// the VIP while it holds it. *connsync.Sync is one.
type connSyncer interface {
	SetHolding(on bool)
	SetScope(vips, backends []netip.AddrPort)
}

// noSync is the connection sync switched off (Options.NoConnSync).
type noSync struct{}

func (noSync) SetHolding(bool)                {}
func (noSync) SetScope(_, _ []netip.AddrPort) {}

// starters start the components a reload may restart: the probe monitor
// and the beat loop; and the link subscription (dataplane.WatchLinks).
type starters struct {
	monitor   func(opts probes.MonitorOptions) prober
	heartbeat func(ctx context.Context, cfg heartbeat.Config) (beatLoop, error)
	links     func(ctx context.Context, onErr func(error)) (<-chan struct{}, error)
}

// realStarters start the real probe monitor and beat loop.
func realStarters() starters {
	return starters{
		monitor: func(opts probes.MonitorOptions) prober { return probes.NewMonitor(opts) },
		heartbeat: func(ctx context.Context, cfg heartbeat.Config) (beatLoop, error) {
			b, err := heartbeat.Start(ctx, cfg)
			if err != nil {
				return nil, err // an untyped nil: s.beater == nil means none
			}
			return keepBeat(b, cfg.Logger), nil // keeper.go
		},
		links: dataplane.WatchLinks,
	}
}
