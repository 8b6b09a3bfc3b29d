package netlab

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Bounds of the load roles, so no loop runs away.
const (
	maxCount       = 1_000_000
	maxConcurrency = 64
	maxDuration    = 10 * time.Minute
	maxErrors      = 20
)

// ClientOpts is a one-shot load of fresh TLS connections, one HTTP/1.1 GET
// per connection (no keep-alive, no session resumption).
type ClientOpts struct {
	// Target is where to connect (inside the lab's ranges or 127.0.0.0/8).
	Target netip.AddrPort `json:"target"`
	// ServerName is sent as SNI and verified; default: the target address,
	// checked against the certificate's IP SANs.
	ServerName string `json:"server_name,omitempty"`
	// CAFile verifies the server (default: the lab CA).
	CAFile string `json:"ca_file,omitempty"`
	// CertFile and KeyFile, when set, are offered as a client certificate.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// Path is requested (default /whoami).
	Path string `json:"path,omitempty"`
	// Count is the number of connections (default 1, at most 1,000,000).
	Count int `json:"count"`
	// Interval paces connection starts; zero is back to back.
	Interval time.Duration `json:"interval,omitempty"`
	// Concurrency is the number of connections in flight (default 1, at most 64).
	Concurrency int `json:"concurrency,omitempty"`
	// RequestTimeout bounds each connection (default 2 s).
	RequestTimeout time.Duration `json:"request_timeout,omitempty"`
	// Timeout bounds the whole run (default 30 s, at most 10 min); no
	// connection starts after it.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// ClientResult summarises a client run.
type ClientResult struct {
	// Attempts = OK + Failed. A request is OK when it got an HTTP 200.
	Attempts int `json:"attempts"`
	OK       int `json:"ok"`
	Failed   int `json:"failed"`
	// Backends counts OK answers by backend name (X-Standin-Backend, or the
	// /whoami body).
	Backends map[string]int `json:"backends"`
	// Errors holds the first failures.
	Errors []TimedError `json:"errors,omitempty"`
	// Latency is over OK requests, from dial to the end of the body.
	Latency Latency `json:"latency"`
	// Elapsed is the run's duration.
	Elapsed time.Duration `json:"elapsed"`
	// Incomplete says fewer than Count connections started (Timeout reached
	// or Stop).
	Incomplete bool `json:"incomplete,omitempty"`
}

// TimedError is a failure and when it happened (since the run's start).
type TimedError struct {
	At  time.Duration `json:"at"`
	Err string        `json:"err"`
}

// Latency summarises durations.
type Latency struct {
	Min    time.Duration `json:"min"`
	Median time.Duration `json:"median"`
	P99    time.Duration `json:"p99"`
	Max    time.Duration `json:"max"`
}

func (o *ClientOpts) defaults(l *Lab) error {
	if o.CAFile == "" && l != nil {
		o.CAFile = l.caFile
	}
	if o.Path == "" {
		o.Path = "/whoami"
	}
	if o.Count == 0 {
		o.Count = 1
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 2 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	switch {
	case o.Count < 1 || o.Count > maxCount:
		return fmt.Errorf("client count %d: want 1 to %d", o.Count, maxCount)
	case o.Concurrency < 1 || o.Concurrency > maxConcurrency:
		return fmt.Errorf("client concurrency %d: want 1 to %d", o.Concurrency, maxConcurrency)
	case o.Timeout < 0 || o.Timeout > maxDuration || o.RequestTimeout < 0 || o.RequestTimeout > maxDuration || o.Interval < 0:
		return fmt.Errorf("client timeouts %v/%v/%v out of range", o.Interval, o.RequestTimeout, o.Timeout)
	case !strings.HasPrefix(o.Path, "/") || strings.ContainsAny(o.Path, " \r\n"):
		return fmt.Errorf("client path %q: want an absolute path", o.Path)
	}
	return checkTarget(o.Target)
}

// StartClient starts a client load in the host and returns once its first
// connection has finished (ctx bounds that wait, 15 s without a deadline).
func (h *Host) StartClient(ctx context.Context, o ClientOpts) (*Job[ClientResult], error) {
	if err := o.defaults(h.lab); err != nil {
		return nil, err
	}
	return startJob[ClientResult](ctx, h, roleClient, o)
}

// RunClient runs a client load in the host and returns its summary. ctx
// bounds the run (the child is killed when it ends).
func (h *Host) RunClient(ctx context.Context, o ClientOpts) (ClientResult, error) {
	j, err := h.StartClient(ctx, o)
	if err != nil {
		return ClientResult{}, err
	}
	return j.Wait(ctx)
}

// tlsTarget is what the TLS roles need to connect and verify.
type tlsTarget struct {
	target            netip.AddrPort
	serverName        string
	caFile            string
	certFile, keyFile string
}

func (t tlsTarget) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.serverName, NextProtos: []string{"http/1.1"}}
	if cfg.ServerName == "" {
		cfg.ServerName = t.target.Addr().String()
	}
	if t.caFile != "" {
		pem, err := os.ReadFile(t.caFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no certificate", t.caFile)
		}
	}
	if t.certFile != "" {
		c, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// hostHeader is the Host header for a request to the target.
func (t tlsTarget) hostHeader() string {
	if t.serverName != "" {
		return t.serverName
	}
	return t.target.String()
}

// get makes one fresh TLS connection, sends one GET and reads the answer.
func get(ctx context.Context, t tlsTarget, cfg *tls.Config, path string) (backend string, err error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", t.target.String())
	if err != nil {
		return "", err
	}
	conn := tls.Client(raw, cfg)
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if err := conn.HandshakeContext(ctx); err != nil {
		return "", fmt.Errorf("tls handshake: %w", err)
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: netlab\r\nConnection: close\r\n\r\n", path, t.hostHeader()); err != nil {
		return "", fmt.Errorf("writing request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", fmt.Errorf("reading response: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return "", fmt.Errorf("reading body: %w", err)
	}
	backend = resp.Header.Get("X-Standin-Backend")
	if backend == "" && path == "/whoami" {
		backend = strings.TrimSpace(string(body))
	}
	if resp.StatusCode != http.StatusOK {
		first, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
		return backend, fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, backend, first)
	}
	return backend, nil
}

// runClient is the child side of the client role.
func runClient(ctx context.Context, o ClientOpts, out *eventWriter) error {
	if err := o.defaults(nil); err != nil {
		return err
	}
	tt := tlsTarget{target: o.Target, serverName: o.ServerName, caFile: o.CAFile, certFile: o.CertFile, keyFile: o.KeyFile}
	cfg, err := tt.config()
	if err != nil {
		return err
	}
	start := time.Now()
	issue, cancel := context.WithDeadline(ctx, start.Add(o.Timeout))
	defer cancel()

	var (
		mu        sync.Mutex
		res       = ClientResult{Backends: map[string]int{}}
		latencies []time.Duration
		startOnce sync.Once
		wg        sync.WaitGroup
	)
	sem := make(chan struct{}, o.Concurrency)
	started := 0
loop:
	for i := 0; i < o.Count; i++ {
		if o.Interval > 0 {
			if err := sleepUntil(issue, start.Add(time.Duration(i)*o.Interval)); err != nil {
				break
			}
		}
		select {
		case sem <- struct{}{}:
		case <-issue.Done():
			break loop
		}
		if issue.Err() != nil {
			<-sem
			break
		}
		started++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Not ctx: Stop ends the issuing, a started request runs to
			// its own timeout and counts as what it was.
			rctx, rcancel := context.WithTimeout(context.Background(), o.RequestTimeout)
			t0 := time.Now()
			backend, err := get(rctx, tt, cfg, o.Path)
			lat := time.Since(t0)
			rcancel()
			mu.Lock()
			res.Attempts++
			if err != nil {
				res.Failed++
				if len(res.Errors) < maxErrors {
					res.Errors = append(res.Errors, TimedError{At: t0.Sub(start), Err: err.Error()})
				}
			} else {
				res.OK++
				res.Backends[backend]++
				latencies = append(latencies, lat)
			}
			mu.Unlock()
			startOnce.Do(func() { _ = out.emit(evStarted, struct{}{}) })
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Incomplete = started < o.Count
	res.Latency = summarize(latencies)
	return out.emit(evResult, res)
}

// sleepUntil waits until t or ctx's end.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// summarize returns min, median, p99 and max of ds.
func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return Latency{
		Min:    s[0],
		Median: s[len(s)/2],
		P99:    s[(len(s)*99)/100],
		Max:    s[len(s)-1],
	}
}
