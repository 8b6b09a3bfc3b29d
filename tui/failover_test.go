package tui_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui"
)

// The failover client is a Source, Actions and a Returner.
var (
	_ tui.Source   = (*status.Failover)(nil)
	_ tui.Actions  = (*status.Failover)(nil)
	_ tui.Returner = (*status.Failover)(nil)
)

// TestLiveFailover runs the program on a status.Failover over two real
// status servers (lb1 preferred, lb2): lb1 goes away and the status line
// says the console follows lb2 because lb1 is unreachable, a drain reaches
// lb2; lb1 comes back and the console stays on lb2 but offers r, which
// goes back to lb1.
func TestLiveFailover(t *testing.T) {
	dir := t.TempDir()
	snap := func(node string) status.Snapshot {
		s := *loadSnapshot(t, "healthy")
		s.Node = node
		return s
	}
	pub1, pub2 := status.NewPublisher(snap("lb1")), status.NewPublisher(snap("lb2"))
	d1 := &daemonSide{pub: pub1, acted: make(chan tui.Action, 4)}
	d2 := &daemonSide{pub: pub2, acted: make(chan tui.Action, 4)}
	sock1, sock2 := filepath.Join(dir, "lb1.sock"), filepath.Join(dir, "lb2.sock")
	stop1 := serve(t, sock1, pub1, d1)
	serve(t, sock2, pub2, d2)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f, err := status.DialFailover(ctx, []status.Endpoint{{Name: "lb1", Socket: sock1}, {Name: "lb2", Socket: sock2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	f.ProbeInterval = 50 * time.Millisecond
	tm := teatest.NewTestModel(t, tui.New(options(f, f)).WithContext(ctx), teatest.WithInitialTermSize(80, 24))
	waitFor(t, tm, "● live")

	stop1()
	waitFor(t, tm, "via lb2 (lb1 unreachable)")
	typeKeys(tm, "2", "j", "d", "y")
	select {
	case a := <-d2.acted:
		if a != (tui.Action{Kind: tui.Drain, Target: "cp2"}) {
			t.Fatalf("lb2 got %+v", a)
		}
	case a := <-d1.acted:
		t.Fatalf("the drain went to the dead lb1: %+v", a)
	case <-time.After(5 * time.Second):
		t.Fatal("the drain never reached lb2")
	}

	serve(t, sock1, pub1, d1)
	waitFor(t, tm, "lb1 is back · r returns")
	typeKeys(tm, "r")
	waitFor(t, tm, "back to lb1…")
	deadline := time.Now().Add(5 * time.Second)
	for f.Current().Name != "lb1" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	final := finish(t, tm, 80, 24)
	fm := tm.FinalModel(t).(tui.Model)
	if f.Current().Name != "lb1" || strings.Contains(final, "via lb2") {
		t.Errorf("after r: current %+v, route %+v, screen:\n%s", f.Current(), fm.Route(), final)
	}
}

// returner is a Source that records Return calls (Update-level tests; the
// real status.Failover runs in TestLiveFailover).
type returner struct{ returned int }

func (*returner) Subscribe(context.Context) <-chan status.Update { return nil }
func (r *returner) Return()                                      { r.returned++ }

func TestUpdateRoute(t *testing.T) {
	healthy := loadSnapshot(t, "healthy")
	via := func(r *status.Route) tui.SnapshotMsg { return tui.SnapshotMsg{Snapshot: healthy, Route: r} }
	down := &status.Route{Via: "lb2", Preferred: "lb1", Unreachable: []string{"lb1"}}
	back := &status.Route{Via: "lb2", Preferred: "lb1"}
	home := &status.Route{Via: "lb1", Preferred: "lb1"}
	tests := []struct {
		name     string
		plain    bool // a Source without Return
		msgs     []any
		want     string
		wantNot  string
		returned int
	}{
		{"on the preferred daemon: nothing said", false, []any{via(home), "r"}, "● live · snapshot", "via", 0},
		{"fell over: through whom and why", false, []any{via(down), "r"}, "● live · via lb2 (lb1 unreachable) · snapshot 2s ago", "back to first daemon", 0},
		{"three down", false, []any{via(&status.Route{Via: "lb3", Preferred: "lb1", Unreachable: []string{"lb1", "lb2"}})}, "via lb3 (lb1, lb2 unreachable)", "", 0},
		{"the preferred one is back: r offered", false, []any{via(down), tui.ConnectedMsg{Route: back}}, "via lb2 (lb1 is back · r returns)", "", 0},
		{"r goes back", false, []any{via(back), "r"}, "back to lb1…", "", 1},
		{"r needs a Source that can go back", true, []any{via(back), "r"}, "via lb2", "back to first daemon", 0},
		{"back home after r", false, []any{via(back), "r", via(home)}, "● live · snapshot", "via lb2", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &returner{}
			var src tui.Source = r
			if tt.plain {
				src = tui.SourceChan(nil)
			}
			m := tui.New(options(src, nil))
			for _, x := range tt.msgs {
				msg, ok := x.(tea.Msg)
				if s, isKey := x.(string); isKey {
					msg = key(s)
				} else if !ok {
					t.Fatalf("bad step %v", x)
				}
				var cmd tea.Cmd
				m, cmd = feed(m, msg)
				for _, out := range messages(cmd) {
					if _, ok := out.(tui.ReturnedMsg); ok {
						m, _ = feed(m, out)
					}
				}
			}
			v := m.View()
			if !strings.Contains(v, tt.want) || (tt.wantNot != "" && strings.Contains(v, tt.wantNot)) || r.returned != tt.returned {
				t.Errorf("returned %d (want %d); want %q and not %q on the screen:\n%s", r.returned, tt.returned, tt.want, tt.wantNot, v)
			}
		})
	}
}
