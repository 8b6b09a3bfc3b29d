// Package probetest builds real things for the probes' tests: stand-in
// apiservers on loopback addresses with a certificate made for each case
// (healthy, unready, slow, refused, a SAN missing, expiring, another CA,
// anonymous forbidden) and an embedded etcd cluster with client
// certificate auth. Everything it starts is stopped by t.Cleanup. Test
// code only.
package probetest

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/pki"
	"github.com/epconsole/epconsole/internal/standin"
)

// Expected endpoint SANs: no traffic ever goes to the VIP.
var (
	VIP     = netip.MustParseAddr("198.18.3.100")
	DNSName = "k8s-api.test"
)

// Case is what a stand-in backend gets wrong.
type Case string

// Cases.
const (
	Healthy       Case = "healthy"
	Unready       Case = "unready"         // /readyz 500, check "etcd" failing
	Slow          Case = "slow"            // answers after 3s
	Refused       Case = "refused"         // nothing listens
	SANMissingVIP Case = "san-missing-vip" // certificate lacks IP SAN VIP
	SANMissingDNS Case = "san-missing-dns" // certificate lacks DNS SAN DNSName
	Expiring      Case = "expiring"        // certificate expires in 3 days (and an hour)
	OtherCA       Case = "other-ca"        // certificate from another CA
	Forbidden     Case = "forbidden"       // 403 to anonymous requests
)

// AllCases lists every case, in a stable order.
var AllCases = []Case{Healthy, Unready, Slow, Refused, SANMissingVIP, SANMissingDNS, Expiring, OtherCA, Forbidden}

// SlowDelay is how long a Slow backend takes to answer.
const SlowDelay = 3 * time.Second

// Fixture holds the cluster CA, a foreign CA and a directory for files.
type Fixture struct {
	CA      *pki.CA
	OtherCA *pki.CA
	Dir     string
	// CAFile is the cluster CA's PEM file; OtherCAFile the foreign one's.
	CAFile, OtherCAFile string
	// ClientCertFile/ClientKeyFile: a client certificate from the cluster CA.
	ClientCertFile, ClientKeyFile string
}

// NewFixture makes the CAs and a client certificate in a temp dir.
func NewFixture(t testing.TB) *Fixture {
	t.Helper()
	f := &Fixture{Dir: t.TempDir()}
	var err error
	if f.CA, err = pki.NewCA("cluster-ca"); err != nil {
		t.Fatal(err)
	}
	if f.OtherCA, err = pki.NewCA("other-ca"); err != nil {
		t.Fatal(err)
	}
	if f.CAFile, _, err = f.CA.WriteFiles(f.Dir, "cluster-ca"); err != nil {
		t.Fatal(err)
	}
	if f.OtherCAFile, _, err = f.OtherCA.WriteFiles(f.Dir, "other-ca"); err != nil {
		t.Fatal(err)
	}
	cl, err := f.CA.Issue(pki.LeafOptions{CommonName: "epconsole-probe", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if f.ClientCertFile, f.ClientKeyFile, err = cl.WriteFiles(f.Dir, "probe-client"); err != nil {
		t.Fatal(err)
	}
	return f
}

// Backend is a running (or, for Refused, absent) stand-in.
type Backend struct {
	Name string
	Case Case
	Addr netip.AddrPort
	// Server is nil for Refused.
	Server *standin.Server
	// CertFile is the serving certificate (empty for Refused).
	CertFile string
	cfg      standin.Config
	stop     func()
}

// Stop stops the stand-in (its port then refuses); safe to call twice.
func (b *Backend) Stop() { b.stop() }

// Restart stops the stand-in if it runs and serves again on the same
// address with the same certificate and behaviour (a new server: a shut
// down http.Server cannot serve again).
func (b *Backend) Restart(t testing.TB) {
	t.Helper()
	b.stop()
	s, err := standin.New(b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.SetBehavior(b.Server.Behavior())
	b.Server = s
	b.stop = serve(t, s, b.Addr.String())
}

// Leaf issues the serving certificate a case calls for, for a backend at ip.
func (f *Fixture) Leaf(t testing.TB, c Case, ip netip.Addr) *pki.Leaf {
	t.Helper()
	ca := f.CA
	if c == OtherCA {
		ca = f.OtherCA
	}
	o := pki.LeafOptions{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", DNSName},
		IPs:        []netip.Addr{ip, VIP, netip.MustParseAddr("10.96.0.1")},
		NotBefore:  time.Now().Add(-time.Hour),
		NotAfter:   time.Now().Add(400*24*time.Hour + time.Hour),
	}
	switch c {
	case SANMissingVIP:
		o.IPs = []netip.Addr{ip, netip.MustParseAddr("10.96.0.1")}
	case SANMissingDNS:
		o.DNSNames = o.DNSNames[:4]
	case Expiring:
		o.NotAfter = time.Now().Add(3*24*time.Hour + time.Hour)
	}
	leaf, err := ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// Backend starts a stand-in named name on ip (a 127.0.0.0/8 address, any
// port) behaving as case c.
func (f *Fixture) Backend(t testing.TB, name string, ip netip.Addr, c Case) *Backend {
	t.Helper()
	b := &Backend{Name: name, Case: c}
	if c == Refused {
		// Take a free port and release it: nothing listens there.
		ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		b.Addr = netip.MustParseAddrPort(ln.Addr().String())
		ln.Close()
		b.stop = func() {}
		return b
	}
	dir := filepath.Join(f.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := f.Leaf(t, c, ip).WriteFiles(dir, "apiserver")
	if err != nil {
		t.Fatal(err)
	}
	b.CertFile = certFile
	b.cfg = standin.Config{Name: name, CertFile: certFile, KeyFile: keyFile, ClientCAFile: f.CAFile}
	s, err := standin.New(b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	switch c {
	case Unready:
		s.SetBehavior(standin.Behavior{Unready: true, FailingCheck: "etcd"})
	case Slow:
		s.SetBehavior(standin.Behavior{Delay: SlowDelay})
	case Forbidden:
		s.SetBehavior(standin.Behavior{AnonymousStatus: 403})
	}
	b.Server = s
	ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	b.Addr = netip.MustParseAddrPort(ln.Addr().String())
	b.stop = serveOn(t, s, ln)
	return b
}

func serve(t testing.TB, s *standin.Server, addr string) func() {
	t.Helper()
	var ln net.Listener
	var err error
	// The old listener is closed; rebinding may need a moment.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, s, ln)
}

func serveOn(t testing.TB, s *standin.Server, ln net.Listener) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ctx, ln)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// Kubeconfig copies the kubeconfig file src (from testdata) into the
// fixture's directory, beside cluster-ca.crt and other-ca.crt which its
// relative certificate-authority paths name, and returns the copy's path.
func (f *Fixture) Kubeconfig(t testing.TB, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(f.Dir, filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}
