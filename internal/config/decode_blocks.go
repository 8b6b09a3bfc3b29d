package config

// Decoding the health, tls, etcd, status, balance and conntrack blocks: how this node
// probes the backends, checks their certificates and etcd, serves its
// status, and spreads flows.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

func (d *decoder) decodeHealth(raw *rawConfig, c *Config) {
	rh := raw.Health
	if rh == nil {
		rh = &rawHealth{}
	}
	h := &c.Health
	kind, ok := d.str(rh.Kind, "health.kind", string(defaultHealthKind), `"https"`)
	h.Kind = HealthKind(kind)
	if ok {
		switch h.Kind {
		case HealthTCP, HealthTLS, HealthHTTPS:
		default:
			d.errf(rh.Kind.Expr.Range(), "Invalid health kind", `health.kind = %q: use "tcp" (connect only), "tls" (TLS handshake) or "https" (GET path, the default).`, kind)
			h.Kind = defaultHealthKind
		}
	}
	h.Path, ok = d.str(rh.Path, "health.path", defaultHealthPath, `"/readyz"`)
	if ok && (!strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \t\r\n#")) {
		d.errf(rh.Path.Expr.Range(), "Invalid health path", `health.path = %q must be a URL path starting with "/" without spaces or fragment, like "/readyz".`, h.Path)
	}
	h.Interval, _ = d.duration(rh.Interval, "health.interval", defaultInterval, 10*time.Millisecond, time.Hour)
	h.FastInterval, _ = d.duration(rh.FastInterval, "health.fast_interval", defaultFastInterval, 10*time.Millisecond, time.Hour)
	h.Timeout, _ = d.duration(rh.Timeout, "health.timeout", defaultTimeout, time.Millisecond, time.Hour)
	h.Rise, _ = d.intIn(rh.Rise, "health.rise", defaultRise, 1, 100, "successful probes in a row before a backend is up")
	h.Fall, _ = d.intIn(rh.Fall, "health.fall", defaultFall, 1, 100, "failed probes in a row before a backend is down")
	if h.Timeout >= h.Interval {
		blame, what := rh.Timeout, "lower timeout"
		if blame == nil {
			blame, what = rh.Interval, "raise interval"
		}
		d.errf(d.where(blame, rh.DefRange), "Health timeout not below interval", "health.timeout (%s) must be shorter than health.interval (%s), so a probe ends before the next one starts: %s.", h.Timeout, h.Interval, what)
	}
	if h.FastInterval > h.Interval {
		blame, what := rh.FastInterval, "lower fast_interval"
		if blame == nil {
			blame, what = rh.Interval, "raise interval"
		}
		d.errf(d.where(blame, rh.DefRange), "Health fast_interval above interval", "health.fast_interval (%s) must not be longer than health.interval (%s): it is the quicker pace used while a backend changes state; %s.", h.FastInterval, h.Interval, what)
	}
	h.ClientCertFile, h.ClientKeyFile = d.certPair("health", rh.ClientCertFile, rh.ClientKeyFile, "client_cert_file", "client_key_file", rh.DefRange)
}

// certPair checks an optional certificate + key pair (both or neither,
// readable, matching) and returns their absolute paths.
func (d *decoder) certPair(block string, certA, keyA *hcl.Attribute, certName, keyName string, def hcl.Range) (cert, key string) {
	certP, okC := d.str(certA, block+"."+certName, "", `"/etc/epconsole/probe.crt"`)
	keyP, okK := d.str(keyA, block+"."+keyName, "", `"/etc/epconsole/probe.key"`)
	if !okC || !okK {
		return "", ""
	}
	switch {
	case certP == "" && keyP == "":
		return "", ""
	case keyP == "":
		d.errf(d.where(certA, def), "Certificate without key", "%s.%s is set but %s is not: set %s to the certificate's private key file, or remove both.", block, certName, keyName, keyName)
		return "", ""
	case certP == "":
		d.errf(d.where(keyA, def), "Key without certificate", "%s.%s is set but %s is not: set %s to the certificate file that goes with the key, or remove both.", block, keyName, certName, certName)
		return "", ""
	}
	certShown, certAbs := d.path(certP)
	keyShown, keyAbs := d.path(keyP)
	if d.offline {
		return certAbs, keyAbs
	}
	certPEM, errC := d.readFile(certShown)
	if errC != nil {
		d.errf(certA.Expr.Range(), "Cannot read certificate", "%s.%s: %v. Fix the path or the file's permissions.", block, certName, unwrapPath(errC))
	}
	keyPEM, errK := d.readFile(keyShown)
	if errK != nil {
		d.errf(keyA.Expr.Range(), "Cannot read key", "%s.%s: %v. Fix the path or the file's permissions.", block, keyName, unwrapPath(errK))
	}
	if errC != nil || errK != nil {
		return certAbs, keyAbs
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		d.errf(certA.Expr.Range(), "Unusable certificate and key", "%s and %s: %v. Use a PEM certificate and the PEM private key that belongs to it.", certShown, keyShown, err)
	}
	return certAbs, keyAbs
}

// caFile checks an optional CA bundle: readable, at least one PEM certificate.
func (d *decoder) caFile(a *hcl.Attribute, path string) string {
	p, ok := d.str(a, path, "", `"/etc/kubernetes/pki/ca.crt"`)
	if !ok || p == "" {
		return ""
	}
	shown, abs := d.path(p)
	if d.offline {
		return abs
	}
	b, err := d.readFile(shown)
	if err != nil {
		d.errf(a.Expr.Range(), "Cannot read CA file", "%s: %v. Fix the path or the file's permissions, or remove the line to skip this check.", path, unwrapPath(err))
		return abs
	}
	if err := checkCertPEM(b); err != nil {
		d.errf(a.Expr.Range(), "Invalid CA file", "%s (%s): %v. Use the PEM CA certificate, like kubeadm's /etc/kubernetes/pki/ca.crt.", path, shown, err)
	}
	return abs
}

// checkCertPEM reports whether b holds at least one parsable PEM certificate.
func checkCertPEM(b []byte) error {
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("certificate %d does not parse: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM CERTIFICATE block in it")
	}
	return nil
}

func (d *decoder) decodeTLS(raw *rawConfig, c *Config) {
	rt := raw.TLS
	if rt == nil {
		rt = &rawTLS{}
	}
	t := &c.TLS
	t.CAFile = d.caFile(rt.CAFile, "tls.ca_file")
	sans, rngs, _ := d.strList(rt.ExtraSANs, "tls.extra_sans", `["10.96.0.1", "kubernetes.default.svc"]`)
	for i, s := range sans {
		if !isIP(s) && !validDNSName(s) {
			d.errf(rngs[i], "Invalid SAN", "tls.extra_sans entry %q is neither an IP address nor a DNS name: list names or addresses the apiserver certificates must carry.", s)
			continue
		}
		t.ExtraSANs = append(t.ExtraSANs, s)
	}
	t.ExpiryWarnDays, _ = d.intIn(rt.ExpiryWarnDays, "tls.expiry_warn_days", defaultExpiryWarnDays, 1, 3650, "days before expiry that check reports WARNING")
	t.ExpiryCritDays, _ = d.intIn(rt.ExpiryCritDays, "tls.expiry_crit_days", defaultExpiryCritDays, 1, 3650, "days before expiry that check reports CRITICAL")
	if t.ExpiryCritDays >= t.ExpiryWarnDays {
		blame := rt.ExpiryCritDays
		if blame == nil {
			blame = rt.ExpiryWarnDays
		}
		d.errf(d.where(blame, rt.DefRange), "Expiry thresholds reversed", "tls.expiry_crit_days (%d) must be less than tls.expiry_warn_days (%d): a certificate gets a warning first, then turns critical closer to expiry.", t.ExpiryCritDays, t.ExpiryWarnDays)
	}
}

func (d *decoder) decodeEtcd(raw *rawConfig, c *Config) {
	re := raw.Etcd
	if re == nil {
		re = &rawEtcd{}
	}
	e := &c.Etcd
	eps, rngs, _ := d.strList(re.Endpoints, "etcd.endpoints", `["https://198.18.0.21:2379"]`)
	seen := map[string]hcl.Range{}
	for i, s := range eps {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
			d.errf(rngs[i], "Invalid etcd endpoint", "etcd.endpoints entry %q must be a URL like \"https://198.18.0.21:2379\" (scheme http or https, host and port, no path).", s)
			continue
		}
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			d.errf(rngs[i], "Invalid etcd endpoint", "etcd.endpoints entry %q has port %q: use 1 to 65535 (etcd's client port is 2379).", s, u.Port())
			continue
		}
		if prev, dup := seen[u.Host]; dup {
			d.errf(rngs[i], "Duplicate etcd endpoint", "etcd.endpoints entry %q is the same member as the entry on %s: remove one.", s, lineOf(prev))
			continue
		}
		seen[u.Host] = rngs[i]
		e.Endpoints = append(e.Endpoints, s)
	}
	e.CAFile = d.caFile(re.CAFile, "etcd.ca_file")
	e.CertFile, e.KeyFile = d.certPair("etcd", re.CertFile, re.KeyFile, "cert_file", "key_file", re.DefRange)
}

func (d *decoder) decodeStatus(raw *rawConfig, c *Config) {
	rs := raw.Status
	if rs == nil {
		rs = &rawStatus{}
	}
	s := &c.Status
	if p, ok := d.str(rs.Socket, "status.socket", defaultSocket, `"/run/epconsole/status.sock"`); ok {
		_, abs := d.path(p)
		switch {
		case p == "":
			d.errf(rs.Socket.Expr.Range(), "Empty status socket", "status.socket must name a unix socket path: tui and check read the daemon's status there. Remove the line for the default %q.", defaultSocket)
		case len(abs) > maxSocketPath:
			d.errf(rs.Socket.Expr.Range(), "Socket path too long", "status.socket resolves to a path of %d bytes; a unix socket path is at most %d: choose a shorter path, like %q.", len(abs), maxSocketPath, defaultSocket)
		default:
			s.Socket = abs
		}
	}
	if l, ok := d.str(rs.MetricsListen, "status.metrics_listen", defaultMetricsListen, `"127.0.0.1:9642"`); ok {
		switch {
		case l == "":
			s.MetricsListen = l
		case !validListen(l):
			d.errf(rs.MetricsListen.Expr.Range(), "Invalid metrics_listen", `status.metrics_listen = %q must be "address:port" with an IP address and a port from 1 to 65535, like "127.0.0.1:9642"; "" turns metrics off.`, l)
		case !d.metricsHostWritten(d.where(rs.MetricsListen, rs.DefRange), l):
		default:
			s.MetricsListen = l
		}
	}
	s.SocketGroup, _ = d.str(rs.SocketGroup, "status.socket_group", "", `"epconsole"`)
	s.OperatorGroup, _ = d.str(rs.OperatorGroup, "status.operator_group", "", `"epconsole-admin"`)
}

// validListen accepts "ip:port", "[ipv6]:port", ":port" and "localhost:port".
func validListen(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return false
	}
	return host == "" || host == "localhost" || isIP(host)
}

func (d *decoder) decodeBalance(raw *rawConfig, c *Config) {
	rb := raw.Balance
	if rb == nil {
		rb = &rawBalance{}
	}
	b := &c.Balance
	mode, ok := d.str(rb.Mode, "balance.mode", string(defaultBalanceMode), `"connection"`)
	b.Mode = BalanceMode(mode)
	if ok && b.Mode != BalanceConnection && b.Mode != BalanceSource {
		d.errf(rb.Mode.Expr.Range(), "Invalid balance mode", `balance.mode = %q: use "connection" (hash source address and port: each connection may go to another backend) or "source" (hash the source address: a client sticks to one backend).`, mode)
		b.Mode = defaultBalanceMode
	}
	b.Seed = d.seed(rb.Seed)
	b.PanicRouting = d.boolean(rb.PanicRouting, "balance.panic_routing", true)
	b.Slots, ok = d.intIn(rb.Slots, "balance.slots", defaultSlots, minSlots, maxSlots, "the size of the slot map")
	if ok && !isPrime(b.Slots) {
		below, above := primesAround(b.Slots)
		if below < minSlots {
			below = above
		}
		d.errf(rb.Slots.Expr.Range(), "Slot count not prime", "balance.slots = %d is not prime; the Maglev slot fill needs a prime number of slots: use %d or %d (default %d).", b.Slots, below, above, defaultSlots)
		b.Slots = defaultSlots
	}
}

// seed decodes the hash seed: a number, or a string such as "0x5eed".
func (d *decoder) seed(a *hcl.Attribute) uint32 {
	if a == nil {
		return defaultSeed
	}
	v, ok := d.eval(a, "balance.seed")
	if !ok {
		return defaultSeed
	}
	var text string
	switch v.Type() {
	case cty.Number:
		bf := v.AsBigFloat()
		n, acc := bf.Uint64()
		if !bf.IsInt() || acc != big.Exact || n > math.MaxUint32 {
			d.errf(a.Expr.Range(), "Invalid balance seed", "balance.seed = %s must be a whole number from 0 to 4294967295, in decimal or as a string like \"0x5eed\"; every peer must use the same seed.", numText(bf))
			return defaultSeed
		}
		return uint32(n)
	case cty.String:
		text = v.AsString()
	default:
		d.wrongType(a.Expr.Range(), "balance.seed", v, "a number or a string such as \"0x5eed\"", "24301")
		return defaultSeed
	}
	n, err := strconv.ParseUint(text, 0, 32)
	if err != nil {
		d.errf(a.Expr.Range(), "Invalid balance seed", "balance.seed = %s must be a whole number from 0 to 4294967295, in decimal or as a string like \"0x5eed\"; every peer must use the same seed.", text)
		return defaultSeed
	}
	return uint32(n)
}

// Bounds of the conntrack block: more than 16 million concurrent flows,
// or a million new a second, is a typo, not a cluster.
const (
	maxExpectedFlows     = 1 << 24
	maxNewFlowsPerSecond = 1 << 20
)

func (d *decoder) decodeConntrack(raw *rawConfig, c *Config) {
	rc := raw.Conntrack
	if rc == nil {
		rc = &rawConntrack{}
	}
	c.Conntrack.ExpectedFlows, _ = d.intIn(rc.ExpectedFlows, "conntrack.expected_flows", 0, 0, maxExpectedFlows, "the concurrent flows through the VIP (0: the preflight's default)")
	c.Conntrack.NewFlowsPerSecond, _ = d.intIn(rc.NewFlowsPerSecond, "conntrack.new_flows_per_second", 0, 0, maxNewFlowsPerSecond, "the peak of new (and as many closed) flows a second (0: not counted)")
}
