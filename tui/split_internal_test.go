package tui

import (
	"testing"

	"github.com/epconsole/epconsole/internal/status"
)

func TestSplit(t *testing.T) {
	views := func(states ...string) status.Backend {
		var b status.Backend
		for _, s := range states {
			b.Views = append(b.Views, status.BackendView{State: s})
		}
		return b
	}
	tests := []struct {
		states []string
		want   bool
	}{
		{nil, false},
		{[]string{"up"}, false},
		{[]string{"up", "up", "up"}, false},
		{[]string{"down", "down", "down"}, false},
		{[]string{"up", "down", "up"}, true},
		{[]string{"up", "rising"}, true},
		{[]string{"falling", "down"}, true},
		{[]string{"up", "falling"}, false},
		{[]string{"up", "unknown", "unknown"}, false},
		{[]string{"down", "unknown"}, false},
	}
	for _, tt := range tests {
		if got := split(views(tt.states...)); got != tt.want {
			t.Errorf("split(%q) = %v, want %v", tt.states, got, tt.want)
		}
	}
}
