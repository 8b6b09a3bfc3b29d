package lab

import (
	"context"
	"encoding/json"
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
// (200) or the error (409 for a refused drill); GET /faults lists every
// drill, whether it is in place and on which host (JSON, []FaultState).
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
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(faultStates(Faults(), l.Active()))
	})
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

// FaultState is one drill as GET /faults lists it.
type FaultState struct {
	// Name is the drill (one of Faults()).
	Name string `json:"name"`
	// Active says the drill is in place (heal undoes it).
	Active bool `json:"active"`
	// Target is the host the drill acts on while active ("" otherwise).
	Target string `json:"target,omitempty"`
}

// faultStates lists every drill of names, in their order, with the
// targets of those in active.
func faultStates(names []string, active map[string]string) []FaultState {
	out := make([]FaultState, 0, len(names))
	for _, n := range names {
		t, ok := active[n]
		out = append(out, FaultState{Name: n, Active: ok, Target: t})
	}
	return out
}

// controlClient is an HTTP client of the control socket at path.
func controlClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
}

// ListFaults asks the running lab with this prefix which drills it has
// and which are in place.
func ListFaults(ctx context.Context, prefix string) ([]FaultState, error) {
	path := ControlSocket(prefix)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://lab/faults", nil)
	if err != nil {
		return nil, err
	}
	resp, err := controlClient(path).Do(req)
	if err != nil {
		return nil, fmt.Errorf("no running lab answers on %s (start one with `epconsole-lab`): %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("lab control %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("lab control %s: GET /faults: %s (HTTP %d)", path, strings.TrimSpace(string(body)), resp.StatusCode)
	}
	var out []FaultState
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("lab control %s: decoding the drills: %w", path, err)
	}
	return out, nil
}

// Control asks the running lab with this prefix to start (verb "fault")
// or undo (verb "heal") drill name, and returns what it says.
func Control(ctx context.Context, prefix, verb, name string) (string, error) {
	if verb != "fault" && verb != "heal" {
		return "", fmt.Errorf("lab: unknown verb %q (fault or heal)", verb)
	}
	path := ControlSocket(prefix)
	c := controlClient(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://lab/"+verb+"/"+name, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("no running lab answers on %s (start one with `epconsole-lab`): %w", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(text)
	}
	return text, nil
}
