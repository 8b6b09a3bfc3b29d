package drills

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/migrate"
	"github.com/epconsole/epconsole/internal/migrate/diag"
	"github.com/epconsole/epconsole/internal/netlab"
)

// TestImportedConfig: the lab's topology written as the classic HAProxy +
// keepalived pair (one haproxy.cfg, a keepalived.conf per LB with unicast
// peers, a VRRP password, a track_script and the VIP on the LB link) is
// turned into configs by the import, each passes `epconsole validate`, and
// the real daemons run with them: exactly one LB owns the VIP, fresh TLS
// connections through it all reach the stand-in apiservers, and every
// backend answers some. The control imports the same files with the VIP's
// interface mistyped (as keepalived.conf would have it on another host):
// no LB may hold the VIP, no connection gets through, and every daemon's
// preflight names the missing interface.
func TestImportedConfig(t *testing.T) {
	t.Run("imported", func(t *testing.T) {
		c := importedCluster(t, "cli", netlab.HostLink)
		owner := c.waitOneOwner(15*time.Second, "")
		if owner != "lb1" {
			t.Logf("owner %s, not lb1 (keepalived priority 150): lb1 was late", owner)
		}
		for i := 0; i < 10; i++ {
			if o := c.owners(); len(o) != 1 || o[0] != owner {
				t.Fatalf("owners %v at check %d, want only %s", o, i, owner)
			}
			time.Sleep(100 * time.Millisecond)
		}
		res, err := c.client.RunClient(c.ctx, c.loadOpts(300, 0))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("300 fresh TLS connections through the VIP with the imported configs: ok %d failed %d backends %v", res.OK, res.Failed, res.Backends)
		if res.OK != 300 || res.Failed != 0 {
			t.Errorf("ok %d failed %d, want 300 ok: %v", res.OK, res.Failed, res.Errors)
		}
		for _, b := range []string{"cp1", "cp2", "cp3"} {
			if res.Backends[b] == 0 {
				t.Errorf("backend %s answered none of the connections: %v", b, res.Backends)
			}
		}
	})
	t.Run("control-wrong-interface", func(t *testing.T) {
		c := importedCluster(t, "clic", "eth9")
		// Longer than the imported cluster takes to elect an owner.
		deadline := time.Now().Add(8 * time.Second)
		for time.Now().Before(deadline) {
			if o := c.owners(); len(o) > 0 {
				t.Fatalf("%v holds the VIP on %s although the imported configs put it on eth9: the drill cannot tell a working import from a broken one", o, netlab.HostLink)
			}
			time.Sleep(50 * time.Millisecond)
		}
		o := c.loadOpts(5, 0)
		o.RequestTimeout, o.Timeout = 500*time.Millisecond, 10*time.Second
		res, err := c.client.RunClient(c.ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("with the VIP on a missing interface: no owner for 8 s, %d of 5 connections through the VIP ok", res.OK)
		if res.OK != 0 {
			t.Errorf("%d connections through the VIP succeeded with no owner: %v", res.OK, res.Backends)
		}
		// Each daemon says why: its preflight names the missing interface.
		for name, d := range c.daemons {
			if !logHas(d, `"code":"vip-interface-missing"`, `"subject":"eth9"`) {
				t.Errorf("%s's log does not report the missing interface eth9", name)
			}
		}
	})
}

// importedCluster builds the drills' lab (a client, lb1..lb3, stand-ins
// on cp1..cp3), renders haproxy.cfg and three keepalived.conf for it with
// the VIP on iface, imports them, checks each config with `epconsole
// validate` and starts the daemons with them. It does not wait for an
// owner.
func importedCluster(t *testing.T, prefix, iface string) *cluster {
	t.Helper()
	c := newImportLab(t, prefix, 3)
	in := importInputs{hp: migrate.Source{Name: filepath.Join(c.dir, "haproxy.cfg"), Data: []byte(renderHAProxy(c))}}
	for _, h := range c.lbs {
		in.kas = append(in.kas, migrate.Source{Name: filepath.Join(c.dir, h.Name()+".keepalived.conf"), Data: []byte(renderKeepalived(c, h, iface))})
		in.opts.Nodes = append(in.opts.Nodes, migrate.NodeName{Name: h.Name(), Addr: h.IPv4()})
	}
	c.startImported(in, func(name string, hcl []byte) {
		// What the daemons run with is the mapping: option httpchk over
		// check-ssl -> an https probe; ca-file -> tls.ca_file; inter,
		// fastinter and timeout check -> the health timing.
		for _, want := range []string{`kind          = "https"`, `path          = "/readyz"`, `interval      = "500ms"`,
			`fast_interval = "100ms"`, `timeout       = "400ms"`, fmt.Sprintf("ca_file = %q", c.lab.CAFile()), fmt.Sprintf("interface = %q", iface)} {
			if !strings.Contains(string(hcl), want) {
				t.Fatalf("%s's imported config lacks %s:\n%s", name, want, hcl)
			}
		}
	})
	return c
}

// newImportLab builds a lab of a client, lbs LB hosts and three stand-in
// apiservers (cp1..cp3), and writes the cluster's gossip key; no daemon
// runs yet.
func newImportLab(t *testing.T, prefix string, lbs int) *cluster {
	t.Helper()
	c := newLab(t, prefix, 90*time.Second, clusterOpts{peers: lbs})
	c.writeKey("gossip.key")
	return c
}

func (c *cluster) keyFile() string { return filepath.Join(c.dir, "gossip.key") }

// importInputs are the files an import reads and the options it is given.
type importInputs struct {
	hp   migrate.Source
	kas  []migrate.Source
	opts migrate.ImportOptions
}

// startImported imports in (the gossip key file set to the lab's), checks
// each config with check and with `epconsole validate`, and starts a
// daemon with it on the LB host of the node's name. Every LB host must get
// a config.
func (c *cluster) startImported(in importInputs, check func(node string, hcl []byte)) {
	t := c.t
	t.Helper()
	for _, s := range append(slices.Clone(in.kas), in.hp) {
		if err := os.MkdirAll(filepath.Dir(s.Name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.Name, s.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in.opts.KeyFile = c.keyFile()
	in.opts.DNSNames = []string{c.lab.DNSName()}
	res, err := migrate.Import(in.hp, in.kas, in.opts)
	var lines []string
	for _, d := range res.Diagnostics {
		if d.Severity >= diag.Warning {
			lines = append(lines, d.String())
		}
	}
	if len(lines) == 0 {
		lines = []string{"(none)"}
	}
	t.Logf("import: %d configs, %d diagnostics; warnings and errors:\n%s", len(res.Configs), len(res.Diagnostics), strings.Join(lines, "\n"))
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if len(res.Configs) != len(c.lbs) {
		t.Fatalf("%d configs, want one per LB (%d)", len(res.Configs), len(c.lbs))
	}
	for _, nc := range res.Configs {
		h := c.lab.Host(nc.Name)
		if h == nil {
			t.Fatalf("the import named a node %s the lab does not have", nc.Name)
		}
		if check != nil {
			check(nc.Name, nc.HCL)
		}
		// The nodes share this machine's file system: each gets its own
		// state directory and status socket, which a real node's defaults
		// give it.
		local := fmt.Sprintf("\nstate_dir = %q\nstatus {\n  socket = %q\n  metrics_listen = \"\"\n}\n",
			filepath.Join(c.dir, h.Name()+"-state"), filepath.Join(c.dir, h.Name()+".sock"))
		path := filepath.Join(c.dir, h.Name()+".hcl")
		if err := os.WriteFile(path, append(nc.HCL, local...), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(c.ctx, epconsoleBin, "validate", "-c", path).CombinedOutput()
		if err != nil {
			t.Fatalf("epconsole validate -c %s: %v\n%s", path, err, out)
		}
		v, err := dataplane.NewVIP(dataplane.WithNetNS(h.Namespace()))
		if err != nil {
			t.Fatalf("VIP check for %s: %v", h.Name(), err)
		}
		t.Cleanup(func() { v.Close() })
		c.checks[h.Name()] = v
	}
	for _, h := range c.lbs {
		c.start(h)
	}
}

// renderHAProxy is the runbook's haproxy.cfg for the lab: the VIP bound
// on 6443, TCP mode, /readyz checked over TLS against the cluster CA.
func renderHAProxy(c *cluster) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    log /dev/log local0
    maxconn 4000
    daemon

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend k8s-api
    bind %s:%d
    default_backend k8s-apiservers

backend k8s-apiservers
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    timeout check 400ms
    default-server inter 500ms fastinter 100ms downinter 1s rise 2 fall 2
`, c.vip, servicePort)
	for _, be := range c.lab.HostsByRole(netlab.RoleBackend) {
		fmt.Fprintf(&b, "    server %s %s:%d check check-ssl verify required ca-file %s\n", be.Name(), be.IPv4(), servicePort, c.lab.CAFile())
	}
	return b.String()
}

// renderKeepalived is LB h's keepalived.conf: unicast VRRP to the other
// LBs, lb1 the MASTER, the VIP on iface.
func renderKeepalived(c *cluster, h *netlab.Host, iface string) string {
	state := "BACKUP"
	if h.Name() == "lb1" {
		state = "MASTER"
	}
	var peers []string
	for _, p := range c.lbs {
		if p != h {
			peers = append(peers, "        "+p.IPv4().String())
		}
	}
	return fmt.Sprintf(`global_defs {
    router_id %s
    enable_script_security
}

vrrp_script chk_haproxy {
    script "/usr/bin/killall -0 haproxy"
    interval 2
    weight 2
}

vrrp_instance VI_1 {
    state %s
    interface %s
    virtual_router_id 51
    priority %d
    advert_int 1
    unicast_src_ip %s
    unicast_peer {
%s
    }
    authentication {
        auth_type PASS
        auth_pass k8s-vip1
    }
    virtual_ipaddress {
        %s/%d dev %s
    }
    track_script {
        chk_haproxy
    }
}
`, h.Name(), state, iface, priorities[h.Name()], h.IPv4(), strings.Join(peers, "\n"), c.vip, c.lab.IPv4Prefix().Bits(), iface)
}
