// Package config owns epconsole's configuration: the config.hcl schema, its
// defaults, parsing with HCL diagnostics (file:line:col) and the semantic
// checks behind `epconsole validate`.
package config

import (
	"fmt"
	"net/netip"
	"time"
)

// DefaultPort is the apiserver port a VIP serves when none is given.
const DefaultPort = 6443

// DefaultGossipPort is the port of a gossip address written without one.
const DefaultGossipPort = 7946

// Config is a parsed, defaulted and validated config.hcl. Everything in it
// has been checked; consumers never see a zero value where a default exists.
type Config struct {
	// File is the path the config was read from (for messages).
	File string
	// ClusterName names the control-plane endpoint (shown in the TUI and check).
	ClusterName string
	// VIPs are the virtual addresses (at most one IPv4 and one IPv6).
	VIPs []VIP
	// EndpointDNSNames are the DNS names clients use for the endpoint; every
	// apiserver certificate must carry them as SANs.
	EndpointDNSNames []string
	// Node is this LB node.
	Node Node
	// Peers are the other LB nodes (gossip addresses), not including Node.
	Peers []Peer
	// Gossip holds the gossip and heartbeat settings.
	Gossip Gossip
	// Backends are the apiservers, in config order (the order matters to the
	// slot map: every peer must list them the same way).
	Backends []Backend
	// Health is how backends are probed.
	Health Health
	// TLS is what the TLS certificate check expects.
	TLS TLS
	// Etcd is how the etcd quorum check reaches etcd (optional).
	Etcd Etcd
	// Status is where the daemon serves its status and metrics.
	Status Status
	// Balance is how flows are spread over backends.
	Balance Balance
	// Conntrack is the load the conntrack table is sized for (preflight).
	Conntrack Conntrack
	// StateDir keeps state that must survive a restart (drained backends).
	StateDir string

	// src records where settings were written (for ClusterWide and Where);
	// nil for a Config not made by Load or Parse.
	src *sources
}

// VIP is one virtual address served on Port.
type VIP struct {
	Address   netip.Addr
	Interface string
	Port      uint16
}

// Node is this LB node's identity in the gossip cluster.
type Node struct {
	Name string
	// GossipBind is the address:port memberlist listens on.
	GossipBind netip.AddrPort
	// GossipAdvertise is the address:port peers reach us on (defaults to GossipBind).
	GossipAdvertise netip.AddrPort
	// Priority orders owner candidates: higher wins (1..255, like VRRP).
	Priority int
	// Preempt lets a higher-priority eligible peer take the VIP from a
	// current owner; off by default, so a returning node does not move it.
	Preempt bool
}

// Peer is another LB node.
type Peer struct {
	Name    string
	Address netip.AddrPort
}

// Gossip holds the cluster channel settings.
type Gossip struct {
	// KeyFile holds the base64 gossip key(s): the first line is the primary,
	// later lines are accepted too (keyring rotation).
	KeyFile string
	// HeartbeatInterval is how often every peer beats to every peer.
	HeartbeatInterval time.Duration
	// HeartbeatMisses is how many missed beats declare a peer gone.
	HeartbeatMisses int
	// HeartbeatPort is the UDP port of the heartbeat, on the gossip
	// addresses' IPs (memberlist uses TCP and UDP on the gossip port). It is
	// the same on every peer: a peer's beats go to its gossip address's IP
	// on this port. Default: this node's gossip port + 1.
	HeartbeatPort uint16
	// PeerFilter: the daemon's nftables table takes heartbeat and gossip
	// packets from the configured peers' addresses only and drops them
	// from anyone else (default on).
	PeerFilter bool
	// Keys is the keyring read from KeyFile when the config was loaded:
	// the primary key first, every key 16, 24 or 32 bytes.
	Keys Keyring
}

// Keyring holds gossip keys, primary first. Its String and GoString never
// print key material, so a Config can be logged.
type Keyring [][]byte

// String reports the number of keys only.
func (k Keyring) String() string { return fmt.Sprintf("keyring(%d keys)", len(k)) }

// GoString reports the number of keys only.
func (k Keyring) GoString() string { return k.String() }

// Backend is one apiserver.
type Backend struct {
	Name    string
	Address netip.Addr
	Port    uint16
}

// AddrPort is the backend's address and port.
func (b Backend) AddrPort() netip.AddrPort { return netip.AddrPortFrom(b.Address, b.Port) }

// HealthKind is how a backend is probed.
type HealthKind string

// Health kinds.
const (
	HealthTCP   HealthKind = "tcp"
	HealthTLS   HealthKind = "tls"
	HealthHTTPS HealthKind = "https"
)

// Health configures the backend probes (HAProxy's inter/fall/rise).
type Health struct {
	Kind     HealthKind
	Path     string
	Interval time.Duration
	// FastInterval is used while a backend is changing state (HAProxy fastinter).
	FastInterval time.Duration
	Timeout      time.Duration
	Rise         int
	Fall         int
	// ClientCertFile / ClientKeyFile: optional client certificate the probes
	// present (for clusters where anonymous /readyz is forbidden).
	ClientCertFile string
	ClientKeyFile  string
}

// TLS configures the certificate check.
type TLS struct {
	CAFile         string
	ExtraSANs      []string
	ExpiryWarnDays int
	ExpiryCritDays int
}

// Etcd configures the etcd quorum check; empty Endpoints disables it.
type Etcd struct {
	Endpoints []string
	CAFile    string
	CertFile  string
	KeyFile   string
}

// Status configures the daemon's status socket and metrics.
type Status struct {
	Socket        string
	MetricsListen string
	// SocketGroup may read the socket (0660, this group); OperatorGroup
	// may also drain, undrain and hand off. A name or a gid; "": root only.
	SocketGroup, OperatorGroup string
}

// BalanceMode selects what the flow hash covers.
type BalanceMode string

// Balance modes.
const (
	// BalanceConnection hashes source address and port: each connection
	// may reach another backend.
	BalanceConnection BalanceMode = "connection"
	// BalanceSource hashes the source address only: a client sticks to one backend.
	BalanceSource BalanceMode = "source"
)

// Balance configures the flow hash and slot map, which must be the same on
// every peer.
type Balance struct {
	Mode  BalanceMode
	Seed  uint32
	Slots int
	// PanicRouting: when this node's probes see no healthy backend at
	// all, new connections go to every configured backend instead of
	// none, and an owner keeps the VIP (a member with healthy backends is
	// still preferred). On by default.
	PanicRouting bool
}

// HeartbeatBind is the address the heartbeat socket listens on: the gossip
// bind address's IP with Gossip.HeartbeatPort.
func (c *Config) HeartbeatBind() netip.AddrPort {
	return netip.AddrPortFrom(c.Node.GossipBind.Addr(), c.Gossip.HeartbeatPort)
}

// HeartbeatAddr is where peer p's heartbeat listens: the IP of its gossip
// address with Gossip.HeartbeatPort.
func (c *Config) HeartbeatAddr(p Peer) netip.AddrPort {
	return netip.AddrPortFrom(p.Address.Addr(), c.Gossip.HeartbeatPort)
}

// Conntrack is the load through the VIP that the conntrack table of every
// LB node (the owner's, and each peer's synced copy) must hold: the
// daemon's preflight at start and `check preflight` judge
// nf_conntrack_max against it.
type Conntrack struct {
	// ExpectedFlows is the concurrent flows through the VIP (0: the
	// preflight's default, a 5,000-node cluster).
	ExpectedFlows int
	// NewFlowsPerSecond is the peak rate of new (and as many closed)
	// flows, e.g. a rolling restart of the nodes; each closed flow keeps
	// its entry for 120 s (0: not counted).
	NewFlowsPerSecond int
}
