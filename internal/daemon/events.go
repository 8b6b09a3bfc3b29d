package daemon

import (
	"sync"
	"time"

	"github.com/epconsole/epconsole/internal/status"
)

// EventKind says what an Event is about (the kinds are internal/status's:
// the console and check read them).
type EventKind = status.EventKind

// Event kinds recorded in the event log.
const (
	EventVIPAcquired    = status.EventVIPAcquired
	EventVIPReleased    = status.EventVIPReleased
	EventBackendUp      = status.EventBackendUp
	EventBackendDown    = status.EventBackendDown
	EventPeerBackend    = status.EventPeerBackend
	EventPeerJoin       = status.EventPeerJoin
	EventPeerLeave      = status.EventPeerLeave
	EventPeerFailed     = status.EventPeerFailed
	EventPeerUpdate     = status.EventPeerUpdate
	EventDigestMismatch = status.EventDigestMismatch
	EventKeyMismatch    = status.EventKeyMismatch
	EventReloadOK       = status.EventReloadOK
	EventReloadRejected = status.EventReloadRejected
	EventStarted        = status.EventStarted
	EventHandoff        = status.EventHandoff
	EventCertChanged    = status.EventCertChanged
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
