package dataplane

import (
	"net/netip"
	"testing"
	"time"
)

// TestDpPortPerVIP serves an IPv4 VIP on 6443 and an IPv6 VIP on 7443 from
// one Desired, as the config allows: a connection to each VIP on its own
// port is DNATed to a backend of its family.
func TestDpPortPerVIP(t *testing.T) {
	ns, ctx := kernelTest(t)
	h := nlHandle(t, ns)
	linkUp(t, h, "lo")
	addStub(t, h, "vp0", "198.18.44.1/24", "fd00:198:18:44::1/64")
	v4 := netip.MustParseAddrPort("198.18.44.100:6443")
	v6 := netip.MustParseAddrPort("[fd00:198:18:44::100]:7443")
	b4 := netip.MustParseAddrPort("198.18.44.11:6443")
	b6 := netip.MustParseAddrPort("[fd00:198:18:44::11]:7443")
	want := Desired{
		VIPs: []ServiceVIP{
			{Addr: v4.Addr(), Port: v4.Port(), Interface: "vp0"},
			{Addr: v6.Addr(), Port: v6.Port(), Interface: "vp0"},
		},
		Backends: []Backend{{Name: "cp1", Addr: b4}, {Name: "cp1v6", Addr: b6}},
		Healthy:  healthySet("cp1", "cp1v6"),
	}
	d := newDataplane(t, ns)
	if _, err := d.Reconcile(ctx, want); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		client, vip, backend netip.AddrPort
	}{
		{netip.MustParseAddrPort("198.18.44.1:41000"), v4, b4},
		{netip.MustParseAddrPort("[fd00:198:18:44::1]:41000"), v6, b6},
	} {
		startConnect(t, ns, tc.client, tc.vip)
		var got []netip.AddrPort
		deadline := time.Now().Add(2 * time.Second)
		for {
			flows, err := d.Conntrack().Flows(ctx, tc.vip)
			if err != nil {
				t.Fatal(err)
			}
			got = got[:0]
			for _, f := range flows {
				got = append(got, replySrc(f))
			}
			if len(got) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(got) != 1 || got[0] != tc.backend {
			t.Errorf("connection to VIP %v went to %v, want DNAT to %v", tc.vip, got, tc.backend)
		}
	}
}

// TestPlanPortPerVIP: each family's rules use its own VIP's port, and a
// backend without a port listens on the port of its family's VIP.
func TestPlanPortPerVIP(t *testing.T) {
	for _, tc := range []struct {
		name           string
		vips           []ServiceVIP
		port4, port6   uint16
		backend4, bak6 string
	}{
		{"own ports", []ServiceVIP{{Addr: vip4, Port: 6443}, {Addr: vip6, Port: 7443}}, 6443, 7443, "198.18.1.20:6443", "[fd00:198:18:1::20]:7443"},
		{"defaults", []ServiceVIP{{Addr: vip4}, {Addr: vip6}}, DefaultPort, DefaultPort, "198.18.1.20:6443", "[fd00:198:18:1::20]:6443"},
		{"ipv6 first", []ServiceVIP{{Addr: vip6, Port: 443}, {Addr: vip4, Port: 8443}}, 8443, 443, "198.18.1.20:8443", "[fd00:198:18:1::20]:443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPlan(t, Desired{VIPs: tc.vips, Backends: []Backend{
				{Name: "b4", Addr: netip.MustParseAddrPort("198.18.1.20:0")},
				{Name: "b6", Addr: netip.MustParseAddrPort("[fd00:198:18:1::20]:0")},
			}})
			if p[0].port != tc.port4 || p[1].port != tc.port6 {
				t.Errorf("ports %d/%d, want %d/%d", p[0].port, p[1].port, tc.port4, tc.port6)
			}
			if got := p[0].backends[0].Addr.String(); got != tc.backend4 {
				t.Errorf("IPv4 backend %s, want %s", got, tc.backend4)
			}
			if got := p[1].backends[0].Addr.String(); got != tc.bak6 {
				t.Errorf("IPv6 backend %s, want %s", got, tc.bak6)
			}
		})
	}
}

func TestServiceVIP(t *testing.T) {
	vips := []ServiceVIP{{Addr: vip4}, {Addr: netip.AddrFrom16(vip4.As16())}, {Addr: vip6, Port: 7443, Interface: "lb0"}}
	want := []string{"198.18.1.100:6443", "198.18.1.100:6443", "[fd00:198:18:1::100]:7443"}
	for i, ap := range AddrPorts(vips) {
		if ap.String() != want[i] {
			t.Errorf("AddrPorts[%d] = %v, want %s", i, ap, want[i])
		}
	}
	if f := vips[1].Family(); f != "ipv4" {
		t.Errorf("mapped IPv4 VIP family %q", f)
	}
	if f := vips[2].Family(); f != "ipv6" {
		t.Errorf("IPv6 VIP family %q", f)
	}
	if a := Addresses(vips); len(a) != 3 || a[2] != vip6 {
		t.Errorf("Addresses = %v", a)
	}
}
