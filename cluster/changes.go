package cluster

// Changes tell the decision loop that the view changed, so that it decides
// on the change instead of reading the view on a fixed tick.

// Changes delivers a signal whenever what View returns changed by
// something heard from the network: a member joined, left, failed or
// published new metadata, a peer's newer backend view or drain set
// arrived (every event the Config.Events channel gets, even one dropped
// there, and the changes no event reports). Signals
// coalesce; call View to see the change. A member turning suspect is a
// matter of time, not of a message: View.SuspectAfter and Member.LastSeen
// say when that happens.
func (c *Cluster) Changes() <-chan struct{} { return c.changes }

// changed signals Changes without blocking.
func (c *Cluster) changed() {
	select {
	case c.changes <- struct{}{}:
	default:
	}
}
