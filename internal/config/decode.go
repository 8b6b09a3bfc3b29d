package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Defaults. docs/config.md and the sample config.hcl document each one.
const (
	defaultStateDir          = "/var/lib/epconsole"
	defaultPriority          = 100
	defaultKeyFile           = "/etc/epconsole/gossip.key"
	defaultHeartbeatInterval = 3 * time.Millisecond
	defaultHeartbeatMisses   = 5
	defaultHealthKind        = HealthHTTPS
	defaultHealthPath        = "/readyz"
	defaultInterval          = time.Second
	defaultFastInterval      = 200 * time.Millisecond
	defaultTimeout           = 500 * time.Millisecond
	defaultRise              = 2
	defaultFall              = 2
	defaultExpiryWarnDays    = 30
	defaultExpiryCritDays    = 7
	defaultSocket            = "/run/epconsole/status.sock"
	defaultMetricsListen     = "127.0.0.1:9642"
	defaultBalanceMode       = BalanceConnection
	defaultSeed              = 0x5eed
	defaultSlots             = 1021
	minSlots, maxSlots       = 17, 65521
	// maxSocketPath is sun_path's size minus the terminating NUL.
	maxSocketPath = 107
)

// decode checks raw and builds the Config; problems go to d.diags.
func (d *decoder) decode(raw *rawConfig) *Config {
	c := &Config{File: d.file}
	top := d.top()

	// Top level.
	if raw.ClusterName == nil {
		d.missing(top, "Missing cluster_name", `Add cluster_name = "prod-cp" at the top level: it names this endpoint in the TUI, in check and in the config digest, and must be the same on every peer.`)
	} else if s, ok := d.str(raw.ClusterName, "cluster_name", "", `"prod-cp"`); ok {
		if validName(s) {
			c.ClusterName = s
		} else {
			d.errf(raw.ClusterName.Expr.Range(), "Invalid cluster_name", "cluster_name = %q: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit.", s)
		}
	}
	names, rngs, _ := d.strList(raw.EndpointDNSNames, "endpoint_dns_names", `["k8s-api.example.internal"]`)
	seenName := map[string]hcl.Range{}
	for i, n := range names {
		key := strings.ToLower(strings.TrimSuffix(n, "."))
		switch {
		case isIP(n):
			d.errf(rngs[i], "IP address in endpoint_dns_names", "%q is an IP address: list only DNS names here; the VIPs are checked against the certificate already.", n)
		case !validDNSName(n):
			d.errf(rngs[i], "Invalid DNS name", "endpoint_dns_names entry %q is not a DNS name: use letters, digits and '-' in dot-separated labels, like \"k8s-api.example.internal\".", n)
		case seenName[key] != hcl.Range{}:
			d.errf(rngs[i], "Duplicate DNS name", "%q is already listed on %s: remove one of them.", n, lineOf(seenName[key]))
		default:
			seenName[key] = rngs[i]
			c.EndpointDNSNames = append(c.EndpointDNSNames, n)
		}
	}
	if s, ok := d.str(raw.StateDir, "state_dir", defaultStateDir, `"/var/lib/epconsole"`); ok {
		if s == "" {
			d.errf(raw.StateDir.Expr.Range(), "Empty state_dir", `state_dir must name a directory (it keeps drained backends across restarts): remove the line for the default "%s".`, defaultStateDir)
		}
		_, c.StateDir = d.path(s)
	}

	vipAt := d.decodeVIPs(raw, c)
	nodeAt := d.decodeNode(raw, c)
	peerAt := d.decodePeers(raw, c, nodeAt)
	d.decodeGossip(raw, c)
	backendAt := d.decodeBackends(raw, c)
	d.crossCheck(c, vipAt, nodeAt, peerAt, backendAt)
	d.decodeHealth(raw, c)
	d.decodeTLS(raw, c)
	d.decodeEtcd(raw, c)
	d.decodeStatus(raw, c)
	d.decodeBalance(raw, c)
	d.decodeConntrack(raw, c)
	return c
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// decodeVIPs fills c.VIPs and returns the range of each VIP's address.
func (d *decoder) decodeVIPs(raw *rawConfig, c *Config) []hcl.Range {
	var at []hcl.Range
	byFamily := map[bool]int{} // Is4 -> index in c.VIPs
	for _, rv := range raw.VIPs {
		addr, okAddr := d.ip(rv.AddressRange, "VIP", rv.Address)
		if okAddr && !d.vipUsable(rv.AddressRange, addr) {
			okAddr = false
		}
		iface := ""
		if rv.Interface == nil {
			d.errf(rv.DefRange, "Missing VIP interface", `vip %q needs interface = "eth0": the link the VIP is added to on the node that owns it.`, rv.Address)
		} else if s, ok := d.str(rv.Interface, "vip interface", "", `"eth0"`); ok {
			if validInterface(s) {
				iface = s
			} else {
				d.errf(rv.Interface.Expr.Range(), "Invalid interface name", "interface = %q is not a Linux interface name: use 1 to 15 characters without spaces, '/' or ':', like \"eth0\" (see `ip link`).", s)
			}
		}
		port, _ := d.port(rv.Port, "vip port", DefaultPort)
		if !okAddr {
			continue
		}
		dup := false
		for i, v := range c.VIPs {
			if v.Address == addr {
				d.errf(rv.AddressRange, "Duplicate VIP", "VIP %s is already defined on %s: remove this vip block.", addr, lineOf(at[i]))
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		if i, ok := byFamily[addr.Is4()]; ok {
			fam := "IPv6"
			if addr.Is4() {
				fam = "IPv4"
			}
			d.errf(rv.AddressRange, "More than one "+fam+" VIP", "VIP %s: there is already an %s VIP (%s, %s). Use at most one IPv4 and one IPv6 VIP; remove one of them.", addr, fam, c.VIPs[i].Address, lineOf(at[i]))
			continue
		}
		byFamily[addr.Is4()] = len(c.VIPs)
		c.VIPs = append(c.VIPs, VIP{Address: addr, Interface: iface, Port: port})
		at = append(at, rv.AddressRange)
	}
	if len(raw.VIPs) == 0 {
		d.missing(d.top(), "No VIP", `Add a vip block, like vip "198.18.0.100" { interface = "eth0" } on separate lines: the address clients reach the apiservers on.`)
	}
	return at
}

// nodeRanges records where the node's addresses were written.
type nodeRanges struct {
	name, bind, advertise hcl.Range
}

func (d *decoder) decodeNode(raw *rawConfig, c *Config) nodeRanges {
	var at nodeRanges
	rn := raw.Node
	if rn == nil {
		d.missing(d.top(), "Missing node block", `Add a node block for this LB node with at least name = "lb1" and gossip_bind = "198.18.0.11:7946" (see the sample config.hcl).`)
		return at
	}
	at.name, at.bind, at.advertise = rn.DefRange, rn.DefRange, rn.DefRange
	if rn.Name == nil {
		d.errf(rn.DefRange, "Missing node name", `Add name = "lb1" to the node block: the name this node has in the cluster, different from every peer's name.`)
	} else if s, ok := d.str(rn.Name, "node.name", "", `"lb1"`); ok {
		at.name = rn.Name.Expr.Range()
		if validName(s) {
			c.Node.Name = s
		} else {
			d.errf(at.name, "Invalid node name", "name = %q: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit.", s)
		}
	}
	if rn.GossipBind == nil {
		d.errf(rn.DefRange, "Missing gossip_bind", `Add gossip_bind = "198.18.0.11:7946" to the node block: the address and port this node gossips and beats on.`)
	} else {
		at.bind = rn.GossipBind.Expr.Range()
		c.Node.GossipBind, _ = d.addrPort(rn.GossipBind, "node.gossip_bind", true)
	}
	if rn.GossipAdvertise != nil {
		at.advertise = rn.GossipAdvertise.Expr.Range()
		c.Node.GossipAdvertise, _ = d.addrPort(rn.GossipAdvertise, "node.gossip_advertise", false)
	} else {
		at.advertise = at.bind
		c.Node.GossipAdvertise = c.Node.GossipBind
		if c.Node.GossipBind.IsValid() && c.Node.GossipBind.Addr().IsUnspecified() {
			d.errf(at.bind, "gossip_advertise needed", "gossip_bind = %q listens on every address, so peers cannot be told which one to reach: add gossip_advertise = \"<this node's address>:%d\".", c.Node.GossipBind, c.Node.GossipBind.Port())
		}
	}
	c.Node.Priority, _ = d.intIn(rn.Priority, "node.priority", defaultPriority, 1, 255, "like VRRP; the highest priority eligible node owns the VIP")
	c.Node.Preempt = d.boolean(rn.Preempt, "node.preempt", false)
	return at
}

// addrPort parses "ip:port", "[ipv6]:port" or a bare IP (default gossip port).
func (d *decoder) addrPort(a *hcl.Attribute, path string, allowUnspecified bool) (netip.AddrPort, bool) {
	s, ok := d.str(a, path, "", `"198.18.0.11:7946"`)
	if !ok {
		return netip.AddrPort{}, false
	}
	rng := a.Expr.Range()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		addr, err2 := netip.ParseAddr(s)
		if err2 != nil {
			d.errf(rng, "Invalid address", "%s = %q is not an IP address with an optional port: write it like \"198.18.0.11:7946\" or \"[fd00:198:18::11]:7946\" (no host names).", path, s)
			return netip.AddrPort{}, false
		}
		ap = netip.AddrPortFrom(addr, DefaultGossipPort)
	}
	if ap.Port() == 0 {
		d.errf(rng, "Port out of range", "%s = %q: port 0 is not a port peers can reach; use 1 to 65535 (the default is %d).", path, s, DefaultGossipPort)
		return netip.AddrPort{}, false
	}
	if msg := unusable(ap.Addr(), allowUnspecified); msg != "" {
		d.errf(rng, "Unusable address", "%s = %q %s.", path, s, msg)
		return netip.AddrPort{}, false
	}
	return ap, true
}

func (d *decoder) decodePeers(raw *rawConfig, c *Config, node nodeRanges) []hcl.Range {
	var at []hcl.Range
	names := map[string]hcl.Range{}
	addrs := map[netip.AddrPort]hcl.Range{}
	for _, rp := range raw.Peers {
		ok := true
		switch {
		case !validName(rp.Name):
			d.errf(rp.NameRange, "Invalid peer name", "peer %q: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit (the peer's node name).", rp.Name)
			ok = false
		case rp.Name == c.Node.Name:
			d.errf(rp.NameRange, "Peer is this node", "peer %q has the same name as this node (node.name, %s): list only the other LB nodes as peers.", rp.Name, lineOf(node.name))
			ok = false
		case names[rp.Name] != hcl.Range{}:
			d.errf(rp.NameRange, "Duplicate peer", "peer %q is already defined on %s: remove one of them.", rp.Name, lineOf(names[rp.Name]))
			ok = false
		default:
			names[rp.Name] = rp.NameRange
		}
		if rp.Address == nil {
			d.errf(rp.DefRange, "Missing peer address", `Add address = "198.18.0.12:7946" to peer %q: the gossip address that peer advertises.`, rp.Name)
			continue
		}
		addr, okAddr := d.addrPort(rp.Address, fmt.Sprintf("peer %q address", rp.Name), false)
		if !okAddr {
			continue
		}
		rng := rp.Address.Expr.Range()
		switch {
		case addr == c.Node.GossipAdvertise || addr == c.Node.GossipBind:
			d.errf(rng, "Peer is this node", "peer %q address %s is this node's own gossip address (%s): list only the other LB nodes as peers.", rp.Name, addr, lineOf(node.advertise))
			ok = false
		case addrs[addr] != hcl.Range{}:
			d.errf(rng, "Duplicate peer address", "peer %q address %s is already used by the peer on %s: every peer has its own address.", rp.Name, addr, lineOf(addrs[addr]))
			ok = false
		}
		if !ok {
			continue
		}
		addrs[addr] = rng
		c.Peers = append(c.Peers, Peer{Name: rp.Name, Address: addr})
		at = append(at, rng)
	}
	return at
}

func (d *decoder) decodeGossip(raw *rawConfig, c *Config) {
	rg := raw.Gossip
	if rg == nil {
		rg = &rawGossip{}
	}
	g := &c.Gossip
	g.HeartbeatInterval, _ = d.duration(rg.HeartbeatInterval, "gossip.heartbeat_interval", defaultHeartbeatInterval, time.Millisecond, time.Second)
	g.HeartbeatMisses, _ = d.intIn(rg.HeartbeatMisses, "gossip.heartbeat_misses", defaultHeartbeatMisses, 2, 100, "fewer than 2 turns one lost datagram into a failover")
	d.heartbeatPort(rg, c)
	g.PeerFilter = d.boolean(rg.PeerFilter, "gossip.peer_filter", true)
	p, ok := d.str(rg.KeyFile, "gossip.key_file", defaultKeyFile, `"/etc/epconsole/gossip.key"`)
	if !ok {
		return
	}
	rng := d.where(rg.KeyFile, rg.DefRange)
	if p == "" {
		d.errf(rng, "Empty gossip key_file", "gossip.key_file must name a file: gossip and heartbeats are always encrypted and authenticated. Remove the line for the default %q.", defaultKeyFile)
		return
	}
	shown, abs := d.path(p)
	g.KeyFile = abs
	how := fmt.Sprintf("To make a key: head -c 32 /dev/urandom | base64 > %s; chmod 600 %s (the same file on every peer).", shown, shown)
	if rg.KeyFile == nil {
		how = fmt.Sprintf("key_file defaults to %s. %s", defaultKeyFile, how)
	}
	if d.noSecrets {
		return
	}
	b, err := d.readFile(shown)
	if err != nil {
		d.errf(rng, "Cannot read gossip key file", "%v. %s", unwrapPath(err), how)
		return
	}
	if !d.keyPrivate(rng, shown, abs) {
		return
	}
	keys, err := parseKeyring(b)
	if err != nil {
		d.errf(rng, "Invalid gossip key file", "%s: %v. The file holds one base64 key per line, the primary first. %s", shown, err, how)
		return
	}
	g.Keys = keys
}

// heartbeatPort decodes gossip.heartbeat_port: default the gossip port + 1;
// never a gossip port of this node (memberlist has TCP and UDP there).
func (d *decoder) heartbeatPort(rg *rawGossip, c *Config) {
	gossipPort := c.Node.GossipBind.Port()
	if rg.HeartbeatPort == nil {
		switch {
		case gossipPort == 0: // gossip_bind missing or invalid: reported already
		case gossipPort == 65535:
			d.errf(d.where(nil, rg.DefRange), "No default heartbeat_port", "gossip_bind uses port 65535, so the default heartbeat port (gossip port + 1) does not exist: set gossip.heartbeat_port to a free UDP port, the same on every peer.")
		default:
			c.Gossip.HeartbeatPort = gossipPort + 1
		}
		return
	}
	p, ok := d.port(rg.HeartbeatPort, "gossip.heartbeat_port", gossipPort+1)
	if !ok {
		return
	}
	if p == gossipPort || p == c.Node.GossipAdvertise.Port() {
		d.errf(rg.HeartbeatPort.Expr.Range(), "Heartbeat port is the gossip port", "gossip.heartbeat_port = %d is this node's gossip port, where memberlist already listens (TCP and UDP): use another port, such as %d (the default: gossip port + 1).", p, gossipPort+1)
		return
	}
	c.Gossip.HeartbeatPort = p
}

// parseKeyring decodes a key file: one base64 key (16, 24 or 32 bytes) per
// line, blank lines and # comments ignored. Errors never quote the file's
// content.
func parseKeyring(b []byte) (Keyring, error) {
	var k Keyring
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			var ce base64.CorruptInputError
			if errors.As(err, &ce) {
				return nil, fmt.Errorf("line %d is not base64 (bad character or length at byte %d)", i+1, int64(ce))
			}
			return nil, fmt.Errorf("line %d is not base64", i+1)
		}
		switch len(key) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("the key on line %d is %d bytes; keys must be 16, 24 or 32 bytes (32 for AES-256)", i+1, len(key))
		}
		k = append(k, key)
	}
	if len(k) == 0 {
		return nil, errors.New("it holds no key")
	}
	return k, nil
}

func (d *decoder) decodeBackends(raw *rawConfig, c *Config) []hcl.Range {
	var at []hcl.Range
	names := map[string]hcl.Range{}
	addrs := map[netip.AddrPort]hcl.Range{}
	for _, rb := range raw.Backends {
		ok := true
		switch {
		case !validName(rb.Name):
			d.errf(rb.NameRange, "Invalid backend name", "backend %q: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit, like \"cp1\".", rb.Name)
			ok = false
		case names[rb.Name] != hcl.Range{}:
			d.errf(rb.NameRange, "Duplicate backend name", "backend %q is already defined on %s: give every backend its own name.", rb.Name, lineOf(names[rb.Name]))
			ok = false
		default:
			names[rb.Name] = rb.NameRange
		}
		port, okPort := d.port(rb.Port, fmt.Sprintf("backend %q port", rb.Name), DefaultPort)
		if rb.Address == nil {
			d.errf(rb.DefRange, "Missing backend address", `Add address = "198.18.0.21" to backend %q: the apiserver's IP address.`, rb.Name)
			continue
		}
		s, okStr := d.str(rb.Address, fmt.Sprintf("backend %q address", rb.Name), "", `"198.18.0.21"`)
		if !okStr {
			continue
		}
		rng := rb.Address.Expr.Range()
		addr, okAddr := d.ip(rng, fmt.Sprintf("backend %q address", rb.Name), s)
		if !okAddr || !okPort {
			continue
		}
		if addr.IsLoopback() {
			d.errf(rng, "Unusable IP address", "backend %q address %s is a loopback address, which the kernel does not forward to: use the apiserver's address on the nodes' network, even when it runs on this host.", rb.Name, addr)
			continue
		}
		ap := netip.AddrPortFrom(addr, port)
		if prev, dup := addrs[ap]; dup {
			d.errf(rng, "Duplicate backend address", "backend %q uses %s, like the backend on %s: every backend is a distinct address and port; remove the duplicate.", rb.Name, ap, lineOf(prev))
			continue
		}
		addrs[ap] = rng
		if ok {
			c.Backends = append(c.Backends, Backend{Name: rb.Name, Address: addr, Port: port})
			at = append(at, rng)
		}
	}
	if len(raw.Backends) == 0 {
		d.missing(d.top(), "No backend", `Add one backend block per apiserver, like backend "cp1" { address = "198.18.0.21" } on separate lines: the VIP forwards to them.`)
	}
	return at
}

// crossCheck relates VIPs to backends and node addresses.
func (d *decoder) crossCheck(c *Config, vipAt []hcl.Range, node nodeRanges, peerAt []hcl.Range, backendAt []hcl.Range) {
	for i, v := range c.VIPs {
		for j, b := range c.Backends {
			if b.Address == v.Address {
				d.errf(vipAt[i], "VIP is a backend address", "VIP %s is also the address of backend %q (%s): the VIP must be a spare address no apiserver listens on, or the DNAT would loop. Pick a free address for the VIP.", v.Address, b.Name, lineOf(backendAt[j]))
			}
		}
		nodeAddrs := []struct {
			what string
			ap   netip.AddrPort
			rng  hcl.Range
		}{
			{"this node's gossip_bind", c.Node.GossipBind, node.bind},
			{"this node's gossip_advertise", c.Node.GossipAdvertise, node.advertise},
		}
		for j, p := range c.Peers {
			nodeAddrs = append(nodeAddrs, struct {
				what string
				ap   netip.AddrPort
				rng  hcl.Range
			}{fmt.Sprintf("peer %q's address", p.Name), p.Address, peerAt[j]})
		}
		for _, n := range nodeAddrs {
			if n.ap.IsValid() && n.ap.Addr() == v.Address {
				d.errf(vipAt[i], "VIP is a node address", "VIP %s is %s (%s): the VIP moves between nodes, so it must be a spare address, not one a node keeps. Pick a free address for the VIP.", v.Address, n.what, lineOf(n.rng))
				break
			}
		}
		has := false
		for _, b := range c.Backends {
			if b.Address.Is4() == v.Address.Is4() {
				has = true
				break
			}
		}
		if !has && len(c.Backends) > 0 {
			d.errf(vipAt[i], "VIP without backends of its family", "VIP %s has no %s backend to forward to (the kernel cannot DNAT between IPv4 and IPv6): add backends with %s addresses or remove this VIP.", v.Address, family(v.Address), family(v.Address))
		}
	}
	if len(c.VIPs) == 0 {
		return
	}
	for j, b := range c.Backends {
		has := false
		for _, v := range c.VIPs {
			if b.Address.Is4() == v.Address.Is4() {
				has = true
				break
			}
		}
		if !has {
			d.errf(backendAt[j], "Backend without a VIP of its family", "backend %q address %s is %s but there is no %s VIP to forward from (the kernel cannot DNAT between IPv4 and IPv6): add an %s vip block or use the backend's %s address.", b.Name, b.Address, family(b.Address), family(b.Address), family(b.Address), family(c.VIPs[0].Address))
		}
	}
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
