package haproxy

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/migrate/diag"
)

func TestWords(t *testing.T) {
	cases := []struct {
		line string
		want []string
		ok   bool
	}{
		{"  server cp1 10.0.0.1:6443 check", []string{"server", "cp1", "10.0.0.1:6443", "check"}, true},
		{"\tbind *:6443 # the API", []string{"bind", "*:6443"}, true},
		{`option httpchk "GET /readyz"`, []string{"option", "httpchk", "GET /readyz"}, true},
		{`http-check expect string ok\ here`, []string{"http-check", "expect", "string", "ok here"}, true},
		{"# only a comment", nil, true},
		{`log "unterminated`, []string{"log", "unterminated"}, false},
	}
	for _, tc := range cases {
		got, ok := words(tc.line)
		if !reflect.DeepEqual(got, tc.want) || ok != tc.ok {
			t.Errorf("words(%q) = %q, %v; want %q, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDuration(t *testing.T) {
	cases := map[string]time.Duration{"3s": 3 * time.Second, "2000": 2 * time.Second, "500ms": 500 * time.Millisecond,
		"1m": time.Minute, "100us": 100 * time.Microsecond, "1d": 24 * time.Hour}
	for in, want := range cases {
		if got, ok := Duration(in); !ok || got != want {
			t.Errorf("Duration(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "s", "3 s", "3sec", "-1s", "1.5s"} {
		if _, ok := Duration(bad); ok {
			t.Errorf("Duration(%q) accepted", bad)
		}
	}
}

func TestRead(t *testing.T) {
	src := `global
    daemon
defaults
    mode tcp
    balance source
    option httpchk GET /livez
    default-server inter 3s fall 3 rise 2 check-ssl verify none
    timeout check 1s
frontend api
    bind 10.0.0.100:6443,[fd00::100]:6443
    default_backend cps
backend cps
    option httpchk HEAD /readyz HTTP/1.1
    server cp1 10.0.0.1:6443 check
    server cp2 10.0.0.2 check inter 1s ca-file /etc/ca.pem verify required backup
    server cp3 [fd00::3]:6443 check port 6444 fastinter 200ms
`
	c, diags := Read("h.cfg", []byte(src))
	if diag.HasErrors(diags) {
		t.Fatalf("errors: %v", diags)
	}
	if len(c.Proxies) != 2 {
		t.Fatalf("%d proxies, want 2", len(c.Proxies))
	}
	f, b := c.Proxies[0], c.Proxies[1]
	wantBinds := []Bind{{Addr: netip.MustParseAddr("10.0.0.100"), Port: 6443, Line: 10}, {Addr: netip.MustParseAddr("fd00::100"), Port: 6443, Line: 10}}
	if !reflect.DeepEqual(f.Binds, wantBinds) || f.DefaultBackend != "cps" || f.Mode != "tcp" {
		t.Errorf("frontend %+v", f)
	}
	if c.Proxy("cps", "backend") != b || c.Proxy("cps", "frontend") != nil {
		t.Errorf("Proxy lookup by name and kind")
	}
	if b.Balance != "source" || b.Check != (Check{Kind: "httpchk", Method: "HEAD", Path: "/readyz", Line: 13}) || b.TimeoutCheck != time.Second {
		t.Errorf("backend %+v", b)
	}
	want := []Server{
		{Name: "cp1", Addr: netip.MustParseAddr("10.0.0.1"), Port: 6443, Line: 14,
			ServerOpts: ServerOpts{Check: true, CheckSSL: true, Verify: "none", Inter: 3 * time.Second, Rise: 2, Fall: 3, Line: 14}},
		{Name: "cp2", Addr: netip.MustParseAddr("10.0.0.2"), Line: 15,
			ServerOpts: ServerOpts{Check: true, CheckSSL: true, Verify: "required", CAFile: "/etc/ca.pem", Inter: time.Second, Rise: 2, Fall: 3, Backup: true, Line: 15}},
		{Name: "cp3", Addr: netip.MustParseAddr("fd00::3"), Port: 6443, Line: 16,
			ServerOpts: ServerOpts{Check: true, CheckSSL: true, Verify: "none", Inter: 3 * time.Second, FastInter: 200 * time.Millisecond, Rise: 2, Fall: 3, CheckPort: 6444, Line: 16}},
	}
	if !reflect.DeepEqual(b.Servers, want) {
		t.Errorf("servers\n got %+v\nwant %+v", b.Servers, want)
	}
	if len(diags) != 1 || diags[0].String() != "h.cfg:2: note: global daemon: no equivalent in epconsole (not carried over)" {
		t.Errorf("diagnostics %v", diags)
	}
}

func TestReadErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"keyword before a section", "bind *:6443\n", `h.cfg:1: error: unknown section "bind"`},
		{"unnamed backend", "backend\n", "h.cfg:1: error: backend section without a name"},
		{"server without address", "backend b\n server cp1\n", "h.cfg:2: error: server cp1 without an address"},
		{"server without anything", "backend b\n server\n", "h.cfg:2: error: server without a name and address"},
		{"bad server IP", "backend b\n server cp1 10.0.0.256:6443\n", `h.cfg:2: error: server address "10.0.0.256:6443": "10.0.0.256" is not a valid IP address`},
		{"bad IPv6", "backend b\n server cp1 [fd00::zz]:6443\n", `is not a valid IP address`},
		{"bad server port", "backend b\n server cp1 10.0.0.1:http\n", `h.cfg:2: error: server address "10.0.0.1:http": "http" is not a port`},
		{"host name", "backend b\n server cp1 cp1.lan:6443\n", "h.cfg:2: error: server address \"cp1.lan:6443\" is a host name"},
		{"bad inter", "backend b\n server cp1 10.0.0.1:6443 check inter soon\n", `h.cfg:2: error: inter "soon" is not a duration`},
		{"missing value", "backend b\n server cp1 10.0.0.1:6443 check rise\n", "h.cfg:2: error: rise needs a value"},
		{"bind without port", "frontend f\n bind 10.0.0.1\n", `h.cfg:2: error: bind "10.0.0.1" has no port`},
		{"bind bad address", "frontend f\n bind 10.0.0.300:6443\n", `h.cfg:2: error: bind "10.0.0.300:6443": "10.0.0.300" is not an IP address`},
		{"server-template", "backend b\n server-template cp 3 cp.lan:6443\n", "h.cfg:2: error: server-template"},
		{"unknown keyword is a warning", "frontend f\n bind *:6443\n sparkle\n", `h.cfg:3: warning: unknown keyword "sparkle" in frontend f`},
		{"ignored section is a warning", "userlist admins\n user a\n", "h.cfg:1: warning: userlist section: not carried over"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := Read("h.cfg", []byte(tc.src))
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
