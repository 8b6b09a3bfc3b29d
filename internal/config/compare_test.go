package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// node is lbN's config in a three-node cluster: only the node block and the
// peers differ between the nodes.
func node(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster_name = \"t\"\nvip \"198.18.6.100\" {\n  interface = \"eth0\"\n}\nnode {\n  name        = \"lb%d\"\n  gossip_bind = \"198.18.6.1%d:7946\"\n}\n", n, n)
	for p := 1; p <= 3; p++ {
		if p != n {
			fmt.Fprintf(&b, "peer \"lb%d\" {\n  address = \"198.18.6.1%d:7946\"\n}\n", p, p)
		}
	}
	b.WriteString("gossip {\n  key_file = \"k\"\n}\nbackend \"cp1\" {\n  address = \"198.18.6.21\"\n}\nbackend \"cp2\" {\n  address = \"198.18.6.22\"\n}\n")
	return b.String()
}

// TestCompare: Compare reports exactly the settings that differ, with each
// file's value and line, and nothing for node-local settings.
func TestCompare(t *testing.T) {
	files := memFiles(map[string]string{"/cfg/k": mustRead(t, "testdata/config/gossip.key")})
	parse := func(t *testing.T, name, src string) *Config {
		t.Helper()
		c, diags := Parse([]byte(src), "/cfg/"+name, files)
		if diags.HasErrors() {
			t.Fatalf("%s:\n%s\n%s", name, src, strings.Join(lines(diags), "\n"))
		}
		c.File = name
		return c
	}
	edit := func(src, old, new string) string {
		if !strings.Contains(src, old) {
			t.Fatalf("%q not in\n%s", old, src)
		}
		return strings.Replace(src, old, new, 1)
	}
	tests := []struct {
		desc string
		b, c func(string) string // edits of lb2's and lb3's sources
		want []string
	}{
		{desc: "the same"},
		{desc: "node-local differences",
			b: func(s string) string {
				return edit(s, `interface = "eth0"`, `interface = "bond0"`) + "health {\n  interval = \"2s\"\n}\n"
			},
			c: func(s string) string {
				return edit(s, `gossip_bind = "198.18.6.13:7946"`, "gossip_bind = \"198.18.6.13:7946\"\npriority = 7")
			}},
		{desc: "defaults written out",
			b: func(s string) string { return s + "balance {\n  mode = \"connection\"\n  slots = 1021\n}\n" }},
		{desc: "backend address",
			b:    func(s string) string { return edit(s, `"198.18.6.22"`, `"198.18.6.32"`) },
			want: []string{`backend "cp2".address: a.hcl:22 198.18.6.22, b.hcl:22 198.18.6.32, c.hcl:22 198.18.6.22`}},
		{desc: "backend renamed",
			c: func(s string) string { return edit(s, `backend "cp2"`, `backend "cp9"`) },
			want: []string{
				`backend "cp2": a.hcl:21 198.18.6.22:6443, b.hcl:21 198.18.6.22:6443, c.hcl (none)`,
				`backend "cp9": a.hcl (none), b.hcl (none), c.hcl:21 198.18.6.22:6443`,
			}},
		{desc: "backend order",
			b: func(s string) string {
				return strings.NewReplacer(`"cp1"`, `"cp2"`, `"cp2"`, `"cp1"`, `"198.18.6.21"`, `"198.18.6.22"`, `"198.18.6.22"`, `"198.18.6.21"`).Replace(s)
			},
			want: []string{`backend order: a.hcl:18 [cp1, cp2], b.hcl:18 [cp2, cp1], c.hcl:18 [cp1, cp2]`}},
		{desc: "VIP port and an extra IPv6 VIP",
			b: func(s string) string {
				return edit(s, `interface = "eth0"`, "interface = \"eth0\"\n  port = 443") +
					"vip \"fd00:198:18:6::100\" {\n  interface = \"eth0\"\n}\nbackend \"cp3\" {\n  address = \"fd00:198:18:6::23\"\n}\n"
			},
			want: []string{
				`vip (IPv4).port: a.hcl 6443 (default), b.hcl:4 443, c.hcl 6443 (default)`,
				`vip (IPv6): a.hcl (none), b.hcl:25 [fd00:198:18:6::100]:6443, c.hcl (none)`,
				`backend "cp3": a.hcl (none), b.hcl:28 [fd00:198:18:6::23]:6443, c.hcl (none)`,
			}},
		{desc: "balance and heartbeat",
			c: func(s string) string {
				return edit(s+"balance {\n  mode = \"source\"\n  slots = 1031\n}\n", "key_file = \"k\"\n", "key_file = \"k\"\n  heartbeat_interval = \"10ms\"\n  heartbeat_port = 9000\n")
			},
			want: []string{
				`balance.mode: a.hcl connection (default), b.hcl connection (default), c.hcl:27 source`,
				`balance.slots: a.hcl 1021 (default), b.hcl 1021 (default), c.hcl:28 1031`,
				`gossip.heartbeat_interval: a.hcl 3ms (default), b.hcl 3ms (default), c.hcl:17 10ms`,
				`gossip.heartbeat_port: a.hcl 7947 (default), b.hcl 7947 (default), c.hcl:18 9000`,
			}},
		{desc: "peer at another address",
			b:    func(s string) string { return edit(s, `"198.18.6.13:7946"`, `"198.18.6.14:7946"`) },
			want: []string{`peer "lb3".address: c.hcl:7 198.18.6.13:7946 (node.gossip_bind), b.hcl:13 198.18.6.14:7946`}},
		{desc: "advertised address",
			c: func(s string) string {
				return edit(s, `gossip_bind = "198.18.6.13:7946"`, "gossip_bind = \"0.0.0.0:7946\"\ngossip_advertise = \"198.18.6.13:7946\"")
			}},
		{desc: "peer missing",
			b:    func(s string) string { return edit(s, "peer \"lb3\" {\n  address = \"198.18.6.13:7946\"\n}\n", "") },
			want: []string{`peer "lb3": c.hcl:6 lb3 (node.name), b.hcl (none)`}},
		{desc: "the same node twice",
			c:    func(s string) string { return node(1) },
			want: []string{`node.name: a.hcl:6 lb1 (node.name), c.hcl:6 lb1 (node.name)`}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			srcs := []string{node(1), node(2), node(3)}
			if tc.b != nil {
				srcs[1] = tc.b(srcs[1])
			}
			if tc.c != nil {
				srcs[2] = tc.c(srcs[2])
			}
			cfgs := []*Config{parse(t, "a.hcl", srcs[0]), parse(t, "b.hcl", srcs[1]), parse(t, "c.hcl", srcs[2])}
			var got []string
			for _, d := range Compare(cfgs) {
				got = append(got, d.String())
				if d.Why == "" {
					t.Errorf("%s: no reason given", d.Path)
				}
				if diag := d.Diagnostic(); diag.Summary != d.Path || diag.Subject == nil || !strings.Contains(diag.Detail, d.Why) {
					t.Errorf("diagnostic %+v", diag)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			digestsEqual := cfgs[0].Digest() == cfgs[1].Digest() && cfgs[1].Digest() == cfgs[2].Digest()
			cw := false
			for _, g := range got {
				cw = cw || !strings.HasPrefix(g, "peer ") && !strings.HasPrefix(g, "node.") && !strings.HasPrefix(g, "gossip.")
			}
			if digestsEqual == cw {
				t.Errorf("digests equal %v, but differences in the digest's settings %v", digestsEqual, cw)
			}
		})
	}
	if d := Compare([]*Config{parse(t, "a.hcl", node(1))}); d != nil {
		t.Errorf("one file: %v", d)
	}
}

// TestDifferenceSubject: the diagnostic of a difference points at the file
// whose value most files do not have.
func TestDifferenceSubject(t *testing.T) {
	at := func(f string) FileValue {
		return FileValue{File: f, Value: "x", At: fileStart(f)}
	}
	a, b, c := at("a.hcl"), at("b.hcl"), at("c.hcl")
	c.Value = "y"
	if got := (Difference{Path: "p", Values: []FileValue{a, b, c}}).Diagnostic().Subject.Filename; got != "c.hcl" {
		t.Errorf("odd one out c.hcl: subject %s", got)
	}
	a.Value = "y"
	c.Value = "x"
	if got := (Difference{Path: "p", Values: []FileValue{a, b, c}}).Diagnostic().Subject.Filename; got != "a.hcl" {
		t.Errorf("odd one out a.hcl: subject %s", got)
	}
	b.Absent = true
	b.Value = ""
	if got := (Difference{Path: "p", Values: []FileValue{a, b}}).Diagnostic().Subject.Filename; got != "b.hcl" {
		t.Errorf("two files, the second without: subject %s", got)
	}
}

// TestWithoutSecrets: WithoutSecrets never reads the gossip key (check and
// the console must work without it); Offline reads no file at all; the
// default reads the key and the certificates.
func TestWithoutSecrets(t *testing.T) {
	src := base + "tls {\n  ca_file = \"ca.crt\"\n}\netcd {\n  cert_file = \"client.crt\"\n  key_file = \"client.key\"\n}\n"
	tests := []struct {
		desc string
		opts []Option
		read []string
	}{
		{"default", nil, []string{"/cfg/k", "/cfg/ca.crt", "/cfg/client.crt", "/cfg/client.key"}},
		{"without secrets", []Option{WithoutSecrets()}, []string{"/cfg/ca.crt", "/cfg/client.crt", "/cfg/client.key"}},
		{"offline", []Option{Offline()}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var read []string
			opts := append([]Option{WithReadFile(func(p string) ([]byte, error) {
				read = append(read, p)
				return nil, fmt.Errorf("%s: not here", p)
			})}, tc.opts...)
			c, diags := Parse([]byte(src), "/cfg/config.hcl", opts...)
			if !slices.Equal(read, tc.read) {
				t.Errorf("read %q, want %q", read, tc.read)
			}
			if len(tc.read) == 0 && (c == nil || len(diags) > 0) {
				t.Fatalf("offline: %s", strings.Join(lines(diags), "\n"))
			}
			if c != nil && (c.Gossip.KeyFile != "/cfg/k" || len(c.Gossip.Keys) != 0 || c.TLS.CAFile != "/cfg/ca.crt" || c.Etcd.KeyFile != "/cfg/client.key") {
				t.Errorf("config %+v %+v %+v", c.Gossip, c.TLS, c.Etcd)
			}
		})
	}
}

func TestVIPsOnHost(t *testing.T) {
	c, diags := Parse([]byte(base+"vip \"fd00:198:18:6::100\" {\n  interface = \"eth0\"\n}\nbackend \"cp6\" {\n  address = \"fd00:198:18:6::21\"\n}\n"), "/cfg/config.hcl", Offline())
	if diags.HasErrors() {
		t.Fatal(strings.Join(lines(diags), "\n"))
	}
	tests := []struct {
		onHost map[netip.Addr]string
		want   []string
	}{
		{nil, nil},
		{map[netip.Addr]string{netip.MustParseAddr("198.18.6.11"): "eth0"}, nil},
		{map[netip.Addr]string{netip.MustParseAddr("198.18.6.100"): "eth1"}, []string{"/cfg/config.hcl:2:5: warning: VIP already on this host; VIP 198.18.6.100 is already an address of this host (on eth1)."}},
		{map[netip.Addr]string{netip.MustParseAddr("fd00:198:18:6::100"): "lb0"}, []string{"/cfg/config.hcl:18:5: warning: VIP already on this host; VIP fd00:198:18:6::100 is already an address of this host (on lb0)."}},
	}
	for _, tc := range tests {
		var got []string
		for _, d := range c.VIPsOnHost(tc.onHost) {
			l := DiagnosticLine(d)
			got = append(got, l[:strings.Index(l, ").")+2])
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("on host %v: %q, want %q", tc.onHost, got, tc.want)
		}
	}
}
