// Package styles owns every lipgloss style of epconsole's TUI: one Styles
// value built by a constructor per colour capability (full colour, the 16
// ANSI colours, no colour at all), so views never branch on the terminal.
//
// It is its own package so that panes and the root model can share it
// without import cycles.
package styles

import (
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/epconsole/epconsole/probes"
)

// Styles holds every style the TUI renders with.
type Styles struct {
	// App frames the whole screen.
	App lipgloss.Style
	// Tabs are the view switcher: Normal and Active tabs.
	Tabs struct {
		Normal lipgloss.Style
		Active lipgloss.Style
		Bar    lipgloss.Style
	}
	// Title is a section heading inside a view.
	Title lipgloss.Style
	// Label is a field name; Value its value; Faint secondary text.
	Label lipgloss.Style
	Value lipgloss.Style
	Faint lipgloss.Style
	// Severity colours a verdict: OK, Warning, Unknown, Critical.
	Severity struct {
		OK       lipgloss.Style
		Warning  lipgloss.Style
		Unknown  lipgloss.Style
		Critical lipgloss.Style
	}
	// Good and Bad mark a ✔ or ✘, an up or down state.
	Good lipgloss.Style
	Bad  lipgloss.Style
	// Table styles the bubbles tables.
	Table struct {
		Header   lipgloss.Style
		Cell     lipgloss.Style
		Selected lipgloss.Style
	}
	// Status is the status line: Normal when live, Alert when the daemon is
	// unreachable, Notice for the result of an action.
	Status struct {
		Normal lipgloss.Style
		Alert  lipgloss.Style
		Notice lipgloss.Style
	}
	// Dialog is the confirmation box.
	Dialog lipgloss.Style
	// Help styles bubbles/help.
	Help struct {
		Key       lipgloss.Style
		Desc      lipgloss.Style
		Separator lipgloss.Style
	}
}

// SeverityStyle returns the style of a severity.
func (s *Styles) SeverityStyle(sev probes.Severity) lipgloss.Style {
	switch sev {
	case probes.OK:
		return s.Severity.OK
	case probes.Warning:
		return s.Severity.Warning
	case probes.Critical:
		return s.Severity.Critical
	}
	return s.Severity.Unknown
}

// palette is the handful of colours a constructor chooses.
type palette struct {
	accent, faint, good, warn, bad, unknown, selBg, selFg, alertBg, alertFg lipgloss.TerminalColor
}

func build(r *lipgloss.Renderer, p *palette) *Styles {
	n := r.NewStyle
	s := &Styles{}
	color := func(st lipgloss.Style, c lipgloss.TerminalColor) lipgloss.Style {
		if p == nil || c == nil {
			return st
		}
		return st.Foreground(c)
	}
	s.App = n()
	s.Tabs.Normal = color(n(), faintOf(p))
	s.Tabs.Active = n().Bold(true).Reverse(true)
	s.Tabs.Bar = n()
	s.Title = color(n().Bold(true), accentOf(p))
	s.Label = color(n(), faintOf(p))
	s.Value = n()
	s.Faint = color(n(), faintOf(p))
	if p != nil {
		s.Severity.OK = n().Foreground(p.good)
		s.Severity.Warning = n().Foreground(p.warn).Bold(true)
		s.Severity.Unknown = n().Foreground(p.unknown).Bold(true)
		s.Severity.Critical = n().Foreground(p.bad).Bold(true)
		s.Good = n().Foreground(p.good)
		s.Bad = n().Foreground(p.bad).Bold(true)
	} else {
		s.Severity.OK = n()
		s.Severity.Warning = n().Bold(true)
		s.Severity.Unknown = n().Bold(true)
		s.Severity.Critical = n().Bold(true).Underline(true)
		s.Good = n()
		s.Bad = n().Bold(true)
	}
	s.Table.Header = color(n().Bold(true).Padding(0, 1), accentOf(p))
	s.Table.Cell = n().Padding(0, 1)
	if p != nil {
		s.Table.Selected = n().Background(p.selBg).Foreground(p.selFg)
		s.Status.Alert = n().Background(p.alertBg).Foreground(p.alertFg).Bold(true)
	} else {
		s.Table.Selected = n().Reverse(true)
		s.Status.Alert = n().Reverse(true).Bold(true)
	}
	s.Status.Normal = color(n(), faintOf(p))
	s.Status.Notice = color(n().Bold(true), accentOf(p))
	s.Dialog = n().Border(lipgloss.RoundedBorder()).Padding(0, 1)
	if p != nil {
		s.Dialog = s.Dialog.BorderForeground(p.warn)
	}
	s.Help.Key = color(n().Bold(true), accentOf(p))
	s.Help.Desc = color(n(), faintOf(p))
	s.Help.Separator = color(n(), faintOf(p))
	return s
}

func faintOf(p *palette) lipgloss.TerminalColor {
	if p == nil {
		return nil
	}
	return p.faint
}

func accentOf(p *palette) lipgloss.TerminalColor {
	if p == nil {
		return nil
	}
	return p.accent
}

// DefaultStyles are the full-colour styles (256 colours and up, adapting to
// a light or dark background).
func DefaultStyles(r *lipgloss.Renderer) *Styles {
	return build(r, &palette{
		accent:  lipgloss.AdaptiveColor{Light: "25", Dark: "75"},
		faint:   lipgloss.AdaptiveColor{Light: "243", Dark: "245"},
		good:    lipgloss.AdaptiveColor{Light: "28", Dark: "42"},
		warn:    lipgloss.AdaptiveColor{Light: "130", Dark: "214"},
		bad:     lipgloss.AdaptiveColor{Light: "160", Dark: "203"},
		unknown: lipgloss.AdaptiveColor{Light: "90", Dark: "177"},
		selBg:   lipgloss.AdaptiveColor{Light: "153", Dark: "24"},
		selFg:   lipgloss.AdaptiveColor{Light: "16", Dark: "231"},
		alertBg: lipgloss.Color("160"),
		alertFg: lipgloss.Color("231"),
	})
}

// ANSI16Styles use only the 16 basic ANSI colours, for terminals (and
// serial consoles) that have no more.
func ANSI16Styles(r *lipgloss.Renderer) *Styles {
	return build(r, &palette{
		accent:  lipgloss.Color("4"),
		faint:   lipgloss.Color("8"),
		good:    lipgloss.Color("2"),
		warn:    lipgloss.Color("3"),
		bad:     lipgloss.Color("1"),
		unknown: lipgloss.Color("5"),
		selBg:   lipgloss.Color("4"),
		selFg:   lipgloss.Color("15"),
		alertBg: lipgloss.Color("1"),
		alertFg: lipgloss.Color("15"),
	})
}

// NoColorStyles use no colour at all, only bold, underline and reverse
// (https://no-color.org). Every state is also written out in text, so
// nothing is lost when even those attributes are absent.
func NoColorStyles(r *lipgloss.Renderer) *Styles {
	return build(r, nil)
}

// FromEnv chooses the styles for r from the environment: NoColorStyles when
// NO_COLOR is set (to anything non-empty), ANSI16Styles when r's profile
// has only 16 colours, DefaultStyles otherwise. getenv is os.Getenv in
// production.
func FromEnv(r *lipgloss.Renderer, getenv func(string) string) *Styles {
	if getenv("NO_COLOR") != "" {
		return NoColorStyles(r)
	}
	switch r.ColorProfile() {
	case termenv.ANSI, termenv.Ascii:
		return ANSI16Styles(r)
	}
	return DefaultStyles(r)
}
