package tui

import (
	"context"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui/keymap"
	"github.com/epconsole/epconsole/tui/styles"
)

// View numbers, in tab order.
const (
	ViewOverview = iota
	ViewBackends
	ViewTLS
	ViewEtcd
	ViewEvents
	ViewPeers
)

// Model is the root model of the TUI. Its panes live behind pointers: use
// the Model that Update returns, not an older copy.
//
// This file routes messages and keys; the screen (view.go), the help
// (help.go), the status line (statusbar.go), the filter (filter.go), the
// confirmation dialog (dialog.go) and the drill menu (drillmenu.go) have
// files of their own.
type Model struct {
	common shared
	ctx    context.Context
	src    Source
	acts   Actions
	drills Drills
	ch     <-chan status.Update

	panes   []pane
	filters []string
	active  int

	help      help.Model
	input     textinput.Model
	filtering bool
	confirm   *Action
	menu      *drillMenu
	drillHead string
	drillText string

	snap    *status.Snapshot
	via     *status.Route
	state   ConnState
	lastErr error
	notice  string
	alert   bool
}

// New returns the TUI's model for opts, sized 80×24 until the terminal
// says otherwise.
func New(opts Options) Model {
	c := shared{Width: 80, Height: 24, Styles: opts.Styles, Keys: opts.Keys, Now: opts.Now}
	if c.Styles == nil {
		c.Styles = styles.DefaultStyles(lipgloss.DefaultRenderer())
	}
	if c.Keys == nil {
		c.Keys = keymap.DefaultKeyMap()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	m := Model{
		common: c,
		ctx:    context.Background(),
		src:    opts.Source,
		acts:   opts.Actions,
		drills: opts.Drills,
		panes: []pane{
			newOverview(c), newBackends(c), newTLS(c), newEtcd(c), newEvents(c), newPeers(c),
		},
		help:  newHelp(c.Styles),
		input: newFilterInput(c.Styles),
	}
	m.filters = make([]string, len(m.panes))
	m.layout()
	return m
}

// WithContext returns m with ctx for its commands: the Source's stream and
// the actions end with it.
func (m Model) WithContext(ctx context.Context) Model {
	m.ctx = ctx
	return m
}

// Init starts the Source and the clock.
func (m Model) Init() tea.Cmd {
	if m.src == nil {
		return tick()
	}
	return tea.Batch(subscribe(m.ctx, m.src), tick())
}

// Update routes a message to whom it concerns. It does no I/O.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmds []tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.common.Width, m.common.Height = msg.Width, msg.Height
	case subscribedMsg:
		m.ch = msg.ch
		cmds = append(cmds, next(m.ch))
	case SnapshotMsg:
		if msg.Snapshot != nil {
			m.snap = msg.Snapshot
			m.via = msg.Route
			m.state = Live
			m.lastErr = nil
			cmds = append(cmds, m.broadcast(msg)...)
		}
		if m.ch != nil {
			cmds = append(cmds, next(m.ch))
		}
	case DisconnectedMsg:
		m.state = Reconnecting
		m.lastErr = msg.Err
		if m.ch != nil {
			cmds = append(cmds, next(m.ch))
		}
	case ConnectedMsg:
		m.via = msg.Route
		if m.state != Live {
			m.state, m.lastErr = Connected, nil
		}
		if m.ch != nil {
			cmds = append(cmds, next(m.ch))
		}
	case ReturnedMsg:
		m.notice, m.alert = "back to "+msg.To+"…", false
	case SourceClosedMsg:
		m.state = Closed
		m.ch = nil
	case TickMsg:
		cmds = append(cmds, tick())
	case DrillsListedMsg:
		m.drillsListed(msg)
	case DrillDoneMsg:
		cmds = append(cmds, m.drillDone(msg))
	case ActionDoneMsg:
		m.actionDone(msg)
	case tea.KeyMsg:
		// Keys typed quickly (or over a slow link) arrive as one message of
		// several runes: each is a key of its own.
		if msg.Type == tea.KeyRunes && len(msg.Runes) > 1 && !msg.Paste {
			for _, r := range msg.Runes {
				cmds = append(cmds, m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: msg.Alt}))
			}
			break
		}
		cmds = append(cmds, m.key(msg))
	default:
		cmds = append(cmds, m.route(msg))
	}
	m.layout()
	return m, tea.Batch(cmds...)
}

// key handles a key press: the dialog, the drill menu and the filter
// first, then global keys, then the active pane.
func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	switch {
	case m.confirm != nil:
		return m.dialogKey(msg)
	case m.menu != nil:
		return m.menuKey(msg)
	case m.filtering:
		return m.filterKey(msg)
	}
	k := m.common.Keys
	switch {
	case key.Matches(msg, k.Quit):
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.help.ShowAll = !m.help.ShowAll
	case key.Matches(msg, k.NextTab):
		m.switchTo((m.active + 1) % len(m.panes))
	case key.Matches(msg, k.PrevTab):
		m.switchTo((m.active + len(m.panes) - 1) % len(m.panes))
	case key.Matches(msg, k.Views):
		if i := keymap.ViewIndex(msg.String()); i >= 0 && i < len(m.panes) {
			m.switchTo(i)
		}
	case key.Matches(msg, k.Filter):
		return m.startFilter()
	case key.Matches(msg, k.Return) && m.canReturn():
		return goBack(m.src.(Returner), m.via.Preferred)
	case key.Matches(msg, k.Lab) && m.drills != nil:
		return m.openMenu()
	case key.Matches(msg, k.Close) && m.drillText != "":
		m.drillText, m.drillHead = "", ""
	case key.Matches(msg, k.Back) && m.filters[m.active] != "":
		m.setFilter("")
	case key.Matches(msg, k.Drain):
		m.ask(Drain)
	case key.Matches(msg, k.Undrain):
		m.ask(Undrain)
	case key.Matches(msg, k.Handoff):
		m.ask(Handoff)
	default:
		return m.route(msg)
	}
	return nil
}

func (m *Model) switchTo(i int) {
	m.active = i
	m.notice = ""
}

// route hands msg to the active pane.
func (m *Model) route(msg tea.Msg) tea.Cmd {
	p, cmd := m.panes[m.active].Update(msg)
	m.panes[m.active] = p
	return cmd
}

// broadcast hands msg to every pane.
func (m *Model) broadcast(msg tea.Msg) []tea.Cmd {
	var cmds []tea.Cmd
	for i, p := range m.panes {
		var cmd tea.Cmd
		m.panes[i], cmd = p.Update(msg)
		cmds = append(cmds, cmd)
	}
	return cmds
}

// layout sizes the panes to what the chrome leaves.
func (m *Model) layout() {
	m.help.Width = m.common.Width
	for _, p := range m.panes {
		p.SetSize(m.common.Width, m.bodyHeight())
	}
}
