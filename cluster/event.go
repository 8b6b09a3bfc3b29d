package cluster

import (
	"fmt"
	"net/netip"
	"time"
)

// EventType says what happened to the cluster.
type EventType int

// Event types.
const (
	// EventJoin: a member joined (or came back).
	EventJoin EventType = iota + 1
	// EventLeave: a member left gracefully.
	EventLeave
	// EventFailed: memberlist declared a member dead.
	EventFailed
	// EventUpdate: a member's metadata changed (Event.Meta is the new one).
	EventUpdate
	// EventBackend: a member's view of a backend changed state
	// (Event.Backend is the new view).
	EventBackend
	// EventKeyMismatch: gossip from or to a peer failed authentication:
	// it uses a gossip key this node does not have (or none). The peer is
	// not admitted.
	EventKeyMismatch
	// EventDigestMismatch: a member publishes a config digest that differs
	// from this node's.
	EventDigestMismatch
	// EventMetaInvalid: a member's metadata could not be decoded.
	EventMetaInvalid
	// EventMemberRejected: a node that is no configured peer, or that
	// claims a peer's name from another address, was refused as a member,
	// or gossip state from such a node was ignored. Reported a few times
	// a minute, then summarised (Event.Member empty).
	EventMemberRejected
)

var eventTypeNames = map[EventType]string{
	EventJoin: "join", EventLeave: "leave", EventFailed: "failed", EventUpdate: "update",
	EventBackend: "backend", EventKeyMismatch: "key-mismatch", EventDigestMismatch: "digest-mismatch",
	EventMetaInvalid: "meta-invalid", EventMemberRejected: "member-rejected",
}

// String returns the event type's name ("join", "key-mismatch", ...).
func (t EventType) String() string {
	if s, ok := eventTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("event(%d)", int(t))
}

// MarshalText encodes the type as its name (for the status JSON).
func (t EventType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Event is something that happened to the cluster, delivered on
// Config.Events. Delivery never blocks: when the channel is full the event
// is dropped and counted (Stats.EventsDropped).
type Event struct {
	Type EventType
	Time time.Time
	// Member is the member concerned; empty for a key mismatch from an
	// address that is no configured peer.
	Member string
	// Addr is the member's gossip address, or the remote address of a key
	// mismatch (an ephemeral port for incoming streams).
	Addr netip.AddrPort
	// Meta is the member's metadata (join, update).
	Meta Meta
	// Backend is the member's new view of a backend (EventBackend).
	Backend BackendView
	// Detail says what happened, for logs and the event log.
	Detail string
}

// String formats the event for logs.
func (e Event) String() string {
	s := e.Type.String()
	if e.Member != "" {
		s += " " + e.Member
	}
	if e.Addr.IsValid() {
		s += " (" + e.Addr.String() + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}
