package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/epconsole/epconsole/internal/status"
)

// events is the daemon's event log, scrollable and filtered with `/`. It
// follows new events while scrolled to the bottom.
type events struct {
	common shared
	snap   *status.Snapshot
	vp     viewport.Model
	filter string
	shown  int
}

func newEvents(c shared) *events {
	vp := viewport.New(c.Width, c.Height)
	vp.KeyMap = c.Keys.Viewport()
	return &events{common: c, vp: vp}
}

func (p *events) Title() string { return "Events" }

func (p *events) ShortHelp() []key.Binding { return nil }

func (p *events) FullHelp() [][]key.Binding {
	k := p.common.Keys
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.GotoTop, k.GotoBottom}}
}

func (p *events) SetFilter(f string) {
	p.filter = f
	p.refill(true)
}

func (p *events) SetSize(w, h int) {
	p.common.Width, p.common.Height = w, h
	follow := p.vp.AtBottom()
	p.vp.Width, p.vp.Height = w, max(h-1, 1)
	p.refill(follow)
}

func (p *events) Update(msg tea.Msg) (pane, tea.Cmd) {
	switch msg := msg.(type) {
	case SnapshotMsg:
		follow := p.vp.AtBottom()
		p.snap = msg.Snapshot
		p.refill(follow)
		return p, nil
	case tea.KeyMsg:
		k := p.common.Keys
		switch {
		case key.Matches(msg, k.GotoTop):
			p.vp.GotoTop()
			return p, nil
		case key.Matches(msg, k.GotoBottom):
			p.vp.GotoBottom()
			return p, nil
		}
	}
	var cmd tea.Cmd
	p.vp, cmd = p.vp.Update(msg)
	return p, cmd
}

// refill renders the filtered events into the viewport.
func (p *events) refill(follow bool) {
	if p.snap == nil {
		return
	}
	var lines []string
	for _, e := range p.snap.Events {
		if !contains(p.filter, e.Kind, e.Subject, e.Message) {
			continue
		}
		lines = append(lines, fit(eventLine(p.common, e), p.common.Width, 1))
	}
	p.shown = len(lines)
	p.vp.SetContent(strings.Join(lines, "\n"))
	if follow {
		p.vp.GotoBottom()
	}
}

func (p *events) View() string {
	st := p.common.Styles
	if p.snap == nil {
		return waiting(p.common)
	}
	head := fmt.Sprintf("%d events", len(p.snap.Events))
	if p.filter != "" {
		head = fmt.Sprintf("%d of %d events match %q", p.shown, len(p.snap.Events), p.filter)
	}
	if p.shown > p.vp.Height {
		head += st.Faint.Render(fmt.Sprintf(" · %3.0f%%", p.vp.ScrollPercent()*100))
	}
	return st.Title.Render(head) + "\n" + p.vp.View()
}
