package migrate

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// clusterPlan is the part of a generated config that is the same on every
// node. The *Note fields are comment paragraphs written above each part.
type clusterPlan struct {
	Header            []string
	Name              string
	NameNote          []string
	DNSNames          []string
	VIPs              []netip.Addr
	Port              uint16
	VIPNote           []string
	Backends          []backendPlan
	BackendNote       []string
	KeyFile           string
	GossipNote        []string
	HeartbeatInterval time.Duration
	HeartbeatMisses   int
	HeartbeatNote     []string
	Health            healthPlan
	CAFile            string
	TLSNote           []string
	BalanceMode       string
	BalanceNote       []string
}

type backendPlan struct {
	Name string
	Addr netip.Addr
	Port uint16
}

type healthPlan struct {
	Kind         string
	Path         string
	Interval     time.Duration
	FastInterval time.Duration
	Timeout      time.Duration
	Rise, Fall   int
	Note         []string
}

// nodePlan is one node's own part.
type nodePlan struct {
	Name      string
	Addr      netip.Addr
	Interface string
	Priority  int
	Preempt   bool
	Note      []string
	Peers     []peerPlan
	PeerNote  []string
	Footer    []string // "not carried over" lines
}

type peerPlan struct {
	Name string
	Addr netip.Addr
}

// GossipPort is the gossip port the generated configs use.
const GossipPort = 7946

// render writes the config.hcl text for node n of cluster c.
func render(c *clusterPlan, n *nodePlan) []byte {
	w := &hclWriter{}
	w.comment("", c.Header...)
	w.blank()
	w.comment("", c.NameNote...)
	w.line("cluster_name       = %q", c.Name)
	w.line("endpoint_dns_names = %s", stringList(c.DNSNames))
	w.blank()

	w.comment("", c.VIPNote...)
	for _, v := range c.VIPs {
		w.line("vip %q {", v.String())
		w.line("  interface = %q", n.Interface)
		w.line("  port      = %d", c.Port)
		w.line("}")
	}
	w.blank()

	w.comment("", n.Note...)
	w.line("node {")
	w.line("  name        = %q", n.Name)
	w.line("  gossip_bind = %q", netip.AddrPortFrom(n.Addr, GossipPort).String())
	w.line("  priority    = %d", n.Priority)
	w.line("  preempt     = %t", n.Preempt)
	w.line("}")
	w.blank()

	w.comment("", n.PeerNote...)
	for _, p := range n.Peers {
		w.line("peer %q {", p.Name)
		w.line("  address = %q", netip.AddrPortFrom(p.Addr, GossipPort).String())
		w.line("}")
	}
	if len(n.Peers) > 0 {
		w.blank()
	}

	w.line("gossip {")
	w.comment("  ", c.GossipNote...)
	w.line("  key_file = %q", c.KeyFile)
	w.blank()
	w.comment("  ", c.HeartbeatNote...)
	w.line("  heartbeat_interval = %q", duration(c.HeartbeatInterval))
	w.line("  heartbeat_misses   = %d", c.HeartbeatMisses)
	w.line("}")
	w.blank()

	w.comment("", c.BackendNote...)
	for _, b := range c.Backends {
		w.line("backend %q {", b.Name)
		w.line("  address = %q", b.Addr.String())
		w.line("  port    = %d", b.Port)
		w.line("}")
	}
	w.blank()

	h := c.Health
	w.comment("", h.Note...)
	w.line("health {")
	w.line("  kind          = %q", h.Kind)
	if h.Kind == "https" {
		w.line("  path          = %q", h.Path)
	}
	w.line("  interval      = %q", duration(h.Interval))
	w.line("  fast_interval = %q", duration(h.FastInterval))
	w.line("  timeout       = %q", duration(h.Timeout))
	w.line("  rise          = %d", h.Rise)
	w.line("  fall          = %d", h.Fall)
	w.line("}")
	w.blank()

	w.comment("", c.TLSNote...)
	w.line("tls {")
	w.line("  ca_file = %q", c.CAFile)
	w.line("}")
	w.blank()

	w.comment("", c.BalanceNote...)
	w.line("balance {")
	w.line("  mode = %q", c.BalanceMode)
	w.line("}")
	if len(n.Footer) > 0 {
		w.blank()
		w.comment("", "Not carried over, or changed in meaning (file:line: what):")
		for _, f := range n.Footer {
			w.raw("#   " + f)
		}
	}
	return []byte(w.b.String())
}

type hclWriter struct {
	b         strings.Builder
	lastBlank bool
}

func (w *hclWriter) line(format string, args ...any) {
	w.raw(fmt.Sprintf(format, args...))
}

func (w *hclWriter) raw(s string) {
	w.b.WriteString(s)
	w.b.WriteByte('\n')
	w.lastBlank = false
}

func (w *hclWriter) blank() {
	if !w.lastBlank && w.b.Len() > 0 {
		w.b.WriteByte('\n')
		w.lastBlank = true
	}
}

// comment writes each paragraph as '#' lines wrapped at 78 columns.
func (w *hclWriter) comment(indent string, paras ...string) {
	for _, p := range paras {
		line := indent + "#"
		for _, word := range commentWords(p) {
			if len(line)+1+len(word) > 78 && line != indent+"#" {
				w.raw(line)
				line = indent + "#"
			}
			line += " " + word
		}
		w.raw(line)
	}
}

func stringList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// duration formats d the way config.hcl writes durations: "3s", "200ms".
func duration(d time.Duration) string {
	switch {
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	default:
		return d.String()
	}
}

// commentWords splits p into words, keeping a `quoted command` in one piece
// so that it is never wrapped.
func commentWords(p string) []string {
	var out []string
	inCode := false
	for _, f := range strings.Fields(p) {
		if inCode {
			out[len(out)-1] += " " + f
		} else {
			out = append(out, f)
		}
		if strings.Count(f, "`")%2 == 1 {
			inCode = !inCode
		}
	}
	return out
}
