// Package preflight checks that a host can carry epconsole's datapath
// before the daemon starts and in `epconsole check`: IP forwarding (and
// what IPv6 forwarding does to router advertisements), reverse-path
// filtering, the conntrack table's size, foreign nftables or iptables rules
// that would drop the forwarded traffic (ufw's forward policy), the VIP
// interface, and its ARP settings.
//
// Gather reads the host (inside a given network namespace) into Facts, and
// never changes anything; Judge is a pure function of Facts and the
// expected traffic (Options), made of one small pure check per topic. Each
// finding is a probes.Finding of check "preflight" with a stable code and
// the fix. docs/preflight.md lists them.
package preflight

import (
	"context"
	"net/netip"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/probes"
)

// DefaultFlowsPerClient and DefaultClients give DefaultExpectedFlows.
const (
	// DefaultClients is Kubernetes' supported maximum of nodes per
	// cluster (5000): each node's kubelet, kube-proxy and agents hold
	// connections to the endpoint.
	DefaultClients = 5000
	// DefaultFlowsPerClient is a generous count of long-lived
	// connections per node (kubelet, kube-proxy, CNI and CSI agents,
	// monitoring) plus the controllers' share.
	DefaultFlowsPerClient = 10
	// DefaultExpectedFlows is the number of concurrent flows assumed when
	// Options.ExpectedFlows is zero: the largest supported cluster.
	DefaultExpectedFlows = DefaultClients * DefaultFlowsPerClient
)

// Options say where to look and what traffic to expect.
type Options struct {
	// NetnsPath is the network namespace to inspect (/run/netns/NAME or
	// /proc/PID/ns/net). Empty and NetnsFd 0: the caller's own namespace.
	NetnsPath string
	// NetnsFd is an open network namespace descriptor, used when NetnsPath
	// is empty (0 = unset). It is not closed.
	NetnsFd int
	// VIPs are the virtual addresses with their interface and port.
	VIPs []VIP
	// Backends are the apiservers the VIP forwards to.
	Backends []netip.AddrPort
	// ExpectedFlows is the number of concurrent flows through the VIP the
	// conntrack table must hold (0 = DefaultExpectedFlows). The table
	// should hold twice that: closed flows stay in TIME_WAIT for two
	// minutes, and a failover makes every client reconnect at once.
	ExpectedFlows int
	// NewFlowsPerSecond is the peak rate of new (and as many closed)
	// flows through the VIP, a rolling restart of the cluster's nodes (0:
	// not considered). Each closed flow keeps its entry for TIME_WAIT's
	// two minutes, on the owner and, synced, on every peer, so the table
	// must hold ExpectedFlows plus 120 s of them.
	NewFlowsPerSecond int
}

// VIP is one virtual address served on Port through Interface.
type VIP struct {
	Address   netip.Addr
	Interface string
	Port      uint16
}

// OptionsFromConfig derives the options from a loaded config.hcl; the
// namespace is the caller's own (set NetnsPath to look elsewhere).
func OptionsFromConfig(c *config.Config) Options {
	var o Options
	for _, v := range c.VIPs {
		o.VIPs = append(o.VIPs, VIP{Address: v.Address, Interface: v.Interface, Port: v.Port})
	}
	for _, b := range c.Backends {
		o.Backends = append(o.Backends, b.AddrPort())
	}
	o.ExpectedFlows, o.NewFlowsPerSecond = c.Conntrack.ExpectedFlows, c.Conntrack.NewFlowsPerSecond
	return o
}

// expectedFlows is o.ExpectedFlows with its default.
func (o Options) expectedFlows() int {
	if o.ExpectedFlows > 0 {
		return o.ExpectedFlows
	}
	return DefaultExpectedFlows
}

// timeWaitSeconds is how long conntrack keeps a closed TCP flow
// (nf_conntrack_tcp_timeout_time_wait's default).
const timeWaitSeconds = 120

// neededEntries is how many conntrack entries the expected flows and
// churn hold at once.
func (o Options) neededEntries() int {
	return o.expectedFlows() + max(o.NewFlowsPerSecond, 0)*timeWaitSeconds
}

// fixes is a preflight finding's fix: one line, none for "".
func fixes(text string) []probes.Fix {
	if text == "" {
		return nil
	}
	return []probes.Fix{{Text: text}}
}

// Run gathers the facts of the namespace in o and judges them. A fact
// that could not be read becomes an UNKNOWN finding; Run never fails and
// never changes the host.
func Run(ctx context.Context, o Options) []probes.Finding {
	facts := Gather(ctx, o)
	return Judge(facts, o)
}
