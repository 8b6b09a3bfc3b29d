package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ControlSocket is where a running lab with this prefix takes `lab fault`
// and `lab heal` (HTTP over a unix socket, mode 0600).
func ControlSocket(prefix string) string {
	return filepath.Join(os.TempDir(), "epconsole-lab-"+prefix+".sock")
}

// ServeControl serves the lab's control socket until ctx ends:
// POST /fault/<name> and POST /heal/<name> answer with the drill's text
// (200) or the error (409 for a refused drill).
func (l *Lab) ServeControl(ctx context.Context) error {
	path := ControlSocket(l.opts.Prefix)
	_ = os.Remove(path) // a stale socket of a crashed lab (Up removed its namespaces)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("lab: control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("lab: control socket: %w", err)
	}
	mux := http.NewServeMux()
	handle := func(do func(context.Context, string) (string, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			rctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
			defer cancel()
			text, err := do(rctx, r.PathValue("name"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			io.WriteString(w, text+"\n")
		}
	}
	mux.HandleFunc("POST /fault/{name}", handle(l.Fault))
	mux.HandleFunc("POST /heal/{name}", handle(l.Heal))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err = srv.Serve(ln)
	_ = os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Control asks the running lab with this prefix to start (verb "fault")
// or undo (verb "heal") drill name, and returns what it says.
func Control(ctx context.Context, prefix, verb, name string) (string, error) {
	if verb != "fault" && verb != "heal" {
		return "", fmt.Errorf("lab: unknown verb %q (fault or heal)", verb)
	}
	path := ControlSocket(prefix)
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://lab/"+verb+"/"+name, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("no running lab answers on %s (start one with `epconsole lab`): %w", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(text)
	}
	return text, nil
}
