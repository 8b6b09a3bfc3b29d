package tui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui"
	"github.com/epconsole/epconsole/tui/styles"
)

// The status client is both the TUI's Source and its Actions.
var (
	_ tui.Source  = (*status.Client)(nil)
	_ tui.Actions = (*status.Client)(nil)
)

// now is the tests' fixed clock: 2 s after the snapshots in testdata.
var now = time.Date(2026, 11, 24, 14, 30, 0, 0, time.UTC)

func fixedNow() time.Time { return now }

// asciiStyles renders without any escape sequence, so screens compare as
// text whatever the terminal running the tests.
func asciiStyles() *styles.Styles {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return styles.DefaultStyles(r)
}

// loadSnapshot reads testdata/<name>.json, refusing unknown fields so the
// files stay true to the status model.
func loadSnapshot(t testing.TB, name string) *status.Snapshot {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s status.Snapshot
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if s.Schema != status.Schema {
		t.Fatalf("%s: schema %q, want %q", name, s.Schema, status.Schema)
	}
	return &s
}

// options are the TUI's options in tests: fixed clock, no colour.
func options(src tui.Source, acts tui.Actions) tui.Options {
	return tui.Options{Source: src, Actions: acts, Now: fixedNow, Styles: asciiStyles()}
}

func lipglossWidth(s string) int { return lipgloss.Width(s) }

// recorder is an Actions that only says it was not asked to do anything
// (the screens stop at the confirmation); the action round trip runs
// against the real status server in live_test.go.
type recorder struct{}

func (recorder) Drain(context.Context, string) error   { return errors.New("not in this test") }
func (recorder) Undrain(context.Context, string) error { return errors.New("not in this test") }
func (recorder) Handoff(context.Context, string) error { return errors.New("not in this test") }
