package migrate

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/epconsole/epconsole/internal/migrate/diag"
	"github.com/epconsole/epconsole/internal/migrate/keepalived"
)

// nodesFromKeepalived makes one LB node per keepalived file (its first
// vrrp_instance) plus the unicast peers no file describes, and fills the
// cluster's VIPs. Files must agree on the VIPs.
func nodesFromKeepalived(c *clusterPlan, kcfgs []*keepalived.Config, kdls []*diag.List, opts ImportOptions) []*lbNode {
	var nodes []*lbNode
	var vipFrom *keepalived.Instance
	for i, kc := range kcfgs {
		dl := kdls[i]
		if len(kc.Instances) == 0 {
			continue
		}
		in := kc.Instances[0]
		for _, other := range kc.Instances[1:] {
			dl.Warnf(other.Line, "vrrp_instance %s: not carried over; epconsole moves all VIPs together (the import uses vrrp_instance %s, line %d)", other.Name, in.Name, in.Line)
		}
		n := &lbNode{src: kc, inst: in, addr: in.UnicastSrc.Addr, priority: in.Priority, preempt: !in.NoPreempt}
		if !n.addr.IsValid() {
			if i < len(opts.Nodes) {
				n.addr, n.name = opts.Nodes[i].Addr, opts.Nodes[i].Name
			} else {
				dl.Errorf(in.Line, "vrrp_instance %s has no unicast_src_ip (multicast VRRP), so this node's address is unknown: give the import each node's name and address, in the order of the keepalived files", in.Name)
				continue
			}
		}
		for _, p := range in.UnicastPeers {
			if p.Addr.IsValid() {
				n.listPeers = append(n.listPeers, p.Addr)
			}
		}
		if n.priority == 0 {
			n.priority = 100
		}
		n.iface = opts.Interface
		if n.iface == "" && len(in.VIPs) > 0 && in.VIPs[0].Dev != "" {
			n.iface = in.VIPs[0].Dev
		}
		if n.iface == "" {
			n.iface = in.Interface
		}
		if n.iface == "" {
			dl.Errorf(in.Line, "vrrp_instance %s names no interface for the VIP", in.Name)
		}
		n.note = nodeNote(in, kc.File, n.preempt, in.UnicastSrc.Addr.IsValid())
		c.VIPs = vipsOf(c, in, vipFrom, kc.File, opts, dl)
		if vipFrom == nil {
			vipFrom = in
			c.VIPNote = vipNote(in, kc.File, opts)
		}
		for _, o := range nodes {
			if o.addr == n.addr {
				dl.Errorf(in.UnicastSrc.Line, "node address %s is also the node of %s: every keepalived file must be another node's", n.addr, o.src.File)
			}
			if o.inst.VirtualRouterID != in.VirtualRouterID {
				dl.Warnf(in.Line, "virtual_router_id %d differs from %s's %d: these files may not be one VRRP group", in.VirtualRouterID, o.src.File, o.inst.VirtualRouterID)
			}
		}
		trackNotes(kc, in, dl)
		nodes = append(nodes, n)
	}
	// Unicast peers without a file of their own become peers of every node.
	var extra []netip.Addr
	for _, n := range nodes {
		for _, p := range n.listPeers {
			if !slices.ContainsFunc(nodes, func(o *lbNode) bool { return o.addr == p }) && !slices.Contains(extra, p) {
				extra = append(extra, p)
			}
		}
		for _, o := range nodes {
			if o != n && len(n.listPeers) > 0 && !slices.Contains(n.listPeers, o.addr) {
				kdlOf(kcfgs, kdls, n.src).Warnf(n.inst.Line, "unicast_peer does not list %s (the node of %s); epconsole makes every node a peer of every other", o.addr, o.src.File)
			}
		}
	}
	if len(nodes) == 1 && len(extra) == 0 {
		n := nodes[0]
		kdlOf(kcfgs, kdls, n.src).Warnf(n.inst.Line, "only this node is known (no unicast_peer, no other keepalived file): its config has no peers; import every node's keepalived.conf together")
	}
	var all []netip.Addr
	for _, n := range nodes {
		all = append(all, n.addr)
	}
	all = append(all, extra...)
	for _, n := range nodes {
		if n.name == "" {
			n.name = nameOf(n.addr, opts.Nodes, all)
		}
	}
	for _, a := range extra {
		nodes = append(nodes, &lbNode{name: nameOf(a, opts.Nodes, all), addr: a, peerOnly: true})
	}
	return nodes
}

func kdlOf(kcfgs []*keepalived.Config, kdls []*diag.List, kc *keepalived.Config) *diag.List {
	return kdls[slices.Index(kcfgs, kc)]
}

func nameOf(a netip.Addr, names []NodeName, all []netip.Addr) string {
	for _, n := range names {
		if n.Addr == a {
			return n.Name
		}
	}
	return derivedName(a, all)
}

// vipsOf returns the VIPs of instance in (or opts.VIPs), checking they are
// those of the first file.
func vipsOf(c *clusterPlan, in, first *keepalived.Instance, file string, opts ImportOptions, dl *diag.List) []netip.Addr {
	if len(opts.VIPs) > 0 {
		return opts.VIPs
	}
	var out []netip.Addr
	has4, has6 := false, false
	for _, v := range in.VIPs {
		if !v.Addr.IsValid() {
			continue
		}
		if (v.Addr.Is4() && has4) || (v.Addr.Is6() && has6) {
			dl.Errorf(v.Line, "virtual_ipaddress %s: epconsole serves at most one IPv4 and one IPv6 VIP", v.Addr)
			continue
		}
		has4, has6 = has4 || v.Addr.Is4(), has6 || v.Addr.Is6()
		out = append(out, v.Addr)
	}
	if first != nil && !slices.Equal(out, c.VIPs) {
		dl.Errorf(in.VIPLine, "virtual_ipaddress %v differs from the other keepalived files' %v: the VIP is cluster-wide", out, c.VIPs)
	}
	return out
}

func vipNote(in *keepalived.Instance, file string, opts ImportOptions) []string {
	if len(opts.VIPs) > 0 {
		return []string{"The VIP (given to the import, replacing keepalived's virtual_ipaddress). [cluster-wide, except interface]"}
	}
	note := []string{fmt.Sprintf("The VIP, from virtual_ipaddress (%s:%d); the interface from its dev or the vrrp_instance's interface. [cluster-wide, except interface]", file, in.VIPLine)}
	for _, v := range in.VIPs {
		if v.Prefix >= 0 {
			note = append(note, fmt.Sprintf("The prefix length /%d is not carried over: the owner adds the VIP as a single address.", v.Prefix))
			break
		}
	}
	return note
}

func nodeNote(in *keepalived.Instance, file string, preempt, unicast bool) []string {
	bind := fmt.Sprintf("gossip_bind is its unicast_src_ip (%s:%d)", file, in.UnicastSrc.Line)
	if !unicast {
		bind = "gossip_bind is the address given to the import (multicast VRRP names none)"
	}
	prio := fmt.Sprintf("%d (%s:%d)", in.Priority, file, in.PriorityLine)
	if in.PriorityLine == 0 {
		prio = "keepalived's default priority 100"
	}
	note := []string{
		fmt.Sprintf("This node, from vrrp_instance %s (%s:%d): %s; priority %s.", in.Name, file, in.Line, bind, prio),
		fmt.Sprintf("state %s is not carried over: the highest priority among the alive nodes owns the VIP, the name breaking ties.", stateOr(in.State)),
	}
	if preempt {
		note = append(note, "preempt = true: keepalived preempts unless nopreempt is set, so a higher-priority node takes the VIP back when it returns (a second VIP move). epconsole's default is false.")
	} else {
		note = append(note, fmt.Sprintf("preempt = false, from nopreempt (%s:%d): the owner keeps the VIP when a higher-priority node returns.", file, in.NoPreemptLine))
	}
	note = append(note, fmt.Sprintf("virtual_router_id %d has no equivalent: the cluster is its node list and its gossip key.", in.VirtualRouterID))
	return note
}

func stateOr(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// trackNotes explains each tracked script: epconsole probes the backends
// itself instead.
func trackNotes(kc *keepalived.Config, in *keepalived.Instance, dl *diag.List) {
	for _, name := range in.TrackScripts {
		sc, ok := kc.Scripts[name]
		if !ok {
			dl.Warnf(in.TrackScriptLine, "track_script %s: no vrrp_script of that name", name)
			continue
		}
		dl.Notef(sc.Line, "vrrp_script %s (%q, interval %gs, fall %d, rise %d, weight %d): not carried over; it watched the local proxy, which epconsole replaces, and epconsole probes the apiservers itself (the health block)", name, sc.Command, sc.Interval, sc.Fall, sc.Rise, sc.Weight)
	}
}
