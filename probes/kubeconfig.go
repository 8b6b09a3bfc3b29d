package probes

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubeconfigOptions say which kubeconfig to load and what it should point at.
type KubeconfigOptions struct {
	// Path, if set, is the only file loaded (kubectl --kubeconfig);
	// otherwise $KUBECONFIG (a list), then ~/.kube/config, as kubectl does.
	Path string
	// Context, if set, is checked instead of the current context.
	Context string
	// VIPs are the endpoint's addresses and ports.
	VIPs []netip.AddrPort
	// DNSNames are the endpoint DNS names (served on Port).
	DNSNames []string
	// Port is the endpoint port (default 6443).
	Port uint16
	// Backends are the control-plane nodes, to recognise a kubeconfig that
	// points at one of them.
	Backends []Target
	// ClusterCA is the cluster CA (tls.ca_file); nil skips the CA comparison.
	ClusterCA []*x509.Certificate
	// ClusterCAFile is where the cluster CA is on this node, for the fix hint.
	ClusterCAFile string
}

// Where a kubeconfig server points.
const (
	ServerVIP     = "vip"
	ServerDNSName = "dns-name"
	ServerBackend = "backend"
	ServerOther   = "other"
)

// KubeconfigReport is the kubeconfig check's result.
type KubeconfigReport struct {
	// Files are the kubeconfig files that exist, in kubectl's precedence order.
	Files []string `json:"files"`
	// Found is false when there was no kubeconfig to read at all.
	Found   bool   `json:"found"`
	Context string `json:"context,omitempty"`
	Cluster string `json:"cluster,omitempty"`
	Server  string `json:"server,omitempty"`
	// PointsAt is "vip", "dns-name", "backend" or "other".
	PointsAt string `json:"points_at,omitempty"`
	// Backend names the node the server points at (PointsAt "backend").
	Backend string `json:"backend,omitempty"`
	// CASource is "data", the CA file path, "insecure" or "none".
	CASource string `json:"ca_source,omitempty"`
	// CAMatches says whether the kubeconfig trusts the cluster CA (false
	// when either side is unknown).
	CAMatches bool      `json:"ca_matches"`
	Error     string    `json:"error,omitempty"`
	Findings  []Finding `json:"-"`
}

// Kubeconfig loads the kubeconfig the way kubectl does
// (clientcmd's default loading rules) and evaluates it.
func Kubeconfig(o KubeconfigOptions) KubeconfigReport {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Path
	files := []string{}
	for _, f := range rules.GetLoadingPrecedence() {
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		}
	}
	cfg, err := rules.Load()
	if err != nil {
		r := KubeconfigReport{Files: files, Found: len(files) > 0, Error: err.Error()}
		r.Findings = []Finding{{Check: CheckKubeconfig, Severity: Unknown, Code: "kubeconfig-unreadable",
			Message: "cannot load the kubeconfig", Detail: err.Error()}}
		return r
	}
	r := EvaluateKubeconfig(cfg, o)
	r.Files = files
	if len(files) == 0 {
		r.Found = false
		r.Findings = []Finding{{Check: CheckKubeconfig, Severity: Unknown, Code: "kubeconfig-missing",
			Message: "no kubeconfig found ($KUBECONFIG unset or empty, " + clientcmd.RecommendedHomeFile + " missing)",
			Fixes:   []Fix{{Text: "pass --kubeconfig <file> or set KUBECONFIG"}}}}
	}
	return r
}

// EvaluateKubeconfig judges a loaded kubeconfig (file paths already
// resolved, as clientcmd's loader leaves them): the context's server must
// be a VIP or an endpoint DNS name on the endpoint port, and its CA must
// be the cluster CA.
func EvaluateKubeconfig(cfg *clientcmdapi.Config, o KubeconfigOptions) KubeconfigReport {
	if o.Port == 0 {
		o.Port = 6443
	}
	r := KubeconfigReport{Found: true}
	add := func(sev Severity, code, msg, detail string, fixes ...Fix) {
		r.Findings = append(r.Findings, Finding{Check: CheckKubeconfig, Severity: sev, Subject: r.Context,
			Code: code, Message: msg, Detail: detail, Fixes: fixes})
	}
	r.Context = o.Context
	if r.Context == "" {
		r.Context = cfg.CurrentContext
	}
	if r.Context == "" {
		add(Unknown, "no-current-context", "the kubeconfig has no current context", "",
			Fix{Text: "kubectl config use-context <name>"})
		return r
	}
	kctx, ok := cfg.Contexts[r.Context]
	if !ok {
		add(Critical, "context-missing", fmt.Sprintf("context %q is not defined", r.Context), "",
			Fix{Text: "kubectl config get-contexts; kubectl config use-context <name>"})
		return r
	}
	r.Cluster = kctx.Cluster
	cl, ok := cfg.Clusters[kctx.Cluster]
	if !ok {
		add(Critical, "cluster-missing", fmt.Sprintf("context %q refers to cluster %q, which is not defined", r.Context, kctx.Cluster), "")
		return r
	}
	r.Server = cl.Server
	want := preferredServer(o)
	setServer := Fix{Text: fmt.Sprintf("kubectl config set-cluster %s --server=%s", shellWord(r.Cluster), want)}

	// Server.
	u, err := url.Parse(cl.Server)
	if err != nil || u.Host == "" {
		add(Critical, "server-invalid", fmt.Sprintf("server %q is not a URL", cl.Server), errString(err), setServer)
	} else {
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = "443"
			if u.Scheme == "http" {
				port = "80"
			}
		}
		r.PointsAt, r.Backend = classifyServer(host, o)
		switch r.PointsAt {
		case ServerBackend:
			add(Warning, "server-single-node",
				fmt.Sprintf("server %s is control-plane node %s, not the endpoint: kubectl fails whenever that node is down", cl.Server, r.Backend), "", setServer)
		case ServerOther:
			add(Warning, "server-not-endpoint",
				fmt.Sprintf("server %s is neither a VIP nor an endpoint DNS name", cl.Server), "", setServer)
		default:
			if wantPort := endpointPort(host, o); port != strconv.Itoa(int(wantPort)) {
				add(Warning, "server-port",
					fmt.Sprintf("server %s uses port %s; the endpoint serves %d", cl.Server, port, wantPort), "", setServer)
			}
		}
	}

	// CA.
	var caPEM []byte
	switch {
	case cl.InsecureSkipTLSVerify:
		r.CASource = "insecure"
	case len(cl.CertificateAuthorityData) > 0:
		r.CASource, caPEM = "data", cl.CertificateAuthorityData
	case cl.CertificateAuthority != "":
		r.CASource = cl.CertificateAuthority
		b, err := os.ReadFile(cl.CertificateAuthority)
		if err != nil {
			add(Critical, "ca-unreadable", "cannot read the kubeconfig's certificate-authority file", err.Error())
		}
		caPEM = b
	default:
		r.CASource = "none"
	}
	caFile := "<the cluster CA file>"
	if o.ClusterCAFile != "" {
		caFile = shellWord(o.ClusterCAFile)
	}
	setCA := Fix{Text: fmt.Sprintf("kubectl config set-cluster %s --certificate-authority=%s --embed-certs=true", shellWord(r.Cluster), caFile)}
	switch {
	case r.CASource == "insecure":
		add(Warning, "ca-insecure", "insecure-skip-tls-verify is set: kubectl trusts any server", "", setCA)
	case len(o.ClusterCA) == 0:
		// Nothing to compare with.
	case r.CASource == "none":
		add(Critical, "ca-missing", "the kubeconfig names no certificate authority: kubectl will not trust the cluster's private CA", "", setCA)
	case caPEM != nil:
		kcerts := parseCerts(caPEM)
		r.CAMatches = containsAny(kcerts, o.ClusterCA)
		if !r.CAMatches {
			have := "no certificate"
			if len(kcerts) > 0 {
				var subj []string
				for _, c := range kcerts {
					subj = append(subj, fmt.Sprintf("%q", c.Subject.String()))
				}
				have = strings.Join(subj, ", ")
			}
			add(Critical, "ca-mismatch",
				fmt.Sprintf("the kubeconfig trusts %s, not the cluster CA %q: kubectl will refuse the apiserver", have, o.ClusterCA[0].Subject.String()), "", setCA)
		}
	}
	return r
}

func classifyServer(host string, o KubeconfigOptions) (kind, backend string) {
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		ip = ip.Unmap()
		for _, v := range o.VIPs {
			if v.Addr().Unmap() == ip {
				return ServerVIP, ""
			}
		}
		for _, b := range o.Backends {
			if b.Address.Addr().Unmap() == ip {
				return ServerBackend, b.Name
			}
		}
		return ServerOther, ""
	}
	for _, n := range o.DNSNames {
		if strings.EqualFold(strings.TrimSuffix(host, "."), strings.TrimSuffix(n, ".")) {
			return ServerDNSName, ""
		}
	}
	return ServerOther, ""
}

// endpointPort is the port the endpoint serves host on.
func endpointPort(host string, o KubeconfigOptions) uint16 {
	if ip, err := netip.ParseAddr(host); err == nil {
		for _, v := range o.VIPs {
			if v.Addr().Unmap() == ip.Unmap() && v.Port() != 0 {
				return v.Port()
			}
		}
	}
	return o.Port
}

// preferredServer is the URL a kubeconfig should use: the first endpoint
// DNS name, else the first VIP.
func preferredServer(o KubeconfigOptions) string {
	switch {
	case len(o.DNSNames) > 0:
		return "https://" + net.JoinHostPort(o.DNSNames[0], strconv.Itoa(int(o.Port)))
	case len(o.VIPs) > 0:
		v := o.VIPs[0]
		if v.Port() == 0 {
			v = netip.AddrPortFrom(v.Addr(), o.Port)
		}
		return "https://" + v.String()
	}
	return "https://<VIP>:6443"
}

func parseCerts(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

// ParseCertificates reads every certificate in a PEM bundle.
func ParseCertificates(pemBytes []byte) ([]*x509.Certificate, error) {
	cs := parseCerts(pemBytes)
	if len(cs) == 0 {
		return nil, fmt.Errorf("no PEM certificate found")
	}
	return cs, nil
}

func containsAny(have, want []*x509.Certificate) bool {
	for _, h := range have {
		for _, w := range want {
			if bytes.Equal(h.Raw, w.Raw) {
				return true
			}
		}
	}
	return false
}

func shellWord(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"$`\\;&|<>()*?[]{}!#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
