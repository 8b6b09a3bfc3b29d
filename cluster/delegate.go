package cluster

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// memberlist's callbacks are small delegates that only forward to the
// Cluster (serf's pattern). memberlist calls several of them with its own
// locks held: the handlers take c.mu briefly, never call memberlist, and
// never block.

// delegate implements memberlist.Delegate.
type delegate struct{ c *Cluster }

func (d *delegate) NodeMeta(limit int) []byte { return d.c.nodeMeta(limit) }
func (d *delegate) NotifyMsg(b []byte)        { d.c.handleMsg(b) }
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.c.queue.GetBroadcasts(overhead, limit)
}
func (d *delegate) LocalState(join bool) []byte          { return d.c.localState() }
func (d *delegate) MergeRemoteState(b []byte, join bool) { d.c.mergeRemoteState(b) }

// eventDelegate implements memberlist.EventDelegate.
type eventDelegate struct{ c *Cluster }

func (e *eventDelegate) NotifyJoin(n *memberlist.Node)   { e.c.handleNodeJoin(n) }
func (e *eventDelegate) NotifyLeave(n *memberlist.Node)  { e.c.handleNodeLeave(n) }
func (e *eventDelegate) NotifyUpdate(n *memberlist.Node) { e.c.handleNodeUpdate(n) }

// pingDelegate implements memberlist.PingDelegate: a probe ack is the
// regular sign of life behind Member.LastSeen and RTT.
type pingDelegate struct{ c *Cluster }

func (p *pingDelegate) AckPayload() []byte { return nil }
func (p *pingDelegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, _ []byte) {
	p.c.handlePingAck(other.Name, rtt)
}

// conflictDelegate implements memberlist.ConflictDelegate.
type conflictDelegate struct{ c *Cluster }

func (d *conflictDelegate) NotifyConflict(existing, other *memberlist.Node) {
	d.c.handleConflict(existing, other)
}

// broadcast is one backend view queued for gossip. A newer view of the
// same origin and backend replaces an older one still in the queue.
type broadcast struct {
	name string
	msg  []byte
}

func newBroadcast(w wireBackend, msg []byte) *broadcast {
	return &broadcast{name: "backend/" + w.Origin + "/" + w.Name, msg: msg}
}

func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}
func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(memberlist.NamedBroadcast)
	return ok && o.Name() == b.name
}

func (c *Cluster) nodeMeta(limit int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.metaBytes) > limit { // encodeMeta keeps it under MetaMaxSize
		c.log.Error("node metadata too large for memberlist; sending none", "size", len(c.metaBytes), "limit", limit)
		return nil
	}
	return append([]byte(nil), c.metaBytes...)
}

// nodeAddr is a memberlist node's address.
func nodeAddr(n *memberlist.Node) netip.AddrPort {
	a, ok := netip.AddrFromSlice(n.Addr)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), n.Port)
}

// readMeta decodes a node's metadata and checks it names the node.
func readMeta(n *memberlist.Node) (Meta, error) {
	m, err := decodeMeta(n.Meta)
	if err == nil && m.Name != n.Name {
		err = fmt.Errorf("metadata names %q", m.Name)
	}
	return m, err
}

// trustMetaLocked keeps a member's metadata only if the member is a
// configured peer at its configured address (memberlist admits no other,
// but one removed from the configuration by a reload stays until it
// leaves); a drain set in it (from a peer of the previous version) is
// taken as that peer's drain record. The drain fields are left out of
// the stored Meta: View fills them from the records.
func (c *Cluster) trustMetaLocked(n *memberlist.Node, m Meta, err error) (Meta, error) {
	if aerr := c.admitLocked(n.Name, nodeAddr(n)); aerr != nil {
		return Meta{}, fmt.Errorf("metadata ignored: %w", aerr)
	}
	if err == nil && (m.Drained != "" || m.DrainGen != 0) {
		_, _ = c.applyDrainLocked(wireDrain{Origin: n.Name, Gen: m.DrainGen, Set: m.Drained})
	}
	m.Drained, m.DrainGen = "", 0
	return m, err
}

// recLocked returns the record of member name, creating it.
func (c *Cluster) recLocked(name string) *memberRec {
	r := c.members[name]
	if r == nil {
		r = &memberRec{name: name}
		c.members[name] = r
	}
	return r
}

// setMetaLocked stores a member's decoded metadata (or the decode error)
// and returns the events it causes: an invalid metadata report when the
// error is new, a digest mismatch when the member's digest changed to one
// that differs from ours.
func (c *Cluster) setMetaLocked(r *memberRec, m Meta, err error, now time.Time) []Event {
	var evs []Event
	if err != nil {
		if r.metaErr != err.Error() {
			c.decodeErrors.Add(1)
			evs = append(evs, Event{Type: EventMetaInvalid, Time: now, Member: r.name, Addr: r.addr,
				Detail: "metadata dropped: " + err.Error()})
		}
		r.metaErr, r.meta = err.Error(), Meta{}
		return evs
	}
	old := r.meta
	r.meta, r.metaErr = m, ""
	if m.Digest != c.local.Digest && m.Digest != old.Digest {
		evs = append(evs, Event{Type: EventDigestMismatch, Time: now, Member: r.name, Addr: r.addr, Meta: m,
			Detail: fmt.Sprintf("config digest %s differs from this node's %s", m.Digest, c.local.Digest)})
	}
	return evs
}

func (c *Cluster) handleNodeJoin(n *memberlist.Node) {
	if n.Name == c.cfg.Name {
		return
	}
	now := time.Now()
	m, err := readMeta(n)
	c.mu.Lock()
	m, err = c.trustMetaLocked(n, m, err)
	r := c.recLocked(n.Name)
	r.addr, r.state, r.stateSince, r.lastSeen = nodeAddr(n), StateAlive, now, now
	evs := append([]Event{{Type: EventJoin, Time: now, Member: n.Name, Addr: r.addr, Meta: m}},
		c.setMetaLocked(r, m, err, now)...)
	c.mu.Unlock()
	c.report(evs)
}

func (c *Cluster) handleNodeLeave(n *memberlist.Node) {
	if n.Name == c.cfg.Name {
		return
	}
	now := time.Now()
	// memberlist's Node.State is not set in this callback (nodeState
	// shadows it), so a leave is told from a failure by the member's
	// last metadata: Leave publishes Leaving before it goes.
	ev := Event{Type: EventFailed, Time: now, Member: n.Name, Addr: nodeAddr(n), Detail: "declared dead by gossip"}
	c.mu.Lock()
	r := c.recLocked(n.Name)
	r.state, r.stateSince = StateDead, now
	if r.meta.Leaving {
		r.state, ev.Type, ev.Detail = StateLeft, EventLeave, "left gracefully"
	}
	ev.Meta = r.meta
	c.mu.Unlock()
	c.report([]Event{ev})
	select {
	case c.joinWake <- struct{}{}: // joinLoop
	default:
	}
}

func (c *Cluster) handleNodeUpdate(n *memberlist.Node) {
	if n.Name == c.cfg.Name {
		return
	}
	now := time.Now()
	m, err := readMeta(n)
	c.mu.Lock()
	m, err = c.trustMetaLocked(n, m, err)
	r := c.recLocked(n.Name)
	old := r.meta
	r.addr, r.lastSeen = nodeAddr(n), now
	if r.state != StateAlive {
		r.state, r.stateSince = StateAlive, now
	}
	evs := c.setMetaLocked(r, m, err, now)
	if err == nil {
		evs = append([]Event{{Type: EventUpdate, Time: now, Member: n.Name, Addr: r.addr, Meta: m, Detail: metaDiff(old, m)}}, evs...)
	}
	c.mu.Unlock()
	c.report(evs)
}

// metaDiff describes what changed between two metadata versions.
func metaDiff(a, b Meta) string {
	var d []string
	add := func(field string, x, y any) {
		if x != y {
			d = append(d, fmt.Sprintf("%s %v→%v", field, x, y))
		}
	}
	add("priority", a.Priority, b.Priority)
	add("eligible", a.Eligible, b.Eligible)
	add("preempt", a.Preempt, b.Preempt)
	add("owner", a.Owner, b.Owner)
	add("epoch", a.Epoch, b.Epoch)
	add("version", a.Version, b.Version)
	add("digest", a.Digest, b.Digest)
	add("boot", a.BootID, b.BootID)
	return strings.Join(d, ", ")
}

func (c *Cluster) handlePingAck(name string, rtt time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.members[name]; r != nil {
		r.lastSeen, r.rtt = time.Now(), rtt
	}
}

func (c *Cluster) handleConflict(existing, other *memberlist.Node) {
	c.log.Warn("two nodes use the same name; the second is ignored", "name", existing.Name,
		"addr", nodeAddr(existing), "other_addr", nodeAddr(other))
}

// handleMsg takes a gossiped backend view; a new one is passed on.
func (c *Cluster) handleMsg(b []byte) {
	if len(b) > 0 {
		switch b[0] {
		case msgUser:
			c.handleLegacyUserMsg(b[1:])
			return
		case msgUserFrom:
			c.handleUserMsg(b[1:])
			return
		case msgDrain:
			c.handleDrainMsg(b[1:])
			return
		}
	}
	w, err := decodeMsg(b)
	if err != nil {
		c.decodeErrors.Add(1)
		if c.logLimiter.Allow("decode", "message") {
			c.log.Warn("gossip message dropped", "err", err)
		}
		return
	}
	now := time.Now()
	c.mu.Lock()
	if w.Origin != c.cfg.Name && !c.isPeerLocked(w.Origin) {
		c.mu.Unlock()
		c.ignoreState("backend view", w.Origin)
		return
	}
	fwd, evs := c.applyBackendLocked(w, now)
	c.mu.Unlock()
	for _, f := range fwd {
		if msg, err := encodeBackendMsg(f); err == nil {
			c.queue.QueueBroadcast(newBroadcast(f, msg))
		}
	}
	c.report(evs)
}

// applyBackendLocked stores a backend view if it is newer than the one
// held. It returns the views to gossip on (the new one; for a stale view
// of this node's own backends, this node's current one) and the events.
func (c *Cluster) applyBackendLocked(w wireBackend, now time.Time) ([]wireBackend, []Event) {
	self := c.cfg.Name
	byName := c.backends[w.Origin]
	if byName == nil {
		byName = map[string]*backendRec{}
		c.backends[w.Origin] = byName
	}
	old := byName[w.Name]
	if w.Origin == self {
		// Our own views are ours to state. Something older (from before a
		// restart) still circulating is superseded by a fresh stamp, a
		// tombstone if we no longer have that backend.
		switch {
		case old == nil && !w.Gone:
			t := wireBackend{Origin: self, Seq: c.nextSeqLocked(), Name: w.Name, Gone: true}
			byName[w.Name] = &backendRec{w: t, received: now}
			return []wireBackend{t}, nil
		case old != nil && w.Seq >= old.w.Seq:
			old.w.Seq = c.nextSeqLocked()
			return []wireBackend{old.w}, nil
		}
		return nil, nil
	}
	if old != nil && old.w.Seq >= w.Seq {
		return nil, nil
	}
	byName[w.Name] = &backendRec{w: w, received: now}
	c.changed() // a peer's new view, an event or not
	var evs []Event
	if old != nil && !old.w.Gone && !w.Gone && old.w.State != w.State {
		evs = append(evs, Event{Type: EventBackend, Time: now, Member: w.Origin, Backend: w.view(),
			Detail: fmt.Sprintf("%s sees backend %s %s (was %s): %s", w.Origin, w.Name, w.State, old.w.State, w.Reason)})
	}
	return []wireBackend{w}, evs
}

// localState is the push/pull state: every backend view this node holds.
func (c *Cluster) localState() []byte {
	c.mu.Lock()
	s := wireState{From: c.cfg.Name}
	for _, byName := range c.backends {
		for _, r := range byName {
			s.Backends = append(s.Backends, r.w)
		}
	}
	if c.local.DrainGen != 0 || c.local.Drained != "" {
		s.Drains = append(s.Drains, wireDrain{Origin: c.cfg.Name, Gen: c.local.DrainGen, Set: c.local.Drained})
	}
	for _, w := range c.drains {
		s.Drains = append(s.Drains, w)
	}
	c.mu.Unlock()
	b, err := encodeState(s)
	if err != nil {
		c.log.Error("cannot encode push/pull state", "err", err)
		return nil
	}
	return b
}

// mergeRemoteState takes a peer's push/pull state.
func (c *Cluster) mergeRemoteState(b []byte) {
	if len(b) == 0 {
		return
	}
	s, err := decodeState(b)
	if err != nil {
		c.decodeErrors.Add(1)
		if c.logLimiter.Allow("decode", "state") {
			c.log.Warn("push/pull state dropped", "err", err)
		}
		return
	}
	now := time.Now()
	var fwd []wireBackend
	var evs []Event
	var drains []wireDrain
	bad, foreign := 0, ""
	c.mu.Lock()
	if !c.isPeerLocked(s.From) {
		c.mu.Unlock()
		c.ignoreState("push/pull state", s.From)
		return
	}
	if r := c.members[s.From]; r != nil {
		r.lastSeen = now
	}
	for _, w := range s.Drains {
		fresh, err := c.applyDrainLocked(w)
		switch {
		case errors.Is(err, errNotConfigured):
			foreign = w.Origin
		case err != nil:
			bad++
		case fresh:
			drains = append(drains, w)
		}
	}
	for _, w := range s.Backends {
		if w.valid() != nil {
			bad++
			continue
		}
		if w.Origin != c.cfg.Name && !c.isPeerLocked(w.Origin) {
			foreign = w.Origin
			continue
		}
		f, e := c.applyBackendLocked(w, now)
		if w.Origin == c.cfg.Name {
			fwd = append(fwd, f...) // corrections of our own views go out at once
		}
		evs = append(evs, e...)
	}
	c.mu.Unlock()
	if bad > 0 {
		c.decodeErrors.Add(uint64(bad))
		if c.logLimiter.Allow("decode", s.From) {
			c.log.Warn("push/pull state: invalid backend views or drain sets dropped", "from", s.From, "count", bad)
		}
	}
	if foreign != "" {
		c.ignoreState("push/pull state relaying a member", foreign)
	}
	for _, w := range drains {
		c.queueDrain(w)
	}
	if len(drains) > 0 {
		c.changed()
	}
	for _, f := range fwd {
		if msg, err := encodeBackendMsg(f); err == nil {
			c.queue.QueueBroadcast(newBroadcast(f, msg))
		}
	}
	c.report(evs)
}

// report logs events and delivers them, and signals Changes.
func (c *Cluster) report(evs []Event) {
	if len(evs) > 0 {
		c.changed()
	}
	for _, e := range evs {
		switch e.Type {
		case EventJoin, EventLeave:
			c.log.Info("member "+e.Type.String(), "member", e.Member, "addr", e.Addr, "detail", e.Detail)
		case EventFailed, EventDigestMismatch, EventMetaInvalid, EventKeyMismatch, EventMemberRejected:
			c.log.Warn("member "+e.Type.String(), "member", e.Member, "addr", e.Addr, "detail", e.Detail)
		default:
			c.log.Debug("member "+e.Type.String(), "member", e.Member, "detail", e.Detail)
		}
		c.emit(e)
	}
}
