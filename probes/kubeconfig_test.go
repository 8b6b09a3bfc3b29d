package probes_test

import (
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/probes/probetest"
)

func kubeOptions(f *probetest.Fixture) probes.KubeconfigOptions {
	return probes.KubeconfigOptions{
		VIPs:      []netip.AddrPort{netip.AddrPortFrom(probetest.VIP, 6443)},
		DNSNames:  []string{probetest.DNSName},
		Port:      6443,
		Backends:  []probes.Target{{Name: "cp1", Address: netip.MustParseAddrPort("198.18.3.11:6443")}, {Name: "cp2", Address: netip.MustParseAddrPort("198.18.3.12:6443")}},
		ClusterCA: []*x509.Certificate{f.CA.Cert},
	}
}

func testdata(name string) string { return filepath.Join("..", "testdata", "kubeconfig", name) }

func TestKubeconfigFiles(t *testing.T) {
	f := probetest.NewFixture(t)
	tests := []struct {
		desc      string
		path      string // --kubeconfig
		env       []string
		pointsAt  string
		caMatches bool
		codes     []string
		fixHas    string
	}{
		{desc: "VIP, by path", path: "vip.yaml", pointsAt: probes.ServerVIP, caMatches: true},
		{desc: "DNS name, by KUBECONFIG", env: []string{"dns.yaml"}, pointsAt: probes.ServerDNSName, caMatches: true},
		{desc: "one node", path: "node.yaml", pointsAt: probes.ServerBackend, caMatches: true,
			codes: []string{"WARNING:server-single-node"}, fixHas: "kubectl config set-cluster prod --server=https://k8s-api.test:6443"},
		{desc: "wrong CA", path: "wrong-ca.yaml", pointsAt: probes.ServerVIP,
			codes: []string{"CRITICAL:ca-mismatch"}, fixHas: "--certificate-authority=<the cluster CA file> --embed-certs=true"},
		// kubectl's merge: the first file that sets a value wins.
		{desc: "KUBECONFIG list, first file wins", env: []string{"node.yaml", "vip.yaml"}, pointsAt: probes.ServerBackend, caMatches: true,
			codes: []string{"WARNING:server-single-node"}},
		{desc: "KUBECONFIG list, other order", env: []string{"vip.yaml", "node.yaml"}, pointsAt: probes.ServerVIP, caMatches: true},
		{desc: "nothing there", env: []string{"absent.yaml"}, codes: []string{"UNKNOWN:kubeconfig-missing"}},
		{desc: "explicit path missing", path: "absent.yaml", codes: []string{"UNKNOWN:kubeconfig-unreadable"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			place := func(name string) string {
				if name == "absent.yaml" {
					return filepath.Join(f.Dir, name)
				}
				return f.Kubeconfig(t, testdata(name))
			}
			o := kubeOptions(f)
			if tc.path != "" {
				o.Path = place(tc.path)
			}
			var env []string
			for _, e := range tc.env {
				env = append(env, place(e))
			}
			t.Setenv("KUBECONFIG", strings.Join(env, string(os.PathListSeparator)))
			r := probes.Kubeconfig(o)
			if r.PointsAt != tc.pointsAt || r.CAMatches != tc.caMatches {
				t.Errorf("points at %q, CA matches %v; want %q, %v (%+v)", r.PointsAt, r.CAMatches, tc.pointsAt, tc.caMatches, r)
			}
			if got := codes(r.Findings); !slices.Equal(got, tc.codes) {
				t.Errorf("findings %v, want %v", got, tc.codes)
			}
			if tc.fixHas != "" && (len(r.Findings) == 0 || !strings.Contains(r.Findings[0].Line(), tc.fixHas)) {
				t.Errorf("fix does not say %q: %v", tc.fixHas, r.Findings)
			}
			if r.PointsAt != "" && (r.Context != "admin@prod" || r.Cluster != "prod" || len(r.Files) == 0) {
				t.Errorf("report %+v", r)
			}
		})
	}
}

func TestEvaluateKubeconfig(t *testing.T) {
	f := probetest.NewFixture(t)
	caPEM := f.CA.CertPEM
	cfg := func(server string, edit func(*clientcmdapi.Cluster)) *clientcmdapi.Config {
		c := clientcmdapi.NewConfig()
		cl := clientcmdapi.NewCluster()
		cl.Server, cl.CertificateAuthorityData = server, caPEM
		if edit != nil {
			edit(cl)
		}
		c.Clusters["prod"] = cl
		c.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "prod", AuthInfo: "u"}
		c.CurrentContext = "ctx"
		return c
	}
	tests := []struct {
		desc  string
		cfg   *clientcmdapi.Config
		opts  func(*probes.KubeconfigOptions)
		codes []string
	}{
		{desc: "VIP with CA data", cfg: cfg("https://198.18.3.100:6443", nil)},
		{desc: "DNS name, trailing dot, other case", cfg: cfg("https://K8S-API.test.:6443", nil)},
		{desc: "VIP on the wrong port", cfg: cfg("https://198.18.3.100:443", nil), codes: []string{"WARNING:server-port"}},
		{desc: "no port means 443", cfg: cfg("https://k8s-api.test", nil), codes: []string{"WARNING:server-port"}},
		{desc: "another host", cfg: cfg("https://198.18.3.77:6443", nil), codes: []string{"WARNING:server-not-endpoint"}},
		{desc: "insecure", cfg: cfg("https://198.18.3.100:6443", func(c *clientcmdapi.Cluster) {
			c.InsecureSkipTLSVerify, c.CertificateAuthorityData = true, nil
		}), codes: []string{"WARNING:ca-insecure"}},
		{desc: "no CA at all", cfg: cfg("https://198.18.3.100:6443", func(c *clientcmdapi.Cluster) { c.CertificateAuthorityData = nil }),
			codes: []string{"CRITICAL:ca-missing"}},
		{desc: "CA bundle holding the cluster CA", cfg: cfg("https://198.18.3.100:6443", func(c *clientcmdapi.Cluster) {
			c.CertificateAuthorityData = append(append([]byte{}, f.OtherCA.CertPEM...), caPEM...)
		})},
		{desc: "no cluster CA configured: not compared", cfg: cfg("https://198.18.3.100:6443", func(c *clientcmdapi.Cluster) {
			c.CertificateAuthorityData = f.OtherCA.CertPEM
		}), opts: func(o *probes.KubeconfigOptions) { o.ClusterCA = nil }},
		{desc: "IPv6 VIP", cfg: cfg("https://[fd00:198:18:3::100]:6443", nil), opts: func(o *probes.KubeconfigOptions) {
			o.VIPs = append(o.VIPs, netip.MustParseAddrPort("[fd00:198:18:3::100]:6443"))
		}},
		{desc: "no current context", cfg: func() *clientcmdapi.Config {
			c := cfg("https://198.18.3.100:6443", nil)
			c.CurrentContext = ""
			return c
		}(), codes: []string{"UNKNOWN:no-current-context"}},
		{desc: "context names a missing cluster", cfg: func() *clientcmdapi.Config {
			c := cfg("https://198.18.3.100:6443", nil)
			delete(c.Clusters, "prod")
			return c
		}(), codes: []string{"CRITICAL:cluster-missing"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			o := kubeOptions(f)
			if tc.opts != nil {
				tc.opts(&o)
			}
			r := probes.EvaluateKubeconfig(tc.cfg, o)
			if got := codes(r.Findings); !slices.Equal(got, tc.codes) {
				t.Errorf("findings %v, want %v", got, tc.codes)
			}
		})
	}
}
