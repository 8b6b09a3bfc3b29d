package build

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/probes"
)

// Inputs are the probes' options read from a config once: targets, health,
// certificate and etcd options, with the files they name loaded. A file
// that cannot be read becomes a finding of the check that needs it.
type Inputs struct {
	// Targets are the backends, in config order.
	Targets []probes.Target
	// Health is how a backend is probed (with the cluster CA and the
	// client certificate when configured and readable).
	Health probes.HealthOptions
	// Certs is what the certificate check expects.
	Certs probes.CertOptions
	// CAFileSet: tls.ca_file is set (otherwise chains are not checked).
	CAFileSet bool
	// ClusterCA is tls.ca_file's certificates (nil when unset or unreadable).
	ClusterCA []*x509.Certificate
	// CAError is why tls.ca_file could not be read (nil when fine or unset).
	CAError error
	// EtcdConfigured: etcd.endpoints is not empty.
	EtcdConfigured bool
	// Etcd is how etcd is reached; nil when etcd is not configured or its
	// credentials are unreadable (see Problems[probes.CheckEtcd]).
	Etcd *probes.EtcdOptions
	// Problems are the findings about unreadable files, per check, in the
	// order `check` reports them.
	Problems map[probes.Check][]probes.Finding
}

// ReadInputs reads the probes' options and files from cfg.
func ReadInputs(cfg *config.Config) Inputs {
	in := Inputs{Problems: map[probes.Check][]probes.Finding{}, CAFileSet: cfg.TLS.CAFile != ""}
	in.Targets = make([]probes.Target, len(cfg.Backends))
	for i, b := range cfg.Backends {
		in.Targets[i] = probes.Target{Name: b.Name, Address: b.AddrPort()}
	}
	in.ClusterCA, in.CAError = ReadCerts(cfg.TLS.CAFile)
	if in.CAError != nil {
		in.Problems[probes.CheckBackends] = append(in.Problems[probes.CheckBackends], caUnreadable(probes.CheckBackends, in.CAError))
		in.Problems[probes.CheckTLS] = append(in.Problems[probes.CheckTLS], caUnreadable(probes.CheckTLS, in.CAError))
	}

	in.Health = probes.HealthOptions{Kind: probes.Kind(cfg.Health.Kind), Path: cfg.Health.Path, Timeout: cfg.Health.Timeout, RootCAs: Pool(in.ClusterCA)}
	if cfg.Health.ClientCertFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.Health.ClientCertFile, cfg.Health.ClientKeyFile)
		if err != nil {
			in.Problems[probes.CheckBackends] = append(in.Problems[probes.CheckBackends], probes.Finding{Check: probes.CheckBackends, Severity: probes.Unknown, Code: "client-cert-unreadable",
				Message: "cannot load health.client_cert_file / client_key_file", Detail: err.Error()})
		} else {
			in.Health.ClientCert = &c
		}
	}

	in.Certs = probes.CertOptions{
		RootCAs: Pool(in.ClusterCA), DNSNames: cfg.EndpointDNSNames, ExtraSANs: cfg.TLS.ExtraSANs,
		WarnDays: cfg.TLS.ExpiryWarnDays, CritDays: cfg.TLS.ExpiryCritDays,
	}
	for _, v := range cfg.VIPs {
		in.Certs.VIPs = append(in.Certs.VIPs, v.Address)
	}

	in.EtcdConfigured = len(cfg.Etcd.Endpoints) > 0
	if in.EtcdConfigured {
		eo, f := etcdOptions(cfg)
		if f != nil {
			in.Problems[probes.CheckEtcd] = []probes.Finding{*f}
		} else {
			in.Etcd = &eo
		}
	}
	return in
}

// etcdOptions loads etcd's TLS files; a finding says what is unreadable.
func etcdOptions(cfg *config.Config) (probes.EtcdOptions, *probes.Finding) {
	eo := probes.EtcdOptions{Endpoints: cfg.Etcd.Endpoints}
	if !slices.ContainsFunc(cfg.Etcd.Endpoints, func(e string) bool { return strings.HasPrefix(e, "https://") }) {
		return eo, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	var problems []string
	if cfg.Etcd.CAFile != "" {
		cs, err := ReadCerts(cfg.Etcd.CAFile)
		if err != nil {
			problems = append(problems, err.Error())
		}
		tc.RootCAs = Pool(cs)
	}
	if cfg.Etcd.CertFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.Etcd.CertFile, cfg.Etcd.KeyFile)
		if err != nil {
			problems = append(problems, err.Error())
		} else {
			tc.Certificates = []tls.Certificate{c}
		}
	}
	if len(problems) > 0 {
		return eo, &probes.Finding{Check: probes.CheckEtcd, Severity: probes.Unknown, Code: "etcd-credentials-unreadable",
			Message: "cannot load etcd.ca_file / cert_file / key_file", Detail: strings.Join(problems, "; ")}
	}
	eo.TLS = tc
	return eo, nil
}

// ReadCerts reads a PEM file of certificates ("" reads nothing).
func ReadCerts(path string) ([]*x509.Certificate, error) {
	if path == "" {
		return nil, nil
	}
	b, err := config.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	cs, err := probes.ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cs, nil
}

// Pool makes a pool of cs; nil for none (the system roots).
func Pool(cs []*x509.Certificate) *x509.CertPool {
	if len(cs) == 0 {
		return nil
	}
	p := x509.NewCertPool()
	for _, c := range cs {
		p.AddCert(c)
	}
	return p
}

func caUnreadable(check probes.Check, err error) probes.Finding {
	return probes.Finding{Check: check, Severity: probes.Unknown, Code: "ca-unreadable",
		Message: "cannot read tls.ca_file", Detail: err.Error(), Fixes: []probes.Fix{{Text: "point tls.ca_file at the cluster CA (kubeadm: /etc/kubernetes/pki/ca.crt; microk8s: /var/snap/microk8s/current/certs/ca.crt)"}}}
}
