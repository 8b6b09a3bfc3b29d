package tui_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/tui"
)

// scenarios are the snapshots in testdata the screens are drawn from.
var scenarios = []string{"healthy", "split-view", "san-missing", "etcd-quorum-lost", "no-owner"}

var sizes = [][2]int{{80, 24}, {120, 40}}

var views = []string{"overview", "backends", "tls", "etcd", "events", "peers"}

// focus moves the selection to the row a fault is about, so the screen
// shows its details and fix.
var focus = map[string]string{
	"split-view/backends":    "j",
	"san-missing/tls":        "j",
	"etcd-quorum-lost/etcd":  "j",
	"etcd-quorum-lost/peers": "j",
	"no-owner/peers":         "j",
}

// run starts the real program at w×h fed by a channel source holding
// snap, waits until it shows the snapshot, and returns the test model and
// the channel for more updates.
func run(t *testing.T, snap *status.Snapshot, acts tui.Actions, w, h int) (*teatest.TestModel, chan<- status.Update) {
	t.Helper()
	ch := make(chan status.Update, 4)
	ch <- status.Update{Kind: status.Connected}
	ch <- status.Update{Kind: status.SnapshotUpdate, Snapshot: snap}
	tm := teatest.NewTestModel(t, tui.New(options(tui.SourceChan(ch), acts)), teatest.WithInitialTermSize(w, h))
	waitFor(t, tm, "● live")
	return tm, ch
}

func waitFor(t *testing.T, tm *teatest.TestModel, s string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(s)) },
		teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(5*time.Millisecond))
}

// finish quits the program and returns its last screen, checked to fit
// the terminal.
func finish(t *testing.T, tm *teatest.TestModel, w, h int) string {
	t.Helper()
	tm.Send(tea.KeyMsg{Type: tea.KeyCtrlC})
	m := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(tui.Model)
	s := m.View()
	checkFits(t, s, w, h)
	return s
}

func runes(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }

func typeKeys(tm *teatest.TestModel, keys ...string) {
	for _, k := range keys {
		switch k {
		case "enter":
			tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
		case "esc":
			tm.Send(tea.KeyMsg{Type: tea.KeyEsc})
		default:
			tm.Send(runes(k))
		}
	}
}

// TestGolden draws every view of every scenario at 80×24 and 120×40 and
// compares it with testdata/TestGolden/…; -update rewrites them.
func TestGolden(t *testing.T) {
	for _, sc := range scenarios {
		snap := loadSnapshot(t, sc)
		for _, sz := range sizes {
			for i, v := range views {
				t.Run(fmt.Sprintf("%s/%dx%d/%d-%s", sc, sz[0], sz[1], i+1, v), func(t *testing.T) {
					tm, _ := run(t, snap, nil, sz[0], sz[1])
					typeKeys(tm, fmt.Sprint(i+1))
					if k, ok := focus[sc+"/"+v]; ok {
						typeKeys(tm, k)
					}
					golden.RequireEqual(t, []byte(finish(t, tm, sz[0], sz[1])))
				})
			}
		}
	}
}

// TestGoldenStates draws the screens of the states around the views: the
// daemon gone, a confirmation, full help, a filter.
func TestGoldenStates(t *testing.T) {
	healthy := loadSnapshot(t, "healthy")
	split := loadSnapshot(t, "split-view")
	tests := []struct {
		name  string
		snap  *status.Snapshot
		acts  tui.Actions
		steps func(*testing.T, *teatest.TestModel, chan<- status.Update)
	}{
		{"disconnected", healthy, nil, func(t *testing.T, tm *teatest.TestModel, ch chan<- status.Update) {
			ch <- status.Update{Kind: status.Disconnected, Err: errors.New("dial unix /run/epconsole/status.sock: connect: connection refused")}
			waitFor(t, tm, "reconnecting")
		}},
		{"fell-over", healthy, nil, func(t *testing.T, tm *teatest.TestModel, ch chan<- status.Update) {
			lb2 := *healthy
			lb2.Node = "lb2"
			ch <- status.Update{Kind: status.SnapshotUpdate, Snapshot: &lb2, Route: &status.Route{Via: "lb2", Preferred: "lb1", Unreachable: []string{"lb1"}}}
			waitFor(t, tm, "unreachable)")
		}},
		{"confirm-drain", split, recorder{}, func(t *testing.T, tm *teatest.TestModel, _ chan<- status.Update) {
			typeKeys(tm, "2", "j", "d")
			waitFor(t, tm, "Really")
		}},
		{"confirm-handoff", healthy, recorder{}, func(t *testing.T, tm *teatest.TestModel, _ chan<- status.Update) {
			typeKeys(tm, "6", "j", "h")
			waitFor(t, tm, "Really")
		}},
		{"read-only-drain", healthy, nil, func(t *testing.T, tm *teatest.TestModel, _ chan<- status.Update) {
			typeKeys(tm, "2", "d")
			waitFor(t, tm, "read-only")
		}},
		{"full-help", healthy, nil, func(t *testing.T, tm *teatest.TestModel, _ chan<- status.Update) {
			typeKeys(tm, "2", "?")
			waitFor(t, tm, "page down")
		}},
		// The overview's first screen (run waits for it) shows the PANIC line.
		{"panic-routing", panicking(healthy), nil, func(*testing.T, *teatest.TestModel, chan<- status.Update) {}},
		{"events-filter", split, nil, func(t *testing.T, tm *teatest.TestModel, _ chan<- status.Update) {
			typeKeys(tm, "5", "/", "c", "p", "2", "enter")
			waitFor(t, tm, "match")
		}},
	}
	for _, tt := range tests {
		for _, sz := range sizes {
			t.Run(fmt.Sprintf("%s/%dx%d", tt.name, sz[0], sz[1]), func(t *testing.T) {
				tm, ch := run(t, tt.snap, tt.acts, sz[0], sz[1])
				tt.steps(t, tm, ch)
				golden.RequireEqual(t, []byte(finish(t, tm, sz[0], sz[1])))
			})
		}
	}
}

// checkFits fails when a screen would wrap or scroll the terminal.
func checkFits(t *testing.T, s string, w, h int) {
	t.Helper()
	lines := bytes.Split([]byte(s), []byte("\n"))
	if len(lines) > h {
		t.Errorf("%d lines on a %d-line terminal", len(lines), h)
	}
	for i, l := range lines {
		if n := lipglossWidth(string(l)); n > w {
			t.Errorf("line %d is %d columns wide on a %d-column terminal: %q", i+1, n, w, l)
		}
	}
}

// panicking is snap with every probe of its node failing and panic
// routing on: the owner keeps the VIP and forwards to every backend.
func panicking(snap *status.Snapshot) *status.Snapshot {
	s := *snap
	s.Election.PanicRouting = true
	s.Election.Reason = "owner: keeps the VIP (lb1 holds the VIP with epoch 7; panic routing: no member is eligible, so the live members that are not leaving stand in)"
	s.Backends = slices.Clone(snap.Backends)
	for i := range s.Backends {
		s.Backends[i].Views = slices.Clone(snap.Backends[i].Views)
		for j := range s.Backends[i].Views {
			s.Backends[i].Views[j].State = "down"
		}
	}
	s.Peers = slices.Clone(snap.Peers)
	for i := range s.Peers {
		s.Peers[i].Eligible = false
	}
	s.Verdicts = slices.Clone(snap.Verdicts)
	for i, v := range s.Verdicts {
		switch v.Area {
		case "cluster":
			s.Verdicts[i].Severity, s.Verdicts[i].Summary = probes.Critical, v.Summary+"; panic routing"
		case "backends":
			s.Verdicts[i].Severity, s.Verdicts[i].Summary = probes.Critical, "0/3 ready: down: cp1,cp2,cp3"
		}
	}
	s.Events = append(slices.Clone(snap.Events), status.Event{Time: snap.Generated, Kind: "panic-routing",
		Message: "no backend passes its probes here: new connections go to every backend (cp1, cp2, cp3) unprobed"})
	return &s
}
