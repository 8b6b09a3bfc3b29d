// Package tui is epconsole's console: a bubbletea program that shows, at a
// glance, whether the control-plane endpoint is healthy and what to fix —
// VIP ownership, backends as every peer sees them, TLS SANs, etcd quorum,
// peers and events — from the status model (internal/status) that the
// daemon serves.
//
// The root Model owns the tabs, the status line, help, the filter, the
// confirmation dialog and the drill menu; each view is a pane (a tea model
// with its own help, sized by the root) that holds the shared state —
// size, styles, keys, clock — and is fed by it. The panes built around one
// table (Backends, TLS, etcd, Peers) embed one base, tablePane. Derived
// facts, such as which backends are in a split view, come from the status
// model, not from the views. Update is pure: snapshots arrive as messages
// from a Source, actions leave as commands through Actions, and nothing
// else does I/O.
package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/mattn/go-isatty"
	"github.com/muesli/termenv"

	"github.com/epconsole/epconsole/tui/keymap"
	"github.com/epconsole/epconsole/tui/styles"
)

// Options configure the TUI.
type Options struct {
	// Source delivers snapshots and connection state (required for
	// anything but an empty screen).
	Source Source
	// Actions performs drain, undrain and handoff; nil makes the TUI
	// read-only.
	Actions Actions
	// Drills are the fault drills of the lab the console runs under; nil
	// (a real cluster) hides the lab key.
	Drills Drills
	// Now is the clock (time.Now when nil); tests fix it.
	Now func() time.Time
	// Styles are the styles (chosen by Run from the environment, or
	// DefaultStyles of lipgloss's default renderer when nil).
	Styles *styles.Styles
	// Keys are the key bindings (keymap.DefaultKeyMap when nil).
	Keys *keymap.KeyMap
	// Input and Output are the terminal (stdin and stdout when nil); Run
	// only.
	Input  io.Reader
	Output io.Writer
	// Getenv reads the environment (os.Getenv when nil); Run only, for
	// NO_COLOR.
	Getenv func(string) string
}

// Run runs the TUI on the terminal until the operator quits or ctx ends;
// the Source's subscription ends with it.
func Run(ctx context.Context, opts Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := opts.Output
	if out == nil {
		out = os.Stdout
	}
	in := opts.Input
	if in == nil {
		in = os.Stdin
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if opts.Styles == nil {
		r := lipgloss.NewRenderer(out)
		if getenv("NO_COLOR") != "" && isTerminal(out) {
			// No colour, but bold and reverse still mark the selection.
			r.SetColorProfile(termenv.ANSI)
		}
		opts.Styles = styles.FromEnv(r, getenv)
	}
	m := New(opts).WithContext(ctx)
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen())
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tui: %w", err)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && isatty.IsTerminal(f.Fd())
}
