package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/tui/keymap"
	"github.com/epconsole/epconsole/tui/styles"
)

// shared is what every pane holds: its size, the styles, the keys and the
// clock. No pane reaches for globals.
type shared struct {
	Width, Height int
	Styles        *styles.Styles
	Keys          *keymap.KeyMap
	Now           func() time.Time
}

// pane is one view of the TUI: a tea model sized by the root, with its own
// help.
type pane interface {
	help.KeyMap
	// Title is the tab's name.
	Title() string
	SetSize(width, height int)
	Update(tea.Msg) (pane, tea.Cmd)
	View() string
}

// filterable panes narrow what they show to a filter typed after `/`.
type filterable interface {
	SetFilter(string)
}

// acting panes offer actions on their selected row.
type acting interface {
	// Action returns the action kind would do on the selected row, or an
	// error saying why it cannot be done.
	Action(kind ActionKind) (Action, error)
}

// waiting is what a pane shows before the first snapshot.
func waiting(c shared) string { return c.Styles.Faint.Render("waiting for the first snapshot…") }

// fit cuts s to at most w columns per line and h lines, so that nothing
// wraps or scrolls the terminal.
func fit(s string, w, h int) string {
	lines := strings.Split(s, "\n")
	if h >= 0 && len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		if ansi.StringWidth(l) > w {
			lines[i] = ansi.Truncate(l, w, "…")
		}
	}
	return strings.Join(lines, "\n")
}

// compact formats a duration the way an operator reads it at a glance.
func compact(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// latency formats a probe latency ("—" when unknown).
func latency(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return compact(d)
}

// ago says how long ago t was ("—" for the zero time).
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return compact(now.Sub(t)) + " ago"
}

// clock formats t as a time of day in now's zone, with the date when it
// is not today.
func clock(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	t = t.In(now.Location())
	y1, m1, d1 := t.Date()
	y2, m2, d2 := now.Date()
	if y1 == y2 && m1 == m2 && d1 == d2 {
		return t.Format("15:04:05")
	}
	return t.Format("Jan 02 15:04")
}

// size formats a byte count in IEC units.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// pad fills s with spaces to w columns (never cuts).
func pad(s string, w int) string {
	if n := ansi.StringWidth(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return s
}

// sevLabel is the fixed-width text of a severity.
func sevLabel(s probes.Severity) string {
	return pad(s.String(), 8)
}

// selfName returns the name of the node that made snap.
func selfName(snap *status.Snapshot) string {
	for _, p := range snap.Peers {
		if p.Self {
			return p.Name
		}
	}
	return snap.Node
}

// contains says whether s contains the filter, ignoring case.
func contains(filter string, s ...string) bool {
	if filter == "" {
		return true
	}
	f := strings.ToLower(filter)
	for _, x := range s {
		if strings.Contains(strings.ToLower(x), f) {
			return true
		}
	}
	return false
}

// findings renders the findings of area (and subject, when not empty),
// worst first as the snapshot has them, with their fixes wrapped to width.
func findings(c shared, snap *status.Snapshot, area, subject string) []string {
	st := c.Styles
	wrap := st.Value.Width(max(c.Width-7, 10))
	var out []string
	for _, f := range snap.Findings {
		if string(f.Check) != area || (subject != "" && f.Subject != subject) {
			continue
		}
		head := st.SeverityStyle(f.Severity).Render(f.Severity.String())
		if f.Subject != "" {
			head += " " + st.Title.Render(f.Subject)
		}
		for _, l := range strings.Split(st.Value.Width(max(c.Width-1, 10)).Render(head+" "+f.Text()), "\n") {
			out = append(out, strings.TrimRight(l, " "))
		}
		for _, x := range f.Fixes {
			lines := strings.Split(wrap.Render(x.String()), "\n")
			for i, l := range lines {
				prefix := "       "
				if i == 0 {
					prefix = "  fix  "
				}
				out = append(out, prefix+strings.TrimRight(l, " "))
			}
		}
	}
	return out
}
