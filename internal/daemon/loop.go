package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/config"
)

// The decision loop: what it owns, and what wakes it.

// state is what the decision loop owns.
type state struct {
	// noMajority: since when each peer's beats say it hears no majority.
	noMajority majorityWatch
	// beatKey is the heartbeat verdict last logged (noteHeartbeat).
	beatKey string
	// claim is the heartbeat helper's claim (claim.go).
	claim claimState

	cfg *config.Config
	// The components the loop acts through (parts.go).
	dp        datapath
	vip       vipAnnouncer
	lease     ownerLease
	beatLease time.Duration // the beat-renewed lease's length; 0: renewed by the daemon (beatlease.go)
	cl        peerCluster
	beater    beatLoop // nil: no beat loop runs (beatErr says why)
	beatErr   error
	beatRetry beatRetry
	mon       prober
	monStop   context.CancelFunc
	monDone   chan struct{}
	sync      connSyncer // noSync with Options.NoConnSync
	peers     peerFilter // nil: none (tests)
	// beatBridge is the last view of a beat loop a reload restarted: it
	// stands in for what the new loop does not hear yet, until
	// beatBridgeUntil (restartBeatLoop, view).
	beatBridge      heartbeat.View
	beatBridgeUntil heartbeat.Mono

	// dpRetry: the datapath update that failed (with the sets it was
	// to program), tried again with backoff; monRetry likewise for a
	// probe monitor that did not restart (faults.go).
	dpRetry                    retry
	dpWantHealthy, dpWantDrain map[string]bool
	monRetry                   retry

	// run outlives the caller's ctx through the handoff; cancelled last.
	run context.Context

	reconciled bool
	programmed map[string]bool
	drained    map[string]bool
	ifaceUp    bool
	links      linkWatch
	eligible   bool
	holding    bool
	// held are the VIP places this node put (or found) its address on.
	held []dataplane.ServiceVIP
	// adopted: the address in held was found on the host at start (an
	// earlier process's) and not announced since.
	adopted bool
	// othersHold: in the last view a live peer's beats said it held the
	// VIP; othersHeld: so at the last decision (overlap.go).
	othersHold, othersHeld bool
	started                time.Time
	waiting                bool
	leaving                bool
	last                   cluster.Decision
	probeCh                chan struct{}
	eventsCh               chan cluster.Event

	// opDrain is the operator's cluster-wide drain set (drain.go);
	// handoffTo the peer an operator's handoff goes to, asked at handoffAt.
	opDrain   DrainSet
	handoffTo string
	handoffAt time.Time

	// wake is what the loop's timer reads (wake.go); cfgDigest the
	// digest of digestOf (digest).
	wake      wakeState
	digestOf  *config.Config
	cfgDigest string
}

// newState is the loop's state at start: in the startup wait, holding
// nothing, with no component yet (open, or a test, sets them).
func newState(run context.Context, cfg *config.Config) *state {
	return &state{
		cfg: cfg, run: run, started: time.Now(), waiting: true,
		probeCh: make(chan struct{}, 1), eventsCh: make(chan cluster.Event, 256),
		noMajority: majorityWatch{}, sync: noSync{}, links: linkWatch{reread: linkReread},
	}
}

// loop is the decision loop; it returns when ctx ends. It decides on
// events and sleeps in between until a timed condition is due (wake.go).
func (d *Daemon) loop(ctx context.Context, s *state) {
	wake := time.NewTimer(noWake)
	defer wake.Stop()
	leaseTick := d.newLeaseTicker(s) // none with the beat-renewed lease (beatlease.go)
	defer leaseTick.Stop()
	var beatChanges <-chan struct{}
	if s.beater != nil {
		beatChanges = s.beater.Changes()
	}
	d.watchLinks(ctx, s)
	d.readLinks(s)
	d.onProbes(s)
	d.decide(s)
	s.wake.token = time.Now()
	gossipChanges := s.cl.Changes()
	for {
		d.notifyLoop(s)
		wake.Reset(d.untilWake(s))
		// A wake-up by the timer pokes the status producer only when the
		// status changed (updateStatus); any other (a probe result, a
		// peer, an action, a reload) also changes what the producer
		// reads elsewhere, so it pokes.
		poke := true
		select {
		case <-ctx.Done():
			return
		case <-d.opts.Reload:
			d.notifyReloading()
			d.reload(s)
			d.readLinks(s) // the VIP interfaces may have changed
			d.notifyReloaded()
			if s.beater != nil {
				beatChanges = s.beater.Changes()
			} else {
				beatChanges = nil
			}
		case <-s.probeCh:
			d.onProbes(s)
		case ev := <-s.eventsCh:
			d.onClusterEvent(ev)
		case a := <-d.actCh:
			a.reply <- d.onAction(s, a)
		case <-beatChanges:
		case <-s.keeperAsks():
			s.answerKeeper() // wake.go: the loop runs; no decision pass
			continue
		case <-gossipChanges:
		case <-leaseTick.C:
			d.renewLease(s)
			continue
		case _, ok := <-s.links.ch:
			d.onLinks(s, ok)
		case <-wake.C:
			poke = false
			if !d.timedPass(s) {
				continue
			}
			d.tickLinks(ctx, s)
			if d.restartBeater(s) {
				beatChanges = s.beater.Changes()
			}
			d.retryFaults(s)
		}
		d.decide(s)
		s.wake.token = time.Now()
		if poke {
			d.pokeStatus()
		}
	}
}

// EventPeerRejected: gossip refused a node that is no configured peer
// or not at its configured address, or ignored state it sent (a few a
// minute, then a summary).
const EventPeerRejected EventKind = "peer-rejected"

func (d *Daemon) onClusterEvent(ev cluster.Event) {
	switch ev.Type {
	case cluster.EventJoin:
		d.record(EventPeerJoin, ev.Member, ev.Detail)
	case cluster.EventLeave:
		d.record(EventPeerLeave, ev.Member, ev.Detail)
	case cluster.EventFailed:
		d.record(EventPeerFailed, ev.Member, ev.Detail)
	case cluster.EventDigestMismatch:
		d.record(EventDigestMismatch, ev.Member, ev.Detail)
	case cluster.EventKeyMismatch:
		d.record(EventKeyMismatch, ev.Member, fmt.Sprintf("%s %s", ev.Addr, ev.Detail))
	case cluster.EventMemberRejected:
		d.record(EventPeerRejected, ev.Member, fmt.Sprintf("%s %s", ev.Addr, ev.Detail))
	case cluster.EventBackend:
		d.record(EventPeerBackend, ev.Member, fmt.Sprintf("%s %s %s", ev.Backend.Name, ev.Backend.State, ev.Backend.Reason))
	default:
		d.log.Debug("cluster event", "event", ev.String())
	}
}
