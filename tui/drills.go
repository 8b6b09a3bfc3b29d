package tui

import (
	"context"
	"fmt"

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
