package tui

import (
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/epconsole/epconsole/tui/styles"
)

// The filter: `/` on a pane that filters opens a line that narrows its
// rows as the operator types; each pane keeps its own filter.

// newFilterInput is the filter's input line.
func newFilterInput(st *styles.Styles) textinput.Model {
	in := textinput.New()
	in.Prompt = "/"
	in.Placeholder = "filter"
	in.PromptStyle = st.Title
	in.TextStyle = st.Value
	in.PlaceholderStyle = st.Faint
	in.Cursor.Style = st.Value
	return in
}

// startFilter opens the filter line on the active pane, if it filters.
func (m *Model) startFilter() tea.Cmd {
	if _, ok := m.panes[m.active].(filterable); !ok {
		return nil
	}
	m.filtering = true
	m.input.SetValue(m.filters[m.active])
	m.input.CursorEnd()
	return m.input.Focus()
}

// filterKey handles a key while the filter is typed: esc clears it, enter
// keeps it, anything else edits it.
func (m *Model) filterKey(msg tea.KeyMsg) tea.Cmd {
	k := m.common.Keys
	switch {
	case key.Matches(msg, k.Back):
		m.filtering = false
		m.input.Blur()
		m.setFilter("")
		return nil
	case key.Matches(msg, k.Apply):
		m.filtering = false
		m.input.Blur()
		return nil
	case msg.Type == tea.KeyCtrlC:
		return tea.Quit
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	m.setFilter(m.input.Value())
	return cmd
}

// setFilter gives the active pane filter f.
func (m *Model) setFilter(f string) {
	m.filters[m.active] = f
	if p, ok := m.panes[m.active].(filterable); ok {
		p.SetFilter(f)
	}
}
