package tui

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/table"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/epconsole/epconsole/internal/status"
)

// tlsView is the certificate check: a ✔/✘ grid of every expected SAN per
// backend, then issuer, expiry and chain per backend, and the fix for the
// selected one.
type tlsView struct {
	tablePane[status.Certificate]
}

func newTLS(c shared) *tlsView {
	p := &tlsView{}
	p.tablePane = newTablePane(c, p.layout)
	return p
}

func (p *tlsView) Title() string { return "TLS" }

func (p *tlsView) ShortHelp() []key.Binding { return nil }

func (p *tlsView) FullHelp() [][]key.Binding {
	k := p.common.Keys
	return [][]key.Binding{{k.Up, k.Down, k.GotoTop, k.GotoBottom}}
}

func (p *tlsView) SetFilter(f string) { p.setFilter(f) }

func (p *tlsView) Update(msg tea.Msg) (pane, tea.Cmd) { return p, p.update(msg) }

// ownName is the SAN that is backend's own address.
func ownName(snap *status.Snapshot, backend string) string {
	for _, b := range snap.Backends {
		if b.Name == backend {
			if h, _, err := net.SplitHostPort(b.Address); err == nil {
				return h
			}
			return b.Address
		}
	}
	return ""
}

func (p *tlsView) layout() (tableLayout[status.Certificate], bool) {
	var shown []status.Certificate
	var rows []table.Row
	for _, c := range p.snap.Certificates {
		if !contains(p.filter, c.Backend, c.Issuer, c.Subject) {
			continue
		}
		shown = append(shown, c)
		days, chain := strconv.Itoa(c.DaysLeft), "ok"
		if !c.ChainOK {
			chain = "BAD"
		}
		var missing []string
		for _, s := range c.SANs {
			if !s.Present {
				missing = append(missing, s.Name)
			}
		}
		miss := "none"
		if len(missing) > 0 {
			miss = strings.Join(missing, ", ")
		}
		issuer := c.Issuer
		if c.Error != "" {
			days, chain, miss, issuer = "—", "—", "—", c.Error
		}
		rows = append(rows, table.Row{c.Backend, days, chain, miss, issuer})
	}
	fixed := []table.Column{
		{Title: "Backend", Width: 8}, {Title: "Days", Width: 4}, {Title: "Chain", Width: 5},
		{Title: "Missing SANs", Width: min(max(p.common.Width/4, 12), 30)},
	}
	cols := columns(p.common.Width, fixed, table.Column{Title: "Issuer"}, 6)
	for i := range rows {
		rows[i] = rows[i][:len(cols)]
	}
	return tableLayout[status.Certificate]{Columns: cols, Rows: rows, Items: shown,
		MaxHeight: p.common.Height - len(p.gridRows()) - 7}, true
}

// gridRow is one expected SAN and, per backend, whether its certificate
// has it ('✔'), lacks it ('✘') or does not expect it ('·').
type gridRow struct {
	name  string
	cells []string
}

func (p *tlsView) gridRows() []gridRow {
	if p.snap == nil {
		return nil
	}
	certs := p.snap.Certificates
	var rows []gridRow
	index := map[string]int{}
	const own = "(own address)"
	for ci, c := range certs {
		self := ownName(p.snap, c.Backend)
		for _, s := range c.SANs {
			name := s.Name
			if name == self {
				name = own
			}
			i, ok := index[name]
			if !ok {
				i = len(rows)
				index[name] = i
				cells := make([]string, len(certs))
				for j := range cells {
					cells[j] = "·"
				}
				rows = append(rows, gridRow{name: name, cells: cells})
			}
			mark := "✔"
			if !s.Present {
				mark = "✘"
			}
			rows[i].cells[ci] = mark
		}
	}
	return rows
}

func (p *tlsView) View() string {
	st := p.common.Styles
	if p.snap == nil {
		return waiting(p.common)
	}
	if len(p.snap.Certificates) == 0 {
		return st.Faint.Render("no certificates checked")
	}
	grid := p.gridRows()
	nameW := len("Expected SAN")
	for _, r := range grid {
		nameW = max(nameW, len(r.name))
	}
	nameW = min(nameW, 32)
	widths := make([]int, len(p.snap.Certificates))
	head := " " + pad("Expected SAN", nameW)
	for i, c := range p.snap.Certificates {
		widths[i] = max(len(c.Backend), 3)
		head += "  " + pad(c.Backend, widths[i])
	}
	out := []string{st.Table.Header.Render(strings.TrimPrefix(head, " "))}
	for _, r := range grid {
		l := "  " + pad(r.name, nameW)
		for i, c := range r.cells {
			cell := pad(" "+c, widths[i])
			switch c {
			case "✔":
				cell = st.Good.Render(cell)
			case "✘":
				cell = st.Bad.Render(cell)
			default:
				cell = st.Faint.Render(cell)
			}
			l += "  " + cell
		}
		out = append(out, l)
	}
	out = append(out, "", p.table.View())
	if c, ok := p.selected(); ok {
		out = append(out, "", p.fix(c))
	}
	return strings.Join(out, "\n")
}

// fix is the selected certificate's finding and its fixes.
func (p *tlsView) fix(c status.Certificate) string {
	st := p.common.Styles
	now := p.common.Now()
	head := fmt.Sprintf("%s %s · expires %s", st.Title.Render(c.Backend), st.Faint.Render(c.Subject), clock(now, c.NotAfter))
	lines := []string{head}
	if c.Error != "" {
		lines = append(lines, st.Bad.Render(c.Error))
	}
	f := findings(p.common, p.snap, "tls", c.Backend)
	if len(f) == 0 {
		f = []string{st.Good.Render("✔ nothing to fix")}
	}
	lines = append(lines, f...)
	return strings.Join(lines, "\n")
}
