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
	tablePane[status.Peer]
}

func newPeers(c shared) *peersView {
	p := &peersView{}
	p.tablePane = newTablePane(c, p.layout)
	return p
}

func (p *peersView) Title() string { return "Peers/VIP" }

func (p *peersView) ShortHelp() []key.Binding { return []key.Binding{p.common.Keys.Handoff} }

func (p *peersView) FullHelp() [][]key.Binding {
	k := p.common.Keys
	return [][]key.Binding{{k.Up, k.Down, k.GotoTop, k.GotoBottom}, {k.Handoff}}
}

func (p *peersView) SetFilter(f string) { p.setFilter(f) }

func (p *peersView) Update(msg tea.Msg) (pane, tea.Cmd) { return p, p.update(msg) }

// Action hands the VIP to the selected peer, if it could take it.
func (p *peersView) Action(kind ActionKind) (Action, error) {
	if kind != Handoff {
		return Action{}, errors.New("drain and undrain a backend from the Backends view (2)")
	}
	peer, ok := p.selected()
	if !ok {
		return Action{}, errors.New("no peer selected")
	}
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

func (p *peersView) layout() (tableLayout[status.Peer], bool) {
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
	var shown []status.Peer
	var rows []table.Row
	for _, peer := range p.snap.Peers {
		if !contains(p.filter, peer.Name, peer.Address) {
			continue
		}
		shown = append(shown, peer)
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
	return tableLayout[status.Peer]{Columns: cols, Rows: rows, Items: shown,
		MaxHeight: p.common.Height - len(p.snap.VIPs) - 6}, true
}

func (p *peersView) View() string {
	st := p.common.Styles
	if p.snap == nil {
		return waiting(p.common)
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
	if peer, ok := p.selected(); ok {
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
