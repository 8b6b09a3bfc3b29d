package tui

import (
	"github.com/charmbracelet/bubbles/table"
)

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
