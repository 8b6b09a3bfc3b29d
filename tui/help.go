package tui

import (
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"

	"github.com/epconsole/epconsole/tui/styles"
)

// newHelp is the help line in the TUI's styles.
func newHelp(st *styles.Styles) help.Model {
	h := help.New()
	h.Styles = help.Styles{
		ShortKey: st.Help.Key, ShortDesc: st.Help.Desc, ShortSeparator: st.Help.Separator,
		FullKey: st.Help.Key, FullDesc: st.Help.Desc, FullSeparator: st.Help.Separator,
		Ellipsis: st.Help.Separator,
	}
	return h
}

// ShortHelp is the help line: the dialog's or filter's keys, or the active
// pane's keys and the global ones.
func (m *Model) ShortHelp() []key.Binding {
	k := m.common.Keys
	switch {
	case m.confirm != nil:
		return []key.Binding{k.Confirm, k.Cancel}
	case m.filtering:
		return []key.Binding{k.Apply, k.Back}
	case m.menu != nil:
		return []key.Binding{k.Up, k.Down, k.RunDrill, k.Close, k.Quit}
	}
	b := append([]key.Binding{k.Help}, m.panes[m.active].ShortHelp()...)
	if _, ok := m.panes[m.active].(filterable); ok {
		b = append(b, k.Filter)
	}
	if m.drills != nil {
		b = append(b, k.Lab)
	}
	if m.canReturn() {
		b = append(b, k.Return)
	}
	return append(b, k.Quit)
}

// FullHelp is the `?` help: every key that works now, in columns.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.common.Keys
	if m.confirm != nil || m.filtering {
		return [][]key.Binding{m.ShortHelp()}
	}
	if m.menu != nil {
		return [][]key.Binding{{k.Up, k.Down, k.GotoTop, k.GotoBottom}, {k.RunDrill, k.Close, k.Help, k.Quit}}
	}
	cols := [][]key.Binding{{k.NextTab, k.PrevTab, k.Views}}
	cols = append(cols, m.panes[m.active].FullHelp()...)
	g := []key.Binding{}
	if _, ok := m.panes[m.active].(filterable); ok {
		g = append(g, k.Filter, k.Back)
	}
	if m.drills != nil {
		g = append(g, k.Lab)
	}
	if m.canReturn() {
		g = append(g, k.Return)
	}
	if m.drillText != "" {
		g = append(g, k.Close)
	}
	return append(cols, append(g, k.Help, k.Quit))
}
