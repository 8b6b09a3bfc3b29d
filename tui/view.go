package tui

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
)

// View draws the screen: tabs, the active pane, the filter or dialog, the
// status line and help.
func (m Model) View() string {
	w, h := m.common.Width, m.common.Height
	view := m.panes[m.active].View()
	if m.menu != nil {
		view = m.menuView()
	}
	body := fit(view, w, m.bodyHeight())
	if n := lipgloss.Height(body); n < m.bodyHeight() {
		body += strings.Repeat("\n", m.bodyHeight()-n)
	}
	parts := []string{m.tabsView(), body}
	if m.filtering {
		m.input.Width = max(w-3, 1)
		parts = append(parts, m.input.View())
	}
	if m.drillText != "" {
		parts = append(parts, m.drillBoxView())
	}
	if m.confirm != nil {
		parts = append(parts, m.dialogView())
	}
	if m.alert && m.notice != "" {
		// An error gets a line of its own: it must be read whole.
		parts = append(parts, m.common.Styles.Severity.Critical.Render("✘ "+m.notice))
	}
	parts = append(parts, m.statusView(), m.help.View(&m))
	return fit(strings.Join(parts, "\n"), w, h)
}

// tabsView is the tab bar, with the cluster and the node on the right.
func (m Model) tabsView() string {
	st := m.common.Styles
	var tabs []string
	for i, p := range m.panes {
		t := string(rune('1'+i)) + " " + p.Title()
		if i == m.active {
			// Brackets mark the tab also where no attribute shows.
			tabs = append(tabs, st.Tabs.Active.Render("["+t+"]"))
		} else {
			tabs = append(tabs, st.Tabs.Normal.Render(" "+t+" "))
		}
	}
	bar := lipgloss.JoinHorizontal(lipgloss.Top, tabs...)
	if m.snap != nil {
		right := m.snap.Cluster + " · " + m.snap.Node
		if gap := m.common.Width - lipgloss.Width(bar) - lipgloss.Width(right) - 1; gap >= 1 {
			bar += strings.Repeat(" ", gap) + st.Title.Render(right)
		}
	}
	return st.Tabs.Bar.Render(bar)
}

// bodyHeight is the lines the chrome leaves to the active pane.
func (m *Model) bodyHeight() int {
	h := m.common.Height - 2 - lipgloss.Height(m.help.View(m))
	if m.filtering {
		h--
	}
	if m.confirm != nil {
		h -= lipgloss.Height(m.dialogView())
	}
	if m.drillText != "" {
		h -= lipgloss.Height(m.drillBoxView())
	}
	if m.alert && m.notice != "" {
		h--
	}
	return max(h, 1)
}
