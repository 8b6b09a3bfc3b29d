package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Setting is one setting that must be the same on every peer, as one file
// has it: what `validate a.hcl b.hcl c.hcl` compares.
type Setting struct {
	// Path names the setting as written in config.hcl, with block labels:
	// `cluster_name`, `vip (IPv4).address`, `backend "cp2".port`.
	Path string
	// Value is the value in effect (after defaults), as text.
	Value string
	// At is where the value is written; for a default, the enclosing block
	// (or the file's start) and Default is set.
	At      hcl.Range
	Default bool
	// Block marks a block's presence (`backend "cp4"`): Value sums it up
	// (address:port). The block's own settings follow it.
	Block bool
}

// sources records where the settings of a parsed file were written, keyed
// by Setting.Path; a setting left at its default is absent.
type sources struct {
	file string
	at   map[string]hcl.Range
	// block is where each block ("balance", "gossip", "node", `backend "cp1"`,
	// `vip (IPv4)`) starts, for settings left at their default.
	block map[string]hcl.Range
}

// sourcesOf reads the positions of the settings ClusterWide and the
// cross-file checks report out of the raw schema.
func sourcesOf(raw *rawConfig, file string) *sources {
	s := &sources{file: file, at: map[string]hcl.Range{}, block: map[string]hcl.Range{}}
	attr := func(path string, a *hcl.Attribute) {
		if a != nil {
			s.at[path] = a.Expr.Range()
		}
	}
	attr("cluster_name", raw.ClusterName)
	for _, v := range raw.VIPs {
		a, err := netip.ParseAddr(v.Address)
		if err != nil {
			continue
		}
		key := vipKey(a)
		if _, dup := s.block[key]; dup {
			continue
		}
		s.block[key] = v.DefRange
		s.at[key+".address"] = v.AddressRange
		attr(key+".port", v.Port)
	}
	for i, b := range raw.Backends {
		key := backendKey(b.Name)
		if i == 0 {
			s.at["backend order"] = b.DefRange
		}
		if _, dup := s.block[key]; dup {
			continue
		}
		s.block[key] = b.DefRange
		s.at[key] = b.NameRange
		attr(key+".address", b.Address)
		attr(key+".port", b.Port)
	}
	if n := raw.Node; n != nil {
		s.block["node"] = n.DefRange
		attr("node.name", n.Name)
		attr("node.gossip_bind", n.GossipBind)
		attr("node.gossip_advertise", n.GossipAdvertise)
	}
	for _, p := range raw.Peers {
		key := fmt.Sprintf("peer %q", p.Name)
		if _, dup := s.block[key]; dup {
			continue
		}
		s.block[key] = p.DefRange
		s.at[key] = p.NameRange
		attr(key+".address", p.Address)
	}
	if g := raw.Gossip; g != nil {
		s.block["gossip"] = g.DefRange
		attr("gossip.heartbeat_interval", g.HeartbeatInterval)
		attr("gossip.heartbeat_misses", g.HeartbeatMisses)
		attr("gossip.heartbeat_port", g.HeartbeatPort)
	}
	if b := raw.Balance; b != nil {
		s.block["balance"] = b.DefRange
		attr("balance.mode", b.Mode)
		attr("balance.seed", b.Seed)
		attr("balance.slots", b.Slots)
		attr("balance.panic_routing", b.PanicRouting)
	}
	return s
}

// vipKey names a VIP by its family: the files of one cluster have the same
// VIPs, so a VIP with another address is the same setting with another value.
func vipKey(a netip.Addr) string { return "vip (" + family(a) + ")" }

// backendKey names a backend block by its label.
func backendKey(name string) string { return fmt.Sprintf("backend %q", name) }

// setting is c's Setting at path with value: where it is written, or, for
// a default, the innermost block it is in (or the file's start).
func (c *Config) setting(path, value string) Setting {
	s := c.src
	if s == nil {
		s = &sources{file: c.File}
	}
	if r, ok := s.at[path]; ok {
		return Setting{Path: path, Value: value, At: r}
	}
	// A default: blame the innermost block the path is in.
	for p := path; p != ""; {
		i := strings.LastIndex(p, ".")
		if i < 0 {
			break
		}
		p = p[:i]
		if r, ok := s.block[p]; ok {
			return Setting{Path: path, Value: value, At: r, Default: true}
		}
	}
	return Setting{Path: path, Value: value, At: fileStart(s.file), Default: true}
}

// block is the presence Setting of the block key.
func (c *Config) block(key, value string) Setting {
	s := Setting{Path: key, Value: value, Block: true}
	if c.src != nil {
		s.At = c.src.block[key]
	}
	return s
}

// Where reports where path (a Setting.Path, `node.name` or `peer "lb2"`)
// is written in c's file: ok is false when it is not written there (a
// default or absent).
func (c *Config) Where(path string) (hcl.Range, bool) {
	if c.src == nil {
		return hcl.Range{}, false
	}
	r, ok := c.src.at[path]
	return r, ok
}

// ClusterWide lists the settings that must be the same on every peer, in a
// fixed order: what the digest covers (cluster_name; each VIP's address and
// port, by family; each backend's presence, address and port, and the
// backends' order; balance mode, seed, slots and panic routing) and the heartbeat settings
// every peer must share (port, interval, misses). The backends' order is
// the one Setting named "backend order", its value the names in config
// order.
func (c *Config) ClusterWide() []Setting {
	var out []Setting
	out = append(out, c.setting("cluster_name", strconv.Quote(c.ClusterName)))
	for _, is4 := range []bool{true, false} {
		for _, v := range c.VIPs {
			if v.Address.Is4() != is4 {
				continue
			}
			key := vipKey(v.Address)
			out = append(out, c.block(key, netip.AddrPortFrom(v.Address, v.Port).String()),
				c.setting(key+".address", v.Address.String()),
				c.setting(key+".port", strconv.Itoa(int(v.Port))))
		}
	}
	names := make([]string, 0, len(c.Backends))
	for _, b := range c.Backends {
		key := backendKey(b.Name)
		out = append(out, c.block(key, b.AddrPort().String()),
			c.setting(key+".address", b.Address.String()),
			c.setting(key+".port", strconv.Itoa(int(b.Port))))
		names = append(names, b.Name)
	}
	out = append(out, c.setting("backend order", strings.Join(names, ", ")))
	out = append(out,
		c.setting("balance.mode", string(c.Balance.Mode)),
		c.setting("balance.seed", strconv.FormatUint(uint64(c.Balance.Seed), 10)),
		c.setting("balance.slots", strconv.Itoa(c.Balance.Slots)),
		c.setting("balance.panic_routing", strconv.FormatBool(c.Balance.PanicRouting)),
		c.setting("gossip.heartbeat_interval", c.Gossip.HeartbeatInterval.String()),
		c.setting("gossip.heartbeat_misses", strconv.Itoa(c.Gossip.HeartbeatMisses)),
		c.setting("gossip.heartbeat_port", strconv.Itoa(int(c.Gossip.HeartbeatPort))),
	)
	return out
}
