package tui

import (
	"github.com/charmbracelet/bubbles/table"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/epconsole/epconsole/internal/status"
)

// tablePane is the base of the panes built around one table of the
// snapshot (Backends, TLS, etcd, Peers): it keeps what they share — the
// shared state, the last snapshot, the filter, the table and the items its
// rows show —, lays the table out again when any of them changes, and
// hands the table its keys. A pane embeds it and gives it, when built, the
// function that says what the table shows (the pane's layout method); T is
// the item behind a row.
//
// SetSize is the pane's. A pane that filters declares SetFilter with
// setFilter (not every pane filters); its Update hands update what it does
// not handle itself.
type tablePane[T any] struct {
	common shared
	snap   *status.Snapshot
	filter string
	table  table.Model
	shown  []T
	build  func() (tableLayout[T], bool)
}

// tableLayout is what a pane's table shows.
type tableLayout[T any] struct {
	// Columns are the table's columns (the selection mark's is added).
	Columns []table.Column
	// Rows are the rows, one per item of Items and in the same order.
	Rows  []table.Row
	Items []T
	// MaxHeight is the most lines the table may take, its header
	// included (never less than 3).
	MaxHeight int
}

// newTablePane is the base of a pane whose table layout lays out (the
// pane's layout method); layout returns false to leave the table as it is
// (nothing to show yet).
func newTablePane[T any](c shared, layout func() (tableLayout[T], bool)) tablePane[T] {
	return tablePane[T]{common: c, table: newTable(c), build: layout}
}

// SetSize gives the pane its size and lays the table out for it.
func (t *tablePane[T]) SetSize(w, h int) {
	t.common.Width, t.common.Height = w, h
	t.rebuild()
}

// setFilter narrows the rows to those matching f.
func (t *tablePane[T]) setFilter(f string) {
	t.filter = f
	t.rebuild()
}

// update keeps a new snapshot and lays the table out again; anything else
// goes to the table (its keys move the selection).
func (t *tablePane[T]) update(msg tea.Msg) tea.Cmd {
	if msg, ok := msg.(SnapshotMsg); ok {
		t.snap = msg.Snapshot
		t.rebuild()
		return nil
	}
	var cmd tea.Cmd
	t.table, cmd = t.table.Update(msg)
	return cmd
}

// selected returns the item of the selected row.
func (t *tablePane[T]) selected() (T, bool) {
	i := t.table.Cursor()
	if i < 0 || i >= len(t.shown) {
		var zero T
		return zero, false
	}
	return t.shown[i], true
}

// rebuild lays the table out from the snapshot, the filter and the size.
func (t *tablePane[T]) rebuild() {
	if t.snap == nil {
		return
	}
	l, ok := t.build()
	if !ok {
		return
	}
	t.shown = l.Items
	fill(&t.table, l.Columns, l.Rows)
	t.table.SetWidth(t.common.Width)
	t.table.SetHeight(tableHeight(len(l.Rows), max(l.MaxHeight, 3)))
}

// newTable is a focused bubbles table in the TUI's styles and keys.
func newTable(c shared) table.Model {
	st := c.Styles
	return table.New(
		table.WithFocused(true),
		table.WithKeyMap(c.Keys.Table()),
		table.WithStyles(table.Styles{Header: st.Table.Header, Cell: st.Table.Cell, Selected: st.Table.Selected}),
	)
}

// fill replaces a table's columns and rows, keeping the selection (on the
// same index, or the first row when there was none). A first column marks
// the selected row with ▸, so it shows also where no attribute does
// (NO_COLOR on a dumb terminal, a captured screen).
func fill(t *table.Model, cols []table.Column, rows []table.Row) {
	cur := 0
	if len(rows) > 0 {
		cur = min(max(t.Cursor(), 0), len(rows)-1)
	}
	cols = append([]table.Column{{Title: "", Width: 1}}, cols...)
	marked := make([]table.Row, len(rows))
	for i, r := range rows {
		m := " "
		if i == cur {
			m = "▸"
		}
		marked[i] = append(table.Row{m}, r...)
	}
	// Columns and rows must match at all times: clear the rows first.
	t.SetRows(nil)
	t.SetColumns(cols)
	t.SetRows(marked)
	if len(rows) > 0 {
		t.SetCursor(cur)
	}
}

// markWidth is what the selection mark takes of a table's width.
const markWidth = 1 + cellPad

// cellPad is what a cell's padding adds to its width.
const cellPad = 2

// columns gives flex the width the fixed columns leave in width (and drops
// it when that is less than minFlex).
func columns(width int, fixed []table.Column, flex table.Column, minFlex int) []table.Column {
	used := markWidth
	for _, c := range fixed {
		used += c.Width + cellPad
	}
	flex.Width = width - used - cellPad
	if flex.Width < minFlex {
		return fixed
	}
	return append(fixed, flex)
}

// tableHeight is the height a table needs for n rows, at most max.
func tableHeight(n, limit int) int {
	return max(min(n+1, limit), 2)
}

// emptyRow is a row of n blank cells.
func emptyRow(n int) table.Row { return make(table.Row, n) }
