package tui_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui"
)

// calls records the actions a test's Actions was asked for.
type calls struct {
	mu   sync.Mutex
	done []tui.Action
	err  error
}

func (c *calls) add(k tui.ActionKind, target string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = append(c.done, tui.Action{Kind: k, Target: target})
	return c.err
}

func (c *calls) Drain(_ context.Context, b string) error   { return c.add(tui.Drain, b) }
func (c *calls) Undrain(_ context.Context, b string) error { return c.add(tui.Undrain, b) }
func (c *calls) Handoff(_ context.Context, p string) error { return c.add(tui.Handoff, p) }

func key(s string) tea.Msg {
	switch s {
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "shift+tab":
		return tea.KeyMsg{Type: tea.KeyShiftTab}
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

// keys turns "2 j d" into key messages.
func keys(s string) []tea.Msg {
	var out []tea.Msg
	for _, f := range strings.Fields(s) {
		out = append(out, key(f))
	}
	return out
}

// feed runs msgs through Update and returns the model and the last
// command.
func feed(m tui.Model, msgs ...tea.Msg) (tui.Model, tea.Cmd) {
	var cmd tea.Cmd
	for _, msg := range msgs {
		var tm tea.Model
		tm, cmd = m.Update(msg)
		m = tm.(tui.Model)
	}
	return m, cmd
}

// messages runs cmd (and the commands of a batch) and returns what they
// produce. Only for commands that return at once.
func messages(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if b, ok := msg.(tea.BatchMsg); ok {
		var out []tea.Msg
		for _, c := range b {
			out = append(out, messages(c)...)
		}
		return out
	}
	return []tea.Msg{msg}
}

func with(snap *status.Snapshot, edit func(*status.Snapshot)) *status.Snapshot {
	c := *snap
	c.Backends = append([]status.Backend(nil), snap.Backends...)
	edit(&c)
	return &c
}

func TestUpdate(t *testing.T) {
	healthy := loadSnapshot(t, "healthy")
	noOwner := loadSnapshot(t, "no-owner")
	cp3Drained := with(healthy, func(s *status.Snapshot) { s.Backends[2].Drained = true })
	snap := func(s *status.Snapshot) tea.Msg { return tui.SnapshotMsg{Snapshot: s} }
	down := tui.DisconnectedMsg{Err: errors.New("dial unix /run/epconsole/status.sock: connect: no such file or directory")}

	tests := []struct {
		name  string
		read  bool // no Actions
		msgs  []tea.Msg
		check func(t *testing.T, m tui.Model, cmd tea.Cmd, acts *calls)
	}{
		{"waits for the daemon", false, nil, func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if m.Conn() != tui.Connecting || !strings.Contains(m.View(), "connecting to the daemon") {
				t.Errorf("conn %v, screen:\n%s", m.Conn(), m.View())
			}
		}},
		{"a snapshot makes it live", false, []tea.Msg{tui.ConnectedMsg{}, snap(healthy)}, func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if m.Conn() != tui.Live || m.Snapshot() != healthy {
				t.Errorf("conn %v, snapshot %p", m.Conn(), m.Snapshot())
			}
		}},
		{"tab switches to the next view", false, append([]tea.Msg{snap(healthy)}, keys("tab tab")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if m.Active() != tui.ViewTLS {
				t.Errorf("view %d, want TLS", m.Active())
			}
		}},
		{"shift+tab wraps to the last view", false, append([]tea.Msg{snap(healthy)}, keys("shift+tab")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if m.Active() != tui.ViewPeers {
				t.Errorf("view %d, want peers", m.Active())
			}
		}},
		{"a number switches to its view", false, append([]tea.Msg{snap(healthy)}, keys("4")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if m.Active() != tui.ViewEtcd || !strings.Contains(m.View(), "may still fail 1") {
				t.Errorf("view %d, screen:\n%s", m.Active(), m.View())
			}
		}},
		{"the daemon gone: reconnecting, last snapshot kept", false, []tea.Msg{snap(healthy), down}, func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			v := m.View()
			if m.Conn() != tui.Reconnecting || m.Snapshot() != healthy ||
				!strings.Contains(v, "daemon unreachable — reconnecting") || !strings.Contains(v, "last snapshot 2s ago") {
				t.Errorf("conn %v, screen:\n%s", m.Conn(), v)
			}
		}},
		{"back after a reconnect", false, []tea.Msg{snap(healthy), down, tui.ConnectedMsg{}, snap(noOwner)}, func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if m.Conn() != tui.Live || m.Snapshot() != noOwner || strings.Contains(m.View(), "unreachable") {
				t.Errorf("conn %v, screen:\n%s", m.Conn(), m.View())
			}
		}},
		{"source closed", false, []tea.Msg{snap(healthy), tui.SourceClosedMsg{}}, func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if m.Conn() != tui.Closed || !strings.Contains(m.View(), "status source closed") {
				t.Errorf("conn %v, screen:\n%s", m.Conn(), m.View())
			}
		}},
		{"d asks before draining", false, append([]tea.Msg{snap(healthy)}, keys("2 j d")...), func(t *testing.T, m tui.Model, cmd tea.Cmd, acts *calls) {
			a, ok := m.Confirming()
			if !ok || a != (tui.Action{Kind: tui.Drain, Target: "cp2"}) || cmd != nil {
				t.Errorf("confirming %v %+v, cmd %v", ok, a, cmd != nil)
			}
			if !strings.Contains(m.View(), "Really drain backend cp2") {
				t.Errorf("no dialog:\n%s", m.View())
			}
			if len(acts.done) > 0 {
				t.Errorf("acted before confirmation: %v", acts.done)
			}
		}},
		{"keys other than y/n do nothing in the dialog", false, append([]tea.Msg{snap(healthy)}, keys("2 d 4 q")...), func(t *testing.T, m tui.Model, cmd tea.Cmd, _ *calls) {
			if _, ok := m.Confirming(); !ok || m.Active() != tui.ViewBackends || cmd != nil {
				t.Errorf("view %d, cmd %v", m.Active(), cmd != nil)
			}
		}},
		{"n cancels", false, append([]tea.Msg{snap(healthy)}, keys("2 d n")...), func(t *testing.T, m tui.Model, cmd tea.Cmd, acts *calls) {
			if _, ok := m.Confirming(); ok || cmd != nil || len(acts.done) > 0 || m.Notice() != "cancelled" {
				t.Errorf("confirming after n, cmd %v, acts %v, notice %q", cmd != nil, acts.done, m.Notice())
			}
		}},
		{"y drains through Actions", false, append([]tea.Msg{snap(healthy)}, keys("2 j j d y")...), func(t *testing.T, m tui.Model, cmd tea.Cmd, acts *calls) {
			if _, ok := m.Confirming(); ok {
				t.Fatal("still confirming")
			}
			msgs := messages(cmd)
			want := tui.Action{Kind: tui.Drain, Target: "cp3"}
			if len(msgs) != 1 || msgs[0] != (tui.ActionDoneMsg{Action: want}) {
				t.Fatalf("command gave %#v", msgs)
			}
			if len(acts.done) != 1 || acts.done[0] != want {
				t.Errorf("actions %v", acts.done)
			}
			m, _ = feed(m, msgs[0])
			if m.Notice() != "drained cp3" {
				t.Errorf("notice %q", m.Notice())
			}
		}},
		{"a failed action is shown", false, append([]tea.Msg{snap(healthy)}, keys("2 d")...), func(t *testing.T, m tui.Model, _ tea.Cmd, acts *calls) {
			acts.err = errors.New("epconsole daemon: backend cp1 is the last healthy one")
			_, cmd := feed(m, key("y"))
			msgs := messages(cmd)
			m, _ = feed(m, msgs...)
			if !strings.Contains(m.Notice(), "last healthy one") || !strings.Contains(m.View(), "last healthy one") {
				t.Errorf("notice %q", m.Notice())
			}
		}},
		{"drain of a drained backend is refused", false, append([]tea.Msg{snap(cp3Drained)}, keys("2 G d")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if _, ok := m.Confirming(); ok || m.Notice() != "cp3 is already drained" {
				t.Errorf("notice %q", m.Notice())
			}
		}},
		{"u asks before undraining", false, append([]tea.Msg{snap(cp3Drained)}, keys("2 G u")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if a, ok := m.Confirming(); !ok || a != (tui.Action{Kind: tui.Undrain, Target: "cp3"}) {
				t.Errorf("confirming %v %+v", ok, a)
			}
		}},
		{"undrain of a serving backend is refused", false, append([]tea.Msg{snap(cp3Drained)}, keys("2 u")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if _, ok := m.Confirming(); ok || m.Notice() != "cp1 is not drained" {
				t.Errorf("notice %q", m.Notice())
			}
		}},
		{"read-only without Actions", true, append([]tea.Msg{snap(healthy)}, keys("2 d")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if _, ok := m.Confirming(); ok || !strings.HasPrefix(m.Notice(), "read-only") {
				t.Errorf("notice %q", m.Notice())
			}
		}},
		{"h asks before handing the VIP over", false, append([]tea.Msg{snap(healthy)}, keys("6 j h")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if a, ok := m.Confirming(); !ok || a != (tui.Action{Kind: tui.Handoff, Target: "lb2", From: "lb1"}) {
				t.Errorf("confirming %v %+v", ok, a)
			}
		}},
		{"no handoff to the owner", false, append([]tea.Msg{snap(healthy)}, keys("6 h")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if _, ok := m.Confirming(); ok || m.Notice() != "lb1 already holds the VIP" {
				t.Errorf("notice %q", m.Notice())
			}
		}},
		{"no handoff to a dead peer", false, append([]tea.Msg{snap(with(noOwner, func(s *status.Snapshot) { s.Election.Owner = "lb1" }))}, keys("6 j h")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if _, ok := m.Confirming(); ok || m.Notice() != "lb2 is dead, it cannot take the VIP" {
				t.Errorf("notice %q", m.Notice())
			}
		}},
		{"no handoff without an owner", false, append([]tea.Msg{snap(noOwner)}, keys("6 h")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if _, ok := m.Confirming(); ok || m.Notice() != "no peer holds the VIP to hand over" {
				t.Errorf("notice %q", m.Notice())
			}
		}},
		{"action keys do nothing where there is nothing to act on", false, append([]tea.Msg{snap(healthy)}, keys("1 d h")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if _, ok := m.Confirming(); ok || m.Notice() != "" {
				t.Errorf("notice %q", m.Notice())
			}
		}},
		{"/ filters the events as typed", false, append([]tea.Msg{snap(healthy)}, keys("5 / c p 3")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			f, typing := m.Filter()
			v := m.View()
			if f != "cp3" || !typing || !strings.Contains(v, `3 of 12 events match "cp3"`) || strings.Contains(v, "lb2 joined") {
				t.Errorf("filter %q typing %v, screen:\n%s", f, typing, v)
			}
		}},
		{"enter keeps the filter, esc clears it", false, append([]tea.Msg{snap(healthy)}, keys("5 / l b 2 enter")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if f, typing := m.Filter(); f != "lb2" || typing || !strings.Contains(m.View(), "filter: lb2") {
				t.Errorf("filter %q typing %v", f, typing)
			}
			m, _ = feed(m, key("esc"))
			if f, _ := m.Filter(); f != "" || !strings.Contains(m.View(), "12 events") {
				t.Errorf("filter %q after esc", f)
			}
		}},
		{"q while filtering is text", false, append([]tea.Msg{snap(healthy)}, keys("2 / q")...), func(t *testing.T, m tui.Model, cmd tea.Cmd, _ *calls) {
			if f, typing := m.Filter(); f != "q" || !typing || !strings.Contains(m.View(), "no backend matches") {
				t.Errorf("filter %q typing %v", f, typing)
			}
		}},
		{"the filter narrows the backends", false, append([]tea.Msg{snap(healthy)}, keys("2 / c p 2 enter d")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if a, ok := m.Confirming(); !ok || a.Target != "cp2" {
				t.Errorf("confirming %v %+v", ok, a)
			}
		}},
		{"no filter on the overview", false, append([]tea.Msg{snap(healthy)}, keys("/")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if f, typing := m.Filter(); f != "" || typing {
				t.Errorf("filter %q typing %v", f, typing)
			}
		}},
		{"enter hides the backend details", false, append([]tea.Msg{snap(healthy)}, keys("2 enter")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if strings.Contains(m.View(), "41 connections") {
				t.Errorf("details still shown:\n%s", m.View())
			}
			m, _ = feed(m, key("enter"))
			if !strings.Contains(m.View(), "41 connections") {
				t.Errorf("details not back:\n%s", m.View())
			}
		}},
		{"? shows the full help", false, append([]tea.Msg{snap(healthy)}, keys("?")...), func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if !strings.Contains(m.View(), "shift+tab") {
				t.Errorf("no full help:\n%s", m.View())
			}
		}},
		{"q quits", false, append([]tea.Msg{snap(healthy)}, keys("q")...), func(t *testing.T, m tui.Model, cmd tea.Cmd, _ *calls) {
			if msgs := messages(cmd); len(msgs) != 1 || msgs[0] != tea.Quit() {
				t.Errorf("command gave %#v", msgs)
			}
		}},
		{"ctrl+c quits from the dialog", false, append([]tea.Msg{snap(healthy)}, keys("2 d ctrl+c")...), func(t *testing.T, m tui.Model, cmd tea.Cmd, _ *calls) {
			if msgs := messages(cmd); len(msgs) != 1 || msgs[0] != tea.Quit() {
				t.Errorf("command gave %#v", msgs)
			}
		}},
		{"keys read together act one by one", false, []tea.Msg{snap(healthy), tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("2jd")}}, func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if a, ok := m.Confirming(); !ok || a != (tui.Action{Kind: tui.Drain, Target: "cp2"}) {
				t.Errorf("confirming %v %+v", ok, a)
			}
		}},
		{"a filter typed in one go", false, []tea.Msg{snap(healthy), tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("5/cp3")}}, func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			if f, typing := m.Filter(); f != "cp3" || !typing {
				t.Errorf("filter %q typing %v", f, typing)
			}
		}},
		{"keys before any snapshot are harmless", false, keys("2 d u enter j 3 4 5 / x esc 6 h"), func(t *testing.T, m tui.Model, _ tea.Cmd, acts *calls) {
			if _, ok := m.Confirming(); ok || len(acts.done) > 0 || !strings.Contains(m.View(), "waiting for the first snapshot") {
				t.Errorf("screen:\n%s", m.View())
			}
		}},
		{"a tiny terminal still fits", false, []tea.Msg{snap(healthy), tea.WindowSizeMsg{Width: 20, Height: 5}, key("2"), key("d")}, func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			checkFits(t, m.View(), 20, 5)
		}},
		{"a resize redraws to the new size", false, []tea.Msg{snap(healthy), tea.WindowSizeMsg{Width: 100, Height: 30}}, func(t *testing.T, m tui.Model, _ tea.Cmd, _ *calls) {
			checkFits(t, m.View(), 100, 30)
			if n := strings.Count(m.View(), "\n") + 1; n != 30 {
				t.Errorf("%d lines, want 30", n)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acts := &calls{}
			var a tui.Actions = acts
			if tt.read {
				a = nil
			}
			m, cmd := feed(tui.New(options(nil, a)), tt.msgs...)
			tt.check(t, m, cmd, acts)
		})
	}
}
