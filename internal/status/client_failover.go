package status

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultProbeInterval is how often a Failover streaming from a fallback
// asks the daemons it prefers whether they answer again.
const DefaultProbeInterval = time.Second

// Endpoint is one daemon's status socket and the name shown for it (the
// peer's name; the snapshot's node name, or else the socket, when empty).
type Endpoint struct {
	Name   string
	Socket string
}

// Route says which of a Failover's daemons an Update comes through.
type Route struct {
	// Via is the daemon streaming now (or tried last, on Disconnected).
	Via string
	// Preferred is the first daemon of the list.
	Preferred string
	// Unreachable names the daemons preferred over Via that do not answer
	// (in list order). Empty while Via is not Preferred: the preferred one
	// answers again and Return would go back to it.
	Unreachable []string
}

// FellOver says the updates come through another daemon than the first.
func (r *Route) FellOver() bool { return r != nil && r.Via != r.Preferred }

// Failover streams the snapshots of the first of several daemons that
// answers (the peers of one cluster, each with its status socket) and,
// when that daemon dies, falls over at once to the next that answers. It
// stays on the daemon it fell over to — as keepalived without preemption
// keeps the VIP where it is — until that one fails too or Return is
// called; meanwhile it watches the daemons it prefers and says in each
// Update's Route whether they answer again. Drain, Undrain and Handoff go
// to the daemon streaming now.
type Failover struct {
	eps     []Endpoint
	clients []*Client
	// IdleTimeout is each stream's idle timeout (DefaultIdleTimeout when
	// zero); ProbeInterval the watch of the preferred daemons
	// (DefaultProbeInterval when zero). Set them before Subscribe.
	IdleTimeout   time.Duration
	ProbeInterval time.Duration

	mu     sync.Mutex
	cur    int
	names  []string
	down   []bool
	cancel context.CancelFunc
	back   bool
}

// NewFailover returns a Failover over eps, in order of preference. It does
// not connect until used.
func NewFailover(eps []Endpoint) (*Failover, error) {
	if len(eps) == 0 {
		return nil, errors.New("status: a failover needs at least one status socket")
	}
	f := &Failover{eps: slices.Clone(eps), names: make([]string, len(eps)), down: make([]bool, len(eps))}
	for i, e := range eps {
		f.clients = append(f.clients, NewClient(e.Socket))
		f.names[i] = e.Name
		if f.names[i] == "" {
			f.names[i] = e.Socket
		}
	}
	return f, nil
}

// DialFailover returns a Failover over eps after checking that one of them
// answers (GET /healthz), trying them in order; it starts on the first that
// does. The error is the first daemon's when none answers.
func DialFailover(ctx context.Context, eps []Endpoint) (*Failover, error) {
	f, err := NewFailover(eps)
	if err != nil {
		return nil, err
	}
	var first error
	for i, c := range f.clients {
		err := c.do(ctx, http.MethodGet, "/healthz", nil)
		if err == nil {
			f.cur = i
			for j := range i {
				f.down[j] = true
			}
			return f, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	f.Close()
	return nil, first
}

// Close releases idle connections.
func (f *Failover) Close() {
	for _, c := range f.clients {
		c.Close()
	}
}

// Current returns the daemon the Failover streams from (or will try
// first).
func (f *Failover) Current() Endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Endpoint{Name: f.names[f.cur], Socket: f.eps[f.cur].Socket}
}

// Return goes back to the most preferred daemon that answers: the stream
// on a fallback ends and the list is tried again from its start.
func (f *Failover) Return() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur == 0 || f.cancel == nil {
		return
	}
	f.back = true
	f.cancel()
}

// Drain stops new connections to backend, through the current daemon.
func (f *Failover) Drain(ctx context.Context, backend string) error {
	return f.client().Drain(ctx, backend)
}

// Undrain lets backend take new connections again, through the current
// daemon.
func (f *Failover) Undrain(ctx context.Context, backend string) error {
	return f.client().Undrain(ctx, backend)
}

// Handoff asks the VIP owner, through the current daemon, to hand the VIP
// to peer.
func (f *Failover) Handoff(ctx context.Context, peer string) error {
	return f.client().Handoff(ctx, peer)
}

func (f *Failover) client() *Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clients[f.cur]
}

// route returns the Route of the current daemon. f.mu must be held.
func (f *Failover) route() *Route {
	r := &Route{Via: f.names[f.cur], Preferred: f.names[0]}
	for j := range f.cur {
		if f.down[j] {
			r.Unreachable = append(r.Unreachable, f.names[j])
		}
	}
	return r
}

// Subscribe streams the current daemon's snapshots until ctx ends, then
// closes the channel; every Update carries its Route. When the stream
// drops, the other daemons are tried at once in list order (the one that
// dropped last); Disconnected is reported only when none answers, and the
// whole list is then tried again with a backoff from 100 ms to 2 s.
func (f *Failover) Subscribe(ctx context.Context) <-chan Update {
	out := make(chan Update)
	go func() {
		defer close(out)
		emit := sendUpdate(ctx, out)
		f.mu.Lock()
		order := f.order(f.cur, false)
		f.mu.Unlock()
		backoff := minBackoff
		lastErr := ""
		for {
			var errs []error
			next := []int(nil)
			for _, i := range order {
				began := time.Now()
				connected, err := f.streamOne(ctx, i, emit)
				if connected && time.Since(began) < minBackoff {
					// A daemon that accepts and drops at once is not
					// tried again in a busy loop.
					sleep(ctx, minBackoff)
				}
				if ctx.Err() != nil {
					return
				}
				f.mu.Lock()
				back := f.back
				f.back = false
				if back {
					next = f.order(0, false)
				} else if connected {
					// It served and died: the others first, it last.
					next = f.order(i, true)
				}
				f.mu.Unlock()
				if next != nil {
					break
				}
				errs = append(errs, fmt.Errorf("%s: %w", f.names[i], err))
			}
			if next != nil {
				order, backoff, lastErr = next, minBackoff, ""
				continue
			}
			err := f.noneAnswers(errs)
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				if !emit(Update{Kind: Disconnected, Err: err}) {
					return
				}
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			f.mu.Lock()
			order = f.order(0, false)
			f.mu.Unlock()
		}
	}()
	return out
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// noneAnswers is the error when no daemon of the list answers: the first
// one's error (so that ErrNoDaemon matches), naming the others.
func (f *Failover) noneAnswers(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return fmt.Errorf("none of %s answers; %w", strings.Join(f.names, ", "), errors.Join(errs...))
}

// order is the list from start (from the top, start last, when last).
func (f *Failover) order(start int, last bool) []int {
	var o []int
	if !last {
		o = append(o, start)
	}
	for i := range f.eps {
		if i != start {
			o = append(o, i)
		}
	}
	if last {
		o = append(o, start)
	}
	return o
}

// streamOne streams from daemon i until it drops, Return is called or ctx
// ends, watching the daemons preferred over it meanwhile.
func (f *Failover) streamOne(ctx context.Context, i int, emit func(Update) bool) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := f.clients[i]
	c.IdleTimeout = f.IdleTimeout
	f.mu.Lock()
	f.cur, f.cancel = i, cancel
	f.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	started := false
	connected, err := c.stream(sctx, func(u Update) bool {
		f.mu.Lock()
		if u.Kind == Connected {
			f.down[i] = false
		}
		if u.Snapshot != nil && f.eps[i].Name == "" && u.Snapshot.Node != "" {
			f.names[i] = u.Snapshot.Node
		}
		u.Route = f.route()
		f.mu.Unlock()
		if u.Kind == Connected && i > 0 && !started {
			started = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.watch(sctx, i, emit)
			}()
		}
		return emit(u)
	})
	f.mu.Lock()
	f.down[i] = true
	f.cancel = nil
	f.mu.Unlock()
	return connected, err
}

// watch asks the daemons preferred over cur whether they answer, every
// ProbeInterval until ctx ends, and reports a change of the Route with a
// Connected update.
func (f *Failover) watch(ctx context.Context, cur int, emit func(Update) bool) {
	every := f.ProbeInterval
	if every <= 0 {
		every = DefaultProbeInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed := false
		for j := range cur {
			pctx, cancel := context.WithTimeout(ctx, every)
			err := f.clients[j].do(pctx, http.MethodGet, "/healthz", nil)
			cancel()
			if ctx.Err() != nil {
				return
			}
			f.mu.Lock()
			if down := err != nil; down != f.down[j] {
				f.down[j], changed = down, true
			}
			f.mu.Unlock()
		}
		if changed {
			f.mu.Lock()
			r := f.route()
			f.mu.Unlock()
			if !emit(Update{Kind: Connected, Route: r}) {
				return
			}
		}
	}
}
