// Package keymap owns every key binding of epconsole's TUI, in the k9s
// habit. The same bindings drive Update (key.Matches) and bubbles/help, so
// the help line never lies.
package keymap

import (
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/table"
	"github.com/charmbracelet/bubbles/viewport"
)

// KeyMap is every key binding of the TUI.
type KeyMap struct {
	// Global.
	Help    key.Binding
	Quit    key.Binding
	NextTab key.Binding
	PrevTab key.Binding
	// Views switches to a view by number (1–6).
	Views key.Binding

	// Moving inside a view.
	Up         key.Binding
	Down       key.Binding
	PageUp     key.Binding
	PageDown   key.Binding
	GotoTop    key.Binding
	GotoBottom key.Binding

	// Filter opens the filter of the view; Back closes a filter, details
	// or a dialog.
	Filter  key.Binding
	Apply   key.Binding
	Details key.Binding
	Back    key.Binding

	// Actions, each asks for confirmation first.
	Drain   key.Binding
	Undrain key.Binding
	Handoff key.Binding

	// Confirm and Cancel answer a confirmation dialog.
	Confirm key.Binding
	Cancel  key.Binding

	// Lab opens the drill menu (only under `epconsole-lab`); RunDrill
	// faults or heals the selected drill there, after confirmation; Close
	// closes the menu or the drill's text.
	Lab      key.Binding
	RunDrill key.Binding
	Close    key.Binding

	// Return goes back to the preferred daemon after the console fell
	// over to another peer's status socket.
	Return key.Binding
}

// DefaultKeyMap returns the default bindings.
func DefaultKeyMap() *KeyMap {
	return &KeyMap{
		Help:    key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:    key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		NextTab: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next view")),
		PrevTab: key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "prev view")),
		Views:   key.NewBinding(key.WithKeys("1", "2", "3", "4", "5", "6"), key.WithHelp("1-6", "view")),

		Up:         key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:       key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:     key.NewBinding(key.WithKeys("pgup", "b"), key.WithHelp("pgup/b", "page up")),
		PageDown:   key.NewBinding(key.WithKeys("pgdown", "f", " "), key.WithHelp("pgdn/f", "page down")),
		GotoTop:    key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g/home", "top")),
		GotoBottom: key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G/end", "bottom")),

		Filter:  key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Apply:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "keep filter")),
		Details: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "details")),
		Back:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear")),

		Drain:   key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "drain")),
		Undrain: key.NewBinding(key.WithKeys("u"), key.WithHelp("u", "undrain")),
		Handoff: key.NewBinding(key.WithKeys("h"), key.WithHelp("h", "hand VIP over")),

		Confirm: key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "yes")),
		Cancel:  key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n/esc", "no")),

		Lab:      key.NewBinding(key.WithKeys("L"), key.WithHelp("L", "lab drills")),
		RunDrill: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "fault/heal")),
		Close:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close")),

		Return: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "back to first daemon")),
	}
}

// ViewIndex returns the 0-based view a number key selects, or -1.
func ViewIndex(k string) int {
	if len(k) == 1 && k[0] >= '1' && k[0] <= '9' {
		return int(k[0] - '1')
	}
	return -1
}

// Table returns the bubbles/table bindings built from k, so that a table
// scrolls with the same keys as everything else and never claims the
// action keys (bubbles' default binds d and u to half pages).
func (k *KeyMap) Table() table.KeyMap {
	off := key.NewBinding(key.WithDisabled())
	return table.KeyMap{
		LineUp:       k.Up,
		LineDown:     k.Down,
		PageUp:       k.PageUp,
		PageDown:     k.PageDown,
		HalfPageUp:   off,
		HalfPageDown: off,
		GotoTop:      k.GotoTop,
		GotoBottom:   k.GotoBottom,
	}
}

// Viewport returns the bubbles/viewport bindings built from k.
func (k *KeyMap) Viewport() viewport.KeyMap {
	off := key.NewBinding(key.WithDisabled())
	return viewport.KeyMap{
		Up:           k.Up,
		Down:         k.Down,
		PageUp:       k.PageUp,
		PageDown:     k.PageDown,
		HalfPageUp:   off,
		HalfPageDown: off,
		Left:         off,
		Right:        off,
	}
}
