package netlab

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

var (
	testNet4 = netip.MustParsePrefix("198.18.2.0/24")
	testNet6 = netip.MustParsePrefix("fd00:198:18:2::/64")
)

func TestPlanAssignsAddresses(t *testing.T) {
	tests := []struct {
		desc  string
		hosts []HostSpec
		want  map[string]string // host -> "v4 v6"
	}{
		{
			desc: "role defaults",
			hosts: []HostSpec{
				{Name: "cl", Role: RoleClient}, {Name: "lb1", Role: RoleLB}, {Name: "lb2", Role: RoleLB},
				{Name: "cp1", Role: RoleBackend}, {Name: "cp2", Role: RoleBackend}, {Name: "cl2", Role: RoleClient},
			},
			want: map[string]string{
				"cl": "198.18.2.10 fd00:198:18:2::10", "lb1": "198.18.2.11 fd00:198:18:2::11", "lb2": "198.18.2.12 fd00:198:18:2::12",
				"cp1": "198.18.2.21 fd00:198:18:2::21", "cp2": "198.18.2.22 fd00:198:18:2::22", "cl2": "198.18.2.31 fd00:198:18:2::31",
			},
		},
		{
			desc:  "explicit index is kept and skipped by defaults",
			hosts: []HostSpec{{Name: "b1", Role: RoleBackend}, {Name: "b9", Role: RoleBackend, Index: 21}, {Name: "odd", Role: RoleLB, Index: 254}},
			want: map[string]string{
				"b1": "198.18.2.22 fd00:198:18:2::22", "b9": "198.18.2.21 fd00:198:18:2::21", "odd": "198.18.2.254 fd00:198:18:2::254",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := plan(Spec{Prefix: "nl", IPv4: testNet4, IPv6: testNet6, Hosts: tc.hosts})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.hosts) {
				t.Fatalf("planned %d hosts, want %d", len(got), len(tc.hosts))
			}
			for i, h := range got {
				if h.Name != tc.hosts[i].Name {
					t.Errorf("host %d is %s, want spec order %s", i, h.Name, tc.hosts[i].Name)
				}
				if s := h.Addr4.String() + " " + h.Addr6.String(); s != tc.want[h.Name] {
					t.Errorf("%s: %s, want %s", h.Name, s, tc.want[h.Name])
				}
			}
		})
	}
}

func TestPlanRefuses(t *testing.T) {
	good := []HostSpec{{Name: "cl", Role: RoleClient}}
	tests := []struct {
		desc    string
		spec    Spec
		wantErr string
	}{
		{"prefix too long", Spec{Prefix: "nlong", IPv4: testNet4, IPv6: testNet6, Hosts: good}, `prefix "nlong"`},
		{"prefix empty", Spec{Prefix: "", IPv4: testNet4, IPv6: testNet6, Hosts: good}, `prefix ""`},
		{"prefix with dash", Spec{Prefix: "n-1", IPv4: testNet4, IPv6: testNet6, Hosts: good}, `prefix "n-1"`},
		{"prefix upper case", Spec{Prefix: "NL", IPv4: testNet4, IPv6: testNet6, Hosts: good}, `prefix "NL"`},
		{"IPv4 private range", Spec{Prefix: "nl", IPv4: netip.MustParsePrefix("10.0.0.0/24"), IPv6: testNet6, Hosts: good}, "IPv4 prefix 10.0.0.0/24"},
		{"IPv4 just past the /15", Spec{Prefix: "nl", IPv4: netip.MustParsePrefix("198.20.0.0/24"), IPv6: testNet6, Hosts: good}, "IPv4 prefix 198.20.0.0/24"},
		{"IPv4 not a /24", Spec{Prefix: "nl", IPv4: netip.MustParsePrefix("198.18.2.0/23"), IPv6: testNet6, Hosts: good}, "want a /24"},
		{"IPv4 not a network", Spec{Prefix: "nl", IPv4: netip.MustParsePrefix("198.18.2.5/24"), IPv6: testNet6, Hosts: good}, "want a /24 network"},
		{"IPv4 missing", Spec{Prefix: "nl", IPv6: testNet6, Hosts: good}, "IPv4 prefix invalid"},
		{"IPv6 given as IPv4", Spec{Prefix: "nl", IPv4: testNet4, IPv6: netip.MustParsePrefix("198.18.3.0/24"), Hosts: good}, "IPv6 prefix 198.18.3.0/24"},
		{"IPv6 other ULA", Spec{Prefix: "nl", IPv4: testNet4, IPv6: netip.MustParsePrefix("fd00:1::/64"), Hosts: good}, "IPv6 prefix fd00:1::/64"},
		{"IPv6 neighbour /48", Spec{Prefix: "nl", IPv4: testNet4, IPv6: netip.MustParsePrefix("fd00:198:19::/64"), Hosts: good}, "IPv6 prefix fd00:198:19::/64"},
		{"IPv6 global", Spec{Prefix: "nl", IPv4: testNet4, IPv6: netip.MustParsePrefix("2001:db8::/64"), Hosts: good}, "IPv6 prefix 2001:db8::/64"},
		{"IPv6 not a /64", Spec{Prefix: "nl", IPv4: testNet4, IPv6: netip.MustParsePrefix("fd00:198:18:2::/96"), Hosts: good}, "want a /64"},
		{"no hosts", Spec{Prefix: "nl", IPv4: testNet4, IPv6: testNet6}, "no hosts"},
		{"duplicate host", Spec{Prefix: "nl", IPv4: testNet4, IPv6: testNet6, Hosts: []HostSpec{{Name: "a", Role: RoleLB}, {Name: "a", Role: RoleLB}}}, `"a": duplicate`},
		{"host named like the switch", Spec{Prefix: "nl", IPv4: testNet4, IPv6: testNet6, Hosts: []HostSpec{{Name: "sw", Role: RoleLB}}}, "taken by the switch"},
		{"host name too long", Spec{Prefix: "nl", IPv4: testNet4, IPv6: testNet6, Hosts: []HostSpec{{Name: "backend1234", Role: RoleBackend}}}, `host "backend1234"`},
		{"unknown role", Spec{Prefix: "nl", IPv4: testNet4, IPv6: testNet6, Hosts: []HostSpec{{Name: "x", Role: "router"}}}, `unknown role "router"`},
		{"index of the VIP", Spec{Prefix: "nl", IPv4: testNet4, IPv6: testNet6, Hosts: []HostSpec{{Name: "x", Role: RoleLB, Index: VIPIndex}}}, "taken by the VIP"},
		{"index collision", Spec{Prefix: "nl", IPv4: testNet4, IPv6: testNet6, Hosts: []HostSpec{{Name: "x", Role: RoleLB, Index: 7}, {Name: "y", Role: RoleLB, Index: 7}}}, `taken by host "x"`},
		{"index out of range", Spec{Prefix: "nl", IPv4: testNet4, IPv6: testNet6, Hosts: []HostSpec{{Name: "x", Role: RoleLB, Index: 255}}}, "outside 1-254"},
		{"role range exhausted", Spec{Prefix: "nl", IPv4: testNet4, IPv6: testNet6, Hosts: manyBackends(10)}, "no free index left"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := plan(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("plan error = %v, want one containing %q", err, tc.wantErr)
			}
			// Build refuses the same spec before touching the system.
			_, err = Build(context.Background(), tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Build error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	if entries, err := os.ReadDir(netnsDir); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "nl-") {
				t.Errorf("a refused spec left namespace %s", e.Name())
			}
		}
	}
}

func manyBackends(n int) []HostSpec {
	var hs []HostSpec
	for i := range n {
		hs = append(hs, HostSpec{Name: "b" + string(rune('a'+i)), Role: RoleBackend})
	}
	return hs
}

func TestAllowedAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"198.18.0.1", true}, {"198.19.255.254", true}, {"198.20.0.1", false}, {"198.17.255.255", false},
		{"127.0.0.1", true}, {"10.0.0.1", false}, {"8.8.8.8", false},
		{"fd00:198:18:2::21", true}, {"fd00:198:19::1", false}, {"::1", false}, {"::ffff:198.18.2.1", true},
	} {
		if got := AllowedAddr(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("AllowedAddr(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if err := checkTarget(netip.MustParseAddrPort("10.1.2.3:6443")); err == nil {
		t.Error("checkTarget accepted 10.1.2.3:6443")
	}
	if err := checkTarget(netip.MustParseAddrPort("198.18.2.21:0")); err == nil {
		t.Error("checkTarget accepted port 0")
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := summarize(ds)
	want := Latency{Min: time.Millisecond, Median: 51 * time.Millisecond, P99: 100 * time.Millisecond, Max: 100 * time.Millisecond}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if (summarize(nil) != Latency{}) {
		t.Error("summarize(nil) not zero")
	}
}

func TestBuildRefusesInChildWithoutRunChild(t *testing.T) {
	t.Setenv(envRole, roleClient)
	_, err := Build(context.Background(), Spec{Prefix: "nl", IPv4: testNet4, IPv6: testNet6, Hosts: []HostSpec{{Name: "cl", Role: RoleClient}}})
	if err == nil || !strings.Contains(err.Error(), "RunChild") {
		t.Fatalf("Build in an unwired child: %v, want a RunChild error", err)
	}
}
