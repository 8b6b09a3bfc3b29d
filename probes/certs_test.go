package probes_test

import (
	"context"
	"crypto/x509"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/pki"
	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/probes/probetest"
)

func certOptions(f *probetest.Fixture) probes.CertOptions {
	return probes.CertOptions{
		RootCAs:  f.CA.Pool(),
		VIPs:     []netip.Addr{probetest.VIP},
		DNSNames: []string{probetest.DNSName},
		WarnDays: 30, CritDays: 7,
		Timeout: probeTimeout,
	}
}

func codes(fs []probes.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Severity.String()+":"+f.Code)
	}
	return out
}

func TestCertificatesAgainstStandins(t *testing.T) {
	f := probetest.NewFixture(t)
	backends := startCases(t, f)
	var targets []probes.Target
	for _, c := range probetest.AllCases {
		targets = append(targets, probes.Target{Name: backends[c].Name, Address: backends[c].Addr})
	}
	reports, all := probes.Certificates(context.Background(), targets, certOptions(f))

	want := map[probetest.Case][]string{
		probetest.Healthy:       nil,
		probetest.Unready:       nil,
		probetest.Slow:          nil, // the handshake is not slow, only the health answers
		probetest.Refused:       {"WARNING:cert-unreadable"},
		probetest.SANMissingVIP: {"CRITICAL:san-missing-ip"},
		probetest.SANMissingDNS: {"CRITICAL:san-missing-dns"},
		probetest.Expiring:      {"CRITICAL:cert-expiring"},
		probetest.OtherCA:       {"CRITICAL:chain-untrusted"},
		probetest.Forbidden:     nil,
	}
	for i, c := range probetest.AllCases {
		r := reports[i]
		if got := codes(r.Findings); !slices.Equal(got, want[c]) {
			t.Errorf("%s: findings %v, want %v", c, got, want[c])
		}
		if c != probetest.Refused && (r.Subject == "" || r.NotAfter.IsZero()) {
			t.Errorf("%s: report misses the certificate: %+v", c, r)
		}
		if r.ChainVerified != (c != probetest.Refused && c != probetest.OtherCA) {
			t.Errorf("%s: chain verified = %v (%s)", c, r.ChainVerified, r.VerifyError)
		}
	}
	// The fix hints name the exact missing entries.
	vip := reports[slices.Index(probetest.AllCases, probetest.SANMissingVIP)].Findings[0]
	for _, s := range []string{"IP 198.18.3.100", `"198.18.3.100"`, "apiServer.certSANs", "kubeadm init phase certs apiserver",
		"IP.<n+1> = 198.18.3.100", "/var/snap/microk8s/current/certs/csr.conf.template", "microk8s refresh-certs --cert server.crt"} {
		if !strings.Contains(vip.Line(), s) {
			t.Errorf("SAN-missing-VIP finding lacks %q:\n%s", s, vip.Line())
		}
	}
	dns := reports[slices.Index(probetest.AllCases, probetest.SANMissingDNS)].Findings[0]
	for _, s := range []string{"DNS k8s-api.test", `"k8s-api.test"`, "DNS.<n+1> = k8s-api.test"} {
		if !strings.Contains(dns.Line(), s) {
			t.Errorf("SAN-missing-DNS finding lacks %q:\n%s", s, dns.Line())
		}
	}
	if exp := reports[slices.Index(probetest.AllCases, probetest.Expiring)]; exp.DaysLeft != 3 {
		t.Errorf("expiring certificate: %d days left, want 3", exp.DaysLeft)
	}
	// One backend from another CA: the cross-backend check says so.
	last := all[len(all)-1]
	if last.Code != "mixed-ca" || !strings.Contains(last.Message, `cp8 from "CN=other-ca"`) {
		t.Errorf("last finding %q, want mixed-ca naming cp8", last.Line())
	}
}

func TestEvaluateCertificate(t *testing.T) {
	ca, err := pki.NewCA("cluster-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("other-ca")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	node := netip.MustParseAddrPort("198.18.3.11:6443")
	vip6 := netip.MustParseAddr("fd00:198:18:3::100")
	base := pki.LeafOptions{CommonName: "kube-apiserver", DNSNames: []string{"k8s-api.test"},
		IPs: []netip.Addr{node.Addr(), probetest.VIP, vip6}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(100 * 24 * time.Hour)}
	opts := probes.CertOptions{RootCAs: ca.Pool(), VIPs: []netip.Addr{probetest.VIP, vip6}, DNSNames: []string{"k8s-api.test"}}
	tests := []struct {
		desc  string
		ca    *pki.CA
		edit  func(*pki.LeafOptions)
		opts  func(*probes.CertOptions)
		codes []string
		days  int
	}{
		{desc: "all good", codes: nil, days: 99},
		{desc: "warn window", edit: func(o *pki.LeafOptions) { o.NotAfter = now.Add(20*24*time.Hour + time.Minute) },
			codes: []string{"WARNING:cert-expiring"}, days: 20},
		{desc: "crit window", edit: func(o *pki.LeafOptions) { o.NotAfter = now.Add(7*24*time.Hour + time.Minute) },
			codes: []string{"CRITICAL:cert-expiring"}, days: 7},
		{desc: "custom thresholds", edit: func(o *pki.LeafOptions) { o.NotAfter = now.Add(50*24*time.Hour + time.Minute) },
			opts: func(o *probes.CertOptions) { o.WarnDays, o.CritDays = 60, 10 }, codes: []string{"WARNING:cert-expiring"}, days: 50},
		{desc: "expired, chain still judged fine", edit: func(o *pki.LeafOptions) {
			// (within the test CA's own validity, which began an hour ago)
			o.NotBefore, o.NotAfter = now.Add(-50*time.Minute), now.Add(-10*time.Minute)
		}, codes: []string{"CRITICAL:cert-expired"}, days: -1},
		{desc: "not yet valid", edit: func(o *pki.LeafOptions) { o.NotBefore = now.Add(time.Hour) },
			codes: []string{"CRITICAL:cert-not-yet-valid"}, days: 99},
		{desc: "IPv6 VIP missing", edit: func(o *pki.LeafOptions) { o.IPs = o.IPs[:2] },
			codes: []string{"CRITICAL:san-missing-ip"}, days: 99},
		{desc: "own address missing only warns", edit: func(o *pki.LeafOptions) { o.IPs = o.IPs[1:] },
			codes: []string{"WARNING:san-missing-own-address"}, days: 99},
		{desc: "wildcard covers the DNS name", edit: func(o *pki.LeafOptions) { o.DNSNames = []string{"*.test"} }, days: 99},
		{desc: "extra SANs required", opts: func(o *probes.CertOptions) { o.ExtraSANs = []string{"api.example", "198.18.3.101", "k8s-api.test"} },
			codes: []string{"CRITICAL:san-missing-ip"}, days: 99},
		{desc: "another CA", ca: other, codes: []string{"CRITICAL:chain-untrusted"}, days: 99},
		{desc: "no CA configured: chain not judged", ca: other, opts: func(o *probes.CertOptions) { o.RootCAs = nil }, days: 99},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			lo := base
			lo.IPs = slices.Clone(base.IPs)
			if tc.edit != nil {
				tc.edit(&lo)
			}
			issuer := ca
			if tc.ca != nil {
				issuer = tc.ca
			}
			leaf, err := issuer.Issue(lo)
			if err != nil {
				t.Fatal(err)
			}
			o := opts
			if tc.opts != nil {
				tc.opts(&o)
			}
			r := probes.EvaluateCertificate(probes.Target{Name: "cp1", Address: node}, []*x509.Certificate{leaf.Cert}, o, now)
			if got := codes(r.Findings); !slices.Equal(got, tc.codes) {
				t.Errorf("findings %v, want %v", got, tc.codes)
			}
			if r.DaysLeft != tc.days {
				t.Errorf("days left %d, want %d", r.DaysLeft, tc.days)
			}
			if tc.desc == "extra SANs required" {
				if !slices.Equal(r.MissingIPs, []string{"198.18.3.101"}) || !slices.Equal(r.MissingDNSNames, []string{"api.example"}) {
					t.Errorf("missing %v %v", r.MissingIPs, r.MissingDNSNames)
				}
			}
			for _, f := range r.Findings {
				if f.Subject != "cp1" || f.Check != probes.CheckTLS || len(f.Fixes) == 0 {
					t.Errorf("finding without subject or fix: %+v", f)
				}
			}
		})
	}
}

func TestCompareIssuers(t *testing.T) {
	r := func(name, id, issuer string) probes.CertReport {
		return probes.CertReport{Backend: name, IssuerID: id, Issuer: issuer}
	}
	tests := []struct {
		desc string
		in   []probes.CertReport
		want string // "" = no finding
	}{
		{desc: "same CA", in: []probes.CertReport{r("cp1", "a", "CN=ca"), r("cp2", "a", "CN=ca")}},
		{desc: "unreadable left out", in: []probes.CertReport{r("cp1", "a", "CN=ca"), r("cp2", "", "")}},
		{desc: "odd one out reads last", in: []probes.CertReport{r("cp1", "b", "CN=old"), r("cp2", "a", "CN=ca"), r("cp3", "a", "CN=ca")},
			want: `backends present certificates from 2 different CAs: cp2,cp3 from "CN=ca"; cp1 from "CN=old"`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			fs := probes.CompareIssuers(tc.in)
			got := ""
			if len(fs) > 0 {
				got = fs[0].Message
			}
			if got != tc.want || len(fs) > 1 {
				t.Errorf("got %q (%d findings), want %q", got, len(fs), tc.want)
			}
		})
	}
}
