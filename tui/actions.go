package tui

import (
	"context"
	"fmt"

	tea "github.com/charmbracelet/bubbletea"
)

// Actions are the changes an operator may make from the TUI. The status
// client implements them against the daemon; with none (Options.Actions
// nil) the TUI is read-only.
type Actions interface {
	// Drain stops new connections to a backend cluster-wide; existing ones stay.
	Drain(ctx context.Context, backend string) error
	// Undrain lets a drained backend take new connections again.
	Undrain(ctx context.Context, backend string) error
	// Handoff asks the VIP owner to hand the VIPs to peer.
	Handoff(ctx context.Context, peer string) error
}

// ActionKind is one kind of action.
type ActionKind int

// The actions.
const (
	Drain ActionKind = iota + 1
	Undrain
	Handoff
	// Fault and Heal start and undo a lab drill (Target is its name, From
	// the host a heal acts on); they run through Drills, not Actions.
	Fault
	Heal
)

// Action is one action waiting for, or past, its confirmation.
type Action struct {
	Kind ActionKind
	// Target is the backend (Drain, Undrain) or the peer (Handoff).
	Target string
	// From is the current owner (Handoff only).
	From string
}

// String says what the action does, as the dialog asks it.
func (a Action) String() string {
	switch a.Kind {
	case Drain:
		return fmt.Sprintf("drain backend %s (no new connections, existing ones stay)", a.Target)
	case Undrain:
		return fmt.Sprintf("undrain backend %s (take new connections again)", a.Target)
	case Handoff:
		if a.From == "" {
			return fmt.Sprintf("hand the VIP to %s", a.Target)
		}
		return fmt.Sprintf("hand the VIP from %s to %s", a.From, a.Target)
	case Fault:
		return fmt.Sprintf("start the lab drill %s (a real fault in the lab)", a.Target)
	case Heal:
		if a.From == "" {
			return fmt.Sprintf("heal the lab drill %s", a.Target)
		}
		return fmt.Sprintf("heal the lab drill %s on %s", a.Target, a.From)
	}
	return "nothing"
}

// done is the past tense shown once the action succeeded.
func (a Action) done() string {
	switch a.Kind {
	case Drain:
		return "drained " + a.Target
	case Undrain:
		return "undrained " + a.Target
	case Handoff:
		return "asked to hand the VIP to " + a.Target
	}
	return ""
}

// ActionDoneMsg reports the result of a confirmed action.
type ActionDoneMsg struct {
	Action Action
	Err    error
}

// run performs a confirmed action.
func run(ctx context.Context, acts Actions, a Action) tea.Cmd {
	return func() tea.Msg {
		var err error
		switch a.Kind {
		case Drain:
			err = acts.Drain(ctx, a.Target)
		case Undrain:
			err = acts.Undrain(ctx, a.Target)
		case Handoff:
			err = acts.Handoff(ctx, a.Target)
		default:
			err = fmt.Errorf("unknown action %d", a.Kind)
		}
		if err != nil {
			err = fmt.Errorf("%s: %w", a.Kind, err)
		}
		return ActionDoneMsg{Action: a, Err: err}
	}
}

// String names the kind.
func (k ActionKind) String() string {
	switch k {
	case Drain:
		return "drain"
	case Undrain:
		return "undrain"
	case Handoff:
		return "handoff"
	case Fault:
		return "fault"
	case Heal:
		return "heal"
	}
	return "unknown"
}
