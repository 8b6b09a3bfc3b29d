package pki

import (
	"crypto/x509"
	"net/netip"
	"testing"
	"time"
)

func TestIssueVerifiesAgainstCA(t *testing.T) {
	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("other-ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(LeafOptions{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"k8s-api.lab"},
		IPs:        []netip.Addr{netip.MustParseAddr("198.18.0.100")},
		NotAfter:   time.Now().Add(72 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		desc    string
		pool    *x509.CertPool
		name    string
		wantErr bool
	}{
		{"own CA, DNS SAN", ca.Pool(), "k8s-api.lab", false},
		{"own CA, IP SAN", ca.Pool(), "198.18.0.100", false},
		{"own CA, name not in SANs", ca.Pool(), "198.18.0.101", true},
		{"other CA", other.Pool(), "k8s-api.lab", true},
	}
	for _, c := range cases {
		_, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: c.pool, DNSName: c.name})
		if (err != nil) != c.wantErr {
			t.Errorf("%s: Verify err = %v, want error %v", c.desc, err, c.wantErr)
		}
	}
	if d := time.Until(leaf.Cert.NotAfter); d > 73*time.Hour || d < 71*time.Hour {
		t.Errorf("NotAfter in %v, want about 72h", d)
	}
	if _, err := leaf.TLSCertificate(); err != nil {
		t.Errorf("TLSCertificate: %v", err)
	}
}
