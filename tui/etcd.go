package tui

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/table"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/epconsole/epconsole/internal/status"
)

// etcdView is the etcd quorum check: members with the leader marked, raft
// term and index, database size, alarms, and how many may still fail.
type etcdView struct {
	tablePane[status.EtcdMember]
}

func newEtcd(c shared) *etcdView {
	p := &etcdView{}
	p.tablePane = newTablePane(c, p.layout)
	return p
}

func (p *etcdView) Title() string { return "etcd" }

func (p *etcdView) ShortHelp() []key.Binding { return nil }

func (p *etcdView) FullHelp() [][]key.Binding {
	k := p.common.Keys
	return [][]key.Binding{{k.Up, k.Down}}
}

func (p *etcdView) Update(msg tea.Msg) (pane, tea.Cmd) { return p, p.update(msg) }

func (p *etcdView) layout() (tableLayout[status.EtcdMember], bool) {
	if p.snap.Etcd == nil {
		return tableLayout[status.EtcdMember]{}, false
	}
	wide := p.common.Width >= 110
	fixed := []table.Column{{Title: "Member", Width: 8}, {Title: "Ldr", Width: 3}, {Title: "Health", Width: 7}}
	if wide {
		fixed = append(fixed, table.Column{Title: "ID", Width: 16})
	}
	fixed = append(fixed, table.Column{Title: "Term", Width: 5}, table.Column{Title: "Index", Width: 9},
		table.Column{Title: "DB size", Width: 9}, table.Column{Title: "Version", Width: 7})
	var rows []table.Row
	for _, m := range p.snap.Etcd.Members {
		ldr, health := "", "healthy"
		if m.Leader {
			ldr = "★"
		}
		if !m.Healthy {
			health = "DOWN"
		}
		r := table.Row{m.Name, ldr, health}
		if wide {
			r = append(r, m.ID)
		}
		term, index, db := "—", "—", "—"
		if m.Healthy || m.RaftTerm > 0 {
			term, index, db = strconv.FormatUint(m.RaftTerm, 10), strconv.FormatUint(m.RaftIndex, 10), size(m.DBSize)
		}
		r = append(r, term, index, db, m.Version, strings.TrimPrefix(m.Endpoint, "https://"))
		rows = append(rows, r)
	}
	cols := columns(p.common.Width, fixed, table.Column{Title: "Endpoint"}, 10)
	for i := range rows {
		rows[i] = rows[i][:len(cols)]
	}
	return tableLayout[status.EtcdMember]{Columns: cols, Rows: rows, Items: p.snap.Etcd.Members,
		MaxHeight: p.common.Height - 7}, true
}

func (p *etcdView) View() string {
	st := p.common.Styles
	if p.snap == nil {
		return waiting(p.common)
	}
	e := p.snap.Etcd
	if e == nil {
		return st.Faint.Render("etcd is not configured")
	}
	out := []string{p.table.View(), ""}
	q := fmt.Sprintf("need %d · healthy %d of %d · may still fail %d", e.Quorum, e.Healthy, len(e.Members), max(e.Tolerance, 0))
	out = append(out, fmt.Sprintf("%s %s  %s", st.Label.Render("quorum"),
		st.SeverityStyle(e.Severity).Render(e.Severity.String()), q))
	if e.Healthy < e.Quorum {
		out = append(out, "       "+st.Bad.Render("✘ QUORUM LOST: etcd accepts no writes"))
	}
	leader := st.Bad.Render("none")
	if e.Leader != "" {
		leader = st.Value.Render(e.Leader)
	}
	alarms := st.Good.Render("none")
	if len(e.Alarms) > 0 {
		alarms = st.Bad.Render(strings.Join(e.Alarms, ", "))
	}
	out = append(out, fmt.Sprintf("%s %s  %s %s", st.Label.Render("leader"), leader, st.Label.Render("alarms"), alarms))
	if m, ok := p.selected(); ok && m.Error != "" {
		out = append(out, "", st.Title.Render(m.Name)+" "+st.Bad.Render(m.Error))
	}
	if f := findings(p.common, p.snap, "etcd", ""); len(f) > 0 {
		out = append(append(out, ""), f...)
	}
	return strings.Join(out, "\n")
}
