package netlab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/epconsole/epconsole/internal/pki"
	"github.com/epconsole/epconsole/internal/standin"
)

// StandinOpts starts a stand-in apiserver on a host.
type StandinOpts struct {
	// Name is reported in X-Standin-Backend and /whoami (default: the host
	// name); it also names the certificate files and the control socket.
	Name string
	// Port is listened on at every address of the host (default 6443).
	Port int
	// CertFile and KeyFile, when set, are served as they are. Otherwise a
	// certificate is issued from the lab CA with Cert's SANs (default
	// Lab.ServerCertOptions: the host's addresses, both VIPs, the DNS name)
	// and written as <dir>/certs/<Name>.crt/.key.
	CertFile, KeyFile string
	Cert              *pki.LeafOptions
	// ClientCAFile verifies client certificates when offered (default: the
	// lab CA).
	ClientCAFile string
	// Behavior is the initial behaviour (zero: healthy).
	Behavior standin.Behavior
	// GitVersion is reported by /version (default v1.31.0).
	GitVersion string
}

// standinArgs are the child's arguments.
type standinArgs struct {
	Name          string           `json:"name"`
	Addr          string           `json:"addr"`
	CertFile      string           `json:"cert_file"`
	KeyFile       string           `json:"key_file"`
	ClientCAFile  string           `json:"client_ca_file"`
	ControlSocket string           `json:"control_socket"`
	GitVersion    string           `json:"git_version"`
	Behavior      standin.Behavior `json:"behavior"`
}

// Standin is a stand-in apiserver running as its own process in a host.
type Standin struct {
	// Name is the backend name it reports.
	Name string
	// Host is where it runs.
	Host *Host
	// Addr4 and Addr6 are where it answers (the host's addresses and Port).
	Addr4, Addr6 netip.AddrPort
	// CertFile and KeyFile are the files it serves (re-read on Reload).
	CertFile, KeyFile string
	// ControlSocket is the unix socket of its control API (reachable from
	// any namespace: the socket lives in the file system).
	ControlSocket string

	p   *proc
	ctl *http.Client
}

// StartStandin starts a stand-in apiserver process in the host and waits
// until it listens. ctx bounds the start only (15 s when it has no
// deadline); the process runs until Stop, Kill or Lab.Close.
func (h *Host) StartStandin(ctx context.Context, o StandinOpts) (*Standin, error) {
	l := h.lab
	if o.Name == "" {
		o.Name = h.name
	}
	if !hostNameRE.MatchString(o.Name) || o.Name == "ca" {
		return nil, fmt.Errorf("stand-in name %q: want a host-like name other than ca", o.Name)
	}
	if o.Port == 0 {
		o.Port = 6443
	}
	if o.Port < 1 || o.Port > 65535 {
		return nil, fmt.Errorf("stand-in port %d out of range", o.Port)
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("stand-in: give both CertFile and KeyFile, or neither")
	}
	if o.CertFile == "" {
		co := l.ServerCertOptions(h)
		if o.Cert != nil {
			co = *o.Cert
		}
		var err error
		if o.CertFile, o.KeyFile, err = l.IssueCert(o.Name, co); err != nil {
			return nil, fmt.Errorf("issuing stand-in certificate: %w", err)
		}
	}
	if o.ClientCAFile == "" {
		o.ClientCAFile = l.caFile
	}
	sock := filepath.Join(l.dir, "sock", o.Name+".sock")
	args := standinArgs{
		Name: o.Name, Addr: ":" + strconv.Itoa(o.Port),
		CertFile: o.CertFile, KeyFile: o.KeyFile, ClientCAFile: o.ClientCAFile,
		ControlSocket: sock, GitVersion: o.GitVersion, Behavior: o.Behavior,
	}
	p, err := h.startChild(roleStandin, args)
	if err != nil {
		return nil, err
	}
	sctx, cancel := startCtx(ctx)
	defer cancel()
	if _, err := p.waitEvent(sctx, evReady); err != nil {
		_ = p.kill()
		return nil, err
	}
	return &Standin{
		Name:          o.Name,
		Host:          h,
		Addr4:         netip.AddrPortFrom(h.addr4, uint16(o.Port)),
		Addr6:         netip.AddrPortFrom(h.addr6, uint16(o.Port)),
		CertFile:      o.CertFile,
		KeyFile:       o.KeyFile,
		ControlSocket: sock,
		p:             p,
		ctl: &http.Client{
			Timeout: 5 * time.Second,
			Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}},
		},
	}, nil
}

// SetBehavior changes how the stand-in answers from its next request on.
func (s *Standin) SetBehavior(ctx context.Context, b standin.Behavior) error {
	body, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encoding behavior: %w", err)
	}
	_, err = s.control(ctx, http.MethodPut, "/behavior", body)
	return err
}

// Behavior returns the stand-in's current behaviour.
func (s *Standin) Behavior(ctx context.Context) (standin.Behavior, error) {
	var b standin.Behavior
	body, err := s.control(ctx, http.MethodGet, "/behavior", nil)
	if err != nil {
		return b, err
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return b, fmt.Errorf("decoding behavior: %w", err)
	}
	return b, nil
}

// Reload makes the stand-in re-read CertFile and KeyFile (after
// Lab.IssueCert with its Name).
func (s *Standin) Reload(ctx context.Context) error {
	_, err := s.control(ctx, http.MethodPost, "/reload", nil)
	return err
}

func (s *Standin) control(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://standin"+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := s.ctl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("stand-in %s control %s %s: %w", s.Name, method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("stand-in %s control %s %s: %w", s.Name, method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("stand-in %s control %s %s: %s: %s", s.Name, method, path, resp.Status, bytes.TrimSpace(out))
	}
	return out, nil
}

// Stop shuts the stand-in down gracefully (SIGTERM), killing it when ctx
// ends first or after 5 s, and waits until it has exited.
func (s *Standin) Stop(ctx context.Context) error { return s.p.stop(ctx) }

// Kill kills the stand-in at once (a crashed apiserver) and waits until it
// has exited.
func (s *Standin) Kill() error { return s.p.kill() }

// Done is closed once the process has exited.
func (s *Standin) Done() <-chan struct{} { return s.p.done }

// Pid returns the process id.
func (s *Standin) Pid() int { return s.p.cmd.Process.Pid }

// apiserverKeepAlive is kube-apiserver's TCP keep-alive period on its
// serving listener.
const apiserverKeepAlive = 3 * time.Minute

// runStandin is the child side: serve until SIGTERM.
func runStandin(ctx context.Context, a standinArgs, out *eventWriter, log *slog.Logger) error {
	srv, err := standin.New(standin.Config{Name: a.Name, CertFile: a.CertFile, KeyFile: a.KeyFile, ClientCAFile: a.ClientCAFile, GitVersion: a.GitVersion})
	if err != nil {
		return err
	}
	srv.SetBehavior(a.Behavior)
	// TCP keep-alive as kube-apiserver sets it on its listener (3
	// minutes); Go's default, 15 s, made 50,000 idle held connections
	// send 3,300 probes a second more than the real thing would.
	lc := net.ListenConfig{KeepAlive: apiserverKeepAlive}
	ln, err := lc.Listen(ctx, "tcp", a.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", a.Addr, err)
	}
	_ = os.Remove(a.ControlSocket)
	cln, err := net.Listen("unix", a.ControlSocket)
	if err != nil {
		ln.Close()
		return fmt.Errorf("listening on %s: %w", a.ControlSocket, err)
	}
	defer os.Remove(a.ControlSocket)
	if err := os.Chmod(a.ControlSocket, 0o600); err != nil {
		return fmt.Errorf("chmod control socket: %w", err)
	}
	ctl := &http.Server{Handler: srv.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ctl.Serve(cln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = ctl.Shutdown(sctx)
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln) }()
	log.Info("stand-in serving", "name", a.Name, "addr", ln.Addr().String(), "control", a.ControlSocket)
	if err := out.emit(evReady, map[string]string{"addr": ln.Addr().String()}); err != nil {
		return err
	}
	return <-errc
}
