package tui_test

import (
	"context"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/epconsole/epconsole/tui"
)

// readerActions are the actions of a status client the daemon lets read
// only (status.socket_group): it says so, and fails every action.
type readerActions struct{ called int }

func (a *readerActions) ActionsRefused() string {
	return "read-only: this user may read the status but not drain, undrain or hand off"
}
func (a *readerActions) Drain(context.Context, string) error   { a.called++; return nil }
func (a *readerActions) Undrain(context.Context, string) error { a.called++; return nil }
func (a *readerActions) Handoff(context.Context, string) error { a.called++; return nil }

// TestStatusReaderActionsUnavailable: for a user the daemon lets read
// only, an action key says at once that it is unavailable and why, and
// no dialog opens.
func TestStatusReaderActionsUnavailable(t *testing.T) {
	acts := &readerActions{}
	m, _ := feed(tui.New(options(nil, acts)), tea.WindowSizeMsg{Width: 80, Height: 24}, tui.SnapshotMsg{Snapshot: loadSnapshot(t, "healthy")})
	m, _ = feed(m, keys("2 d")...)
	s := m.View()
	if !strings.Contains(s, "read-only: this user may read the status") || strings.Contains(s, "Really") {
		t.Errorf("drain as a reader:\n%s", s)
	}
	m, _ = feed(m, keys("y")...)
	if acts.called != 0 {
		t.Errorf("%d actions ran for a reader", acts.called)
	}
}
