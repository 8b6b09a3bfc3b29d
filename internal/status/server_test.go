package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/testenv"
)

func TestStatusRoundTrip(t *testing.T) {
	sock := socketPath(t)
	want := sampleSnapshot(1)
	startServer(t, ServerOptions{Socket: sock, Source: NewPublisher(want)})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, sock)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	got, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("snapshot changed on the way:\ngot  %s\nwant %s", gj, wj)
	}
}

func TestSocketFileAndDirectory(t *testing.T) {
	sock := socketPath(t)
	stop := startServer(t, ServerOptions{Socket: sock, Source: NewPublisher(sampleSnapshot(0))})

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Geteuid() {
		t.Errorf("socket owner = %d, want the daemon's uid %d", st.Uid, os.Geteuid())
	}
	di, err := os.Stat(filepath.Dir(sock))
	if err != nil {
		t.Fatal(err)
	}
	if !di.IsDir() || di.Mode().Perm() != 0o755 {
		t.Errorf("socket directory mode = %v, want a directory with 0755", di.Mode())
	}
	// Nothing but the socket is left in the directory (the private bind
	// directory is gone).
	if ents, _ := os.ReadDir(filepath.Dir(sock)); len(ents) != 1 {
		t.Errorf("socket directory holds %d entries, want only the socket", len(ents))
	}
	stop()
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after a clean stop: %v", err)
	}
}

// TestLongSocketPath: with no room for the private bind directory the
// socket is bound in place, still 0600; Close without Serve removes it.
func TestLongSocketPath(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, strings.Repeat("d", maxSocketPath-len(dir)-13), "status.sock")
	if len(sock) > maxSocketPath || len(filepath.Join(filepath.Dir(sock), ".s1234567890", "s")) <= maxSocketPath {
		t.Fatalf("test path of %d bytes does not exercise the fallback", len(sock))
	}
	srv, err := NewServer(ServerOptions{Socket: sock, Source: NewPublisher(sampleSnapshot(4))})
	if err != nil {
		t.Fatalf("NewServer(%d-byte path): %v", len(sock), err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket: %v, %v; want a 0600 socket", fi.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer cancel()
	s, err := NewClient(sock).Status(ctx)
	if err != nil || s.Version != "v0.4" {
		t.Errorf("Status: %v, version %q", err, s.Version)
	}
	srv.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}
}

func TestStaleSocketReplacedLiveRefused(t *testing.T) {
	sock := socketPath(t)
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	// A crashed daemon leaves its socket file with nobody listening.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := net.Dial("unix", sock); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("stale socket: dial = %v, want connection refused", err)
	}

	startServer(t, ServerOptions{Socket: sock, Source: NewPublisher(sampleSnapshot(1))})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := NewClient(sock).Status(ctx); err != nil {
		t.Fatalf("status after replacing a stale socket: %v", err)
	}

	// A second daemon on the same socket is refused and leaves the first
	// one's socket alone.
	_, err = NewServer(ServerOptions{Socket: sock, Source: NewPublisher(sampleSnapshot(2))})
	if err == nil || !strings.Contains(err.Error(), "another epconsole daemon is serving "+sock) {
		t.Fatalf("second server: err = %v, want \"another epconsole daemon is serving %s\"", err, sock)
	}
	s, err := NewClient(sock).Status(ctx)
	if err != nil || s.Version != sampleSnapshot(1).Version {
		t.Fatalf("first daemon after the refused second one: %v, version %q", err, s.Version)
	}

	// A file that is not a socket is not taken for a stale socket.
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewServer(ServerOptions{Socket: plain, Source: NewPublisher(Snapshot{})}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("server on a plain file: err = %v, want \"not a socket\"", err)
	}
	if b, err := os.ReadFile(plain); err != nil || string(b) != "x" {
		t.Errorf("plain file touched: %q, %v", b, err)
	}
}

func TestClientErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sock := socketPath(t)
	_, err := Dial(ctx, sock)
	if !errors.Is(err, ErrNoDaemon) || err.Error() != "no epconsole daemon at "+sock+" (is `epconsole --daemon` running?)" {
		t.Errorf("missing socket: err = %v", err)
	}
	// A stale socket file: nobody answers.
	os.MkdirAll(filepath.Dir(sock), 0o755)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := NewClient(sock).Status(ctx); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("stale socket: err = %v, want ErrNoDaemon", err)
	}
}

// TestNonRootRefused runs the client in a child process as nobody
// (65534): the socket's mode refuses it, and with the mode opened up the
// peer-credential check still does. The same child as root succeeds.
func TestNonRootRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root to run a child as another user")
	}
	// Every directory up to the socket must be traversable by nobody.
	base := t.TempDir()
	for d := base; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(base, "run", "status.sock")
	var logs lockedBuffer
	startServer(t, ServerOptions{Socket: sock, Source: NewPublisher(sampleSnapshot(3)),
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})

	// The test binary's own directory is private: copy it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "status.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(cred *syscall.Credential) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = append(os.Environ(), childEnv+"="+sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("running the child: %v", err)
		}
		return cmd.ProcessState.ExitCode(), strings.TrimSpace(string(out))
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}

	if code, out := run(nil); code != childOK || !strings.Contains(out, "node=lb1 uid=0") {
		t.Fatalf("child as root: exit %d, %q; want success", code, out)
	}
	code, out := run(nobody)
	if code != childPermission || !strings.Contains(out, "run as root") {
		t.Errorf("child as nobody, socket 0600: exit %d, %q; want a permission error saying to run as root", code, out)
	}
	t.Logf("as nobody, mode 0600: %s", out)
	if strings.Contains(logs.String(), "connection refused") {
		t.Errorf("the file mode should have refused nobody before the server saw it; log: %s", logs.String())
	}
	// Open the mode: SO_PEERCRED must still refuse.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	code, out = run(nobody)
	if code != childPermission || !strings.Contains(out, "run as root") {
		t.Errorf("child as nobody, socket 0666: exit %d, %q; want refused by peer credentials", code, out)
	}
	t.Logf("as nobody, mode 0666: %s", out)
	if l := logs.String(); !strings.Contains(l, `"msg":"status socket: connection refused","socket":"`+sock+`","uid":65534`) {
		t.Errorf("the server did not log refusing uid 65534; log: %s", l)
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger and a test at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// recordingActions records the actions it is asked for and fails the
// ones the test set up to fail.
type recordingActions struct {
	mu    sync.Mutex
	calls []string
}

func (a *recordingActions) record(call string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, call)
}

func (a *recordingActions) Drain(_ context.Context, backend string) error {
	if backend != "cp1" && backend != "cp2" {
		return NotFoundf("no backend %q in the config (backends: cp1, cp2)", backend)
	}
	a.record("drain " + backend)
	return nil
}

func (a *recordingActions) Undrain(_ context.Context, backend string) error {
	a.record("undrain " + backend)
	return nil
}

func (a *recordingActions) Handoff(_ context.Context, peer string) error {
	switch peer {
	case "lb3":
		return Conflictf("cannot hand the VIP to lb3: it is dead")
	case "lb4":
		return errors.New("handoff to lb4 timed out after 5s")
	}
	a.record("handoff " + peer)
	return nil
}

func TestActions(t *testing.T) {
	sock := socketPath(t)
	acts := &recordingActions{}
	startServer(t, ServerOptions{Socket: sock, Source: NewPublisher(sampleSnapshot(0)), Actions: acts})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := NewClient(sock)

	if err := c.Drain(ctx, "cp1"); err != nil {
		t.Errorf("Drain cp1: %v", err)
	}
	if err := c.Undrain(ctx, "cp1"); err != nil {
		t.Errorf("Undrain cp1: %v", err)
	}
	if err := c.Handoff(ctx, "lb2"); err != nil {
		t.Errorf("Handoff lb2: %v", err)
	}
	if want := []string{"drain cp1", "undrain cp1", "handoff lb2"}; !reflect.DeepEqual(acts.calls, want) {
		t.Errorf("actions done = %q, want %q", acts.calls, want)
	}

	errCases := []struct {
		desc   string
		do     func() error
		kind   error
		msg    string
		path   string
		status int
	}{
		{"unknown backend", func() error { return c.Drain(ctx, "cp9") }, ErrNotFound,
			`no backend "cp9" in the config (backends: cp1, cp2)`, "/v1/drain/cp9", http.StatusNotFound},
		{"dead peer", func() error { return c.Handoff(ctx, "lb3") }, ErrConflict,
			"cannot hand the VIP to lb3: it is dead", "/v1/handoff/lb3", http.StatusConflict},
		{"failure", func() error { return c.Handoff(ctx, "lb4") }, nil,
			"handoff to lb4 timed out after 5s", "/v1/handoff/lb4", http.StatusInternalServerError},
	}
	for _, tc := range errCases {
		err := tc.do()
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want %q", tc.desc, err, tc.msg)
		}
		if tc.kind != nil && !errors.Is(err, tc.kind) {
			t.Errorf("%s: err = %v, want errors.Is %v", tc.desc, err, tc.kind)
		}
		// The wire form: the status code and {"error": message}.
		code, body := rawPost(t, sock, tc.path)
		if code != tc.status || body.Error != tc.msg {
			t.Errorf("%s: POST %s = %d %q, want %d %q", tc.desc, tc.path, code, body.Error, tc.status, tc.msg)
		}
	}
	if code, body := rawPost(t, sock, "/v1/frobnicate/x"); code != http.StatusNotFound || body.Error == "" {
		t.Errorf("unknown endpoint = %d %q, want 404 with an error", code, body.Error)
	}
	if code, body := rawPost(t, sock, "/v1/status"); code != http.StatusMethodNotAllowed || body.Error != "POST /v1/status: use GET" {
		t.Errorf("POST /v1/status = %d %q, want 405 with an error", code, body.Error)
	}
	if len(acts.calls) != 3 {
		t.Errorf("failed actions were recorded as done: %q", acts.calls)
	}

	// Without Actions the daemon says so.
	sock2 := socketPath(t)
	startServer(t, ServerOptions{Socket: sock2, Source: NewPublisher(sampleSnapshot(0))})
	if err := NewClient(sock2).Drain(ctx, "cp1"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("drain without actions: err = %v, want ErrUnsupported", err)
	}
}

// rawPost posts to path over the socket with a plain HTTP client.
func rawPost(t *testing.T, sock, path string) (int, apiErrorBody) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 5 * time.Second}
	resp, err := hc.Post("http://x"+path, "", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("POST %s: Content-Type %q", path, ct)
	}
	var body apiErrorBody
	if err := json.Unmarshal(data, &body); err != nil {
		t.Errorf("POST %s: body %q is not JSON: %v", path, data, err)
	}
	return resp.StatusCode, body
}
