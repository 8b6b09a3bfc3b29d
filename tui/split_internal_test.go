package tui

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui/keymap"
	"github.com/epconsole/epconsole/tui/styles"
)

// TestSplit checks that the Backends view marks as split what the status
// model calls a split view: live peers disagreeing whether a backend is in
// service.
func TestSplit(t *testing.T) {
	// snap is a daemon's snapshot of backend b seen by one peer per state;
	// the peers are live unless named in dead.
	snap := func(source string, states []string, dead ...int) *status.Snapshot {
		s := &status.Snapshot{Source: source, Election: status.Election{Owner: "lb0"}}
		b := status.Backend{Name: "b"}
		for i, st := range states {
			name := fmt.Sprintf("lb%d", i)
			p := status.Peer{Name: name, State: "alive", Fresh: true, Self: i == 0}
			for _, d := range dead {
				if d == i {
					p.State, p.Fresh = "dead", false
				}
			}
			s.Peers = append(s.Peers, p)
			b.Views = append(b.Views, status.BackendView{Peer: name, State: st})
		}
		s.Backends = []status.Backend{b}
		return s
	}
	tests := []struct {
		source string
		states []string
		dead   []int
		want   bool
	}{
		{"daemon", nil, nil, false},
		{"daemon", []string{"up"}, nil, false},
		{"daemon", []string{"up", "up", "up"}, nil, false},
		{"daemon", []string{"down", "down", "down"}, nil, false},
		{"daemon", []string{"up", "down", "up"}, nil, true},
		{"daemon", []string{"up", "rising"}, nil, true},
		{"daemon", []string{"falling", "down"}, nil, true},
		{"daemon", []string{"up", "falling"}, nil, false},
		{"daemon", []string{"up", "unknown", "unknown"}, nil, false},
		{"daemon", []string{"down", "unknown"}, nil, false},
		// A peer that is not live takes no side.
		{"daemon", []string{"up", "down", "up"}, []int{1}, false},
		// The direct view has no cluster: nothing is split.
		{"direct", []string{"up", "down"}, nil, false},
	}
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	c := shared{Width: 120, Height: 40, Styles: styles.DefaultStyles(r), Keys: keymap.DefaultKeyMap(), Now: time.Now}
	for _, tt := range tests {
		s := snap(tt.source, tt.states, tt.dead...)
		if got := splitView(s)["b"]; got != tt.want {
			t.Errorf("%s %q (dead %v): split = %v, want %v", tt.source, tt.states, tt.dead, got, tt.want)
		}
		p := newBackends(c)
		p.Update(SnapshotMsg{Snapshot: s})
		if got := strings.Contains(p.View(), "! b"); got != tt.want {
			t.Errorf("%s %q (dead %v): the Backends view marks b split = %v, want %v:\n%s", tt.source, tt.states, tt.dead, got, tt.want, p.View())
		}
	}
}
