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

// peersView lists the LB nodes and the VIPs, and hands the VIP to the
// selected peer.
type peersView struct {
	common shared
	snap   *status.Snapshot
	table  table.Model
	shown  []status.Peer
	filter string
}

func newPeers(c shared) *peersView { return &peersView{common: c, table: newTable(c)} }

func (p *peersView) Title() string { return "Peers/VIP" }

func (p *peersView) ShortHelp() []key.Binding { return []key.Binding{p.common.Keys.Handoff} }

func (p *peersView) FullHelp() [][]key.Binding {
	k := p.common.Keys
	return [][]key.Binding{{k.Up, k.Down, k.GotoTop, k.GotoBottom}, {k.Handoff}}
}

func (p *peersView) SetFilter(f string) { p.filter = f; p.rebuild() }

func (p *peersView) SetSize(w, h int) {
	p.common.Width, p.common.Height = w, h
	p.rebuild()
}

func (p *peersView) Update(msg tea.Msg) (pane, tea.Cmd) {
	if msg, ok := msg.(SnapshotMsg); ok {
		p.snap = msg.Snapshot
		p.rebuild()
		return p, nil
	}
	var cmd tea.Cmd
	p.table, cmd = p.table.Update(msg)
	return p, cmd
}

// Action hands the VIP to the selected peer, if it could take it.
func (p *peersView) Action(kind ActionKind) (Action, error) {
	if kind != Handoff {
		return Action{}, errors.New("drain and undrain a backend from the Backends view (2)")
	}
	i := p.table.Cursor()
	if i < 0 || i >= len(p.shown) {
		return Action{}, errors.New("no peer selected")
	}
	peer := p.shown[i]
	owner := p.snap.Election.Owner
	switch {
	case owner == "":
		return Action{}, errors.New("no peer holds the VIP to hand over")
	case peer.Name == owner:
		return Action{}, fmt.Errorf("%s already holds the VIP", peer.Name)
	case peer.State != "alive":
		return Action{}, fmt.Errorf("%s is %s, it cannot take the VIP", peer.Name, peer.State)
	case !peer.Eligible:
		return Action{}, fmt.Errorf("%s is not eligible (no healthy backend or VIP link down)", peer.Name)
	}
	return Action{Kind: Handoff, Target: peer.Name, From: owner}, nil
}

func (p *peersView) rebuild() {
	if p.snap == nil {
		return
	}
	now := p.common.Now()
	wide := p.common.Width >= 110
	fixed := []table.Column{{Title: "Own", Width: 3}, {Title: "Peer", Width: 8}, {Title: "State", Width: 7},
		{Title: "Prio", Width: 4}, {Title: "Elig", Width: 4}}
	if wide {
		fixed = append(fixed, table.Column{Title: "Epoch", Width: 5}, table.Column{Title: "Digest", Width: 8},
			table.Column{Title: "Version", Width: 8})
	}
	fixed = append(fixed, table.Column{Title: "Seen", Width: 9}, table.Column{Title: "RTT", Width: 6})
	cols := columns(p.common.Width, fixed, table.Column{Title: "Address"}, 10)
	p.shown = p.shown[:0]
	var rows []table.Row
	for _, peer := range p.snap.Peers {
		if !contains(p.filter, peer.Name, peer.Address) {
			continue
		}
		p.shown = append(p.shown, peer)
		own := ""
		if peer.Name == p.snap.Election.Owner {
			own = "★"
		}
		state := peer.State
		if peer.State == "alive" && !peer.Fresh {
			state = "stale"
		}
		elig := "no"
		if peer.Eligible {
			elig = "yes"
		}
		r := table.Row{own, peer.Name, state, strconv.Itoa(peer.Priority), elig}
		if wide {
			r = append(r, strconv.FormatUint(peer.Epoch, 10), peer.Digest, peer.Version)
		}
		seen, rtt := ago(now, peer.LastSeen), latency(peer.RTT)
		if peer.Self {
			seen, rtt = "this node", "—"
		}
		r = append(r, strings.TrimSuffix(seen, " ago"), rtt, peer.Address)
		rows = append(rows, r[:len(cols)])
	}
	fill(&p.table, cols, rows)
	p.table.SetWidth(p.common.Width)
	p.table.SetHeight(tableHeight(len(rows), max(p.common.Height-len(p.snap.VIPs)-6, 3)))
}

func (p *peersView) View() string {
	st := p.common.Styles
	if p.snap == nil {
		return st.Faint.Render("waiting for the first snapshot…")
	}
	now := p.common.Now()
	var out []string
	for _, v := range p.snap.VIPs {
		owner := st.Bad.Render("✘ no owner")
		if v.Owner != "" {
			owner = st.Good.Render(v.Owner) + st.Faint.Render(" since "+clock(now, v.OwnerSince))
		}
		out = append(out, fmt.Sprintf("%s %s:%d %s %s", st.Label.Render("VIP"), v.Address, v.Port, st.Label.Render("owner"), owner))
	}
	e := p.snap.Election
	line := fmt.Sprintf("%s epoch %d · elected %s", st.Label.Render("election"), e.Epoch, orDash(e.Elected))
	if e.Reason != "" {
		line += " · " + st.Faint.Render(e.Reason)
	}
	out = append(out, line, "", p.table.View())
	if i := p.table.Cursor(); i >= 0 && i < len(p.shown) {
		peer := p.shown[i]
		hint := st.Faint.Render("h hands the VIP to " + peer.Name)
		if _, err := p.Action(Handoff); err != nil {
			hint = st.Faint.Render(err.Error())
		}
		out = append(out, "", hint)
	}
	return strings.Join(out, "\n")
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
