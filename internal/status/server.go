package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Defaults of ServerOptions.
const (
	DefaultKeepAlive       = 15 * time.Second
	DefaultCoalesce        = 100 * time.Millisecond
	DefaultShutdownTimeout = 2 * time.Second
)

// writeTimeout bounds each write to a client, so a stuck reader cannot
// hold a stream forever.
const writeTimeout = 10 * time.Second

// Actions are the operator's actions the daemon carries out. Each returns
// an error whose text the operator reads as is; NotFoundf and Conflictf
// choose 404 and 409, any other error is a 500.
type Actions interface {
	// Drain stops new connections to backend; existing ones stay.
	Drain(ctx context.Context, backend string) error
	// Undrain lets backend take new connections again.
	Undrain(ctx context.Context, backend string) error
	// Handoff hands the VIP to the named peer gracefully.
	Handoff(ctx context.Context, peer string) error
}

// ServerOptions configure NewServer.
type ServerOptions struct {
	// Socket is the unix socket path (config status.socket).
	Socket string
	// Source supplies the snapshots.
	Source Provider
	// Actions carries out drain, undrain and handoff; nil answers 501.
	Actions Actions
	// History serves the event history (GET /v1/events); nil answers 501.
	History History
	// SocketGroup (status.socket_group) is a group name or numeric gid
	// whose members may read: the socket is then 0660 with this group.
	// OperatorGroup (status.operator_group) may read and also drain,
	// undrain and hand off. Empty: root and the daemon's user only. A
	// group this host does not know is logged and left out.
	SocketGroup, OperatorGroup string
	// Logger logs refused connections, actions and errors (nil: discard).
	Logger *slog.Logger
	// KeepAlive is the interval of stream keep-alive comments
	// (DefaultKeepAlive when zero).
	KeepAlive time.Duration
	// Coalesce is the least time between two stream events; changes in
	// between are merged into one (DefaultCoalesce when zero).
	Coalesce time.Duration
	// ShutdownTimeout bounds the graceful stop (DefaultShutdownTimeout
	// when zero).
	ShutdownTimeout time.Duration
}

// Server serves the status API over HTTP on a unix socket to root, the
// daemon's own user and the members of the configured groups, each by its
// Role.
type Server struct {
	opts     ServerOptions
	log      *slog.Logger
	ln       net.Listener
	sockInfo os.FileInfo
	http     *http.Server
	access   access

	stopping  chan struct{} // closed when the server begins to stop
	closeOnce sync.Once
}

// NewServer listens on opts.Socket: it creates the directory, removes a
// stale socket of a crashed daemon, refuses one a live daemon answers on
// ("another epconsole daemon is serving SOCKET") and makes the socket mode
// 0600 (0660 with SocketGroup, or else OperatorGroup, as its group). Call
// Serve to answer requests.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Source == nil {
		return nil, errors.New("status server: no snapshot source")
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = DefaultKeepAlive
	}
	if opts.Coalesce <= 0 {
		opts.Coalesce = DefaultCoalesce
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	acc := access{daemonUID: os.Geteuid(), socketGroup: opts.SocketGroup, operatorGroup: opts.OperatorGroup}
	var err error
	if acc.socketGID, err = lookupGroup(opts.SocketGroup); err != nil {
		log.Error("status.socket_group left out: only root and the operator group may use the socket", "err", err)
	}
	if acc.operatorGID, err = lookupGroup(opts.OperatorGroup); err != nil {
		log.Error("status.operator_group left out: only root may drain, undrain and hand off", "err", err)
	}
	sockGID := acc.socketGID
	if sockGID == noGroup {
		sockGID = acc.operatorGID
	}
	ln, fi, err := listenUnix(opts.Socket, sockGID)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:     opts,
		log:      log.With("socket", opts.Socket),
		ln:       ln,
		sockInfo: fi,
		access:   acc,
		stopping: make(chan struct{}),
	}
	s.http = &http.Server{
		Handler:           s.guard(s.routes()),
		ConnContext:       withPeer,
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// Shutdown closes the listener first, then tells the streams, so a
	// client that reconnects at once finds nothing to reconnect to.
	s.http.RegisterOnShutdown(s.beginStop)
	return s, nil
}

// Socket returns the socket path.
func (s *Server) Socket() string { return s.opts.Socket }

// Serve answers requests until ctx ends, then stops gracefully: streams
// get a final "stopping" event (clients reconnect), requests in flight
// finish within ShutdownTimeout, and the socket file is removed. It
// returns nil after a clean stop.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	select {
	case err := <-errc:
		s.Close()
		if errors.Is(err, http.ErrServerClosed) {
			return nil // Close was called
		}
		return fmt.Errorf("status server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	err := s.http.Shutdown(sctx)
	if err != nil {
		s.http.Close()
	}
	<-errc
	removeIfSame(s.opts.Socket, s.sockInfo)
	if err != nil {
		return fmt.Errorf("status server: stopping: %w", err)
	}
	return nil
}

// Close stops at once without the graceful steps and removes the socket.
// It is for a server whose Serve never ran, or to cut a graceful stop
// short; it is safe to call more than once.
func (s *Server) Close() error {
	s.beginStop()
	err := s.http.Close()
	s.ln.Close()
	removeIfSame(s.opts.Socket, s.sockInfo)
	return err
}

func (s *Server) beginStop() {
	s.closeOnce.Do(func() { close(s.stopping) })
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /v1/status", s.handleStatus)
	mux.HandleFunc("GET /v1/stream", s.handleStream)
	mux.HandleFunc("GET /v1/events", s.handleEvents)
	mux.HandleFunc("GET /v1/events/stream", s.handleEventStream)
	mux.HandleFunc("POST /v1/drain/{backend}", s.action("drain", "backend", Actions.Drain))
	mux.HandleFunc("POST /v1/undrain/{backend}", s.action("undrain", "backend", Actions.Undrain))
	mux.HandleFunc("POST /v1/handoff/{peer}", s.action("handoff", "peer", Actions.Handoff))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethod(r.URL.Path); allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, allow))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s (see docs/status.md)", r.Method, r.URL.Path))
	})
	return mux
}

// allowedMethod returns the method an endpoint takes ("" if there is no
// such endpoint).
func allowedMethod(path string) string {
	switch path {
	case "/healthz", "/v1/status", "/v1/stream", "/v1/events", "/v1/events/stream":
		return http.MethodGet
	}
	for _, p := range []string{"/v1/drain/", "/v1/undrain/", "/v1/handoff/"} {
		if rest, ok := strings.CutPrefix(path, p); ok && rest != "" && !strings.Contains(rest, "/") {
			return http.MethodPost
		}
	}
	return ""
}

// roleKey is the context key of a request's Role.
type roleKey struct{}

// guard refuses requests from peers without a role and records the role
// of the others for the handlers.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(peerKey{}).(peer)
		role := s.access.role(p)
		if role == RoleNone {
			s.log.Warn("status socket: connection refused", "uid", p.uid, "gid", p.gid, "groups", p.groups, "pid", p.pid, "err", p.err)
			writeError(w, http.StatusForbidden, s.access.refusal(s.opts.Socket, p))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), roleKey{}, role)))
	})
}

// requestRole is the role guard found for r.
func requestRole(r *http.Request) Role {
	role, _ := r.Context().Value(roleKey{}).(Role)
	return role
}

// handleHealth answers who the daemon is and what the caller may do
// (role; actions: whether drain, undrain and handoff are open to it).
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	snap := s.opts.Source.Snapshot()
	role := requestRole(r)
	writeJSON(w, http.StatusOK, Health{Status: "ok", Node: snap.Node, Version: snap.Version,
		Role: role.String(), Actions: role.mayAct() && s.opts.Actions != nil})
}

// Health is the answer of GET /healthz.
type Health struct {
	Status  string `json:"status"`
	Node    string `json:"node"`
	Version string `json:"version"`
	// Role is what the caller may do: "reader", "operator" or "admin".
	Role string `json:"role"`
	// Actions says whether the caller may drain, undrain and hand off.
	Actions bool `json:"actions"`
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.opts.Source.Snapshot())
}

// handleStream sends server-sent events: the snapshot on connect and after
// every change (at most one per Coalesce), a keep-alive comment every
// KeepAlive, and a final "stopping" event when the daemon stops.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Accel-Buffering", "no")
	write := startSSE(w)
	var last []byte
	var lastSent time.Time
	send := func(snap Snapshot) error {
		data, err := json.Marshal(snap)
		if err != nil {
			return err
		}
		if bytes.Equal(data, last) {
			return nil
		}
		last = data
		lastSent = time.Now()
		return write(sseEvent("snapshot", data))
	}

	ctx := r.Context()
	changed := s.opts.Source.Changed()
	if err := send(s.opts.Source.Snapshot()); err != nil {
		return
	}
	keep := time.NewTicker(s.opts.KeepAlive)
	defer keep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stopping:
			s.sendStopping(write)
			return
		case <-keep.C:
			if err := write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
		case <-changed:
			if wait := time.Until(lastSent.Add(s.opts.Coalesce)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-s.stopping:
					t.Stop()
					s.sendStopping(write)
					return
				case <-t.C:
				}
			}
			changed = s.opts.Source.Changed()
			if err := send(s.opts.Source.Snapshot()); err != nil {
				s.log.Debug("status stream: write failed", "err", err)
				return
			}
		}
	}
}

// startSSE answers 200 with the headers of an event stream and returns
// the stream's write: each write is flushed, within writeTimeout.
func startSSE(w http.ResponseWriter) func([]byte) error {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return func(b []byte) error {
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
}

func (s *Server) sendStopping(write func([]byte) error) {
	data, _ := json.Marshal(map[string]string{"message": "the epconsole daemon is stopping; reconnect"})
	write(sseEvent("stopping", data))
}

// sseEvent formats one server-sent event; data is one line of JSON.
func sseEvent(name string, data []byte) []byte {
	b := make([]byte, 0, len(data)+len(name)+16)
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// action serves one of the Actions on the path value named param.
func (s *Server) action(name, param string, do func(Actions, context.Context, string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		target := r.PathValue(param)
		if s.opts.Actions == nil {
			writeError(w, http.StatusNotImplemented, fmt.Sprintf("%s: this epconsole daemon takes no actions", name))
			return
		}
		p, _ := r.Context().Value(peerKey{}).(peer)
		log := s.log.With("action", name, param, target, "uid", p.uid, "pid", p.pid)
		if !requestRole(r).mayAct() {
			log.Warn("status action refused", "role", requestRole(r).String())
			writeError(w, http.StatusForbidden, s.access.actionRefusal(name, p))
			return
		}
		if err := do(s.opts.Actions, r.Context(), target); err != nil {
			code := http.StatusInternalServerError
			switch {
			case errors.Is(err, ErrNotFound):
				code = http.StatusNotFound
			case errors.Is(err, ErrConflict):
				code = http.StatusConflict
			case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
				code = http.StatusServiceUnavailable
			}
			log.Warn("status action failed", "err", err)
			writeError(w, code, err.Error())
			return
		}
		log.Info("status action done")
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "action": name, param: target})
	}
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		data, _ = json.Marshal(apiErrorBody{Error: "encoding the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(data, '\n'))
}

// apiErrorBody is the JSON form of every error answer.
type apiErrorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiErrorBody{Error: msg})
}
