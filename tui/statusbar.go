package tui

import (
	"strings"
)

// ConnState is the state of the link to the daemon.
type ConnState int

// Connection states.
const (
	// Connecting: no snapshot and no error yet.
	Connecting ConnState = iota
	// Connected: the stream is open, no snapshot on it yet.
	Connected
	// Live: the last update was a snapshot.
	Live
	// Reconnecting: the daemon is unreachable; the Source keeps trying.
	Reconnecting
	// Closed: the Source has stopped.
	Closed
)

// statusView is one line: the link to the daemon, the age of the last
// snapshot, the filter and the last action's result.
func (m Model) statusView() string {
	st := m.common.Styles
	now := m.common.Now()
	var age string
	if m.snap != nil {
		age = "snapshot " + ago(now, m.snap.Generated)
	}
	var left string
	switch m.state {
	case Connecting:
		left = st.Status.Normal.Render("… connecting to the daemon")
	case Connected:
		left = st.Status.Normal.Render("● connected · waiting for a snapshot")
	case Live:
		switch m.snap.Source {
		case "daemon":
			if via := m.viaText(); via != "" {
				// Fell over to another peer: live, but say through whom.
				left = st.Status.Notice.Render("● live · " + via + " · " + age)
			} else {
				left = st.Status.Normal.Render("● live · " + age)
			}
		case "direct":
			// Probes run by the console itself: no cluster, no actions.
			left = st.Status.Notice.Render("● direct view · no daemon · read-only · " + age)
		default:
			left = st.Status.Normal.Render("● live · " + m.snap.Source + " · " + age)
		}
	case Reconnecting:
		s := "✘ daemon unreachable — reconnecting"
		if m.snap != nil {
			s += " · last " + age
		}
		if m.lastErr != nil {
			s += " · " + oneLine(m.lastErr)
		}
		left = st.Status.Alert.Render(s)
	case Closed:
		s := "✘ status source closed"
		if m.snap != nil {
			s += " · last " + age
		}
		left = st.Status.Alert.Render(s)
	}
	var extra []string
	if f := m.filters[m.active]; f != "" && !m.filtering {
		extra = append(extra, st.Status.Notice.Render("filter: "+f))
	}
	if m.notice != "" && !m.alert {
		extra = append(extra, st.Status.Notice.Render(m.notice))
	}
	if len(extra) > 0 {
		left += st.Faint.Render(" │ ") + strings.Join(extra, st.Faint.Render(" │ "))
	}
	return left
}

// viaText says through which daemon the console sees the cluster when it
// fell over from the preferred one ("" when it did not).
func (m Model) viaText() string {
	r := m.via
	if !r.FellOver() {
		return ""
	}
	if len(r.Unreachable) > 0 {
		return "via " + r.Via + " (" + strings.Join(r.Unreachable, ", ") + " unreachable)"
	}
	return "via " + r.Via + " (" + r.Preferred + " is back · r returns)"
}

// canReturn says the console fell over to another daemon, the preferred
// one answers again and the Source can go back to it.
func (m *Model) canReturn() bool {
	_, ok := m.src.(Returner)
	return ok && m.via.FellOver() && len(m.via.Unreachable) == 0
}

// oneLine is an error's text on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
