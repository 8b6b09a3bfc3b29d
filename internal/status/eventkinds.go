package status

// EventKind says what an Event is about. The daemon records events of
// these kinds; the console and check read them (Event.Kind).
type EventKind string

// Event kinds of the daemon's event log.
const (
	EventVIPAcquired    EventKind = "vip-acquired"
	EventVIPReleased    EventKind = "vip-released"
	EventBackendUp      EventKind = "backend-up"
	EventBackendDown    EventKind = "backend-down"
	EventPeerBackend    EventKind = "peer-backend"
	EventPeerJoin       EventKind = "peer-join"
	EventPeerLeave      EventKind = "peer-leave"
	EventPeerFailed     EventKind = "peer-failed"
	EventPeerUpdate     EventKind = "peer-update"
	EventDigestMismatch EventKind = "config-mismatch"
	// EventKeyMismatch: gossip was rejected because it was not encrypted
	// with a key of the receiver's keyring.
	EventKeyMismatch    EventKind = "gossip-key-mismatch"
	EventReloadOK       EventKind = "reload-ok"
	EventReloadRejected EventKind = "reload-rejected"
	EventStarted        EventKind = "started"
	EventHandoff        EventKind = "handoff"
	EventCertChanged    EventKind = "cert-changed"
	// EventDrain and EventUndrain: the operator's drain actions.
	EventDrain   EventKind = "drain"
	EventUndrain EventKind = "undrain"
	// EventPanicRouting and EventPanicRoutingEnd: this node's datapath
	// started or stopped forwarding to every backend because none passes
	// its probes.
	EventPanicRouting    EventKind = "panic-routing"
	EventPanicRoutingEnd EventKind = "panic-routing-over"
	// EventFlowsCut: the established flows of a dead backend were cut
	// (how many, how long), or the cut failed.
	EventFlowsCut EventKind = "flows-cut"
)
