package probes

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
)

// CertOptions say what an apiserver serving certificate must be.
type CertOptions struct {
	// RootCAs is the cluster CA; the chain must verify against it. Nil
	// reports every chain as unverified.
	RootCAs *x509.CertPool
	// VIPs must each be an IP SAN.
	VIPs []netip.Addr
	// DNSNames are the endpoint DNS names; each must be a DNS SAN.
	DNSNames []string
	// ExtraSANs are further names or addresses every certificate must carry.
	ExtraSANs []string
	// WarnDays and CritDays are expiry thresholds (default 30 and 7).
	WarnDays, CritDays int
	// Timeout bounds the handshake (default 2s).
	Timeout time.Duration
}

func (o CertOptions) withDefaults() CertOptions {
	if o.WarnDays <= 0 {
		o.WarnDays = 30
	}
	if o.CritDays <= 0 {
		o.CritDays = 7
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	return o
}

// CertReport is what one backend's serving certificate looks like.
type CertReport struct {
	Backend string         `json:"backend"`
	Address netip.AddrPort `json:"address"`
	// Error is set when no certificate could be read (handshake failed).
	Error       string    `json:"error,omitempty"`
	Subject     string    `json:"subject,omitempty"`
	Issuer      string    `json:"issuer,omitempty"`
	NotBefore   time.Time `json:"not_before,omitzero"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	DaysLeft    int       `json:"days_left"`
	DNSNames    []string  `json:"dns_names,omitempty"`
	IPAddresses []string  `json:"ip_addresses,omitempty"`
	// ChainVerified says whether the chain verifies against the cluster CA.
	ChainVerified bool   `json:"chain_verified"`
	VerifyError   string `json:"verify_error,omitempty"`
	// MissingIPs and MissingDNSNames are required SANs the certificate lacks.
	MissingIPs      []string `json:"missing_ip_sans,omitempty"`
	MissingDNSNames []string `json:"missing_dns_sans,omitempty"`
	// IssuerID identifies the issuing CA (its key ID, or a hash of its
	// name), to compare backends.
	IssuerID string    `json:"issuer_id,omitempty"`
	Findings []Finding `json:"-"`
}

// Certificate reads the certificate a backend presents and evaluates it.
func Certificate(ctx context.Context, t Target, o CertOptions) CertReport {
	o = o.withDefaults()
	chain, err := FetchChain(ctx, t.Address, o.Timeout)
	if err != nil {
		r := CertReport{Backend: t.Name, Address: t.Address, Error: err.Error()}
		r.Findings = []Finding{{
			Check: CheckTLS, Severity: Warning, Subject: t.Name, Code: "cert-unreadable",
			Message: "certificate not checked: no TLS handshake with " + t.Address.String(),
			Detail:  err.Error(),
		}}
		return r
	}
	return EvaluateCertificate(t, chain, o, time.Now())
}

// Certificates checks every backend's certificate and whether they
// all come from the same CA. It returns the per-backend reports and all
// findings (per backend, then the cross-backend one if any).
func Certificates(ctx context.Context, targets []Target, o CertOptions) ([]CertReport, []Finding) {
	reports := make([]CertReport, len(targets))
	done := make(chan struct{})
	for i, t := range targets {
		go func() {
			reports[i] = Certificate(ctx, t, o)
			done <- struct{}{}
		}()
	}
	for range targets {
		<-done
	}
	var fs []Finding
	for _, r := range reports {
		fs = append(fs, r.Findings...)
	}
	fs = append(fs, CompareIssuers(reports)...)
	return reports, fs
}

// EvaluateCertificate judges a presented chain (leaf first) at time now:
// chain to the CA, required SANs (VIPs, endpoint DNS names, extra SANs,
// the backend's own address) and expiry. It is a pure function.
func EvaluateCertificate(t Target, chain []*x509.Certificate, o CertOptions, now time.Time) CertReport {
	o = o.withDefaults()
	r := CertReport{Backend: t.Name, Address: t.Address}
	if len(chain) == 0 {
		r.Error = "server presented no certificate"
		r.Findings = []Finding{{Check: CheckTLS, Severity: Critical, Subject: t.Name, Code: "cert-missing",
			Message: "the server presented no certificate"}}
		return r
	}
	leaf := chain[0]
	r.Subject = leaf.Subject.String()
	r.Issuer = leaf.Issuer.String()
	r.NotBefore, r.NotAfter = leaf.NotBefore, leaf.NotAfter
	r.DaysLeft = daysLeft(leaf.NotAfter, now)
	r.DNSNames = slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		r.IPAddresses = append(r.IPAddresses, ip.String())
	}
	r.IssuerID = issuerID(leaf)

	add := func(f Finding) {
		f.Check, f.Subject = CheckTLS, t.Name
		r.Findings = append(r.Findings, f)
	}

	// Chain.
	if o.RootCAs != nil {
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		// Verify at a moment inside the leaf's validity: expiry has its
		// own finding below, and Verify stops at an expired leaf before
		// it looks at the chain.
		at := now
		if at.Before(leaf.NotBefore) {
			at = leaf.NotBefore.Add(time.Second)
		} else if !at.Before(leaf.NotAfter) {
			at = leaf.NotAfter.Add(-time.Second)
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots: o.RootCAs, Intermediates: inter, CurrentTime: at,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err == nil {
			r.ChainVerified = true
		} else {
			r.VerifyError = err.Error()
			add(Finding{Severity: Critical, Code: "chain-untrusted",
				Message: fmt.Sprintf("certificate issued by %q does not verify against the cluster CA (tls.ca_file)", r.Issuer),
				Detail:  err.Error(),
				Fixes: []Fix{
					{Setup: SetupAny, Text: "point tls.ca_file at this cluster's CA, or reissue this apiserver's certificate from it"},
					{Setup: SetupKubeadm, Text: fmt.Sprintf("on %s: mv /etc/kubernetes/pki/apiserver.crt /etc/kubernetes/pki/apiserver.key /root/ && kubeadm init phase certs apiserver --config kubeadm.yaml (signs with /etc/kubernetes/pki/ca.crt), then restart kube-apiserver", t.Name)},
					{Setup: SetupMicrok8s, Text: fmt.Sprintf("on %s: sudo microk8s refresh-certs --cert server.crt (signs with /var/snap/microk8s/current/certs/ca.crt)", t.Name)},
				}})
		}
	}

	// SANs.
	var missIP, missDNS []string
	for _, vip := range o.VIPs {
		if !hasIPSAN(leaf, vip) {
			missIP = append(missIP, vip.String())
		}
	}
	for _, n := range o.DNSNames {
		if leaf.VerifyHostname(n) != nil {
			missDNS = append(missDNS, n)
		}
	}
	for _, s := range o.ExtraSANs {
		if ip, err := netip.ParseAddr(s); err == nil {
			if !hasIPSAN(leaf, ip) && !slices.Contains(missIP, ip.String()) {
				missIP = append(missIP, ip.String())
			}
		} else if leaf.VerifyHostname(s) != nil && !slices.Contains(missDNS, s) {
			missDNS = append(missDNS, s)
		}
	}
	if len(missIP)+len(missDNS) > 0 {
		r.MissingIPs, r.MissingDNSNames = missIP, missDNS
		var what []string
		for _, ip := range missIP {
			what = append(what, "IP "+ip)
		}
		for _, n := range missDNS {
			what = append(what, "DNS "+n)
		}
		code := "san-missing-dns"
		if len(missIP) > 0 {
			code = "san-missing-ip"
		}
		add(Finding{Severity: Critical, Code: code,
			Message: "certificate SANs lack " + strings.Join(what, ", ") + ": clients using the endpoint will refuse it",
			Fixes:   sanFixes(t.Name, missIP, missDNS)})
	}
	if own := t.Address.Addr(); own.IsValid() && !hasIPSAN(leaf, own) {
		ip := own.Unmap().String()
		r.MissingIPs = append(r.MissingIPs, ip)
		add(Finding{Severity: Warning, Code: "san-missing-own-address",
			Message: "certificate SANs lack the backend's own address IP " + ip + ": clients talking to this node directly will refuse it",
			Fixes:   sanFixes(t.Name, []string{ip}, nil)})
	}

	// Validity.
	switch {
	case now.Before(leaf.NotBefore):
		add(Finding{Severity: Critical, Code: "cert-not-yet-valid",
			Message: "certificate is not valid before " + leaf.NotBefore.UTC().Format(time.RFC3339) + " (clock skew?)",
			Fixes:   []Fix{{Text: fmt.Sprintf("check the clocks of %s and this node (timedatectl), or reissue the certificate", t.Name)}}})
	case !now.Before(leaf.NotAfter):
		add(Finding{Severity: Critical, Code: "cert-expired",
			Message: "certificate expired on " + leaf.NotAfter.UTC().Format("2006-01-02"),
			Fixes:   renewFixes(t.Name)})
	case r.DaysLeft <= o.CritDays:
		add(Finding{Severity: Critical, Code: "cert-expiring",
			Message: fmt.Sprintf("certificate expires in %d days (critical at %d)", r.DaysLeft, o.CritDays),
			Fixes:   renewFixes(t.Name)})
	case r.DaysLeft <= o.WarnDays:
		add(Finding{Severity: Warning, Code: "cert-expiring",
			Message: fmt.Sprintf("certificate expires in %d days (warning at %d)", r.DaysLeft, o.WarnDays),
			Fixes:   renewFixes(t.Name)})
	}
	return r
}

// sanFixes names the exact entries to add for kubeadm and microk8s.
func sanFixes(node string, ips, names []string) []Fix {
	all := append(slices.Clone(ips), names...)
	quoted := make([]string, len(all))
	for i, s := range all {
		quoted[i] = `"` + s + `"`
	}
	var entries []string
	for i, ip := range ips {
		entries = append(entries, fmt.Sprintf("IP.<n+%d> = %s", i+1, ip))
	}
	for i, n := range names {
		entries = append(entries, fmt.Sprintf("DNS.<n+%d> = %s", i+1, n))
	}
	return []Fix{
		{Setup: SetupKubeadm, Text: fmt.Sprintf(
			"add %s to apiServer.certSANs in the ClusterConfiguration (kubeadm.yaml / kubeadm-config ConfigMap); then on %s: mv /etc/kubernetes/pki/apiserver.crt /etc/kubernetes/pki/apiserver.key /root/ && kubeadm init phase certs apiserver --config kubeadm.yaml, and restart kube-apiserver",
			strings.Join(quoted, ", "), node)},
		{Setup: SetupMicrok8s, Text: fmt.Sprintf(
			"on %s add under [ alt_names ] in /var/snap/microk8s/current/certs/csr.conf.template: %s (n = the highest number already used), then sudo microk8s refresh-certs --cert server.crt",
			node, strings.Join(entries, ", "))},
	}
}

func renewFixes(node string) []Fix {
	return []Fix{
		{Setup: SetupKubeadm, Text: fmt.Sprintf("on %s: kubeadm certs renew apiserver, then restart kube-apiserver", node)},
		{Setup: SetupMicrok8s, Text: fmt.Sprintf("on %s: sudo microk8s refresh-certs --cert server.crt", node)},
	}
}

// CompareIssuers reports backends whose certificates come from different
// CAs (a half-finished CA rotation, or a node joined from another
// cluster). Reports without a certificate are left out.
func CompareIssuers(reports []CertReport) []Finding {
	byIssuer := map[string][]string{}
	names := map[string]string{}
	for _, r := range reports {
		if r.IssuerID == "" {
			continue
		}
		byIssuer[r.IssuerID] = append(byIssuer[r.IssuerID], r.Backend)
		names[r.IssuerID] = r.Issuer
	}
	if len(byIssuer) < 2 {
		return nil
	}
	ids := make([]string, 0, len(byIssuer))
	for id := range byIssuer {
		ids = append(ids, id)
	}
	// Largest group first, then by name, so the odd one out reads last.
	sort.Slice(ids, func(i, j int) bool {
		a, b := byIssuer[ids[i]], byIssuer[ids[j]]
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return names[ids[i]]+ids[i] < names[ids[j]]+ids[j]
	})
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%s from %q", strings.Join(byIssuer[id], ","), names[id]))
	}
	return []Finding{{
		Check: CheckTLS, Severity: Warning, Code: "mixed-ca",
		Message: fmt.Sprintf("backends present certificates from %d different CAs: %s", len(ids), strings.Join(parts, "; ")),
		Fixes:   []Fix{{Text: "reissue the odd backends' apiserver certificates from the cluster CA (see chain-untrusted fixes)"}},
	}}
}

func hasIPSAN(c *x509.Certificate, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, s := range c.IPAddresses {
		if a, ok := netip.AddrFromSlice(s); ok && a.Unmap() == ip {
			return true
		}
	}
	return false
}

// daysLeft is the number of whole days until notAfter (negative once past).
func daysLeft(notAfter, now time.Time) int {
	d := notAfter.Sub(now)
	if d < 0 {
		return -int((-d + 24*time.Hour - 1) / (24 * time.Hour))
	}
	return int(d / (24 * time.Hour))
}

func issuerID(c *x509.Certificate) string {
	if len(c.AuthorityKeyId) > 0 {
		return "keyid:" + hex.EncodeToString(c.AuthorityKeyId)
	}
	sum := sha256.Sum256(c.RawIssuer)
	return "name-sha256:" + hex.EncodeToString(sum[:8])
}
