package probes

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Kind is how a backend is probed.
type Kind string

// Probe kinds.
const (
	// KindTCP: a TCP connect.
	KindTCP Kind = "tcp"
	// KindTLS: a TLS handshake whose chain verifies against the cluster CA.
	KindTLS Kind = "tls"
	// KindHTTPS: GET /readyz over verified TLS (anonymous unless a client
	// certificate is configured).
	KindHTTPS Kind = "https"
)

// Target is one backend to probe.
type Target struct {
	Name    string
	Address netip.AddrPort
}

// HealthOptions say how to probe a backend.
type HealthOptions struct {
	// Kind defaults to KindHTTPS.
	Kind Kind
	// Path is the readiness path for KindHTTPS (default "/readyz").
	Path string
	// Timeout bounds one probe: connect, handshake and request (default 2s).
	Timeout time.Duration
	// RootCAs is the cluster CA the presented chain must verify against.
	// Nil skips chain verification (the TLS certificate check still
	// reports the chain). The host name is not checked here: SAN coverage
	// is Certificate's job, and a SAN problem must not withdraw a
	// backend from rotation.
	RootCAs *x509.CertPool
	// ClientCert, if set, is presented to the apiserver (for clusters
	// where anonymous /readyz is forbidden).
	ClientCert *tls.Certificate
}

func (o HealthOptions) withDefaults() HealthOptions {
	if o.Kind == "" {
		o.Kind = KindHTTPS
	}
	if o.Path == "" {
		o.Path = "/readyz"
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	return o
}

// Outcome is what one probe concluded.
type Outcome string

// Outcomes.
const (
	// OutcomePass: the probe passed.
	OutcomePass Outcome = "pass"
	// OutcomeFail: the probe failed (refused, timeout, bad TLS, not ready).
	OutcomeFail Outcome = "fail"
	// OutcomeReadinessUnknown: reachable and TLS fine, but /readyz answered
	// 401 or 403, so readiness is unknown. It never makes a backend rise by
	// itself: the state machine (Step) counts it as a pass only for a
	// backend that answers nothing but 401/403 (judged by its completed
	// TLS handshake then), and as a failure otherwise.
	OutcomeReadinessUnknown Outcome = "readiness-unknown"
)

// Cause says why a probe did not pass: it decides whether a backend out of
// rotation drains (no new flows, established ones kept) or is dead (its
// flows cut).
type Cause string

// Causes.
const (
	// CauseNone: the probe passed.
	CauseNone Cause = ""
	// CauseRefused: the connection was refused or reset (nothing listens,
	// the process died): dead at once.
	CauseRefused Cause = "refused"
	// CauseUnreachable: no route to the backend's host (EHOSTUNREACH,
	// ENETUNREACH): dead at once.
	CauseUnreachable Cause = "unreachable"
	// CauseTimeout: no answer within the probe timeout. Slow is not
	// dead: drains, and is dead only after a sustained failure.
	CauseTimeout Cause = "timeout"
	// CauseTLS: the TLS handshake failed (chain does not verify, alert).
	// Drains, dead after a sustained failure.
	CauseTLS Cause = "tls"
	// CauseUnready: /readyz answered a status other than 200, 401 or 403:
	// alive, drains.
	CauseUnready Cause = "unready"
	// CauseForbidden: /readyz answered 401 or 403 (OutcomeReadinessUnknown).
	CauseForbidden Cause = "forbidden"
	// CauseError: anything else (a broken connection, EOF): drains, dead
	// after a sustained failure.
	CauseError Cause = "error"
)

// Stage is how far a probe got.
type Stage string

// Stages, in order.
const (
	StageConnect Stage = "connect"
	StageTLS     Stage = "tls"
	StageHTTP    Stage = "http"
	StageDone    Stage = "done"
)

// HealthResult is one probe of one backend.
type HealthResult struct {
	Backend string         `json:"backend"`
	Address netip.AddrPort `json:"address"`
	Kind    Kind           `json:"kind"`
	Outcome Outcome        `json:"outcome"`
	// Stage is where the probe stopped (StageDone when it got an answer).
	Stage Stage `json:"stage"`
	// StatusCode is the HTTP status of /readyz (KindHTTPS).
	StatusCode int `json:"http_status,omitempty"`
	// FailingChecks names the readiness checks that failed ("etcd", ...),
	// from /readyz?verbose.
	FailingChecks []string `json:"failing_checks,omitempty"`
	// ClientCert says whether a client certificate was offered.
	ClientCert bool `json:"client_cert"`
	// CertSHA256 is the hex SHA-256 of the certificate the backend
	// presented (kinds tls and https, once the handshake completed): a
	// change means the backend's certificate was reissued, and its SANs
	// and expiry are worth checking again now.
	CertSHA256 string `json:"-"`
	// Cause classifies a failure (CauseNone when the probe passed).
	Cause Cause `json:"cause,omitempty"`
	// Error is why the probe failed, if it did.
	Error   string        `json:"error,omitempty"`
	Latency time.Duration `json:"-"`
	// LatencyMS is Latency in milliseconds (for JSON).
	LatencyMS float64   `json:"latency_ms"`
	Time      time.Time `json:"time"`
	// Deadline is when the probe's timeout was due (Time + the timeout);
	// Observed is when the probe's result was in hand. Observed later than
	// Deadline means this process ran late: its timer or goroutine was
	// not scheduled in time.
	Deadline time.Time `json:"-"`
	Observed time.Time `json:"-"`
	// StartLateness is how late the probe started against its schedule
	// (set by the Monitor); TimerLateness how long after its deadline a
	// timed-out probe's result was observed. Lateness is the larger:
	// this LB's own scheduling delay, not the backend's.
	StartLateness time.Duration `json:"-"`
	TimerLateness time.Duration `json:"-"`
	// LatenessMS is Lateness() in milliseconds (for JSON).
	LatenessMS float64 `json:"lateness_ms,omitempty"`
	// Discounted marks a timed-out probe that ran too late to judge the
	// backend by: it was re-probed and not counted (see Discount).
	Discounted bool `json:"discounted,omitempty"`
}

// Lateness is how late this process was with the probe: the larger of
// its start lateness and its timer lateness.
func (r HealthResult) Lateness() time.Duration { return max(r.StartLateness, r.TimerLateness, 0) }

// Healthy reports whether the result is a pass on its own: passed, or
// readiness unknown (401/403) with a completed TLS handshake. The state
// machine (Step) is stricter with 401/403: see OutcomeReadinessUnknown.
func (r HealthResult) Healthy() bool {
	return r.Outcome == OutcomePass || r.Outcome == OutcomeReadinessUnknown
}

// Probe probes one backend once. It never returns an error: a failure is
// an OutcomeFail result saying why.
func Probe(ctx context.Context, t Target, o HealthOptions) HealthResult {
	o = o.withDefaults()
	start := time.Now()
	r := HealthResult{Backend: t.Name, Address: t.Address, Kind: o.Kind, Time: start, ClientCert: o.ClientCert != nil}
	r.Deadline = start.Add(o.Timeout)
	ctx, cancel := context.WithDeadline(ctx, r.Deadline)
	defer cancel()

	switch o.Kind {
	case KindTCP:
		r.Stage = StageConnect
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", t.Address.String())
		if err != nil {
			r.fail(err)
			break
		}
		c.Close()
		r.Stage, r.Outcome = StageDone, OutcomePass
	case KindTLS:
		r.Stage = StageConnect
		var d net.Dialer
		raw, err := d.DialContext(ctx, "tcp", t.Address.String())
		if err != nil {
			r.fail(err)
			break
		}
		r.Stage = StageTLS
		c := tls.Client(raw, clientTLS(o))
		err = c.HandshakeContext(ctx)
		r.CertSHA256 = leafSHA256(c.ConnectionState().PeerCertificates)
		c.Close()
		if err != nil {
			r.fail(err)
			break
		}
		r.Stage, r.Outcome = StageDone, OutcomePass
	case KindHTTPS:
		probeHTTPS(ctx, t, o, &r)
	default:
		r.Stage = StageConnect
		r.fail(fmt.Errorf("unknown probe kind %q", o.Kind))
		r.Cause = CauseError
	}
	r.Observed = time.Now()
	r.Latency = r.Observed.Sub(start)
	r.LatencyMS = float64(r.Latency.Microseconds()) / 1000
	if r.Cause == CauseTimeout {
		r.TimerLateness = max(r.Observed.Sub(r.Deadline), 0)
	}
	r.LatenessMS = float64(r.Lateness().Microseconds()) / 1000
	return r
}

func (r *HealthResult) fail(err error) {
	r.Outcome = OutcomeFail
	r.Error = err.Error()
	r.Cause = Classify(err, r.Stage)
}

// Classify says what a probe error means for the backend: refused (or
// reset), unreachable, timeout, TLS, or another error.
func Classify(err error, stage Stage) Cause {
	var ne net.Error
	switch {
	case err == nil:
		return CauseNone
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return CauseTimeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return CauseRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTDOWN), errors.Is(err, syscall.ENETDOWN):
		return CauseUnreachable
	}
	// Errors that lost their type on the way (http.Client wraps some as
	// text only).
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "connection reset"):
		return CauseRefused
	case strings.Contains(msg, "no route to host"), strings.Contains(msg, "network is unreachable"),
		strings.Contains(msg, "host is down"):
		return CauseUnreachable
	case strings.Contains(msg, "deadline exceeded"), strings.Contains(msg, "Client.Timeout"), strings.Contains(msg, "i/o timeout"):
		return CauseTimeout
	case stage == StageTLS:
		return CauseTLS
	}
	return CauseError
}

// clientTLS verifies the chain against the cluster CA but not the host
// name (see HealthOptions.RootCAs).
func clientTLS(o HealthOptions) *tls.Config {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // the chain is verified in VerifyConnection, the host name deliberately not
		VerifyConnection: func(cs tls.ConnectionState) error {
			if o.RootCAs == nil {
				return nil
			}
			return verifyChain(cs.PeerCertificates, o.RootCAs)
		},
	}
	if o.ClientCert != nil {
		cert := *o.ClientCert
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return c
}

// leafSHA256 is the hex SHA-256 of chain[0]'s DER ("" without one).
func leafSHA256(chain []*x509.Certificate) string {
	if len(chain) == 0 {
		return ""
	}
	sum := sha256.Sum256(chain[0].Raw)
	return hex.EncodeToString(sum[:])
}

// verifyChain checks that chain[0] verifies to roots through chain[1:].
func verifyChain(chain []*x509.Certificate, roots *x509.CertPool) error {
	if len(chain) == 0 {
		return errors.New("server presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("certificate chain does not verify against the cluster CA: %w", err)
	}
	return nil
}

func probeHTTPS(ctx context.Context, t Target, o HealthOptions, r *HealthResult) {
	tr := &http.Transport{
		TLSClientConfig:   clientTLS(o),
		DisableKeepAlives: true, // every probe is a fresh connection, like HAProxy's
		Proxy:             nil,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	// Track how far we got, so a failure says connect, tls or http. The
	// trace hooks run on the transport's dialing goroutine.
	var reached atomic.Int32
	var fp atomic.Value // the leaf's fingerprint, set by the handshake hook
	trace := &httptrace.ClientTrace{
		ConnectDone: func(_, _ string, err error) {
			if err == nil {
				reached.CompareAndSwap(0, 1)
			}
		},
		TLSHandshakeDone: func(cs tls.ConnectionState, err error) {
			if err == nil {
				reached.Store(2)
				fp.Store(leafSHA256(cs.PeerCertificates))
			}
		},
	}
	defer func() {
		if v, ok := fp.Load().(string); ok {
			r.CertSHA256 = v
		}
	}()
	url := "https://" + t.Address.String() + o.Path
	status, body, err := get(httptrace.WithClientTrace(ctx, trace), client, url)
	if err != nil {
		r.Stage = []Stage{StageConnect, StageTLS, StageHTTP}[reached.Load()]
		r.fail(err)
		return
	}
	r.Stage = StageDone
	r.StatusCode = status
	switch {
	case status == http.StatusOK:
		r.Outcome = OutcomePass
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		r.Outcome, r.Cause = OutcomeReadinessUnknown, CauseForbidden
		r.Error = fmt.Sprintf("%s answered %d %s to the probe", o.Path, status, http.StatusText(status))
	default:
		r.Outcome, r.Cause = OutcomeFail, CauseUnready
		r.Error = fmt.Sprintf("%s answered %d %s", o.Path, status, http.StatusText(status))
		r.FailingChecks = failingChecks(body)
		// Without ?verbose an apiserver lists only failed checks, and not
		// always; ask again verbosely for the names (own time budget).
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.Timeout)
		defer cancel()
		if _, vbody, err := get(vctx, client, url+verboseSuffix(o.Path)); err == nil {
			if fc := failingChecks(vbody); len(fc) > 0 {
				r.FailingChecks = fc
			}
		}
	}
}

func verboseSuffix(path string) string {
	if strings.Contains(path, "?") {
		return "&verbose"
	}
	return "?verbose"
}

func get(ctx context.Context, c *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("building request: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("reading %s: %w", url, err)
	}
	return resp.StatusCode, body, nil
}

// failingChecks parses kube-apiserver's health output: lines like
// "[-]etcd failed: reason withheld".
func failingChecks(body []byte) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "[-]")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, " ")
		if name != "" {
			out = append(out, name)
		}
	}
	return out
}

// FetchChain makes a TLS handshake with addr, without verifying anything,
// and returns the certificates the server presented (leaf first).
func FetchChain(ctx context.Context, addr netip.AddrPort, timeout time.Duration) ([]*x509.Certificate, error) {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // we only read the chain; Certificate verifies it
	}}
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates, nil
}

// JudgeBackends turns one round of probe results into findings: a failed
// backend is a WARNING (the endpoint still serves through the others), a
// backend whose readiness is unknown (401/403) a WARNING saying that it is
// judged by its TLS handshake and what credential is missing, and no
// serving backend at all CRITICAL. It is a pure function.
func JudgeBackends(rs []HealthResult) []Finding {
	var fs []Finding
	serving := 0
	for _, r := range rs {
		f := Finding{Check: CheckBackends, Subject: r.Backend, Severity: Warning, Detail: r.Error}
		switch r.Outcome {
		case OutcomePass:
			serving++
			continue
		case OutcomeReadinessUnknown:
			serving++
			f.Code = "readiness-unknown"
			f.Message = fmt.Sprintf("readiness unknown: /readyz answered %d; while it answers nothing else, the LB judges it by its TLS handshake "+
				"(which says nothing about readiness, and a starting apiserver's 403 does not count)", r.StatusCode)
			f.Detail = ""
			f.Fixes = readinessFixes(r)
		default:
			f.Code, f.Message, f.Fixes = downFinding(r)
		}
		fs = append(fs, f)
	}
	if len(rs) > 0 && serving == 0 {
		fs = append(fs, Finding{Check: CheckBackends, Severity: Critical, Code: "no-backend",
			Message: fmt.Sprintf("none of the %d backends passes its probe: the endpoint serves nothing, unless panic routing forwards to them unprobed (balance.panic_routing)", len(rs))})
	}
	return fs
}

func readinessFixes(r HealthResult) []Fix {
	if !r.ClientCert {
		return []Fix{{Text: "anonymous /readyz is not allowed here: set health.client_cert_file and health.client_key_file in config.hcl " +
			"to a client certificate signed by the cluster CA (any authenticated user may GET /readyz under the default system:public-info-viewer role)"}}
	}
	if r.StatusCode == http.StatusUnauthorized {
		return []Fix{{Text: "the apiserver rejects the probe's client certificate: issue health.client_cert_file from the CA in the apiserver's --client-ca-file"}}
	}
	return []Fix{{Text: "RBAC denies the probe's user: kubectl create clusterrolebinding epconsole-probe --clusterrole=system:public-info-viewer --user=<the certificate's CN>"}}
}

func downFinding(r HealthResult) (code, msg string, fixes []Fix) {
	node := r.Backend
	running := []Fix{
		{Setup: SetupKubeadm, Text: fmt.Sprintf("on %s: crictl ps -a --name kube-apiserver; crictl logs <id>", node)},
		{Setup: SetupMicrok8s, Text: fmt.Sprintf("on %s: sudo microk8s status; journalctl -u snap.microk8s.daemon-kubelite", node)},
	}
	switch {
	case r.Stage == StageConnect && strings.Contains(r.Error, "refused"):
		return "backend-refused", fmt.Sprintf("down: nothing listens on %s", r.Address), running
	case r.Stage == StageConnect:
		return "backend-unreachable", fmt.Sprintf("down: no TCP connection to %s", r.Address),
			append([]Fix{{Text: fmt.Sprintf("check that %s is up and reachable from this node on port %d", node, r.Address.Port())}}, running...)
	case r.Stage == StageTLS:
		return "backend-tls", "down: TLS handshake failed",
			[]Fix{{Text: "the certificate does not verify against tls.ca_file or the handshake broke; epconsole check tls says which"}}
	case r.StatusCode != 0 && len(r.FailingChecks) > 0:
		return "backend-unready", fmt.Sprintf("down: /readyz answered %d, failing: %s", r.StatusCode, strings.Join(r.FailingChecks, ", ")),
			append([]Fix{{Text: fmt.Sprintf("see why: kubectl get --raw '/readyz?verbose' --server https://%s; a failing etcd check points at etcd (epconsole check etcd)", r.Address)}}, running...)
	case r.StatusCode != 0:
		return "backend-unready", fmt.Sprintf("down: /readyz answered %d", r.StatusCode), running
	case strings.Contains(r.Error, "deadline") || strings.Contains(r.Error, "timeout") || strings.Contains(r.Error, "Timeout"):
		return "backend-timeout", "down: no answer within the probe timeout (health.timeout)",
			append([]Fix{{Text: fmt.Sprintf("%s is overloaded or hung; if it is merely slow, raise health.timeout (below health.interval)", node)}}, running...)
	default:
		return "backend-error", "down: the probe failed", running
	}
}
