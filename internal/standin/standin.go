// Package standin is a stand-in kube-apiserver for tests and the lab: a
// real TLS server with a real certificate that answers /readyz, /livez,
// /healthz (with ?verbose) and /version as kube-apiserver does, and whose
// behaviour (unready, slow, forbidden, another certificate) can be changed
// while it runs. It is a test fixture, not an apiserver.
package standin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Behavior is how the stand-in answers; the zero value is a healthy server.
type Behavior struct {
	// Unready makes /readyz fail with 500; FailingCheck names the failing
	// check in ?verbose output (default "etcd").
	Unready      bool   `json:"unready,omitempty"`
	FailingCheck string `json:"failing_check,omitempty"`
	// Delay is added before every health answer (a slow apiserver).
	Delay time.Duration `json:"delay,omitempty"`
	// AnonymousStatus, when 401 or 403, is returned to requests without a
	// client certificate (anonymous auth disabled or RBAC tightened).
	AnonymousStatus int `json:"anonymous_status,omitempty"`
}

// Config starts a stand-in.
type Config struct {
	// Name identifies the backend in answers (header X-Standin-Backend and
	// the /whoami body), so tests see which backend served a request.
	Name string
	// CertFile and KeyFile are read at start and on Reload.
	CertFile string
	KeyFile  string
	// ClientCAFile, when set, verifies client certificates if offered.
	ClientCAFile string
	// GitVersion is reported by /version (default v1.31.0).
	GitVersion string
}

// Server is a running stand-in apiserver.
type Server struct {
	cfg      Config
	cert     atomic.Pointer[tls.Certificate]
	mu       sync.Mutex
	behavior Behavior
	http     *http.Server
}

// New loads the certificate and prepares the server.
func New(cfg Config) (*Server, error) {
	if cfg.GitVersion == "" {
		cfg.GitVersion = "v1.31.0"
	}
	s := &Server{cfg: cfg}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
		NextProtos: []string{"h2", "http/1.1"},
	}
	if cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s holds no certificate", cfg.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	s.http = &http.Server{Handler: s.handler(), TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Reload re-reads the certificate files (a reissued certificate).
func (s *Server) Reload() error {
	c, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("loading stand-in certificate: %w", err)
	}
	s.cert.Store(&c)
	return nil
}

// SetBehavior changes how the server answers from the next request on.
func (s *Server) SetBehavior(b Behavior) {
	s.mu.Lock()
	s.behavior = b
	s.mu.Unlock()
}

// Behavior returns the current behaviour.
func (s *Server) Behavior() Behavior {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.behavior
}

// Serve serves TLS on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.http.Shutdown(sctx)
	}()
	err := s.http.Serve(tls.NewListener(ln, s.http.TLSConfig))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

var healthChecks = []string{"ping", "log", "etcd", "informer-sync", "poststarthook/start-apiextensions-controllers"}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	health := func(kind string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b := s.Behavior()
			if b.Delay > 0 {
				select {
				case <-time.After(b.Delay):
				case <-r.Context().Done():
					return
				}
			}
			if !s.authorized(w, r, b) {
				return
			}
			failing := ""
			if b.Unready && kind == "readyz" {
				failing = b.FailingCheck
				if failing == "" {
					failing = "etcd"
				}
			}
			_, verbose := r.URL.Query()["verbose"]
			var body strings.Builder
			for _, c := range healthChecks {
				if c == failing {
					fmt.Fprintf(&body, "[-]%s failed: reason withheld\n", c)
				} else if verbose {
					fmt.Fprintf(&body, "[+]%s ok\n", c)
				}
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			if failing != "" {
				// Like kube-apiserver: without ?verbose only failed checks are listed.
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprintf(&body, "%s check failed\n", kind)
				_, _ = w.Write([]byte(body.String()))
				return
			}
			if verbose {
				fmt.Fprintf(&body, "%s check passed\n", kind)
				_, _ = w.Write([]byte(body.String()))
				return
			}
			_, _ = w.Write([]byte("ok"))
		}
	}
	mux.HandleFunc("GET /readyz", health("readyz"))
	mux.HandleFunc("GET /livez", health("livez"))
	mux.HandleFunc("GET /healthz", health("healthz"))
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(w, r, s.Behavior()) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"major": "1", "minor": strings.Split(strings.TrimPrefix(s.cfg.GitVersion, "v1."), ".")[0],
			"gitVersion": s.cfg.GitVersion, "platform": "linux/amd64",
		})
	})
	// /whoami names the backend; /stream?n=N&every=D writes N lines, one
	// every D, for long-lived connection tests (N bounded to 100000).
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(s.cfg.Name + "\n"))
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		every, _ := time.ParseDuration(r.URL.Query().Get("every"))
		if n <= 0 || n > 100000 {
			n = 100
		}
		if every <= 0 {
			every = 100 * time.Millisecond
		}
		fl, _ := w.(http.Flusher)
		t := time.NewTicker(every)
		defer t.Stop()
		for i := 0; i < n; i++ {
			if _, err := fmt.Fprintf(w, "%s %d\n", s.cfg.Name, i); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
			if i == n-1 {
				break // the answer ends with its last line, not one interval later
			}
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Standin-Backend", s.cfg.Name)
		mux.ServeHTTP(w, r)
	})
}

// authorized answers 401/403 for anonymous requests when the behaviour asks for it.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, b Behavior) bool {
	if b.AnonymousStatus == 0 || (r.TLS != nil && len(r.TLS.PeerCertificates) > 0) {
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(b.AnonymousStatus)
	reason := "Unauthorized"
	if b.AnonymousStatus == http.StatusForbidden {
		reason = "Forbidden"
	}
	fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"%s","reason":"%s","code":%d}`+"\n",
		strings.ToLower(reason)+`: User "system:anonymous" cannot get path "`+r.URL.Path+`"`, reason, b.AnonymousStatus)
	return false
}

// ControlHandler lets another process change the stand-in while it runs
// (served on a unix socket by the lab): PUT /behavior with a JSON Behavior,
// GET /behavior, POST /reload re-reads the certificate files.
func (s *Server) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /behavior", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(s.Behavior())
	})
	mux.HandleFunc("PUT /behavior", func(w http.ResponseWriter, r *http.Request) {
		var b Behavior
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&b); err != nil {
			http.Error(w, "bad behavior JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.SetBehavior(b)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Reload(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
