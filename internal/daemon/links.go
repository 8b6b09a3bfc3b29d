package daemon

import (
	"context"
	"time"
)

// Whether the VIP interfaces are up, as the loop learns it: from a
// subscription to the kernel's link changes (read again on every change,
// at once), with a safety re-read every linkReread; without a
// subscription (it failed, or broke) from a read on every tick, as before,
// subscribing again every linkReread.

// linkReread is the longest time between two reads of the VIP
// interfaces while the link subscription runs.
const linkReread = time.Second

// linkWatch is the loop's link subscription.
type linkWatch struct {
	ch     <-chan struct{} // nil: no subscription
	reread time.Duration   // linkReread (a test's own)
	read   time.Time       // last read of the interfaces
	tried  time.Time       // last subscription attempt
	logged bool            // the fallback to per-tick reads was logged
}

// watchLinks subscribes to link changes until ctx ends; on failure the
// loop reads on every tick.
func (d *Daemon) watchLinks(ctx context.Context, s *state) {
	s.links.tried = time.Now()
	ch, err := d.start.links(ctx, func(err error) {
		d.log.Warn("link subscription broke; reading the VIP interfaces on every tick until it is back", "err", err)
	})
	if err != nil {
		if !s.links.logged {
			d.log.Warn("no link subscription; reading the VIP interfaces on every tick", "err", err)
			s.links.logged = true
		}
		return
	}
	s.links.ch, s.links.logged = ch, false
}

// onLinks handles a signal of the link subscription (ok false: it ended).
func (d *Daemon) onLinks(s *state, ok bool) {
	if !ok {
		s.links.ch = nil
	}
	d.readLinks(s)
}

// tickLinks reads the interfaces on a tick when no subscription runs or
// linkReread passed, and subscribes again when it is time to.
func (d *Daemon) tickLinks(ctx context.Context, s *state) {
	if s.links.ch == nil && time.Since(s.links.tried) >= linkReread {
		d.watchLinks(ctx, s)
	}
	if s.links.ch == nil || time.Since(s.links.read) >= s.links.reread {
		d.readLinks(s)
	}
}

// readLinks reads whether every VIP interface is up.
func (d *Daemon) readLinks(s *state) {
	s.links.read = time.Now()
	if up := ifacesUp(s.cfg); up != s.ifaceUp {
		s.ifaceUp = up
		d.log.Info("VIP interface", "up", up)
	}
}
