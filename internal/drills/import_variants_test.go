package drills

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/migrate"
	"github.com/epconsole/epconsole/internal/netlab"
)

// importTestdata is testdata/import seen from this package.
const importTestdata = "../../testdata/import"

// TestImportedRunbookVariants: every HAProxy + keepalived variant in
// testdata/import that describes a cluster, verbatim but for its
// addresses and interface name (rewritten to the lab's: the VIP, the LB
// hosts, the stand-ins, the LB link), is imported, each config passes
// `epconsole validate`, and the daemons run with them: one owner, and
// fresh TLS connections through the VIP reach every stand-in. A keepalived
// file without unicast_src_ip (multicast VRRP, the same file on every
// node) is given once per LB host with the host's name and address.
// (unknown-keywords.conf describes one node whose peers have no file: it
// makes no cluster.)
func TestImportedRunbookVariants(t *testing.T) {
	cases := []struct {
		name       string
		lbs        int
		haproxy    string
		keepalived []string // per LB host, in order
		addrs      map[string]string
		haproxyVIP bool // the VIP and interface come from the options
	}{
		{"unicast-pair", 2, "haproxy-default-server-check.cfg", []string{"keepalived-unicast-master.conf", "keepalived-unicast-backup.conf"},
			map[string]string{"192.168.2.140": "vip", "192.168.2.141": "lb1", "192.168.2.142": "lb2", "192.168.2.151": "cp1", "192.168.2.152": "cp2", "192.168.2.153": "cp3"}, false},
		{"multicast-on-control-plane", 3, "haproxy-vip-bind-inter.cfg", []string{"keepalived-multicast-master.conf", "keepalived-multicast-backup.conf", "keepalived-multicast-backup.conf"},
			map[string]string{"10.1.233.1": "vip", "10.1.1.1": "cp1", "10.1.1.2": "cp2", "10.1.1.3": "cp3"}, false},
		{"inline-blocks", 3, "haproxy-tcp-check.cfg", []string{"keepalived-inline-blocks.conf", "keepalived-inline-blocks.conf", "keepalived-inline-blocks.conf"},
			map[string]string{"192.168.1.100": "vip", "192.168.1.101": "cp1", "192.168.1.102": "cp2", "192.168.1.103": "cp3"}, false},
		{"inline-blocks-tcplog", 3, "haproxy-tcp-check-tcplog.cfg", []string{"keepalived-inline-blocks.conf", "keepalived-inline-blocks.conf", "keepalived-inline-blocks.conf"},
			map[string]string{"192.168.1.100": "vip", "192.168.1.101": "cp1", "192.168.1.102": "cp2", "192.168.1.103": "cp3"}, false},
		{"haproxy-only", 3, "haproxy-global-tcp-check.cfg", nil,
			map[string]string{"10.0.1.11": "cp1", "10.0.1.12": "cp2", "10.0.1.13": "cp3"}, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newImportLab(t, fmt.Sprintf("clx%d", i+1), tc.lbs)
			rewrite := labRewriter(t, c, tc.addrs)
			in := importInputs{hp: migrate.Source{Name: filepath.Join(c.dir, tc.haproxy), Data: rewrite(tc.haproxy)}}
			for j, h := range c.lbs {
				if j < len(tc.keepalived) {
					in.kas = append(in.kas, migrate.Source{Name: filepath.Join(c.dir, h.Name(), tc.keepalived[j]), Data: rewrite(tc.keepalived[j])})
				}
				in.opts.Nodes = append(in.opts.Nodes, migrate.NodeName{Name: h.Name(), Addr: h.IPv4()})
			}
			if tc.haproxyVIP {
				in.opts.VIPs, in.opts.Interface = []netip.Addr{c.vip}, netlab.HostLink
			}
			c.startImported(in, nil)
			owner := c.waitOneOwner(15*time.Second, "")
			c.waitServing(20 * time.Second)
			res, err := c.client.RunClient(c.ctx, c.loadOpts(150, 0))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("owner %s; 150 fresh TLS connections through the VIP: ok %d failed %d backends %v", owner, res.OK, res.Failed, res.Backends)
			if res.OK != 150 || res.Failed != 0 {
				t.Errorf("ok %d failed %d, want 150 ok: %v", res.OK, res.Failed, res.Errors)
			}
			for _, b := range []string{"cp1", "cp2", "cp3"} {
				if res.Backends[b] == 0 {
					t.Errorf("backend %s answered none of the connections: %v", b, res.Backends)
				}
			}
			if o := c.owners(); len(o) != 1 || o[0] != owner {
				t.Errorf("owners %v after the load, want only %s", o, owner)
			}
		})
	}
}

// labRewriter returns a reader of testdata/import files with every IPv4
// address in addrs replaced by the lab's (a host's name, or "vip") and
// the interface names ens160 and eth0 by the lab's LB link.
func labRewriter(t *testing.T, c *cluster, addrs map[string]string) func(name string) []byte {
	ipv4 := regexp.MustCompile(`\b\d+\.\d+\.\d+\.\d+\b`)
	iface := regexp.MustCompile(`\b(ens160|eth0)\b`)
	return func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(importTestdata, name))
		if err != nil {
			t.Fatal(err)
		}
		out := ipv4.ReplaceAllStringFunc(string(b), func(a string) string {
			switch to, ok := addrs[a]; {
			case !ok:
				return a
			case to == "vip":
				return c.vip.String()
			default:
				return c.lab.Host(to).IPv4().String()
			}
		})
		return []byte(iface.ReplaceAllString(out, netlab.HostLink))
	}
}

// waitServing waits until a few fresh connections through the VIP all
// succeed: the owner's probes have found the backends up (HAProxy's rise
// and inter, carried over, can take seconds).
func (c *cluster) waitServing(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		o := c.loadOpts(6, 0)
		o.RequestTimeout, o.Timeout = time.Second, 5*time.Second
		res, err := c.client.RunClient(c.ctx, o)
		if err == nil && res.OK == 6 {
			return
		}
		last = fmt.Sprintf("ok %d of 6, err %v, %v", res.OK, err, res.Errors)
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("the VIP did not serve within %s: %s", timeout, strings.TrimSpace(last))
}
