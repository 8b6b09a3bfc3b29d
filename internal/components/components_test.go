package components

import (
	"maps"
	"net/netip"
	"testing"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/config"
)

// dualStack is a config with an IPv4 VIP on 6443 and an IPv6 VIP on 7443,
// each on its own interface.
func dualStack(t *testing.T) *config.Config {
	t.Helper()
	src := `cluster_name = "t"
vip "198.18.44.100" {
  interface = "eth0"
}
vip "fd00:198:18:44::100" {
  interface = "eth1"
  port      = 7443
}
node {
  name        = "lb1"
  gossip_bind = "198.18.44.11:7946"
  priority    = 150
  preempt     = true
}
peer "lb2" {
  address = "198.18.44.12:7946"
}
gossip {
  key_file = "k"
}
backend "cp1" {
  address = "198.18.44.21"
}
backend "cp2" {
  address = "198.18.44.22"
  port    = 8443
}
backend "cp1v6" {
  address = "fd00:198:18:44::21"
}
balance {
  mode = "source"
}
`
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"
	c, diags := config.Parse([]byte(src), "/cfg/config.hcl", config.WithReadFile(func(string) ([]byte, error) { return []byte(key), nil }))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return c
}

func TestVIPs(t *testing.T) {
	got := VIPs(dualStack(t))
	want := []dataplane.ServiceVIP{
		{Addr: netip.MustParseAddr("198.18.44.100"), Port: 6443, Interface: "eth0"},
		{Addr: netip.MustParseAddr("fd00:198:18:44::100"), Port: 7443, Interface: "eth1"},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("VIPs = %+v, want %+v", got, want)
	}
}

// TestDesired: each VIP keeps its own port in the dataplane's state (an
// IPv4 VIP on 6443 and an IPv6 VIP on 7443 are both served), backends in
// config order with their ports, the balance section and the sets passed.
func TestDesired(t *testing.T) {
	c := dualStack(t)
	d := Desired(c, map[string]bool{"cp2": true}, map[string]bool{"cp1": true}, nil)
	if len(d.VIPs) != 2 || d.VIPs[0].AddrPort() != netip.MustParseAddrPort("198.18.44.100:6443") ||
		d.VIPs[1].AddrPort() != netip.MustParseAddrPort("[fd00:198:18:44::100]:7443") {
		t.Errorf("VIPs %+v, want 198.18.44.100:6443 and [fd00:198:18:44::100]:7443", d.VIPs)
	}
	wantB := []dataplane.Backend{
		{Name: "cp1", Addr: netip.MustParseAddrPort("198.18.44.21:6443")},
		{Name: "cp2", Addr: netip.MustParseAddrPort("198.18.44.22:8443")},
		{Name: "cp1v6", Addr: netip.MustParseAddrPort("[fd00:198:18:44::21]:6443")},
	}
	if len(d.Backends) != len(wantB) {
		t.Fatalf("backends %+v, want %+v", d.Backends, wantB)
	}
	for i := range wantB {
		if d.Backends[i] != wantB[i] {
			t.Errorf("backend %d = %+v, want %+v (config order)", i, d.Backends[i], wantB[i])
		}
	}
	if d.Seed != 0x5eed || d.Slots != 1021 || d.Mode != dataplane.BalanceSource || !d.Healthy["cp2"] || !d.Drain["cp1"] {
		t.Errorf("desired %+v", d)
	}
	c.Balance.PanicRouting = false
	if d := Desired(c, nil, nil, nil); d.Healthy != nil || d.Drain != nil || len(d.VIPs) != 2 {
		t.Errorf("nil sets: %+v", d)
	}
}

// TestDesiredPanic: with panic routing on and no healthy backend, every
// configured backend gets new flows (none drains); with a healthy backend,
// or panic routing off, the sets pass unchanged.
func TestDesiredPanic(t *testing.T) {
	all := map[string]bool{"cp1": true, "cp2": true, "cp1v6": true}
	tests := []struct {
		desc           string
		panicRouting   bool
		healthy, drain map[string]bool
		operator       map[string]bool
		wantHealthy    map[string]bool
		wantDrain      map[string]bool
		wantPanic      bool
	}{
		{"none healthy: every backend", true, map[string]bool{"cp1": false, "cp2": false}, map[string]bool{"cp1": true}, nil, all, nil, true},
		{"nil sets: every backend", true, nil, nil, nil, all, nil, true},
		{"none healthy, cp2 drained by the operator: the others, cp2 draining", true, map[string]bool{"cp1": false, "cp2": false}, map[string]bool{"cp1": true, "cp2": true}, map[string]bool{"cp2": true},
			map[string]bool{"cp1": true, "cp1v6": true}, map[string]bool{"cp2": true}, true},
		{"none healthy, every backend drained by the operator: every backend", true, nil, all, all, all, nil, true},
		{"one healthy: unchanged", true, map[string]bool{"cp2": true}, map[string]bool{"cp1": true}, nil, map[string]bool{"cp2": true}, map[string]bool{"cp1": true}, false},
		{"one healthy but drained: unchanged (the operator's drain)", true, map[string]bool{"cp2": true}, map[string]bool{"cp2": true}, map[string]bool{"cp2": true}, map[string]bool{"cp2": true}, map[string]bool{"cp2": true}, false},
		{"panic routing off: none", false, map[string]bool{"cp1": false}, map[string]bool{"cp1": true}, nil, map[string]bool{"cp1": false}, map[string]bool{"cp1": true}, false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c := dualStack(t)
			c.Balance.PanicRouting = tc.panicRouting
			if got := Panic(c, tc.healthy); got != tc.wantPanic {
				t.Errorf("Panic = %v, want %v", got, tc.wantPanic)
			}
			d := Desired(c, tc.healthy, tc.drain, tc.operator)
			if !maps.Equal(d.Healthy, tc.wantHealthy) || !maps.Equal(d.Drain, tc.wantDrain) {
				t.Errorf("healthy %v drain %v, want %v and %v", d.Healthy, d.Drain, tc.wantHealthy, tc.wantDrain)
			}
		})
	}
}

func TestCluster(t *testing.T) {
	c := dualStack(t)
	cc := Cluster(c, "v1.2.3")
	want := cluster.ShortDigest(c.Digest())
	if cc.Name != "lb1" || cc.Bind != c.Node.GossipBind || cc.Advertise != c.Node.GossipAdvertise ||
		cc.Local.Priority != 150 || !cc.Local.Preempt || cc.Local.Digest != want || len(want) != cluster.ShortDigestLen ||
		cc.Version != "v1.2.3" || len(cc.Keys) != 1 || !cc.PanicRouting ||
		len(cc.Peers) != 1 || cc.Peers[0] != (cluster.Peer{Name: "lb2", Addr: c.Peers[0].Address}) {
		t.Errorf("Cluster = %+v", cc)
	}
	c.Backends[0].Port = 443
	if Cluster(c, "").Local.Digest == want {
		t.Error("the digest does not follow the cluster-wide config")
	}
}

// TestDesiredDefaults: a lone VIP without a port is served on 6443, with
// the balance section's defaults.
func TestDesiredDefaults(t *testing.T) {
	src := `cluster_name = "t"
vip "198.18.44.100" {
  interface = "eth0"
}
node {
  name        = "lb1"
  gossip_bind = "198.18.44.11:7946"
}
gossip {
  key_file = "k"
}
backend "cp1" {
  address = "198.18.44.21"
}
`
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"
	c, diags := config.Parse([]byte(src), "/cfg/config.hcl", config.WithReadFile(func(string) ([]byte, error) { return []byte(key), nil }))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	d := Desired(c, nil, nil, nil)
	if len(d.VIPs) != 1 || d.VIPs[0] != (dataplane.ServiceVIP{Addr: netip.MustParseAddr("198.18.44.100"), Port: 6443, Interface: "eth0"}) {
		t.Errorf("VIPs %+v, want 198.18.44.100:6443 on eth0", d.VIPs)
	}
	if d.Mode != dataplane.BalanceConnection || d.Seed != dataplane.DefaultSeed || d.Slots != 1021 {
		t.Errorf("balance defaults: mode %q seed %#x slots %d", d.Mode, d.Seed, d.Slots)
	}
}
