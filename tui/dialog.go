package tui

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
)

// The confirmation dialog: every action (drain, undrain, handoff, a lab
// drill) asks "Really …?" first, and runs only on y.

// ask opens the confirmation dialog for an action on the active pane's
// selection, or says why there is none.
func (m *Model) ask(kind ActionKind) {
	p, ok := m.panes[m.active].(acting)
	if !ok {
		return
	}
	a, err := p.Action(kind)
	switch {
	case err != nil:
		m.notice, m.alert = err.Error(), true
	case m.acts == nil:
		m.notice, m.alert = "read-only: no daemon to "+kind.String()+" through", true
	case refusedActions(m.acts) != "":
		m.notice, m.alert = refusedActions(m.acts), true
	default:
		m.confirm = &a
		m.notice = ""
	}
}

// dialogKey handles a key while the dialog is open: it takes every key.
func (m *Model) dialogKey(msg tea.KeyMsg) tea.Cmd {
	k := m.common.Keys
	switch {
	case key.Matches(msg, k.Confirm):
		a := *m.confirm
		m.confirm = nil
		m.notice, m.alert = a.Kind.String()+" "+a.Target+"…", false
		if a.Kind == Fault || a.Kind == Heal {
			// The menu closes so that the views show the drill's effect.
			m.menu = nil
			return runDrill(m.ctx, m.drills, a)
		}
		return run(m.ctx, m.acts, a)
	case key.Matches(msg, k.Cancel):
		m.confirm = nil
		m.notice, m.alert = "cancelled", false
	case msg.Type == tea.KeyCtrlC:
		return tea.Quit
	}
	return nil
}

// actionDone shows a confirmed action's result on the status line.
func (m *Model) actionDone(msg ActionDoneMsg) {
	if msg.Err != nil {
		m.notice, m.alert = msg.Err.Error(), true
	} else {
		m.notice, m.alert = msg.Action.done(), false
	}
}

// dialogView draws the open dialog ("" when none is).
func (m Model) dialogView() string {
	if m.confirm == nil {
		return ""
	}
	st := m.common.Styles
	q := st.Title.Render("Really "+m.confirm.String()+"?") + "\n" +
		st.Help.Key.Render("y") + st.Help.Desc.Render(" yes  ") +
		st.Help.Key.Render("n") + st.Help.Desc.Render(" no")
	return st.Dialog.MaxWidth(m.common.Width).Render(q)
}

// refusedActions is why acts may not act ("" when they may): the status
// client says so when the daemon grants this user reading only.
func refusedActions(acts Actions) string {
	if r, ok := acts.(interface{ ActionsRefused() string }); ok {
		return r.ActionsRefused()
	}
	return ""
}
