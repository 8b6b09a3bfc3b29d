package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
)

// The drill menu: under a lab, the lab key lists its fault drills in the
// body's place; enter asks (in the dialog) to start or heal the selected
// one, and a box then says what to look for.

// drillMenu is the open drill menu.
type drillMenu struct {
	loading bool
	list    []Drill
	cursor  int
	err     error
}

// selected returns the drill under the cursor.
func (d *drillMenu) selected() (Drill, bool) {
	if d.loading || d.cursor < 0 || d.cursor >= len(d.list) {
		return Drill{}, false
	}
	return d.list[d.cursor], true
}

// openMenu opens the drill menu and asks the lab for its drills.
func (m *Model) openMenu() tea.Cmd {
	m.menu = &drillMenu{loading: true}
	m.notice, m.alert = "", false
	return listDrills(m.ctx, m.drills)
}

// menuKey handles a key while the drill menu is open: it takes every
// key but quit and help.
func (m *Model) menuKey(msg tea.KeyMsg) tea.Cmd {
	k := m.common.Keys
	d := m.menu
	switch {
	case key.Matches(msg, k.Quit):
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.help.ShowAll = !m.help.ShowAll
	case key.Matches(msg, k.Close), key.Matches(msg, k.Lab):
		m.menu = nil
	case key.Matches(msg, k.Up):
		d.cursor = max(d.cursor-1, 0)
	case key.Matches(msg, k.Down):
		d.cursor = min(d.cursor+1, max(len(d.list)-1, 0))
	case key.Matches(msg, k.GotoTop):
		d.cursor = 0
	case key.Matches(msg, k.GotoBottom):
		d.cursor = max(len(d.list)-1, 0)
	case key.Matches(msg, k.RunDrill):
		x, ok := d.selected()
		if !ok {
			return nil
		}
		a := Action{Kind: Fault, Target: x.Name}
		if x.Active {
			a = Action{Kind: Heal, Target: x.Name, From: x.Target}
		}
		m.confirm = &a
		m.notice, m.alert = "", false
	}
	return nil
}

// drillsListed shows the lab's drills in the open menu.
func (m *Model) drillsListed(msg DrillsListedMsg) {
	if m.menu == nil {
		return
	}
	m.menu.loading, m.menu.list, m.menu.err = false, msg.Drills, msg.Err
	if msg.Err != nil {
		m.menu.list = nil
	}
	m.menu.cursor = min(m.menu.cursor, max(len(msg.Drills)-1, 0))
}

// drillDone shows a confirmed drill's result, and what to look for.
func (m *Model) drillDone(msg DrillDoneMsg) tea.Cmd {
	var cmd tea.Cmd
	if m.menu != nil && m.drills != nil {
		// Reopened meanwhile: show the drill's new state.
		cmd = listDrills(m.ctx, m.drills)
	}
	if msg.Err != nil {
		m.notice, m.alert = msg.Err.Error(), true
		return cmd
	}
	m.drillHead = "lab " + msg.Verb + " " + msg.Name + " · what to look for (esc closes)"
	m.drillText = msg.Text
	if msg.Verb == VerbHeal {
		m.notice, m.alert = "healed "+msg.Name, false
	} else {
		m.notice, m.alert = "fault "+msg.Name+" in place", false
	}
	return cmd
}

// menuView draws the drill menu in the body's place.
func (m Model) menuView() string {
	st := m.common.Styles
	d := m.menu
	lines := []string{st.Title.Render("Lab drills") + st.Faint.Render(" · faults in the running lab, healed the same way"), ""}
	switch {
	case d.loading:
		lines = append(lines, st.Faint.Render("asking the lab…"))
	case d.err != nil:
		lines = append(lines, st.Bad.Render("✘ "+oneLine(d.err)))
	case len(d.list) == 0:
		lines = append(lines, st.Faint.Render("the lab has no drills"))
	}
	w := 0
	for _, x := range d.list {
		w = max(w, len(x.Name))
	}
	for i, x := range d.list {
		state := st.Faint.Render("ready")
		if x.Active {
			s := "ACTIVE"
			if x.Target != "" {
				s += " on " + x.Target
			}
			state = st.Bad.Render(s)
		}
		row := pad(x.Name, w+2) + state
		if i == d.cursor && !d.loading {
			lines = append(lines, st.Table.Selected.Render("> "+row))
		} else {
			lines = append(lines, "  "+row)
		}
	}
	if _, ok := d.selected(); ok {
		lines = append(lines, "", st.Faint.Render("enter starts the selected fault, or heals it when active (asks first)"))
	}
	return strings.Join(lines, "\n")
}

// drillBoxView draws the last drill's text: what to look for now.
func (m Model) drillBoxView() string {
	if m.drillText == "" {
		return ""
	}
	st := m.common.Styles
	w := max(m.common.Width-4, 10)
	body := st.Title.Render(m.drillHead) + "\n" + st.Value.Width(w).Render(m.drillText)
	return st.Dialog.MaxWidth(m.common.Width).Render(body)
}
