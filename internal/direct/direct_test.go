package direct_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/direct"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/probes/probetest"
)

// Stand-ins of these tests live on 127.0.38.1..9, etcd on 127.0.38.21.
func ip(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 38, byte(i)}) }

// testConfig loads a config.hcl naming the fixture's CA (and etcd when
// given), then puts the stand-ins in as backends (config.hcl refuses
// loopback backends).
func testConfig(t *testing.T, f *probetest.Fixture, etcd *probetest.EtcdCluster, bs ...*probetest.Backend) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gossip.key"), []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`cluster_name       = "test-cp"
endpoint_dns_names = [%q]
vip %q {
  interface = "lo"
}
node {
  name        = "lb1"
  gossip_bind = "198.18.6.31:7946"
}
peer "lb2" {
  address = "198.18.6.32:7946"
}
gossip {
  key_file = "gossip.key"
}
backend "placeholder" {
  address = "198.18.6.11"
}
health {
  interval      = "200ms"
  fast_interval = "50ms"
  timeout       = "150ms"
}
tls {
  ca_file = %q
}
`, probetest.DNSName, probetest.VIP, f.CAFile)
	if etcd != nil {
		src += fmt.Sprintf("etcd {\n  endpoints = [%q, %q, %q]\n  ca_file = %q\n  cert_file = %q\n  key_file = %q\n}\n",
			etcd.ClientURLs[0], etcd.ClientURLs[1], etcd.ClientURLs[2], etcd.CAFile, etcd.CertFile, etcd.KeyFile)
	}
	p := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(p)
	if diags.HasErrors() {
		t.Fatalf("test config: %v", diags)
	}
	cfg.Backends = nil
	for _, b := range bs {
		cfg.Backends = append(cfg.Backends, config.Backend{Name: b.Name, Address: b.Addr.Addr(), Port: b.Addr.Port()})
	}
	return cfg
}

// next returns the next snapshot from ch within d.
func next(t *testing.T, ch <-chan status.Update, d time.Duration) *status.Snapshot {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case u, ok := <-ch:
			if !ok {
				t.Fatal("the source closed its channel")
			}
			if u.Snapshot != nil {
				return u.Snapshot
			}
		case <-timer.C:
			t.Fatalf("no snapshot within %v", d)
		}
	}
}

func verdicts(s *status.Snapshot) map[string]probes.Severity {
	m := map[string]probes.Severity{}
	for _, v := range s.Verdicts {
		m[v.Area] = v.Severity
	}
	return m
}

func view(s *status.Snapshot, backend string) status.BackendView {
	for _, b := range s.Backends {
		if b.Name == backend && len(b.Views) == 1 {
			return b.Views[0]
		}
	}
	return status.BackendView{}
}

// TestSourceHealthy: three healthy stand-ins and a real three-member etcd
// give OK verdicts for backends, TLS and etcd, every expected SAN ✔, and a
// cluster verdict that says the cluster view is missing; then a backend
// stopped shows down in a later snapshot within a bounded time (the
// figure: stop to snapshot in direct mode).
func TestSourceHealthy(t *testing.T) {
	f := probetest.NewFixture(t)
	etcd := probetest.StartEtcd(t, ip(21), 3)
	var bs []*probetest.Backend
	for i := 1; i <= 3; i++ {
		bs = append(bs, f.Backend(t, fmt.Sprintf("cp%d", i), ip(i), probetest.Healthy))
	}
	cfg := testConfig(t, f, etcd, bs...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := direct.New(cfg, direct.Options{Version: "test", Socket: "/nonexistent/status.sock",
		VIPsHere: func(v []config.VIP) []bool { return make([]bool, len(v)) }})
	ch := src.Subscribe(ctx)

	s := next(t, ch, 10*time.Second)
	if s.Source != "direct" || s.Schema != status.Schema || s.Cluster != "test-cp" || s.Node != "lb1" {
		t.Fatalf("snapshot head: source %q schema %q cluster %q node %q", s.Source, s.Schema, s.Cluster, s.Node)
	}
	v := verdicts(s)
	for _, area := range []string{"backends", "tls", "etcd"} {
		if v[area] != probes.OK {
			t.Errorf("%s verdict %s, want OK; verdicts %+v findings %+v", area, v[area], s.Verdicts, s.Findings)
		}
	}
	if v["cluster"] != probes.Unknown {
		t.Errorf("cluster verdict %s, want UNKNOWN (no cluster view)", v["cluster"])
	}
	if len(s.Findings) != 1 || s.Findings[0].Code != "no-daemon" {
		t.Errorf("findings %+v, want only no-daemon", s.Findings)
	}
	for _, b := range s.Backends {
		if len(b.Views) != 1 || b.Views[0].Peer != "lb1" || b.Views[0].State != "up" {
			t.Errorf("backend %s views %+v, want one view lb1 up", b.Name, b.Views)
		}
	}
	if len(s.Certificates) != 3 {
		t.Fatalf("%d certificates, want 3", len(s.Certificates))
	}
	for _, c := range s.Certificates {
		want := map[string]bool{probetest.VIP.String(): true, probetest.DNSName: true}
		for _, san := range c.SANs {
			if !san.Present {
				t.Errorf("%s: SAN %s ✘, want ✔", c.Backend, san.Name)
			}
			delete(want, san.Name)
		}
		if len(want) > 0 || !c.ChainOK {
			t.Errorf("%s: SANs %+v chain %v: want the VIP and DNS name checked, chain ok", c.Backend, c.SANs, c.ChainOK)
		}
	}
	if s.Etcd == nil || s.Etcd.Healthy != 3 || s.Etcd.Quorum != 2 || s.Etcd.Leader == "" {
		t.Errorf("etcd %+v, want 3 healthy, quorum 2, a leader", s.Etcd)
	}
	if self := s.Peers[0]; !self.Self || !self.Eligible || self.State != "unknown" {
		t.Errorf("this node %+v: want self, eligible (backends up, lo up), state unknown", self)
	}
	if s.VIPs[0].Here || s.VIPs[0].Owner != "" || s.Election.Reason == "" {
		t.Errorf("VIP %+v election %+v: want not here, no owner claimed, a reason saying direct view", s.VIPs[0], s.Election)
	}

	stopped := time.Now()
	bs[1].Stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s = next(t, ch, time.Until(deadline))
		if view(s, "cp2").State == "down" {
			break
		}
	}
	took := time.Since(stopped)
	t.Logf("direct mode: backend stopped -> snapshot showing it down in %v (interval 200ms, fast 50ms, fall 2)", took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("the stop took %v to show, want < 3s", took)
	}
	if view(s, "cp1").State != "up" || view(s, "cp3").State != "up" {
		t.Errorf("cp1 %+v cp3 %+v, want up", view(s, "cp1"), view(s, "cp3"))
	}
	if r := view(s, "cp2").Reason; r == "" {
		t.Error("cp2 is down without a reason")
	}
	if v := verdicts(s); v["backends"] != probes.Warning {
		t.Errorf("backends verdict %s with one of three down, want WARNING", v["backends"])
	}
	cancel()
	for range ch { // the channel closes once the probes stopped
	}
}

// TestSourceFaults: a certificate without the VIP is CRITICAL with the
// VIP's SAN ✘, an unready backend is down with the failing check as
// reason, and a VIP found on this host is owned by this node.
func TestSourceFaults(t *testing.T) {
	f := probetest.NewFixture(t)
	ok := f.Backend(t, "cp1", ip(4), probetest.Healthy)
	san := f.Backend(t, "cp2", ip(5), probetest.SANMissingVIP)
	unready := f.Backend(t, "cp3", ip(6), probetest.Unready)
	cfg := testConfig(t, f, nil, ok, san, unready)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := direct.New(cfg, direct.Options{VIPsHere: func(v []config.VIP) []bool { return []bool{true} }})
	s := next(t, src.Subscribe(ctx), 10*time.Second)

	v := verdicts(s)
	if v["tls"] != probes.Critical || v["backends"] != probes.Warning {
		t.Errorf("verdicts %+v, want tls CRITICAL, backends WARNING", s.Verdicts)
	}
	if _, has := v["etcd"]; has || s.Etcd != nil {
		t.Errorf("etcd is not configured but shows: %+v", s.Etcd)
	}
	for _, c := range s.Certificates {
		for _, sn := range c.SANs {
			if want := !(c.Backend == "cp2" && sn.Name == probetest.VIP.String()); sn.Present != want {
				t.Errorf("%s SAN %s present %v, want %v", c.Backend, sn.Name, sn.Present, want)
			}
		}
	}
	if bv := view(s, "cp3"); bv.State != "down" || bv.Reason == "" {
		t.Errorf("cp3 view %+v, want down with the failing check", bv)
	}
	codes := map[string]bool{}
	for _, fd := range s.Findings {
		codes[fd.Code] = true
	}
	if !codes["san-missing-ip"] || !codes["backend-unready"] || !codes["no-daemon"] {
		t.Errorf("finding codes %v, want san-missing-ip, backend-unready, no-daemon", codes)
	}
	if s.Findings[0].Severity != probes.Critical {
		t.Errorf("findings not worst first: %+v", s.Findings)
	}
	if !s.VIPs[0].Here || s.VIPs[0].Owner != "lb1" || s.Election.Owner != "lb1" {
		t.Errorf("VIP %+v, want here, owned by lb1", s.VIPs[0])
	}
}

// TestVIPsHere reads this namespace's addresses and links: 127.0.0.1 is on
// lo, a test-range VIP is not, lo is up, and a missing link is neither
// (nor an error).
func TestVIPsHere(t *testing.T) {
	got := direct.VIPsHere([]config.VIP{
		{Address: netip.MustParseAddr("127.0.0.1"), Interface: "lo"},
		{Address: netip.MustParseAddr("198.18.6.100"), Interface: "lo"},
		{Address: netip.MustParseAddr("127.0.0.1"), Interface: "nosuchlink0"},
	})
	if want := []bool{true, false, false}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("VIPsHere = %v, want %v", got, want)
	}
	h, err := direct.NewHost()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for range 2 { // the kept socket, read twice
		if got := h.VIPsHere([]config.VIP{
			{Address: netip.MustParseAddr("127.0.0.1"), Interface: "lo"},
			{Address: netip.MustParseAddr("198.18.6.100"), Interface: "lo"},
			{Address: netip.MustParseAddr("127.0.0.1"), Interface: "nosuchlink0"},
			{Address: netip.MustParseAddr("::1"), Interface: "lo"},
		}); fmt.Sprint(got) != fmt.Sprint([]bool{true, false, false, true}) {
			t.Errorf("Host.VIPsHere = %v, want [true false false true]", got)
		}
	}
	up := direct.LinksUp([]config.VIP{{Interface: "lo"}, {Interface: "nosuchlink0"}})
	if want := []bool{true, false}; fmt.Sprint(up) != fmt.Sprint(want) {
		t.Errorf("LinksUp = %v, want %v", up, want)
	}
}
