package styles_test

import (
	"io"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/tui/styles"
)

func env(kv ...string) func(string) string {
	return func(k string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

// TestFromEnv renders a critical verdict with the styles FromEnv picks and
// checks the escape sequences: none for colour under NO_COLOR (bold still
// marks it), a basic ANSI colour on a 16-colour terminal, 24-bit colour on
// a 256-colour one.
func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		profile termenv.Profile
		getenv  func(string) string
		want    []string
		notWant []string
	}{
		{"NO_COLOR", termenv.TrueColor, env("NO_COLOR", "1"), []string{"\x1b[1"}, []string{"38;", "31"}},
		{"16 colours", termenv.ANSI, env(), []string{"31"}, []string{"38;2;", "38;5;"}},
		{"256 colours and up", termenv.TrueColor, env("TERM", "xterm-256color"), []string{"38;5;"}, nil},
		{"NO_COLOR empty is unset", termenv.ANSI256, env("NO_COLOR", ""), []string{"38;5;"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := lipgloss.NewRenderer(io.Discard)
			r.SetColorProfile(tt.profile)
			s := styles.FromEnv(r, tt.getenv)
			out := s.SeverityStyle(probes.Critical).Render("CRITICAL")
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("%q lacks %q", out, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("%q has %q", out, w)
				}
			}
		})
	}
}

// TestSeverityStyle: every severity has a style of its own, and an unknown
// one is shown as UNKNOWN.
func TestSeverityStyle(t *testing.T) {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.ANSI)
	s := styles.ANSI16Styles(r)
	seen := map[string]probes.Severity{}
	for _, sev := range []probes.Severity{probes.OK, probes.Warning, probes.Unknown, probes.Critical} {
		out := s.SeverityStyle(sev).Render("x")
		if other, dup := seen[out]; dup {
			t.Errorf("%s looks like %s: %q", sev, other, out)
		}
		seen[out] = sev
	}
	if s.SeverityStyle(probes.Severity(42)).Render("x") != s.SeverityStyle(probes.Unknown).Render("x") {
		t.Error("an unknown severity is not styled as UNKNOWN")
	}
}
