package tui

import (
	"github.com/epconsole/epconsole/internal/status"
)

// What the Model shows, for its callers and tests.

// Snapshot returns the snapshot shown (nil before the first).
func (m Model) Snapshot() *status.Snapshot { return m.snap }

// Active returns the number of the view shown (ViewOverview …).
func (m Model) Active() int { return m.active }

// Route returns through which daemon the snapshots come (nil unless the
// Source is a status.Failover).
func (m Model) Route() *status.Route { return m.via }

// Conn returns the state of the link to the daemon.
func (m Model) Conn() ConnState { return m.state }

// Confirming returns the action waiting for confirmation, if any.
func (m Model) Confirming() (Action, bool) {
	if m.confirm == nil {
		return Action{}, false
	}
	return *m.confirm, true
}

// Drilling returns the drills listed in the open drill menu and whether
// the menu is open.
func (m Model) Drilling() ([]Drill, bool) {
	if m.menu == nil {
		return nil, false
	}
	return m.menu.list, true
}

// DrillText returns the text of the last drill run from the TUI (what to
// look for), until the operator closes it.
func (m Model) DrillText() string { return m.drillText }

// Filter returns the filter of the view shown and whether it is being
// typed.
func (m Model) Filter() (string, bool) { return m.filters[m.active], m.filtering }

// Notice returns the last notice of the status line (an action's result,
// or why an action is not possible).
func (m Model) Notice() string { return m.notice }
