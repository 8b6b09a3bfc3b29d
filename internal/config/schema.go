package config

import "github.com/hashicorp/hcl/v2"

// The raw* types are the config.hcl schema as gohcl sees it. Every argument
// is an *hcl.Attribute (optional for HCL; required ones are checked by the
// decoder) so that defaults, conversions and messages are ours, and every
// error can point at the exact expression.

type rawConfig struct {
	ClusterName      *hcl.Attribute `hcl:"cluster_name"`
	EndpointDNSNames *hcl.Attribute `hcl:"endpoint_dns_names"`
	StateDir         *hcl.Attribute `hcl:"state_dir"`

	VIPs      []*rawVIP     `hcl:"vip,block"`
	Node      *rawNode      `hcl:"node,block"`
	Peers     []*rawPeer    `hcl:"peer,block"`
	Gossip    *rawGossip    `hcl:"gossip,block"`
	Backends  []*rawBackend `hcl:"backend,block"`
	Health    *rawHealth    `hcl:"health,block"`
	TLS       *rawTLS       `hcl:"tls,block"`
	Etcd      *rawEtcd      `hcl:"etcd,block"`
	Status    *rawStatus    `hcl:"status,block"`
	Balance   *rawBalance   `hcl:"balance,block"`
	Conntrack *rawConntrack `hcl:"conntrack,block"`
}

type rawVIP struct {
	Address      string    `hcl:"address,label"`
	AddressRange hcl.Range `hcl:"address,label_range"`
	DefRange     hcl.Range `hcl:",def_range"`

	Interface *hcl.Attribute `hcl:"interface"`
	Port      *hcl.Attribute `hcl:"port"`
}

type rawNode struct {
	DefRange hcl.Range `hcl:",def_range"`

	Name            *hcl.Attribute `hcl:"name"`
	GossipBind      *hcl.Attribute `hcl:"gossip_bind"`
	GossipAdvertise *hcl.Attribute `hcl:"gossip_advertise"`
	Priority        *hcl.Attribute `hcl:"priority"`
	Preempt         *hcl.Attribute `hcl:"preempt"`
}

type rawPeer struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`

	Address *hcl.Attribute `hcl:"address"`
}

type rawGossip struct {
	DefRange hcl.Range `hcl:",def_range"`

	KeyFile           *hcl.Attribute `hcl:"key_file"`
	HeartbeatInterval *hcl.Attribute `hcl:"heartbeat_interval"`
	HeartbeatMisses   *hcl.Attribute `hcl:"heartbeat_misses"`
	HeartbeatPort     *hcl.Attribute `hcl:"heartbeat_port"`
	PeerFilter        *hcl.Attribute `hcl:"peer_filter"`
}

type rawBackend struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`

	Address *hcl.Attribute `hcl:"address"`
	Port    *hcl.Attribute `hcl:"port"`
}

type rawHealth struct {
	DefRange hcl.Range `hcl:",def_range"`

	Kind           *hcl.Attribute `hcl:"kind"`
	Path           *hcl.Attribute `hcl:"path"`
	Interval       *hcl.Attribute `hcl:"interval"`
	FastInterval   *hcl.Attribute `hcl:"fast_interval"`
	Timeout        *hcl.Attribute `hcl:"timeout"`
	Rise           *hcl.Attribute `hcl:"rise"`
	Fall           *hcl.Attribute `hcl:"fall"`
	ClientCertFile *hcl.Attribute `hcl:"client_cert_file"`
	ClientKeyFile  *hcl.Attribute `hcl:"client_key_file"`
}

type rawTLS struct {
	DefRange hcl.Range `hcl:",def_range"`

	CAFile         *hcl.Attribute `hcl:"ca_file"`
	ExtraSANs      *hcl.Attribute `hcl:"extra_sans"`
	ExpiryWarnDays *hcl.Attribute `hcl:"expiry_warn_days"`
	ExpiryCritDays *hcl.Attribute `hcl:"expiry_crit_days"`
}

type rawEtcd struct {
	DefRange hcl.Range `hcl:",def_range"`

	Endpoints *hcl.Attribute `hcl:"endpoints"`
	CAFile    *hcl.Attribute `hcl:"ca_file"`
	CertFile  *hcl.Attribute `hcl:"cert_file"`
	KeyFile   *hcl.Attribute `hcl:"key_file"`
}

type rawStatus struct {
	DefRange hcl.Range `hcl:",def_range"`

	Socket        *hcl.Attribute `hcl:"socket"`
	MetricsListen *hcl.Attribute `hcl:"metrics_listen"`
	SocketGroup   *hcl.Attribute `hcl:"socket_group"`
	OperatorGroup *hcl.Attribute `hcl:"operator_group"`
}

type rawBalance struct {
	DefRange hcl.Range `hcl:",def_range"`

	Mode  *hcl.Attribute `hcl:"mode"`
	Seed  *hcl.Attribute `hcl:"seed"`
	Slots *hcl.Attribute `hcl:"slots"`

	PanicRouting *hcl.Attribute `hcl:"panic_routing"`
}

type rawConntrack struct {
	DefRange hcl.Range `hcl:",def_range"`

	ExpectedFlows     *hcl.Attribute `hcl:"expected_flows"`
	NewFlowsPerSecond *hcl.Attribute `hcl:"new_flows_per_second"`
}
