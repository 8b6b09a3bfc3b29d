// Package migrate turns an HAProxy + keepalived control-plane VIP setup
// into epconsole configs (Import), and writes a fresh cluster's configs and
// gossip key (Init). It returns file contents; the `epconsole import` and
// `epconsole init` commands only read the inputs and write the outputs.
//
// Every generated config says in comments what it was mapped from
// (file:line) and what had no equivalent or changes meaning, and is
// checked with internal/config's own validation before it is returned.
package migrate

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/epconsole/epconsole/internal/migrate/diag"
)

// Source is one input file: Name is how diagnostics and comments refer to
// it (usually its path), Data its content.
type Source struct {
	Name string
	Data []byte
}

// NodeName names an LB node by its address.
type NodeName struct {
	Name string
	Addr netip.Addr
}

// ParseNodeName parses "NAME=ADDRESS", the form a command line takes.
func ParseNodeName(s string) (NodeName, error) {
	name, ip, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return NodeName{}, fmt.Errorf("%q: want NAME=ADDRESS, like lb1=10.0.0.11", s)
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return NodeName{}, fmt.Errorf("%q: %q is not an IP address", s, ip)
	}
	return NodeName{Name: name, Addr: a}, nil
}

// DefaultKeyFile is where the generated configs expect the gossip key.
const DefaultKeyFile = "/etc/epconsole/gossip.key"

// ImportOptions fills in what HAProxy and keepalived files do not say.
type ImportOptions struct {
	// ClusterName is the cluster_name; default: the HAProxy frontend's name
	// when it is a valid name, else "k8s-api".
	ClusterName string
	// DNSNames become endpoint_dns_names.
	DNSNames []string
	// Nodes names LB nodes by address; nodes not named get "lb-<last
	// octet>" (or "lb-<address>" when that is ambiguous). The i-th
	// keepalived file whose vrrp_instance has no unicast_src_ip (multicast
	// VRRP) takes Nodes[i] as its node. Without keepalived files, Nodes
	// are the LB nodes, one config each.
	Nodes []NodeName
	// VIPs replaces keepalived's virtual_ipaddress (required without
	// keepalived files).
	VIPs []netip.Addr
	// Interface replaces the VIP interface keepalived names (required
	// without keepalived files).
	Interface string
	// KeyFile is the gossip key_file the configs name; default DefaultKeyFile.
	KeyFile string
}

// NodeConfig is one node's generated config.hcl.
type NodeConfig struct {
	Name string
	Addr netip.Addr
	HCL  []byte
}

// Result is what Import produced. Diagnostics hold every error, warning
// and note with its file:line, sorted; Notes are the steps left to the
// operator.
type Result struct {
	Configs     []NodeConfig
	Diagnostics []diag.Diagnostic
	Notes       []string
}

// keyNote is the step every import and init leaves to the operator.
const keyNote = "Make one gossip key for the cluster and install it on every node, mode 0600: " +
	"`epconsole keygen > %[1]s` or `head -c 32 /dev/urandom | base64 > %[1]s; chmod 600 %[1]s`."
