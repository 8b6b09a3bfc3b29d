package status

import "sync"

// Provider is where the server and the metrics read the current snapshot.
// The daemon publishes through a Publisher; tests and `check` may supply
// their own.
type Provider interface {
	// Snapshot returns the current snapshot. Callers must not modify it.
	Snapshot() Snapshot
	// Changed returns a channel that is closed when a newer snapshot is
	// published. Take the channel before reading the Snapshot, so no
	// change can slip between the two. A nil channel means the snapshot
	// never changes.
	Changed() <-chan struct{}
}

// Publisher is a Provider the daemon feeds: Publish stores a snapshot and
// wakes every waiter at the cost of one channel close, however many
// readers there are. It is safe for concurrent use.
type Publisher struct {
	mu      sync.Mutex
	snap    Snapshot
	changed chan struct{}
}

// NewPublisher returns a Publisher holding initial.
func NewPublisher(initial Snapshot) *Publisher {
	return &Publisher{snap: initial, changed: make(chan struct{})}
}

// Publish makes s the current snapshot and wakes the readers. The
// publisher keeps s as is: the caller must not modify it (or anything its
// slices and maps share) afterwards.
func (p *Publisher) Publish(s Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.snap = s
	close(p.changed)
	p.changed = make(chan struct{})
}

// Snapshot returns the current snapshot.
func (p *Publisher) Snapshot() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap
}

// Changed returns a channel closed at the next Publish.
func (p *Publisher) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}
