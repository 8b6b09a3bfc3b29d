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
	tablePane[status.Backend]
	peers   []string
	split   map[string]bool
	details bool
}

func newBackends(c shared) *backends {
	p := &backends{details: true}
	p.tablePane = newTablePane(c, p.layout)
	return p
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

func (p *backends) SetFilter(f string) { p.setFilter(f) }

func (p *backends) Update(msg tea.Msg) (pane, tea.Cmd) {
	if msg, ok := msg.(tea.KeyMsg); ok && key.Matches(msg, p.common.Keys.Details) {
		p.details = !p.details
		p.rebuild()
		return p, nil
	}
	return p, p.update(msg)
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

// splitView names the backends that live peers disagree about (some see
// it in service, some not), as the status model judges it: its split-view
// finding.
func splitView(snap *status.Snapshot) map[string]bool {
	split := map[string]bool{}
	for _, f := range status.ClusterFindings(*snap) {
		if f.Code == status.CodeSplitView {
			split[f.Subject] = true
		}
	}
	return split
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

func (p *backends) layout() (tableLayout[status.Backend], bool) {
	p.split = splitView(p.snap)
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

	var shown []status.Backend
	var rows []table.Row
	for _, b := range p.snap.Backends {
		if !contains(p.filter, b.Name, b.Address) {
			continue
		}
		shown = append(shown, b)
		mark := "  "
		if p.split[b.Name] {
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
	limit := p.common.Height - 1
	if p.details {
		limit = p.common.Height - 2 - len(p.peers) - 2
	}
	return tableLayout[status.Backend]{Columns: cols, Rows: rows, Items: shown, MaxHeight: limit}, true
}

func (p *backends) View() string {
	st := p.common.Styles
	if p.snap == nil {
		return waiting(p.common)
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
	if p.split[b.Name] {
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
