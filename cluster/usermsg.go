package cluster

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/memberlist"
)

// msgUser starts a user message: a payload for the application (the
// daemon's connection sync), handed to the MessageHandler as it came.
const msgUser byte = 2

// MaxMessageSize bounds a SendTo payload.
const MaxMessageSize = 4 << 20

// ErrNoMember is returned by SendTo for a name that is not an alive member.
var ErrNoMember = errors.New("cluster: no such alive member")

// SetMessageHandler sets the function that receives the payloads other
// members send with SendTo (nil: they are dropped). It runs on
// memberlist's goroutine, one message at a time: it must not block.
func (c *Cluster) SetMessageHandler(fn func(payload []byte)) {
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
	msg := append([]byte{msgUser}, payload...)
	if err := c.ml.SendReliable(members[i], msg); err != nil {
		return fmt.Errorf("cluster: sending to %s: %w", name, err)
	}
	return nil
}

// handleUserMsg passes a user message's payload to the handler.
func (c *Cluster) handleUserMsg(payload []byte) {
	if fn := c.userMsg.Load(); fn != nil && len(payload) > 0 {
		(*fn)(slices.Clone(payload))
	}
}
