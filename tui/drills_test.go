package tui_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui"
)

// fakeDrills is a lab as the TUI sees it: a list of drills whose Run
// toggles them. A pure test double: the real lab's control socket is
// driven from the TUI in internal/cli's TestLabConsoleTmux.
type fakeDrills struct {
	mu      sync.Mutex
	list    []tui.Drill
	ran     []string
	listErr error
	runErr  error
}

func newFakeDrills() *fakeDrills {
	return &fakeDrills{list: []tui.Drill{
		{Name: "stop-backend"}, {Name: "unready-backend"}, {Name: "san-missing"},
		{Name: "slow-backend"}, {Name: "partition", Active: true, Target: "lb2"}, {Name: "kill-owner"},
	}}
}

func (f *fakeDrills) List(context.Context) ([]tui.Drill, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tui.Drill(nil), f.list...), f.listErr
}

func (f *fakeDrills) Run(_ context.Context, verb, name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ran = append(f.ran, verb+" "+name)
	if f.runErr != nil {
		return "", f.runErr
	}
	for i := range f.list {
		if f.list[i].Name == name {
			f.list[i].Active = verb == tui.VerbFault
			return fmt.Sprintf("the apiserver on cp1 is stopped (connection refused). TUI: cp1 DOWN on every peer within about a second (%s %s).", verb, name), nil
		}
	}
	return "", fmt.Errorf("lab: unknown fault %q", name)
}

// drive feeds msgs, and then runs every command the last message gave
// that answers at once (listing, running a drill) and feeds its messages
// back, as the program would.
func drive(m tui.Model, msgs ...tea.Msg) (tui.Model, tea.Cmd) {
	var cmd tea.Cmd
	for _, msg := range msgs {
		m, cmd = feed(m, msg)
		for _, r := range messages(cmd) {
			switch r.(type) {
			case tui.DrillsListedMsg, tui.DrillDoneMsg:
				m, _ = feed(m, r)
			}
		}
	}
	return m, cmd
}

func TestDrillMenu(t *testing.T) {
	healthy := loadSnapshot(t, "healthy")
	snap := tui.SnapshotMsg{Snapshot: healthy}
	tests := []struct {
		name  string
		noLab bool
		edit  func(*fakeDrills)
		msgs  []tea.Msg
		check func(t *testing.T, m tui.Model, cmd tea.Cmd, f *fakeDrills)
	}{
		{"no lab: no key, nothing in the help", true, nil, append([]tea.Msg{snap}, keys("L ?")...), func(t *testing.T, m tui.Model, cmd tea.Cmd, _ *fakeDrills) {
			if _, open := m.Drilling(); open || strings.Contains(m.View(), "lab drills") {
				t.Errorf("menu open %v, screen:\n%s", open, m.View())
			}
		}},
		{"the help names the key under a lab", false, nil, []tea.Msg{snap}, func(t *testing.T, m tui.Model, _ tea.Cmd, _ *fakeDrills) {
			if !strings.Contains(m.View(), "L lab drills") {
				t.Errorf("no lab key in the help:\n%s", m.View())
			}
		}},
		{"L lists the drills and which are active", false, nil, append([]tea.Msg{snap}, keys("L")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *fakeDrills) {
			list, open := m.Drilling()
			v := m.View()
			if !open || len(list) != 6 || !strings.Contains(v, "> stop-backend") || !strings.Contains(v, "ACTIVE on lb2") {
				t.Errorf("open %v, %d drills, screen:\n%s", open, len(list), v)
			}
			if !strings.Contains(v, "enter fault/heal") || !strings.Contains(v, "esc close") {
				t.Errorf("the help does not say what enter does:\n%s", v)
			}
		}},
		{"while the lab answers", false, nil, []tea.Msg{snap}, func(t *testing.T, m tui.Model, _ tea.Cmd, f *fakeDrills) {
			// Only the key: its command has not run yet.
			m, cmd := feed(m, key("L"))
			if !strings.Contains(m.View(), "asking the lab") || cmd == nil || len(f.ran) > 0 {
				t.Errorf("cmd %v, screen:\n%s", cmd != nil, m.View())
			}
		}},
		{"enter asks before a fault, n keeps the menu", false, nil, append([]tea.Msg{snap}, keys("L enter")...), func(t *testing.T, m tui.Model, _ tea.Cmd, f *fakeDrills) {
			a, ok := m.Confirming()
			if !ok || a != (tui.Action{Kind: tui.Fault, Target: "stop-backend"}) || !strings.Contains(m.View(), "Really start the lab drill stop-backend") {
				t.Errorf("confirming %v %+v, screen:\n%s", ok, a, m.View())
			}
			m, _ = drive(m, key("n"))
			if _, open := m.Drilling(); !open || len(f.ran) > 0 {
				t.Errorf("menu open %v after n, ran %v", open, f.ran)
			}
		}},
		{"y runs the fault and shows what to look for", false, nil, append([]tea.Msg{snap}, keys("L enter y")...), func(t *testing.T, m tui.Model, _ tea.Cmd, f *fakeDrills) {
			if len(f.ran) != 1 || f.ran[0] != "fault stop-backend" {
				t.Fatalf("ran %v", f.ran)
			}
			v := m.View()
			if _, open := m.Drilling(); open || !strings.Contains(m.DrillText(), "cp1 DOWN on every peer") ||
				!strings.Contains(v, "lab fault stop-backend · what to look for (esc closes)") || !strings.Contains(v, "fault stop-backend in place") {
				t.Errorf("menu open %v, text %q, screen:\n%s", open, m.DrillText(), v)
			}
			m, _ = drive(m, key("esc"))
			if m.DrillText() != "" || strings.Contains(m.View(), "what to look for") {
				t.Errorf("esc left the text:\n%s", m.View())
			}
		}},
		{"an active drill is healed", false, nil, append([]tea.Msg{snap}, keys("L j j j j enter")...), func(t *testing.T, m tui.Model, _ tea.Cmd, f *fakeDrills) {
			a, ok := m.Confirming()
			if !ok || a != (tui.Action{Kind: tui.Heal, Target: "partition", From: "lb2"}) || !strings.Contains(m.View(), "heal the lab drill partition on lb2") {
				t.Fatalf("confirming %v %+v", ok, a)
			}
			m, _ = drive(m, key("y"))
			if len(f.ran) != 1 || f.ran[0] != "heal partition" || m.Notice() != "healed partition" {
				t.Errorf("ran %v, notice %q", f.ran, m.Notice())
			}
		}},
		{"the cursor stays on the list", false, nil, append([]tea.Msg{snap}, keys("L k k G j j enter")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *fakeDrills) {
			if a, ok := m.Confirming(); !ok || a.Target != "kill-owner" {
				t.Errorf("confirming %v %+v", ok, a)
			}
		}},
		{"a refused drill is an error on the screen", false, func(f *fakeDrills) { f.runErr = errors.New("lab: stop-backend is already in place; heal it first") },
			append([]tea.Msg{snap}, keys("L enter y")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *fakeDrills) {
				v := m.View()
				if !strings.Contains(v, "✘ fault stop-backend: lab: stop-backend is already in place") || m.DrillText() != "" {
					t.Errorf("screen:\n%s", v)
				}
			}},
		{"a lab that does not answer", false, func(f *fakeDrills) { f.listErr = errors.New("no running lab answers on /tmp/epconsole-lab-lab.sock") },
			append([]tea.Msg{snap}, keys("L enter")...), func(t *testing.T, m tui.Model, _ tea.Cmd, f *fakeDrills) {
				v := m.View()
				if _, ok := m.Confirming(); ok || !strings.Contains(v, "✘ lab drills: no running lab answers") {
					t.Errorf("screen:\n%s", v)
				}
			}},
		{"the menu takes the view keys, esc closes it", false, nil, append([]tea.Msg{snap}, keys("L 2 d tab esc")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *fakeDrills) {
			if _, open := m.Drilling(); open || m.Active() != tui.ViewOverview {
				t.Errorf("menu open %v, view %d", open, m.Active())
			}
			if _, ok := m.Confirming(); ok {
				t.Error("d in the menu asked to drain")
			}
		}},
		{"a drill ending while the menu is open again refreshes it", false, nil, append([]tea.Msg{snap}, keys("L")...), func(t *testing.T, m tui.Model, _ tea.Cmd, f *fakeDrills) {
			if _, err := f.Run(context.Background(), tui.VerbFault, "stop-backend"); err != nil {
				t.Fatal(err)
			}
			m, _ = drive(m, tui.DrillDoneMsg{Verb: tui.VerbFault, Name: "stop-backend", Text: "cp1 DOWN"})
			if list, _ := m.Drilling(); len(list) == 0 || !list[0].Active {
				t.Errorf("menu not refreshed: %+v", list)
			}
		}},
		{"q quits from the menu", false, nil, append([]tea.Msg{snap}, keys("L q")...), func(t *testing.T, m tui.Model, cmd tea.Cmd, _ *fakeDrills) {
			if msgs := messages(cmd); len(msgs) != 1 || msgs[0] != tea.Quit() {
				t.Errorf("command gave %#v", msgs)
			}
		}},
		{"the text fits a small terminal", false, nil, append([]tea.Msg{snap, tea.WindowSizeMsg{Width: 40, Height: 12}}, keys("L enter y")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *fakeDrills) {
			checkFits(t, m.View(), 40, 12)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDrills()
			if tt.edit != nil {
				tt.edit(f)
			}
			o := options(nil, &calls{})
			if !tt.noLab {
				o.Drills = f
			}
			m, cmd := drive(tui.New(o), tt.msgs...)
			tt.check(t, m, cmd, f)
		})
	}
}

// TestGoldenDrills draws the drill menu, its confirmation and a drill's
// text at 80×24 and 120×40 (testdata/TestGoldenDrills; -update rewrites).
func TestGoldenDrills(t *testing.T) {
	healthy := loadSnapshot(t, "healthy")
	tests := []struct {
		name  string
		steps func(*testing.T, *teatest.TestModel)
	}{
		{"menu", func(t *testing.T, tm *teatest.TestModel) {
			typeKeys(tm, "L")
			waitFor(t, tm, "ACTIVE on lb2")
		}},
		{"confirm-fault", func(t *testing.T, tm *teatest.TestModel) {
			typeKeys(tm, "L")
			waitFor(t, tm, "ACTIVE on lb2")
			typeKeys(tm, "enter")
			waitFor(t, tm, "Really")
		}},
		{"fault-text", func(t *testing.T, tm *teatest.TestModel) {
			typeKeys(tm, "2", "L")
			waitFor(t, tm, "ACTIVE on lb2")
			typeKeys(tm, "enter", "y")
			waitFor(t, tm, "in place")
		}},
	}
	for _, tt := range tests {
		for _, sz := range sizes {
			t.Run(fmt.Sprintf("%s/%dx%d", tt.name, sz[0], sz[1]), func(t *testing.T) {
				ch := make(chan status.Update, 2)
				ch <- status.Update{Kind: status.Connected}
				ch <- status.Update{Kind: status.SnapshotUpdate, Snapshot: healthy}
				o := options(tui.SourceChan(ch), recorder{})
				o.Drills = newFakeDrills()
				tm := teatest.NewTestModel(t, tui.New(o), teatest.WithInitialTermSize(sz[0], sz[1]))
				waitFor(t, tm, "● live")
				tt.steps(t, tm)
				golden.RequireEqual(t, []byte(finish(t, tm, sz[0], sz[1])))
			})
		}
	}
}
