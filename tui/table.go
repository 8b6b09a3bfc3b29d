package tui

import (
	"github.com/charmbracelet/bubbles/table"
)

// newTable is a focused bubbles table in the TUI's styles and keys.
func newTable(c Common) table.Model {
	st := c.Styles
	return table.New(
		table.WithFocused(true),
		table.WithKeyMap(c.Keys.Table()),
		table.WithStyles(table.Styles{Header: st.Table.Header, Cell: st.Table.Cell, Selected: st.Table.Selected}),
	)
}

// fill replaces a table's columns and rows, keeping the selection (on the
// same index, or the first row when there was none).
func fill(t *table.Model, cols []table.Column, rows []table.Row) {
	cur := max(t.Cursor(), 0)
	// Columns and rows must match at all times: clear the rows first.
	t.SetRows(nil)
	t.SetColumns(cols)
	t.SetRows(rows)
	if len(rows) > 0 {
		t.SetCursor(min(cur, len(rows)-1))
	}
}

// cellPad is what a cell's padding adds to its width.
const cellPad = 2

// columns gives flex the width the fixed columns leave in width (and drops
// it when that is less than minFlex).
func columns(width int, fixed []table.Column, flex table.Column, minFlex int) []table.Column {
	used := 0
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
