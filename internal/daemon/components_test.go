package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/epconsole/epconsole/cluster/heartbeat"
)

func TestPlanFromConfig(t *testing.T) {
	c := testConfig(t)
	d := desired(c, map[string]bool{"cp2": true}, map[string]bool{"cp1": true}, nil)
	if len(d.VIPs) != 1 || d.VIPs[0].AddrPort() != netip.MustParseAddrPort("198.18.5.100:6443") {
		t.Errorf("VIPs %v", d.VIPs)
	}
	if len(d.Backends) != 2 || d.Backends[1].Addr != netip.MustParseAddrPort("198.18.5.22:8443") || d.Backends[0].Name != "cp1" {
		t.Errorf("backends %+v, want config order", d.Backends)
	}
	if d.Seed != 0x5eed || d.Slots != 1021 || d.Mode != "connection" || !d.Healthy["cp2"] || !d.Drain["cp1"] {
		t.Errorf("desired %+v", d)
	}
	hc := heartbeatConfig(c)
	if hc.Bind != netip.MustParseAddrPort("198.18.5.11:7947") {
		t.Errorf("heartbeat bind %v, want the gossip IP on port 7947", hc.Bind)
	}
	want := []heartbeat.Peer{{Name: "lb2", Addr: netip.MustParseAddrPort("198.18.5.12:7947")}, {Name: "lb3", Addr: netip.MustParseAddrPort("198.18.5.13:7947")}}
	if len(hc.Peers) != 2 || hc.Peers[0] != want[0] || hc.Peers[1] != want[1] {
		t.Errorf("heartbeat peers %v, want %v (the same heartbeat port on every peer)", hc.Peers, want)
	}
	if !sameHeartbeat(c, c) {
		t.Error("sameHeartbeat(c, c) = false")
	}
	c2 := testConfig(t)
	c2.Gossip.HeartbeatMisses = 8
	if sameHeartbeat(c, c2) {
		t.Error("a changed heartbeat_misses went unnoticed")
	}
	c3 := testConfig(t)
	c3.Node.Name = "lbx"
	if restartNeeded(c, c3) == "" || restartNeeded(c, c2) != "" {
		t.Error("restartNeeded: a node rename must need a restart, a heartbeat change not")
	}
}

func TestSyncVIPs(t *testing.T) {
	c := testConfig(t)
	c.VIPs = append(c.VIPs, c.VIPs[0])
	c.VIPs[1].Address = netip.MustParseAddr("fd00:198:18:5::100")
	want := []netip.AddrPort{netip.MustParseAddrPort("198.18.5.100:6443"), netip.MustParseAddrPort("[fd00:198:18:5::100]:6443")}
	if got := syncVIPs(c); !slices.Equal(got, want) {
		t.Errorf("default port: %v, want %v", got, want)
	}
	c.VIPs[0].Port, c.VIPs[1].Port = 8443, 7443
	if got := syncVIPs(c); len(got) != 2 || got[0].Port() != 8443 || got[1].Port() != 7443 {
		t.Errorf("a port per VIP: %v, want :8443 and :7443", got)
	}
	if got := leaseVIPs(c); !slices.Equal(got, []netip.Addr{want[0].Addr(), want[1].Addr()}) {
		t.Errorf("lease VIPs %v", got)
	}
}
