package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Reconnect backoff of Subscribe.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// DefaultIdleTimeout is how long a stream may stay silent before the
// client takes the daemon for dead: three keep-alive intervals.
const DefaultIdleTimeout = 3 * DefaultKeepAlive

// maxEventSize bounds one server-sent event line.
const maxEventSize = 64 << 20

// Client talks to a daemon's status socket.
type Client struct {
	socket string
	http   *http.Client
	// health is the daemon's answer to Dial.
	health Health
	// IdleTimeout: a stream silent this long is dropped and reconnected
	// (DefaultIdleTimeout when zero).
	IdleTimeout time.Duration
}

// NewClient returns a client of the daemon at socket. It does not connect
// until used.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Dial returns a client of the daemon at socket after checking that the
// daemon answers (GET /healthz), so a missing daemon or a permission
// problem shows at once.
func Dial(ctx context.Context, socket string) (*Client, error) {
	c := NewClient(socket)
	if err := c.do(ctx, http.MethodGet, "/healthz", &c.health); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// ActionsRefused says why this client may not drain, undrain or hand off,
// as the daemon answered Dial: "" when it may (or the daemon did not
// say). The console shows its actions as unavailable with it.
func (c *Client) ActionsRefused() string {
	if c.health.Role != RoleReader.String() {
		return ""
	}
	return "read-only: this user may read the status but not drain, undrain or hand off (root and status.operator_group only)"
}

// Socket returns the socket path.
func (c *Client) Socket() string { return c.socket }

// Close releases idle connections.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

// Health asks the daemon who it is and what this client may do.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, "/healthz", &h)
	return h, err
}

// Status returns the daemon's current snapshot.
func (c *Client) Status(ctx context.Context) (Snapshot, error) {
	var s Snapshot
	err := c.do(ctx, http.MethodGet, "/v1/status", &s)
	return s, err
}

// Drain stops new connections to backend (existing ones stay).
func (c *Client) Drain(ctx context.Context, backend string) error {
	return c.do(ctx, http.MethodPost, "/v1/drain/"+url.PathEscape(backend), nil)
}

// Undrain lets backend take new connections again.
func (c *Client) Undrain(ctx context.Context, backend string) error {
	return c.do(ctx, http.MethodPost, "/v1/undrain/"+url.PathEscape(backend), nil)
}

// Handoff asks the daemon to hand the VIP to peer.
func (c *Client) Handoff(ctx context.Context, peer string) error {
	return c.do(ctx, http.MethodPost, "/v1/handoff/"+url.PathEscape(peer), nil)
}

// do runs one request and decodes a 200 answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://epconsole"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.connError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxEventSize))
	if err != nil {
		return c.connError(ctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		return c.statusError(resp.StatusCode, body)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("epconsole daemon at %s: decoding %s: %w", c.socket, path, err)
	}
	return nil
}

// connError turns a connection failure into an operator's sentence.
func (c *Client) connError(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("epconsole daemon at %s: %w", c.socket, ctx.Err())
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return &kindError{kind: ErrNoDaemon, cause: err,
			msg: fmt.Sprintf("no epconsole daemon at %s (is `epconsole --daemon` running?)", c.socket)}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return c.permissionError(err)
	}
	return fmt.Errorf("epconsole daemon at %s: %w", c.socket, err)
}

func (c *Client) permissionError(cause error) error {
	return &kindError{kind: ErrPermission, cause: cause,
		msg: fmt.Sprintf("permission denied on the epconsole status socket %s: run as root (e.g. with sudo), or as a member of the socket's group (status.socket_group in config.hcl)", c.socket)}
}

// statusError turns an error answer into an error matching the sentinel of
// its status code, with the daemon's message.
func (c *Client) statusError(code int, body []byte) error {
	var e apiErrorBody
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	var kind error
	switch code {
	case http.StatusForbidden:
		// The daemon's message says who may do what.
		kind = ErrPermission
	case http.StatusNotFound:
		kind = ErrNotFound
	case http.StatusConflict:
		kind = ErrConflict
	case http.StatusNotImplemented:
		kind = ErrUnsupported
	default:
		return fmt.Errorf("epconsole daemon: %s (HTTP %d)", msg, code)
	}
	return &kindError{kind: kind, msg: msg}
}

// UpdateKind says what an Update carries.
type UpdateKind int

// Update kinds.
const (
	// Connected: the stream is open; snapshots follow.
	Connected UpdateKind = iota + 1
	// SnapshotUpdate: Snapshot holds the daemon's new snapshot.
	SnapshotUpdate
	// Disconnected: the stream is down (Err says why); the client keeps
	// reconnecting.
	Disconnected
)

// String returns the kind's name.
func (k UpdateKind) String() string {
	switch k {
	case Connected:
		return "connected"
	case SnapshotUpdate:
		return "snapshot"
	case Disconnected:
		return "disconnected"
	}
	return fmt.Sprintf("UpdateKind(%d)", int(k))
}

// Update is one message of Subscribe: a new snapshot or a change of the
// connection.
type Update struct {
	Kind     UpdateKind
	Snapshot *Snapshot
	// Err is why the stream is down (Disconnected only); ErrDaemonStopping
	// when the daemon said it stops.
	Err error
	// Route says which daemon the update comes through (Failover only;
	// nil from a Client).
	Route *Route
}

// Subscribe streams the daemon's snapshots until ctx ends, then closes the
// channel. It reports Connected when a stream opens, each snapshot (the
// first at once), and Disconnected when the stream drops or a reconnect
// fails with a new error; it reconnects with a backoff from 100 ms to 2 s.
func (c *Client) Subscribe(ctx context.Context) <-chan Update {
	out := make(chan Update)
	go func() {
		defer close(out)
		emit := sendUpdate(ctx, out)
		backoff := minBackoff
		lastErr := ""
		for {
			connected, err := c.stream(ctx, emit)
			if ctx.Err() != nil {
				return
			}
			if connected {
				backoff = minBackoff
				lastErr = ""
			}
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				if !emit(Update{Kind: Disconnected, Err: err}) {
					return
				}
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, maxBackoff)
		}
	}()
	return out
}

// stream runs one stream connection; it reports whether it connected and
// why it ended (never nil).
func (c *Client) stream(ctx context.Context, emit func(Update) bool) (bool, error) {
	s, err := c.openSSE(ctx, "/v1/stream", func(idle time.Duration) error {
		return fmt.Errorf("epconsole daemon at %s sent nothing for %v; reconnecting", c.socket, idle)
	})
	if err != nil {
		var te *transportError
		if errors.As(err, &te) {
			return false, c.connError(ctx, te.err)
		}
		return false, err
	}
	defer s.Close()
	if !emit(Update{Kind: Connected}) {
		return true, ctx.Err()
	}
	errStop := errors.New("stopped")
	err = s.each(func(name string, payload []byte) error {
		switch name {
		case "snapshot":
			var snap Snapshot
			if err := json.Unmarshal(payload, &snap); err != nil {
				return fmt.Errorf("epconsole daemon at %s: bad snapshot event: %w", c.socket, err)
			}
			if !emit(Update{Kind: SnapshotUpdate, Snapshot: &snap}) {
				return errStop
			}
		case "stopping":
			return &kindError{kind: ErrDaemonStopping,
				msg: fmt.Sprintf("the epconsole daemon at %s is stopping; reconnecting", c.socket)}
		}
		return nil
	})
	if err == errStop {
		return true, ctx.Err()
	}
	var te *transportError
	if errors.As(err, &te) {
		if cause := s.cause(); cause != nil && ctx.Err() == nil {
			return true, cause
		}
		if errors.Is(te.err, io.EOF) || errors.Is(te.err, io.ErrUnexpectedEOF) {
			return true, fmt.Errorf("epconsole daemon at %s closed the stream", c.socket)
		}
		return true, c.connError(ctx, te.err)
	}
	return true, err
}

// sendUpdate returns a function that hands an Update to out, and reports
// false instead when ctx ends first.
func sendUpdate(ctx context.Context, out chan<- Update) func(Update) bool {
	return func(u Update) bool {
		select {
		case out <- u:
			return true
		case <-ctx.Done():
			return false
		}
	}
}
