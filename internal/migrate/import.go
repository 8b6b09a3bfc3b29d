package migrate

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/migrate/diag"
	"github.com/epconsole/epconsole/internal/migrate/haproxy"
	"github.com/epconsole/epconsole/internal/migrate/keepalived"
)

// lbNode is one LB node as the keepalived files (or the options) describe it.
type lbNode struct {
	name      string
	addr      netip.Addr
	iface     string
	priority  int
	preempt   bool
	src       *keepalived.Config // nil without keepalived files
	inst      *keepalived.Instance
	listPeers []netip.Addr // unicast_peer
	note      []string
	peerOnly  bool // known only as a unicast_peer: no config of its own
}

// Import reads haproxy.cfg and the keepalived.conf of every LB node (none
// when the VIP comes from opts) and returns one config per node, each
// validated with internal/config. It returns a non-nil Result with every
// diagnostic even when it fails; the error then lists the errors.
func Import(hp Source, kas []Source, opts ImportOptions) (*Result, error) {
	res := &Result{}
	hcfg, ds := haproxy.Read(hp.Name, hp.Data)
	res.Diagnostics = append(res.Diagnostics, ds...)
	hdl := &diag.List{File: hp.Name}
	svc := pickService(hcfg, hdl)
	var kcfgs []*keepalived.Config
	var kdls []*diag.List
	for _, k := range kas {
		kc, ds := keepalived.Read(k.Name, k.Data)
		res.Diagnostics = append(res.Diagnostics, ds...)
		kcfgs = append(kcfgs, kc)
		kdls = append(kdls, &diag.List{File: k.Name})
	}
	if diag.HasErrors(res.Diagnostics) || svc == nil {
		return finish(res, hdl, kdls)
	}

	c := &clusterPlan{Port: svc.port, HeartbeatInterval: defHeartbeat, HeartbeatMisses: defMisses, DNSNames: opts.DNSNames}
	c.KeyFile = opts.KeyFile
	if c.KeyFile == "" {
		c.KeyFile = DefaultKeyFile
	}
	c.Backends, c.BackendNote = svc.backends(hp.Name, hdl)
	c.Health, c.CAFile, c.TLSNote = svc.health(hp.Name, hdl)
	c.BalanceMode, c.BalanceNote = svc.balance(hp.Name, hdl)
	c.Name, c.NameNote = clusterName(opts.ClusterName, svc, hp.Name)
	if len(opts.DNSNames) == 0 {
		c.NameNote = append(c.NameNote, "endpoint_dns_names: add the DNS names clients use for the VIP (kubeadm's controlPlaneEndpoint); the certificate check then requires them as SANs.")
	}
	c.Header = header(hp, kas)

	var nodes []*lbNode
	if len(kas) == 0 {
		nodes = nodesFromOptions(c, opts, hdl)
	} else {
		nodes = nodesFromKeepalived(c, kcfgs, kdls, opts)
	}
	for _, b := range svc.bindIPs {
		if !slices.Contains(c.VIPs, b.Addr) {
			hdl.Warnf(b.Line, "bind %s: not a VIP (the VIP is %v); epconsole serves the VIP only", b.Addr, c.VIPs)
		}
	}
	if diag.HasErrors(hdl.Diags) || slices.ContainsFunc(kdls, func(l *diag.List) bool { return diag.HasErrors(l.Diags) }) || len(nodes) == 0 {
		return finish(res, hdl, kdls)
	}
	c.GossipNote, c.HeartbeatNote = gossipNotes(nodes, c.KeyFile, kas)
	all := append(slices.Clone(res.Diagnostics), hdl.Diags...)
	for _, l := range kdls {
		all = append(all, l.Diags...)
	}
	diag.Sort(all)
	for _, n := range nodes {
		if n.peerOnly {
			res.Notes = append(res.Notes, fmt.Sprintf("Node %s (%s) is known only as a unicast_peer: import its keepalived.conf together with the others to get its config.", n.name, n.addr))
			continue
		}
		np := &nodePlan{Name: n.name, Addr: n.addr, Interface: n.iface, Priority: n.priority, Preempt: n.preempt, Note: n.note}
		for _, o := range nodes {
			if o != n {
				np.Peers = append(np.Peers, peerPlan{Name: o.name, Addr: o.addr})
			}
		}
		np.PeerNote = peerNote(n, len(kas) > 0)
		for _, d := range all {
			if d.File == hp.Name || (n.src != nil && d.File == n.src.File) {
				np.Footer = append(np.Footer, d.String())
			}
		}
		res.Configs = append(res.Configs, NodeConfig{Name: n.name, Addr: n.addr, HCL: render(c, np)})
	}
	res.Notes = append(res.Notes,
		fmt.Sprintf(keyNote, c.KeyFile),
		"Install each node's config as /etc/epconsole/config.hcl and check it there with `epconsole validate`.",
		"Stop keepalived and haproxy on a node before starting epconsole on it: both would claim the VIP and port.")
	selfCheck(res, c.KeyFile)
	return finish(res, hdl, kdls)
}

// finish merges the mapping diagnostics in, sorts them and returns the
// error for any error among them.
func finish(res *Result, hdl *diag.List, kdls []*diag.List) (*Result, error) {
	res.Diagnostics = append(res.Diagnostics, hdl.Diags...)
	for _, l := range kdls {
		res.Diagnostics = append(res.Diagnostics, l.Diags...)
	}
	diag.Sort(res.Diagnostics)
	if err := diag.ErrorsOf(res.Diagnostics); err != nil {
		res.Configs = nil
		return res, fmt.Errorf("import: %w", err)
	}
	return res, nil
}

func header(hp Source, kas []Source) []string {
	from := hp.Name
	for _, k := range kas {
		from += ", " + k.Name
	}
	return []string{
		"epconsole config imported from " + from + ".",
		"The comments say what each part was mapped from (file:line) and what has no equivalent; the list at the end has every line not carried over. Check it with: epconsole validate -c config.hcl",
		"The parts marked [cluster-wide] are the same in every node's config.",
	}
}

func clusterName(given string, svc *service, file string) (string, []string) {
	switch {
	case given != "":
		return given, []string{"The cluster's name (given to the import). [cluster-wide]"}
	case svc.front != nil && config.ValidName(svc.front.Name):
		return svc.front.Name, []string{fmt.Sprintf("The cluster's name, from %s %s (%s:%d). [cluster-wide]", svc.front.Kind, svc.front.Name, file, svc.front.Line)}
	default:
		return "k8s-api", []string{"The cluster's name (HAProxy's frontend name is not a valid name). [cluster-wide]"}
	}
}

// nodesFromOptions makes the nodes of a haproxy-only import: opts.Nodes,
// opts.VIPs and opts.Interface say what keepalived would have.
func nodesFromOptions(c *clusterPlan, opts ImportOptions, dl *diag.List) []*lbNode {
	if len(opts.VIPs) == 0 {
		dl.Errorf(1, "no keepalived.conf and no VIP given: name the VIP the nodes share")
	}
	if opts.Interface == "" {
		dl.Errorf(1, "no keepalived.conf and no interface given: name the link the VIP goes on")
	}
	if len(opts.Nodes) == 0 {
		dl.Errorf(1, "no keepalived.conf and no LB node given: name each LB node and its address")
	}
	c.VIPs = opts.VIPs
	c.VIPNote = []string{"The VIP (given to the import: haproxy.cfg alone does not say it). [cluster-wide, except interface]"}
	var out []*lbNode
	for _, n := range opts.Nodes {
		out = append(out, &lbNode{name: n.Name, addr: n.Addr, iface: opts.Interface, priority: 100,
			note: []string{"This node (given to the import). With no keepalived priorities, every node has priority 100; at equal priority the greatest name (in byte order) wins a new election. preempt = false: a returning node does not take the VIP back."}})
	}
	return out
}

func peerNote(n *lbNode, fromKeepalived bool) []string {
	if !fromKeepalived {
		return []string{"The other LB nodes (given to the import), by name and gossip address (port 7946; heartbeats use 7947)."}
	}
	return []string{"The other LB nodes, from the keepalived files given together and unicast_peer, by name and gossip address (port 7946; heartbeats use 7947). Names are derived from the addresses unless the import was given names."}
}

// The heartbeat the generated configs carry: epconsole's defaults
// (docs/daemon.md, "Heartbeat under load", says why).
const (
	defHeartbeat = 3 * time.Millisecond
	defMisses    = 5
	// heartbeatNote explains them in the generated config.
	heartbeatNote = "Every node beats to every node each heartbeat_interval; a node that misses heartbeat_misses beats in a row is gone: 3ms x 5 = 15 ms."
)

func gossipNotes(nodes []*lbNode, keyFile string, kas []Source) (gossip, heartbeat []string) {
	gossip = []string{
		"Gossip and heartbeats are encrypted and authenticated with the key in key_file (one base64 key of 32 bytes; the same file on every node, mode 0600).",
		"Make a new one: `epconsole keygen > " + keyFile + "` or `head -c 32 /dev/urandom | base64 > " + keyFile + "`.",
	}
	for _, n := range nodes {
		if n.inst != nil && n.inst.AuthPass != "" {
			gossip = append(gossip, fmt.Sprintf("keepalived's auth_pass (%s:%d) is not carried over: VRRP's PASS authentication sends an 8-character password in clear text; it is not a key.", n.src.File, n.inst.AuthLine))
			break
		}
	}
	heartbeat = []string{heartbeatNote}
	for _, n := range nodes {
		if n.inst == nil {
			continue
		}
		adv := n.inst.AdvertInt
		from := fmt.Sprintf("(%s:%d)", n.src.File, n.inst.AdvertIntLine)
		if adv == 0 {
			adv, from = 1, "(keepalived's default)"
		}
		heartbeat = append(heartbeat, fmt.Sprintf("keepalived's advert_int %g %s declared a master dead after 3 x %gs plus skew, about %.1f s; its value is not carried over. For a slower pace raise heartbeat_interval (at most 1s) or heartbeat_misses.", adv, from, adv, 3*adv+adv*(256-float64(n.priority))/256))
		break
	}
	return gossip, heartbeat
}
