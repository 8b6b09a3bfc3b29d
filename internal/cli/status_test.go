package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/epconsole/epconsole/internal/status"
)

// statusFixtures are the snapshots under testdata/status that the status
// rendering is drawn from (the console's scenarios).
var statusFixtures = []string{"healthy", "split-view", "no-owner", "etcd-quorum-lost"}

// loadStatusFixture reads testdata/status/<name>.json, refusing unknown
// fields so a fixture cannot drift from the model.
func loadStatusFixture(t *testing.T, name string) status.Snapshot {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/status", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var s status.Snapshot
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("%s.json: %v", name, err)
	}
	return s
}

// TestStatusGolden: `epconsole status` renders each fixture snapshot as
// in testdata/status/<name>.txt (-update rewrites).
func TestStatusGolden(t *testing.T) {
	for _, name := range statusFixtures {
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			writeStatus(&b, loadStatusFixture(t, name), "/run/epconsole/status.sock")
			goldenIn(t, "../../testdata/status", name+".txt", b.String())
		})
	}
}

// TestStatusRendersEverything: whatever the fixture, every VIP, peer and
// backend is named, each drained backend says so, and the worst finding
// comes first.
func TestStatusRendersEverything(t *testing.T) {
	for _, name := range statusFixtures {
		s := loadStatusFixture(t, name)
		var b strings.Builder
		writeStatus(&b, s, "SOCK")
		out := b.String()
		for _, v := range s.VIPs {
			if !strings.Contains(out, v.Address) {
				t.Errorf("%s: VIP %s missing:\n%s", name, v.Address, out)
			}
		}
		for _, p := range s.Peers {
			if !strings.Contains(out, "\n"+p.Name+" ") {
				t.Errorf("%s: no row for peer %s:\n%s", name, p.Name, out)
			}
		}
		for _, be := range s.Backends {
			row := ""
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, be.Name+" ") {
					row = l
				}
			}
			if row == "" || strings.Contains(row, "drained") != be.Drained {
				t.Errorf("%s: backend %s (drained %v) row %q", name, be.Name, be.Drained, row)
			}
		}
		if len(s.Findings) > 0 && s.Findings[0].Severity.Rank() > 0 {
			first := "  " + s.Findings[0].Severity.String()
			if i := strings.Index(out, "findings"); i < 0 || !strings.Contains(out[i:], first) {
				t.Errorf("%s: the worst finding (%s) is not listed:\n%s", name, first, out)
			}
		}
	}
}

// fakeDaemon serves a snapshot on a status socket and carries out the
// actions on it the way the daemon does: drains change the drain set,
// a handoff (asked of the owner) moves the owner. lazy accepts every
// action and never shows it.
type fakeDaemon struct {
	mu   sync.Mutex
	pub  *status.Publisher
	lazy bool
}

func (f *fakeDaemon) change(fn func(s *status.Snapshot) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.pub.Snapshot()
	// Copy what the change writes to: the published snapshot is shared.
	s.Backends = append([]status.Backend(nil), s.Backends...)
	if err := fn(&s); err != nil {
		return err
	}
	if !f.lazy {
		f.pub.Publish(s)
	}
	return nil
}

func (f *fakeDaemon) drain(backend string, on bool) error {
	return f.change(func(s *status.Snapshot) error {
		for i := range s.Backends {
			if s.Backends[i].Name == backend {
				s.Backends[i].Drained = on
				return nil
			}
		}
		return status.NotFoundf("no backend %q in config.hcl", backend)
	})
}

func (f *fakeDaemon) Drain(_ context.Context, b string) error   { return f.drain(b, true) }
func (f *fakeDaemon) Undrain(_ context.Context, b string) error { return f.drain(b, false) }

func (f *fakeDaemon) Handoff(_ context.Context, peer string) error {
	return f.change(func(s *status.Snapshot) error {
		if s.Election.Owner != s.Node {
			return status.Conflictf("this node (%s) does not hold the VIP, %s does: run the handoff on %s", s.Node, s.Election.Owner, s.Election.Owner)
		}
		for _, p := range s.Peers {
			if p.Name == peer {
				s.Election.Owner = peer
				return nil
			}
		}
		return status.NotFoundf("no peer %q in config.hcl", peer)
	})
}

// serveFake starts a status server for snap with f's actions on a socket
// in a temporary directory and returns the socket.
func serveFake(t *testing.T, snap status.Snapshot, f *fakeDaemon) string {
	t.Helper()
	f.pub = status.NewPublisher(snap)
	sock := filepath.Join(t.TempDir(), "status.sock")
	srv, err := status.NewServer(status.ServerOptions{Socket: sock, Source: f.pub, Actions: f})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return sock
}

// TestStatusCommand: status against a daemon prints the summary (or the
// snapshot with --json), exit 0; without one it exits 3 naming the
// socket and how to start the daemon.
func TestStatusCommand(t *testing.T) {
	snap := loadStatusFixture(t, "healthy")
	sock := serveFake(t, snap, &fakeDaemon{})
	code, out, errs := runCLI(t, "status", "--socket", sock)
	if code != 0 || errs != "" || !strings.HasPrefix(out, "cluster "+snap.Cluster+", seen by "+snap.Node) {
		t.Errorf("status: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	code, out, errs = runCLI(t, "status", "--json", "--socket", sock)
	var got status.Snapshot
	if err := json.Unmarshal([]byte(out), &got); code != 0 || errs != "" || err != nil || got.Node != snap.Node || len(got.Backends) != len(snap.Backends) {
		t.Errorf("status --json: exit %d, stderr %q, %v, stdout:\n%s", code, errs, err, out)
	}

	missing := filepath.Join(t.TempDir(), "none.sock")
	code, out, errs = runCLI(t, "status", "--socket", missing)
	if code != 3 || out != "" || !strings.Contains(errs, "no epconsole daemon at "+missing) || !strings.Contains(errs, "systemctl start epconsole") {
		t.Errorf("status without a daemon: exit %d (want 3), stdout %q, stderr:\n%s", code, out, errs)
	}
	if code, _, errs := runCLI(t, "status", "extra"); code != 2 || !strings.Contains(errs, `unexpected argument "extra"`) {
		t.Errorf("status extra: exit %d, stderr %q", code, errs)
	}
}

// goldenIn compares got with the golden file dir/name; -update rewrites it.
func goldenIn(t *testing.T, dir, name, got string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if *updateGolden {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test ./internal/cli -run %s -update creates it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./internal/cli -run %s -update rewrites it):\n--- got\n%s--- want\n%s", p, t.Name(), got, want)
	}
}
