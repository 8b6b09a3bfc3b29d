package cluster

// Joining the configured peers, leaving the cluster and shutting down.

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// joinLoop joins configured peers that are not alive, each with its own
// backoff from RejoinMin doubling to RejoinMax, until Shutdown. While
// every configured peer is alive it sleeps until one is declared dead or
// left or the peers change (joinWake), instead of looking every RejoinMin.
func (c *Cluster) joinLoop() {
	defer c.wg.Done()
	type try struct {
		next  time.Time
		delay time.Duration
		fails int
	}
	tries := map[string]*try{}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-timer.C:
		case <-c.joinWake:
		}
		c.mu.Lock()
		var want []Peer
		for _, p := range c.peers {
			if r := c.members[p.Name]; r != nil && r.state == StateAlive {
				delete(tries, p.Name)
				continue
			}
			want = append(want, p)
		}
		c.mu.Unlock()
		if len(want) == 0 {
			timer.Stop()
			continue // every peer alive: wait for a change (joinWake)
		}
		now := time.Now()
		for _, p := range want {
			if c.shut.Load() || c.left.Load() {
				break
			}
			tr := tries[p.Name]
			if tr == nil {
				tr = &try{delay: c.timers.RejoinMin}
				tries[p.Name] = tr
			}
			if now.Before(tr.next) {
				continue
			}
			_, err := c.ml.Join([]string{p.Addr.String()})
			// The backoff goes on until the peer is seen alive: a join can
			// succeed with a peer that is leaving.
			tr.next = time.Now().Add(tr.delay)
			tr.delay = min(2*tr.delay, c.timers.RejoinMax)
			if err == nil {
				c.log.Info("joined", "peer", p.Name, "addr", p.Addr)
				continue
			}
			tr.fails++
			lvl := slog.LevelDebug
			if tr.fails == 1 {
				lvl = slog.LevelInfo
			}
			c.log.Log(context.Background(), lvl, "cannot join peer yet; retrying", "peer", p.Name, "addr", p.Addr,
				"retry_in", time.Until(tr.next).Round(time.Millisecond), "attempts", tr.fails, "err", err)
		}
		timer.Reset(c.timers.RejoinMin)
	}
}

// Leave announces a graceful departure: it publishes Meta.Leaving (so the
// others report a leave, not a failure, and stop counting this node as a
// candidate), then memberlist's leave, waiting for each to be gossiped
// until ctx (or Timers.LeaveTimeout, without a deadline) ends. The node
// keeps answering gossip until Shutdown. Hand the VIP over before leaving.
// Calling Leave twice is harmless.
func (c *Cluster) Leave(ctx context.Context) error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.shut.Load() {
		return ErrShutdown
	}
	deadline := time.Now().Add(c.timers.LeaveTimeout)
	if dl, ok := ctx.Deadline(); ok {
		deadline = dl
	}
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	if !c.left.Load() {
		c.mu.Lock()
		c.local.Leaving = true
		b, err := encodeMeta(c.local)
		if err == nil {
			c.metaBytes = b
		}
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("cluster: leave: %w", err)
		}
		if timeout := time.Until(deadline); timeout > 0 {
			if err := c.ml.UpdateNode(timeout); err != nil {
				c.log.Warn("leave: the leaving flag was not gossiped in time; peers may report a failure", "err", err)
			}
		}
		c.left.Store(true)
	}
	timeout := time.Until(deadline)
	if timeout <= 0 {
		return fmt.Errorf("cluster: leave: %w", context.DeadlineExceeded)
	}
	if err := c.ml.Leave(timeout); err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	c.log.Info("left the cluster")
	return nil
}

// Shutdown stops gossip and the background loops and closes the sockets.
// Without a Leave before, the others declare this node dead. Shutdown is
// safe to call more than once; later calls return nil.
func (c *Cluster) Shutdown() error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.shut.Swap(true) {
		return nil
	}
	if c.stopCtx != nil {
		c.stopCtx()
	}
	close(c.done)
	err := c.ml.Shutdown()
	c.wg.Wait()
	c.log.Info("gossip stopped")
	if err != nil {
		return fmt.Errorf("cluster: shutdown: %w", err)
	}
	return nil
}

// emit delivers an event without blocking.
func (c *Cluster) emit(e Event) {
	if c.cfg.Events == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	select {
	case c.cfg.Events <- e:
	default:
		c.eventsDropped.Add(1)
	}
}
