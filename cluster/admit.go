package cluster

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/hashicorp/memberlist"
)

// Membership is bound to the configuration: the gossip key lets a node
// talk, the configuration says who may be a member. A node whose name is
// no configured peer, or that claims a configured name from another
// address than the configured one, is refused (memberlist's alive and
// merge delegates), and what it says (metadata, backend views, drain
// sets, messages, push/pull state) is ignored. Refusals are reported
// through the flood limiter: a few events per minute, then a summary.

// Limiter kinds of the cluster's reports.
const (
	limitKeyMismatch = "key-mismatch"
	limitRejected    = "member-rejected"
	limitIgnored     = "state-ignored"
	limitLog         = "memberlist-log"
)

// errNotConfigured is the refusal of a member the configuration does not name.
var errNotConfigured = errors.New("not a configured peer")

// admitLocked checks that a node of that name and address may be a
// member: this node at its advertise address, or a configured peer at
// its configured address.
func (c *Cluster) admitLocked(name string, addr netip.AddrPort) error {
	want, ok := c.configuredAddrLocked(name)
	if !ok {
		return fmt.Errorf("%w: %q is not this node nor one of its peers (add it to peers on every node to admit it)", errNotConfigured, name)
	}
	if unmapAP(addr) != unmapAP(want) {
		return fmt.Errorf("%q claims address %v, but the configuration puts it at %v", name, addr, want)
	}
	return nil
}

// configuredAddrLocked returns the configured gossip address of name
// (this node's advertise address for itself).
func (c *Cluster) configuredAddrLocked(name string) (netip.AddrPort, bool) {
	if name == c.cfg.Name {
		return c.cfg.Advertise, true
	}
	for _, p := range c.peers {
		if p.Name == name {
			return p.Addr, true
		}
	}
	return netip.AddrPort{}, false
}

// isPeerLocked reports whether name is a configured peer (not this node).
func (c *Cluster) isPeerLocked(name string) bool {
	if name == c.cfg.Name {
		return false
	}
	_, ok := c.configuredAddrLocked(name)
	return ok
}

func unmapAP(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// aliveDelegate implements memberlist.AliveDelegate: memberlist asks it
// about every alive message (join, gossip, push/pull) before a node
// becomes or stays a member.
type aliveDelegate struct{ c *Cluster }

func (d *aliveDelegate) NotifyAlive(n *memberlist.Node) error {
	c := d.c
	addr := nodeAddr(n)
	c.mu.Lock()
	err := c.admitLocked(n.Name, addr)
	c.mu.Unlock()
	if err != nil {
		c.rejectMember(n.Name, addr, err)
	}
	return err
}

// mergeDelegate implements memberlist.MergeDelegate: a join's push/pull
// is refused when the other side lists a configured name at another
// address (an impostor, or a peer whose address changed in its
// configuration but not in this one's) or lists no configured peer at
// all (another cluster that shares the key). Unconfigured names among
// configured ones are left to the alive delegate, which refuses each.
type mergeDelegate struct{ c *Cluster }

func (d *mergeDelegate) NotifyMerge(nodes []*memberlist.Node) error {
	c := d.c
	var bad error
	var badName string
	var badAddr netip.AddrPort
	known := 0
	c.mu.Lock()
	for _, n := range nodes {
		if n.State == memberlist.StateDead || n.State == memberlist.StateLeft {
			continue // old news: a peer that moved, or left; no member comes of it
		}
		err := c.admitLocked(n.Name, nodeAddr(n))
		switch {
		case err == nil:
			if n.Name != c.cfg.Name {
				known++
			}
		case !errors.Is(err, errNotConfigured) && bad == nil:
			bad, badName, badAddr = err, n.Name, nodeAddr(n)
		}
	}
	c.mu.Unlock()
	if bad == nil && known == 0 && len(nodes) > 0 {
		bad, badName, badAddr = fmt.Errorf("%w: the joining cluster lists none of this node's peers", errNotConfigured), nodes[0].Name, nodeAddr(nodes[0])
	}
	if bad != nil {
		c.rejectMember(badName, badAddr, bad)
		return fmt.Errorf("cluster: merge refused: %w", bad)
	}
	return nil
}

// rejectMember counts a refused member and reports it, limited.
func (c *Cluster) rejectMember(name string, addr netip.AddrPort, err error) {
	c.rejected.Add(1)
	if !c.limiter.Allow(limitRejected, name+"@"+addr.String()) {
		return
	}
	c.report([]Event{{Type: EventMemberRejected, Time: c.limiter.Now(), Member: name, Addr: addr,
		Detail: "gossip member refused: " + err.Error()}})
}

// ignoreState counts gossip state dropped because its origin is not a
// configured peer and reports it, limited.
func (c *Cluster) ignoreState(what, origin string) {
	c.ignored.Add(1)
	if !c.limiter.Allow(limitIgnored, origin) {
		return
	}
	c.report([]Event{{Type: EventMemberRejected, Time: c.limiter.Now(), Member: origin,
		Detail: what + " from " + origin + " ignored: " + errNotConfigured.Error()}})
}
