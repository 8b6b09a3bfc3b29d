package tui_test

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui"
)

// TestDirectView: a snapshot of Source "direct" (probes run by the console,
// no daemon) says so in the overview and the status line, claims no VIP
// owner it cannot know, and the actions stay read-only.
func TestDirectView(t *testing.T) {
	snap := with(loadSnapshot(t, "healthy"), func(s *status.Snapshot) {
		s.Source = "direct"
		s.VIPs = []status.VIP{{Address: "198.18.0.100", Interface: "eth0", Port: 6443}}
		s.Election = status.Election{Reason: "direct view: no daemon at /run/epconsole/status.sock; read-only"}
	})
	m, _ := feed(tui.New(options(nil, nil)), tea.WindowSizeMsg{Width: 80, Height: 24}, tui.SnapshotMsg{Snapshot: snap})
	screen := m.View()
	for _, want := range []string{
		"owner not known (direct view)",
		"election not known: no daemon, no cluster view",
		"direct view: no daemon at /run/epconsole/status.sock",
		"● direct view · no daemon · read-only · snapshot",
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("the overview lacks %q:\n%s", want, screen)
		}
	}
	if strings.Contains(screen, "no owner") || strings.Contains(screen, "● live") {
		t.Errorf("a direct view claims what only the daemon knows:\n%s", screen)
	}
	m, _ = feed(m, keys("2 d")...)
	if s := m.View(); !strings.Contains(s, "read-only: no daemon to drain through") {
		t.Errorf("drain in a direct view:\n%s", s)
	}
}
