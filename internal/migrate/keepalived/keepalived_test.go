package keepalived

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/epconsole/epconsole/internal/migrate/diag"
)

// shape renders statements as "kw arg arg {…}" for comparison.
func shape(ss []*Stmt) string {
	var parts []string
	for _, s := range ss {
		p := strings.Join(append([]string{s.Keyword}, s.Args...), " ")
		if s.HasBlock {
			p += " {" + shape(s.Block) + "}"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

func TestParse(t *testing.T) {
	cases := []struct {
		name, src, want string
		errLine         int // 0: no error
	}{
		{"nested", "a 1 {\n b 2\n c {\n  d\n }\n}\n", "a 1 {b 2; c {d}}", 0},
		{"comments", "# hash\n! bang\na 1 # trailing\nb ! x\n", "a 1; b", 0},
		{"one line blocks with semicolons", "auth { auth_type PASS; auth_pass x }", "auth {auth_type PASS; auth_pass x}", 0},
		{"brace on the next line", "vrrp_instance X\n{\n state MASTER\n}\n", "vrrp_instance X {state MASTER}", 0},
		{"quoted", `script "pgrep haproxy"` + "\n", "script pgrep haproxy", 0},
		{"unterminated", "a {\n b {\n }\n", "a {b {}}", 1},
		{"unmatched close", "a 1\n}\n", "a 1", 2},
		{"unterminated quote", "script \"pgrep\n", "script pgrep", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dl := &diag.List{File: "k.conf"}
			got := shape(Parse([]byte(tc.src), dl))
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			switch {
			case tc.errLine == 0 && len(dl.Diags) > 0:
				t.Errorf("unexpected diagnostics %v", dl.Diags)
			case tc.errLine > 0 && (len(dl.Diags) == 0 || dl.Diags[0].Line != tc.errLine || dl.Diags[0].Severity != diag.Error):
				t.Errorf("diagnostics %v, want an error on line %d", dl.Diags, tc.errLine)
			}
		})
	}
}

func TestReadInstance(t *testing.T) {
	src := `global_defs {
  router_id lb1
}
vrrp_script chk { script "killall -0 haproxy"; interval 2; weight -2; fall 2; rise 3 }
vrrp_instance VI_1 {
  state backup
  interface eth0
  virtual_router_id 51
  priority 90
  advert_int 0.5
  nopreempt
  authentication { auth_type PASS; auth_pass secret }
  unicast_src_ip 10.0.0.2
  unicast_peer {
    10.0.0.1
    10.0.0.3
  }
  virtual_ipaddress {
    10.0.0.100/24 dev eth1 label eth1:vip
    fd00::100
  }
  track_script { chk }
}
`
	c, diags := Read("k.conf", []byte(src))
	if diag.HasErrors(diags) {
		t.Fatalf("errors: %v", diags)
	}
	in := c.Instances[0]
	want := Instance{Name: "VI_1", Line: 5, State: "BACKUP", StateLine: 6, Interface: "eth0", InterfaceLine: 7,
		VirtualRouterID: 51, Priority: 90, PriorityLine: 9, AdvertInt: 0.5, AdvertIntLine: 10, NoPreempt: true, NoPreemptLine: 11,
		AuthType: "PASS", AuthPass: "secret", AuthLine: 12,
		UnicastSrc:   Addr{netip.MustParseAddr("10.0.0.2"), 13},
		UnicastPeers: []Addr{{netip.MustParseAddr("10.0.0.1"), 15}, {netip.MustParseAddr("10.0.0.3"), 16}},
		VIPs: []VIP{{Addr: netip.MustParseAddr("10.0.0.100"), Prefix: 24, Dev: "eth1", Label: "eth1:vip", Line: 19},
			{Addr: netip.MustParseAddr("fd00::100"), Prefix: -1, Line: 20}},
		VIPLine: 18, TrackScripts: []string{"chk"}, TrackScriptLine: 22}
	if !reflect.DeepEqual(*in, want) {
		t.Errorf("instance\n got %+v\nwant %+v", *in, want)
	}
	sc := c.Scripts["chk"]
	if sc == nil || sc.Command != "killall -0 haproxy" || sc.Interval != 2 || sc.Weight != -2 || sc.Fall != 2 || sc.Rise != 3 {
		t.Errorf("script %+v", sc)
	}
	var notes []string
	for _, d := range diags {
		notes = append(notes, d.String())
	}
	all := strings.Join(notes, "\n")
	for _, want := range []string{"k.conf:2: note: global_defs router_id", "k.conf:19: note: virtual_ipaddress label eth1:vip"} {
		if !strings.Contains(all, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, all)
		}
	}
}

func TestReadErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"no instance", "global_defs {\n}\n", "k.conf:1: error: no vrrp_instance"},
		{"bad state", "vrrp_instance V {\n state LEADER\n virtual_ipaddress { 10.0.0.1 }\n}\n", `k.conf:2: error: state "LEADER"`},
		{"bad priority", "vrrp_instance V {\n priority 300\n virtual_ipaddress { 10.0.0.1 }\n}\n", "k.conf:2: error: priority 300"},
		{"not a number", "vrrp_instance V {\n advert_int fast\n virtual_ipaddress { 10.0.0.1 }\n}\n", `k.conf:2: error: advert_int "fast"`},
		{"bad VIP", "vrrp_instance V {\n virtual_ipaddress {\n  10.0.0.256\n }\n}\n", `k.conf:3: error: virtual_ipaddress entry "10.0.0.256"`},
		{"empty VIP block", "vrrp_instance V {\n virtual_ipaddress {\n }\n}\n", "k.conf:2: error: virtual_ipaddress of vrrp_instance V is empty"},
		{"bad peer", "vrrp_instance V {\n unicast_peer {\n  lb2\n }\n virtual_ipaddress { 10.0.0.1 }\n}\n", `k.conf:3: error: "lb2" is not an IP address`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := Read("k.conf", []byte(tc.src))
			var got []string
			for _, d := range diags {
				got = append(got, d.String())
			}
			if !strings.Contains(strings.Join(got, "\n"), tc.want) {
				t.Errorf("diagnostics %q lack %q", got, tc.want)
			}
		})
	}
}
