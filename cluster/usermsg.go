package cluster

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/memberlist"
)

// User messages carry a payload for the application (the daemon's
// connection sync) with the sender's name: msgUserFrom, the name's length
// (one byte), the name, the payload. The receiver hands on only payloads
// whose sender is a configured peer that is an alive member (admitted at
// its configured address).
//
// The previous version's msgUser has no sender. So that a rolling upgrade
// keeps connections (peers one release apart interoperate), a member
// whose metadata lacks NamedMessages (an older peer) is sent msgUser, and
// a msgUser that arrives is taken as that older peer's while exactly one
// alive configured peer runs the older version (the only one that can
// have sent it; with none, or several, it is dropped and counted). The
// application still checks every entry against the configuration.
const (
	msgUser     byte = 2
	msgUserFrom byte = 3
)

// MaxMessageSize bounds a SendTo payload.
const MaxMessageSize = 4 << 20

// ErrNoMember is returned by SendTo for a name that is not an alive member.
var ErrNoMember = errors.New("cluster: no such alive member")

// SetMessageHandler sets the function that receives the payloads other
// members send with SendTo, with the sender's name (nil: they are
// dropped). Only payloads from configured peers that are alive members
// reach it. It runs on memberlist's goroutine, one message at a time: it
// must not block.
func (c *Cluster) SetMessageHandler(fn func(from string, payload []byte)) {
	if fn == nil {
		c.userMsg.Store(nil)
		return
	}
	c.userMsg.Store(&fn)
}

// SendTo sends payload to the alive member name over memberlist's reliable
// (TCP) channel, encrypted and authenticated with the gossip keyring like
// all gossip; the receiver's MessageHandler gets it. It blocks until the
// payload is written (bounded by the TCP timeout).
func (c *Cluster) SendTo(name string, payload []byte) error {
	if c.shut.Load() {
		return ErrShutdown
	}
	if name == c.cfg.Name {
		return fmt.Errorf("cluster: sending to %s: that is this node", name)
	}
	if len(payload) == 0 || len(payload) > MaxMessageSize {
		return fmt.Errorf("cluster: message of %d bytes: want 1 to %d", len(payload), MaxMessageSize)
	}
	members := c.ml.Members()
	i := slices.IndexFunc(members, func(n *memberlist.Node) bool { return n.Name == name })
	if i < 0 {
		return fmt.Errorf("%w: %s", ErrNoMember, name)
	}
	self := c.cfg.Name
	msg := make([]byte, 0, 2+len(self)+len(payload))
	c.mu.Lock()
	r := c.members[name]
	older := r != nil && r.metaErr == "" && r.meta.Name != "" && !r.meta.NamedMessages
	c.mu.Unlock()
	if older {
		msg = append(append(msg, msgUser), payload...)
	} else {
		msg = append(msg, msgUserFrom, byte(len(self)))
		msg = append(append(msg, self...), payload...)
	}
	if err := c.ml.SendReliable(members[i], msg); err != nil {
		return fmt.Errorf("cluster: sending to %s: %w", name, err)
	}
	return nil
}

// handleUserMsg passes a user message's payload to the handler if its
// sender is a configured peer that is an alive member.
func (c *Cluster) handleUserMsg(b []byte) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		c.decodeErrors.Add(1)
		return
	}
	from, payload := string(b[1:1+int(b[0])]), b[1+int(b[0]):]
	c.mu.Lock()
	r := c.members[from]
	ok := c.isPeerLocked(from) && r != nil && r.state == StateAlive && c.admitLocked(from, r.addr) == nil
	c.mu.Unlock()
	if !ok {
		c.ignoreState("message", from)
		return
	}
	if fn := c.userMsg.Load(); fn != nil && len(payload) > 0 {
		(*fn)(from, slices.Clone(payload))
	}
}

// handleLegacyUserMsg takes a user message of the previous version (no
// sender) as the one older peer's, or drops it (see above).
func (c *Cluster) handleLegacyUserMsg(payload []byte) {
	var older []string
	c.mu.Lock()
	for name, r := range c.members {
		if r.state == StateAlive && c.isPeerLocked(name) && r.metaErr == "" && r.meta.Name != "" &&
			!r.meta.NamedMessages && c.admitLocked(name, r.addr) == nil {
			older = append(older, name)
		}
	}
	c.mu.Unlock()
	if len(older) == 1 {
		if fn := c.userMsg.Load(); fn != nil && len(payload) > 0 {
			(*fn)(older[0], slices.Clone(payload))
		}
		return
	}
	c.ignored.Add(1)
	if c.logLimiter.Allow("legacy-message", "") {
		c.log.Warn("message without a sender dropped: no single older peer could have sent it",
			"older_peers", older)
	}
}
