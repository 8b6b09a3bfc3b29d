package daemon

import (
	"sync"
	"time"
)

// EventKind says what an Event is about.
type EventKind string

// Event kinds recorded in the event log (the names internal/status uses).
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
	EventKeyMismatch    EventKind = "gossip-key-mismatch"
	EventReloadOK       EventKind = "reload-ok"
	EventReloadRejected EventKind = "reload-rejected"
	EventStarted        EventKind = "started"
	EventHandoff        EventKind = "handoff"
	EventCertChanged    EventKind = "cert-changed"
)

// Event is one entry of the daemon's event log.
type Event struct {
	Time time.Time `json:"time"`
	Kind EventKind `json:"kind"`
	// Subject is what the event concerns: a backend, a peer, a VIP
	// ("" for the daemon as a whole).
	Subject string `json:"subject,omitempty"`
	// Message says what happened and why.
	Message string `json:"message"`
}

// DefaultEventLogSize is how many events the log keeps.
const DefaultEventLogSize = 500

// EventLog is a fixed-size ring of the latest events. It is safe for
// concurrent use.
type EventLog struct {
	mu    sync.Mutex
	buf   []Event
	next  int
	full  bool
	total uint64
}

// NewEventLog returns a log keeping the latest size events
// (DefaultEventLogSize when size <= 0).
func NewEventLog(size int) *EventLog {
	if size <= 0 {
		size = DefaultEventLogSize
	}
	return &EventLog{buf: make([]Event, size)}
}

// Add records e (its Time is set to now when zero).
func (l *EventLog) Add(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf[l.next] = e
	l.next = (l.next + 1) % len(l.buf)
	if l.next == 0 {
		l.full = true
	}
	l.total++
}

// Events returns the kept events, oldest first.
func (l *EventLog) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full {
		return append([]Event(nil), l.buf[:l.next]...)
	}
	out := make([]Event, 0, len(l.buf))
	out = append(out, l.buf[l.next:]...)
	return append(out, l.buf[:l.next]...)
}

// Total counts every event ever added, kept or overwritten.
func (l *EventLog) Total() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}
