package tui

import (
	"context"
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
)

// Drills are the fault drills of a lab the console runs under (`epconsole
// lab`): the lab key opens a menu of them. Options.Drills nil (a real
// cluster) hides the key.
type Drills interface {
	// List returns every drill and whether it is in place.
	List(ctx context.Context) ([]Drill, error)
	// Run starts (verb "fault") or undoes (verb "heal") drill name and
	// returns what the operator should now see.
	Run(ctx context.Context, verb, name string) (string, error)
}

// Drill is one fault drill of the lab.
type Drill struct {
	Name string
	// Active says the fault is in place (enter heals it).
	Active bool
	// Target is the host the fault acts on while active.
	Target string
}

// Drill verbs.
const (
	VerbFault = "fault"
	VerbHeal  = "heal"
)

// DrillsListedMsg carries the lab's drills to the open menu.
type DrillsListedMsg struct {
	Drills []Drill
	Err    error
}

// DrillDoneMsg reports a confirmed drill: Text is what the operator
// should now see.
type DrillDoneMsg struct {
	Verb, Name string
	Text       string
	Err        error
}

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

// listDrills asks the lab for its drills.
func listDrills(ctx context.Context, d Drills) tea.Cmd {
	return func() tea.Msg {
		list, err := d.List(ctx)
		if err != nil {
			err = fmt.Errorf("lab drills: %w", err)
		}
		return DrillsListedMsg{Drills: list, Err: err}
	}
}

// runDrill runs a confirmed drill.
func runDrill(ctx context.Context, d Drills, a Action) tea.Cmd {
	verb := VerbFault
	if a.Kind == Heal {
		verb = VerbHeal
	}
	return func() tea.Msg {
		text, err := d.Run(ctx, verb, a.Target)
		if err != nil {
			err = fmt.Errorf("%s %s: %w", verb, a.Target, err)
		}
		return DrillDoneMsg{Verb: verb, Name: a.Target, Text: text, Err: err}
	}
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
