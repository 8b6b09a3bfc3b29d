package tui

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/table"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/epconsole/epconsole/internal/status"
)

// backends is the table of backends × peers: every peer's view of every
// apiserver, so that split views stand out, with drain and undrain.
type backends struct {
	common  shared
	snap    *status.Snapshot
	table   table.Model
	shown   []status.Backend
	peers   []string
	filter  string
	details bool
}

func newBackends(c shared) *backends {
	return &backends{common: c, table: newTable(c), details: true}
}

func (p *backends) Title() string { return "Backends" }

func (p *backends) ShortHelp() []key.Binding {
	k := p.common.Keys
	return []key.Binding{k.Drain, k.Undrain, k.Details}
}

func (p *backends) FullHelp() [][]key.Binding {
	k := p.common.Keys
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.GotoTop, k.GotoBottom}, {k.Drain, k.Undrain, k.Details}}
}

func (p *backends) SetFilter(f string) { p.filter = f; p.rebuild() }

func (p *backends) SetSize(w, h int) {
	p.common.Width, p.common.Height = w, h
	p.rebuild()
}

func (p *backends) Update(msg tea.Msg) (pane, tea.Cmd) {
	switch msg := msg.(type) {
	case SnapshotMsg:
		p.snap = msg.Snapshot
		p.rebuild()
		return p, nil
	case tea.KeyMsg:
		if key.Matches(msg, p.common.Keys.Details) {
			p.details = !p.details
			p.rebuild()
			return p, nil
		}
	}
	var cmd tea.Cmd
	p.table, cmd = p.table.Update(msg)
	return p, cmd
}

// Action drains or undrains the selected backend.
func (p *backends) Action(kind ActionKind) (Action, error) {
	b, ok := p.selected()
	if !ok {
		return Action{}, errors.New("no backend selected")
	}
	switch kind {
	case Drain:
		if b.Drained {
			return Action{}, fmt.Errorf("%s is already drained", b.Name)
		}
	case Undrain:
		if !b.Drained {
			return Action{}, fmt.Errorf("%s is not drained", b.Name)
		}
	default:
		return Action{}, errors.New("hand the VIP over from the Peers view (6)")
	}
	return Action{Kind: kind, Target: b.Name}, nil
}

func (p *backends) selected() (status.Backend, bool) {
	i := p.table.Cursor()
	if i < 0 || i >= len(p.shown) {
		return status.Backend{}, false
	}
	return p.shown[i], true
}

// stateCell is a state in a few letters; down is loud.
func stateCell(state string) string {
	switch state {
	case "up":
		return "up"
	case "down":
		return "DOWN"
	case "rising":
		return "rise"
	case "falling":
		return "fall"
	case "":
		return "—"
	}
	return "?"
}

// split says whether the peers disagree about b: some see it serving (up,
// falling) and some not (down, rising). Unknown views take no side.
func split(b status.Backend) bool {
	var serving, not bool
	for _, v := range b.Views {
		switch v.State {
		case "up", "falling":
			serving = true
		case "down", "rising":
			not = true
		}
	}
	return serving && not
}

// view returns peer's view of b.
func view(b status.Backend, peer string) (status.BackendView, bool) {
	for _, v := range b.Views {
		if v.Peer == peer {
			return v, true
		}
	}
	return status.BackendView{}, false
}

// reason is the first reason a peer gives for a backend not being up.
func reason(b status.Backend) string {
	for _, v := range b.Views {
		if v.State != "up" && v.Reason != "" {
			return v.Peer + ": " + v.Reason
		}
	}
	return ""
}

func (p *backends) rebuild() {
	if p.snap == nil {
		return
	}
	p.peers = p.peers[:0]
	for _, peer := range p.snap.Peers {
		p.peers = append(p.peers, peer.Name)
	}
	nameW := 7
	for _, b := range p.snap.Backends {
		nameW = max(nameW, len(b.Name)+2)
	}
	fixed := []table.Column{{Title: "Backend", Width: nameW}}
	wide := p.common.Width >= 110
	if wide {
		fixed = append(fixed, table.Column{Title: "Address", Width: 21})
	}
	for _, name := range p.peers {
		fixed = append(fixed, table.Column{Title: name, Width: max(len(name), 4)})
	}
	fixed = append(fixed,
		table.Column{Title: "Latency", Width: 7},
		table.Column{Title: "Conns", Width: 5},
		table.Column{Title: "Drain", Width: 5})
	cols := columns(p.common.Width, fixed, table.Column{Title: "Reason"}, 8)
	self := selfName(p.snap)

	p.shown = p.shown[:0]
	var rows []table.Row
	for _, b := range p.snap.Backends {
		if !contains(p.filter, b.Name, b.Address) {
			continue
		}
		p.shown = append(p.shown, b)
		mark := "  "
		if split(b) {
			mark = "! "
		}
		r := table.Row{mark + b.Name}
		if wide {
			r = append(r, b.Address)
		}
		for _, name := range p.peers {
			v, ok := view(b, name)
			if !ok {
				r = append(r, "—")
				continue
			}
			r = append(r, stateCell(v.State))
		}
		lat := "—"
		if v, ok := view(b, self); ok {
			lat = latency(v.Latency)
		}
		drain := ""
		if b.Drained {
			drain = "yes"
		}
		r = append(r, lat, strconv.Itoa(b.Connections), drain)
		if len(cols) > len(fixed) {
			r = append(r, reason(b))
		}
		rows = append(rows, r)
	}
	fill(&p.table, cols, rows)
	p.table.SetWidth(p.common.Width)
	limit := p.common.Height - 1
	if p.details {
		limit = p.common.Height - 2 - len(p.peers) - 2
	}
	p.table.SetHeight(tableHeight(len(rows), max(limit, 3)))
}

func (p *backends) View() string {
	st := p.common.Styles
	if p.snap == nil {
		return st.Faint.Render("waiting for the first snapshot…")
	}
	if len(p.snap.Backends) == 0 {
		return st.Faint.Render("no backends configured")
	}
	out := []string{p.table.View()}
	b, ok := p.selected()
	if !ok {
		return strings.Join(append(out, st.Faint.Render("no backend matches the filter")), "\n")
	}
	if p.details {
		out = append(out, "", p.detail(b))
	}
	if f := findings(p.common, p.snap, "backends", ""); len(f) > 0 {
		out = append(append(out, ""), f...)
	}
	return strings.Join(out, "\n")
}

// detail is the selected backend as every peer sees it.
func (p *backends) detail(b status.Backend) string {
	st := p.common.Styles
	now := p.common.Now()
	drained := "not drained"
	if b.Drained {
		drained = st.Severity.Warning.Render("drained")
	}
	head := fmt.Sprintf("%s %s · %d connections · %s", st.Title.Render(b.Name), b.Address, b.Connections, drained)
	if split(b) {
		head += " · " + st.Severity.Warning.Render("! split view")
	}
	lines := []string{head}
	for _, v := range b.Views {
		state := pad(v.State, 7)
		if v.State == "up" {
			state = st.Good.Render(state)
		} else {
			state = st.Bad.Render(state)
		}
		l := fmt.Sprintf("  %s %s %s %s", pad(v.Peer, 6), state, pad(latency(v.Latency), 7),
			st.Faint.Render("since "+clock(now, v.Since)))
		if v.Reason != "" {
			l += "  " + v.Reason
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}
