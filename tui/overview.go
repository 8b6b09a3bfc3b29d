package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/epconsole/epconsole/internal/status"
)

// overview is the default view: VIPs and owners, election, peers, one
// verdict per area and the latest events.
type overview struct {
	common shared
	snap   *status.Snapshot
}

func newOverview(c shared) *overview { return &overview{common: c} }

func (p *overview) Title() string { return "Overview" }

func (p *overview) SetSize(w, h int) { p.common.Width, p.common.Height = w, h }

func (p *overview) ShortHelp() []key.Binding { return nil }

func (p *overview) FullHelp() [][]key.Binding { return nil }

func (p *overview) Update(msg tea.Msg) (pane, tea.Cmd) {
	if msg, ok := msg.(SnapshotMsg); ok {
		p.snap = msg.Snapshot
	}
	return p, nil
}

func (p *overview) View() string {
	st := p.common.Styles
	s := p.snap
	if s == nil {
		return waiting(p.common)
	}
	now := p.common.Now()
	var b []string
	add := func(format string, a ...any) { b = append(b, fmt.Sprintf(format, a...)) }

	add("%s %s  %s %s  %s %s",
		st.Label.Render("cluster"), st.Title.Render(s.Cluster),
		st.Label.Render("node"), st.Value.Render(s.Node),
		st.Label.Render("version"), st.Value.Render(s.Version))
	for _, v := range s.VIPs {
		addr := fmt.Sprintf("%s:%d", v.Address, v.Port)
		owner := st.Bad.Render("✘ no owner")
		if s.Source == "direct" {
			// Without the daemon only the local kernel is known.
			owner = st.Severity.Warning.Render("not known (direct view)")
		}
		if v.Owner != "" {
			owner = st.Good.Render(v.Owner) + st.Faint.Render(" since "+clock(now, v.OwnerSince)+" ("+ago(now, v.OwnerSince)+")")
		}
		here := ""
		if v.Here {
			here = st.Good.Render("  ● on this node")
		}
		add("%s %s %s  %s %s%s", st.Label.Render("VIP"), st.Value.Render(addr),
			st.Faint.Render(v.Interface), st.Label.Render("owner"), owner, here)
	}
	if s.Source == "direct" {
		add("%s %s", st.Label.Render("election"), st.Severity.Warning.Render("not known: no daemon, no cluster view"))
	} else {
		add("%s %s", st.Label.Render("election"), p.election())
	}
	if e := s.Election; e.Reason != "" {
		add("         %s", st.Faint.Render(e.Reason))
	}
	if len(s.Election.Mismatch) > 0 {
		add("         %s", st.Severity.Warning.Render("config digest differs on "+strings.Join(s.Election.Mismatch, ", ")))
	}
	if s.Election.PanicRouting {
		add("%s %s", st.Severity.Critical.Render("PANIC"),
			st.Severity.Critical.Render("no backend passes its probes: new connections go to every backend"))
	}

	b = append(b, "", st.Title.Render("Peers"))
	for _, peer := range s.Peers {
		mark := "  "
		if peer.Name == s.Election.Owner && peer.Name != "" {
			mark = "★ "
		}
		state := pad(peer.State, 7)
		if peer.State == "alive" && peer.Fresh {
			state = st.Good.Render(state)
		} else {
			state = st.Bad.Render(state)
		}
		elig := st.Faint.Render("eligible    ")
		if !peer.Eligible {
			elig = st.Severity.Warning.Render("not eligible")
		}
		note := ""
		if peer.Self {
			note = st.Faint.Render("this node")
		} else if peer.State != "alive" || !peer.Fresh {
			note = st.Faint.Render("last heard " + ago(now, peer.LastSeen))
		} else if peer.RTT > 0 {
			note = st.Faint.Render("rtt " + latency(peer.RTT))
		}
		add("  %s%s %s prio %-4d %s %s", mark, pad(peer.Name, 8), state, peer.Priority, elig, note)
	}

	b = append(b, "", st.Title.Render("Verdicts"))
	for _, v := range s.Verdicts {
		add("  %s %s %s", st.SeverityStyle(v.Severity).Render(sevLabel(v.Severity)),
			st.Label.Render(pad(v.Area, 8)), v.Summary)
	}

	room := p.common.Height - len(b) - 2
	if room > 0 && len(s.Events) > 0 {
		b = append(b, "", st.Title.Render("Recent events"))
		ev := s.Events
		if len(ev) > room {
			ev = ev[len(ev)-room:]
		}
		for _, e := range ev {
			b = append(b, eventLine(p.common, e))
		}
	}
	return strings.Join(b, "\n")
}

// election is the one-line quorum summary.
func (p *overview) election() string {
	st := p.common.Styles
	e := p.snap.Election
	owner := st.Bad.Render("no owner")
	if e.Owner != "" {
		owner = "owner " + st.Value.Render(e.Owner)
	}
	q := fmt.Sprintf("heard %d of %d peers", e.QuorumHave, e.QuorumPeers)
	switch {
	case !e.QuorumRequired:
		q += st.Faint.Render(" · majority not required")
	case !e.QuorumPossible:
		q += " · " + st.Severity.Warning.Render("no majority possible")
	case e.QuorumHave >= e.QuorumNeed:
		q += fmt.Sprintf(" · need %d ", e.QuorumNeed) + st.Good.Render("✔")
	default:
		q += fmt.Sprintf(" · need %d ", e.QuorumNeed) + st.Bad.Render("✘ no majority")
	}
	return fmt.Sprintf("%s · epoch %d · %s", owner, e.Epoch, q)
}

// eventLine is one event: time, kind, subject, message.
func eventLine(c shared, e status.Event) string {
	st := c.Styles
	return fmt.Sprintf("  %s %s %s %s", st.Faint.Render(clock(c.Now(), e.Time)),
		eventStyle(c, e.Kind).Render(pad(e.Kind, 15)), st.Value.Render(pad(e.Subject, 6)), e.Message)
}

// eventStyle colours an event by what it means for the endpoint.
func eventStyle(c shared, kind string) lipgloss.Style {
	st := c.Styles
	switch status.EventKind(kind) {
	case status.EventBackendDown, status.EventPeerFailed, status.EventReloadRejected, status.EventPanicRouting:
		return st.Severity.Critical
	case "peer-suspect", status.EventDigestMismatch, status.EventVIPReleased, status.EventPeerLeave, status.EventDrain:
		return st.Severity.Warning
	case status.EventBackendUp, status.EventVIPAcquired, status.EventPeerJoin, status.EventReloadOK, status.EventUndrain, status.EventPanicRoutingEnd:
		return st.Severity.OK
	}
	return st.Value
}
