package tui

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/epconsole/epconsole/internal/status"
)

// Source delivers the endpoint's status to the TUI. *status.Client is one
// (the daemon's stream, reconnecting on its own); SourceChan adapts any
// channel.
type Source interface {
	// Subscribe starts delivering and returns the channel of updates; the
	// source closes it when ctx is done.
	Subscribe(ctx context.Context) <-chan status.Update
}

// SourceChan is a Source that hands out one channel fed by someone else.
type SourceChan <-chan status.Update

// Subscribe returns the channel itself.
func (c SourceChan) Subscribe(context.Context) <-chan status.Update { return c }

// ConnectedMsg says the Source reached the daemon; snapshots follow.
// Route (from a status.Failover) says through which daemon.
type ConnectedMsg struct{ Route *status.Route }

// SnapshotMsg carries a new snapshot from the Source, and through which
// daemon (Route, from a status.Failover) it came.
type SnapshotMsg struct {
	Snapshot *status.Snapshot
	Route    *status.Route
}

// Returner is a Source over several daemons (status.Failover) that can go
// back to the preferred one after falling over to another.
type Returner interface {
	Return()
}

// ReturnedMsg says the Source was asked to go back to the preferred daemon.
type ReturnedMsg struct{ To string }

// DisconnectedMsg says the daemon is unreachable and the Source is
// reconnecting.
type DisconnectedMsg struct{ Err error }

// SourceClosedMsg says the Source has stopped for good.
type SourceClosedMsg struct{}

// TickMsg refreshes the ages shown (of the last snapshot, of VIP owners).
type TickMsg struct{ Time time.Time }

// subscribedMsg hands the channel of a started Source to Update.
type subscribedMsg struct{ ch <-chan status.Update }

// subscribe starts the Source.
func subscribe(ctx context.Context, src Source) tea.Cmd {
	return func() tea.Msg { return subscribedMsg{ch: src.Subscribe(ctx)} }
}

// next waits for the Source's next update.
func next(ch <-chan status.Update) tea.Cmd {
	return func() tea.Msg {
		u, ok := <-ch
		if !ok {
			return SourceClosedMsg{}
		}
		return updateMsg(u)
	}
}

// updateMsg turns a Source's update into the TUI's message.
func updateMsg(u status.Update) tea.Msg {
	switch {
	case u.Kind == status.Disconnected || u.Err != nil:
		return DisconnectedMsg{Err: u.Err}
	case u.Snapshot != nil:
		return SnapshotMsg{Snapshot: u.Snapshot, Route: u.Route}
	}
	return ConnectedMsg{Route: u.Route}
}

// goBack asks the Source to go back to the preferred daemon.
func goBack(r Returner, to string) tea.Cmd {
	return func() tea.Msg {
		r.Return()
		return ReturnedMsg{To: to}
	}
}

// tick asks for a TickMsg in a second.
func tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return TickMsg{Time: t} })
}
