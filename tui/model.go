package tui

import (
	"context"
	"strings"
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

// Model is the root model of the TUI. Its panes live behind pointers: use
// the Model that Update returns, not an older copy.
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
	st := c.Styles
	h := help.New()
	h.Styles = help.Styles{
		ShortKey: st.Help.Key, ShortDesc: st.Help.Desc, ShortSeparator: st.Help.Separator,
		FullKey: st.Help.Key, FullDesc: st.Help.Desc, FullSeparator: st.Help.Separator,
		Ellipsis: st.Help.Separator,
	}
	in := textinput.New()
	in.Prompt = "/"
	in.Placeholder = "filter"
	in.PromptStyle = st.Title
	in.TextStyle = st.Value
	in.PlaceholderStyle = st.Faint
	in.Cursor.Style = st.Value
	m := Model{
		common: c,
		ctx:    context.Background(),
		src:    opts.Source,
		acts:   opts.Actions,
		drills: opts.Drills,
		panes: []pane{
			newOverview(c), newBackends(c), newTLS(c), newEtcd(c), newEvents(c), newPeers(c),
		},
		help:  h,
		input: in,
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
		if m.menu != nil {
			m.menu.loading, m.menu.list, m.menu.err = false, msg.Drills, msg.Err
			if msg.Err != nil {
				m.menu.list = nil
			}
			m.menu.cursor = min(m.menu.cursor, max(len(msg.Drills)-1, 0))
		}
	case DrillDoneMsg:
		if m.menu != nil && m.drills != nil {
			// Reopened meanwhile: show the drill's new state.
			cmds = append(cmds, listDrills(m.ctx, m.drills))
		}
		if msg.Err != nil {
			m.notice, m.alert = msg.Err.Error(), true
			break
		}
		m.drillHead = "lab " + msg.Verb + " " + msg.Name + " · what to look for (esc closes)"
		m.drillText = msg.Text
		if msg.Verb == VerbHeal {
			m.notice, m.alert = "healed "+msg.Name, false
		} else {
			m.notice, m.alert = "fault "+msg.Name+" in place", false
		}
	case ActionDoneMsg:
		if msg.Err != nil {
			m.notice, m.alert = msg.Err.Error(), true
		} else {
			m.notice, m.alert = msg.Action.done(), false
		}
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

// key handles a key press: the dialog and the filter first, then global
// keys, then the active pane.
func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	k := m.common.Keys
	if m.confirm != nil {
		switch {
		case key.Matches(msg, k.Confirm):
			a := *m.confirm
			m.confirm = nil
			m.notice, m.alert = a.Kind.String()+" "+a.Target+"…", false
			if a.Kind == Fault || a.Kind == Heal {
				// The menu closes so that the views show the drill's effect.
				m.menu = nil
				return runDrill(m.ctx, m.drills, a)
			}
			return run(m.ctx, m.acts, a)
		case key.Matches(msg, k.Cancel):
			m.confirm = nil
			m.notice, m.alert = "cancelled", false
		case msg.Type == tea.KeyCtrlC:
			return tea.Quit
		}
		return nil
	}
	if m.menu != nil {
		return m.menuKey(msg)
	}
	if m.filtering {
		switch {
		case key.Matches(msg, k.Back):
			m.filtering = false
			m.input.Blur()
			m.setFilter("")
			return nil
		case key.Matches(msg, k.Apply):
			m.filtering = false
			m.input.Blur()
			return nil
		case msg.Type == tea.KeyCtrlC:
			return tea.Quit
		}
		var cmd tea.Cmd
		m.input, cmd = m.input.Update(msg)
		m.setFilter(m.input.Value())
		return cmd
	}
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
		if _, ok := m.panes[m.active].(filterable); ok {
			m.filtering = true
			m.input.SetValue(m.filters[m.active])
			m.input.CursorEnd()
			return m.input.Focus()
		}
	case key.Matches(msg, k.Return) && m.canReturn():
		return goBack(m.src.(Returner), m.via.Preferred)
	case key.Matches(msg, k.Lab) && m.drills != nil:
		m.menu = &drillMenu{loading: true}
		m.notice, m.alert = "", false
		return listDrills(m.ctx, m.drills)
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

// canReturn says the console fell over to another daemon, the preferred
// one answers again and the Source can go back to it.
func (m *Model) canReturn() bool {
	_, ok := m.src.(Returner)
	return ok && m.via.FellOver() && len(m.via.Unreachable) == 0
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

// menuKey handles a key while the drill menu is open: it takes every
// key but quit and help.
func (m *Model) menuKey(msg tea.KeyMsg) tea.Cmd {
	k := m.common.Keys
	d := m.menu
	switch {
	case key.Matches(msg, k.Quit):
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.help.ShowAll = !m.help.ShowAll
	case key.Matches(msg, k.Close), key.Matches(msg, k.Lab):
		m.menu = nil
	case key.Matches(msg, k.Up):
		d.cursor = max(d.cursor-1, 0)
	case key.Matches(msg, k.Down):
		d.cursor = min(d.cursor+1, max(len(d.list)-1, 0))
	case key.Matches(msg, k.GotoTop):
		d.cursor = 0
	case key.Matches(msg, k.GotoBottom):
		d.cursor = max(len(d.list)-1, 0)
	case key.Matches(msg, k.RunDrill):
		x, ok := d.selected()
		if !ok {
			return nil
		}
		a := Action{Kind: Fault, Target: x.Name}
		if x.Active {
			a = Action{Kind: Heal, Target: x.Name, From: x.Target}
		}
		m.confirm = &a
		m.notice, m.alert = "", false
	}
	return nil
}

// ask opens the confirmation dialog for an action on the active pane's
// selection, or says why there is none.
func (m *Model) ask(kind ActionKind) {
	p, ok := m.panes[m.active].(acting)
	if !ok {
		return
	}
	a, err := p.Action(kind)
	switch {
	case err != nil:
		m.notice, m.alert = err.Error(), true
	case m.acts == nil:
		m.notice, m.alert = "read-only: no daemon to "+kind.String()+" through", true
	default:
		m.confirm = &a
		m.notice = ""
	}
}

func (m *Model) switchTo(i int) {
	m.active = i
	m.notice = ""
}

func (m *Model) setFilter(f string) {
	m.filters[m.active] = f
	if p, ok := m.panes[m.active].(filterable); ok {
		p.SetFilter(f)
	}
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

func (m *Model) bodyHeight() int {
	h := m.common.Height - 2 - lipgloss.Height(m.help.View(m))
	if m.filtering {
		h--
	}
	if m.confirm != nil {
		h -= lipgloss.Height(m.dialogView())
	}
	if m.drillText != "" {
		h -= lipgloss.Height(m.drillBoxView())
	}
	if m.alert && m.notice != "" {
		h--
	}
	return max(h, 1)
}

// View draws the screen: tabs, the active pane, the filter or dialog, the
// status line and help.
func (m Model) View() string {
	w, h := m.common.Width, m.common.Height
	view := m.panes[m.active].View()
	if m.menu != nil {
		view = m.menuView()
	}
	body := fit(view, w, m.bodyHeight())
	if n := lipgloss.Height(body); n < m.bodyHeight() {
		body += strings.Repeat("\n", m.bodyHeight()-n)
	}
	parts := []string{m.tabsView(), body}
	if m.filtering {
		m.input.Width = max(w-3, 1)
		parts = append(parts, m.input.View())
	}
	if m.drillText != "" {
		parts = append(parts, m.drillBoxView())
	}
	if m.confirm != nil {
		parts = append(parts, m.dialogView())
	}
	if m.alert && m.notice != "" {
		// An error gets a line of its own: it must be read whole.
		parts = append(parts, m.common.Styles.Severity.Critical.Render("✘ "+m.notice))
	}
	parts = append(parts, m.statusView(), m.help.View(&m))
	return fit(strings.Join(parts, "\n"), w, h)
}

func (m Model) tabsView() string {
	st := m.common.Styles
	var tabs []string
	for i, p := range m.panes {
		t := string(rune('1'+i)) + " " + p.Title()
		if i == m.active {
			// Brackets mark the tab also where no attribute shows.
			tabs = append(tabs, st.Tabs.Active.Render("["+t+"]"))
		} else {
			tabs = append(tabs, st.Tabs.Normal.Render(" "+t+" "))
		}
	}
	bar := lipgloss.JoinHorizontal(lipgloss.Top, tabs...)
	if m.snap != nil {
		right := m.snap.Cluster + " · " + m.snap.Node
		if gap := m.common.Width - lipgloss.Width(bar) - lipgloss.Width(right) - 1; gap >= 1 {
			bar += strings.Repeat(" ", gap) + st.Title.Render(right)
		}
	}
	return st.Tabs.Bar.Render(bar)
}

func (m Model) dialogView() string {
	if m.confirm == nil {
		return ""
	}
	st := m.common.Styles
	q := st.Title.Render("Really "+m.confirm.String()+"?") + "\n" +
		st.Help.Key.Render("y") + st.Help.Desc.Render(" yes  ") +
		st.Help.Key.Render("n") + st.Help.Desc.Render(" no")
	return st.Dialog.MaxWidth(m.common.Width).Render(q)
}

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

// oneLine is an error's text on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// ShortHelp is the help line: the dialog's or filter's keys, or the active
// pane's keys and the global ones.
func (m *Model) ShortHelp() []key.Binding {
	k := m.common.Keys
	switch {
	case m.confirm != nil:
		return []key.Binding{k.Confirm, k.Cancel}
	case m.filtering:
		return []key.Binding{k.Apply, k.Back}
	case m.menu != nil:
		return []key.Binding{k.Up, k.Down, k.RunDrill, k.Close, k.Quit}
	}
	b := append([]key.Binding{k.Help}, m.panes[m.active].ShortHelp()...)
	if _, ok := m.panes[m.active].(filterable); ok {
		b = append(b, k.Filter)
	}
	if m.drills != nil {
		b = append(b, k.Lab)
	}
	if m.canReturn() {
		b = append(b, k.Return)
	}
	return append(b, k.Quit)
}

// FullHelp is the `?` help: every key that works now, in columns.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.common.Keys
	if m.confirm != nil || m.filtering {
		return [][]key.Binding{m.ShortHelp()}
	}
	if m.menu != nil {
		return [][]key.Binding{{k.Up, k.Down, k.GotoTop, k.GotoBottom}, {k.RunDrill, k.Close, k.Help, k.Quit}}
	}
	cols := [][]key.Binding{{k.NextTab, k.PrevTab, k.Views}}
	cols = append(cols, m.panes[m.active].FullHelp()...)
	g := []key.Binding{}
	if _, ok := m.panes[m.active].(filterable); ok {
		g = append(g, k.Filter, k.Back)
	}
	if m.drills != nil {
		g = append(g, k.Lab)
	}
	if m.canReturn() {
		g = append(g, k.Return)
	}
	if m.drillText != "" {
		g = append(g, k.Close)
	}
	return append(cols, append(g, k.Help, k.Quit))
}

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
