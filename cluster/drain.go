package cluster

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/hashicorp/memberlist"
)

// The operator's drain set travels apart from the node metadata, which
// memberlist caps at 512 bytes: each node's set and generation (Meta's
// Drained and DrainGen) go out as a broadcast when they change and in
// every push/pull state, and each node keeps the newest record of every
// configured peer. View puts the records back into Meta, so the daemon
// reads them where it always did. A record whose origin is no configured
// peer is ignored. For peers of the previous version, which read the
// drain set from the metadata only, it is also put in the metadata while
// it fits (encodeMeta), and read from theirs.

// msgDrain is a broadcast user message: one wireDrain.
const msgDrain byte = 4

// maxDrainGen is the highest plausible drain generation: generations
// count operator actions, so anything near the top of uint64 is a forgery
// or a bug (and one more would wrap to 0).
const maxDrainGen = math.MaxUint64 >> 1

// wireDrain is one origin's drain set.
type wireDrain struct {
	Origin string `json:"o"`
	Gen    uint64 `json:"g"`
	Set    string `json:"d,omitempty"`
}

func (w wireDrain) valid() error {
	switch {
	case w.Origin == "" || len(w.Origin) > MaxNameLen:
		return fmt.Errorf("drain set: bad origin %q", w.Origin)
	case w.Gen > maxDrainGen:
		return fmt.Errorf("drain set from %s: implausible generation %d", w.Origin, w.Gen)
	case len(w.Set) > MaxMessageSize/16:
		return fmt.Errorf("drain set from %s: %d bytes", w.Origin, len(w.Set))
	}
	return nil
}

func encodeDrainMsg(w wireDrain) ([]byte, error) {
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encoding drain set: %w", err)
	}
	return append([]byte{msgDrain}, b...), nil
}

func decodeDrainMsg(b []byte) (wireDrain, error) {
	var w wireDrain
	if err := json.Unmarshal(b, &w); err != nil {
		return wireDrain{}, fmt.Errorf("decoding drain set: %w", err)
	}
	return w, w.valid()
}

// drainBroadcast is a drain record queued for gossip; a newer record of
// the same origin replaces one still queued.
type drainBroadcast struct {
	name string
	msg  []byte
}

func newDrainBroadcast(w wireDrain, msg []byte) *drainBroadcast {
	return &drainBroadcast{name: "drain/" + w.Origin, msg: msg}
}

func (b *drainBroadcast) Name() string    { return b.name }
func (b *drainBroadcast) Message() []byte { return b.msg }
func (b *drainBroadcast) Finished()       {}
func (b *drainBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(memberlist.NamedBroadcast)
	return ok && o.Name() == b.name
}

// applyDrainLocked stores a peer's drain record if it is newer than the
// one held; it reports whether it was (then it is gossiped on). Records
// of this node and of names that are no configured peer are not taken.
func (c *Cluster) applyDrainLocked(w wireDrain) (bool, error) {
	if w.Origin == c.cfg.Name {
		return false, nil
	}
	if err := w.valid(); err != nil {
		return false, err
	}
	if !c.isPeerLocked(w.Origin) {
		return false, errNotConfigured
	}
	if old, ok := c.drains[w.Origin]; ok && old.Gen >= w.Gen {
		return false, nil
	}
	c.drains[w.Origin] = w
	return true, nil
}

// queueDrain gossips this node's drain record.
func (c *Cluster) queueDrain(w wireDrain) {
	if msg, err := encodeDrainMsg(w); err == nil {
		c.queue.QueueBroadcast(newDrainBroadcast(w, msg))
	}
}

// handleDrainMsg takes a gossiped drain record; a new one is passed on.
func (c *Cluster) handleDrainMsg(b []byte) {
	w, err := decodeDrainMsg(b)
	if err != nil {
		c.decodeErrors.Add(1)
		c.log.Debug("gossiped drain set dropped", "err", err)
		return
	}
	c.mu.Lock()
	fresh, err := c.applyDrainLocked(w)
	c.mu.Unlock()
	switch {
	case err == errNotConfigured:
		c.ignoreState("drain set", w.Origin)
	case err != nil:
		c.decodeErrors.Add(1)
	case fresh:
		c.log.Debug("drain set adopted from gossip", "origin", w.Origin, "generation", w.Gen, "drained", w.Set)
		c.queueDrain(w)
		c.changed()
	}
}

// drainOfLocked returns the newest drain record of member name.
func (c *Cluster) drainOfLocked(name string) (string, uint64) {
	w := c.drains[name]
	return w.Set, w.Gen
}
