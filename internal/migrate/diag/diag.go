// Package diag holds the diagnostics the HAProxy and keepalived importers
// report: a severity, a message and the file and line it is about, printed
// as "file:line: severity: message" so editors and grep understand it.
package diag

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity orders diagnostics: an Error stops the import, a Warning is
// something that changes meaning or is not understood, a Note records what
// was mapped or has no equivalent.
type Severity int

// Severities, least serious first.
const (
	Note Severity = iota
	Warning
	Error
)

func (s Severity) String() string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	default:
		return "note"
	}
}

// Diagnostic is one finding about one line of an input file.
type Diagnostic struct {
	File     string
	Line     int
	Severity Severity
	Message  string
}

// String formats d as "file:line: severity: message".
func (d Diagnostic) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", d.File, d.Line, d.Severity, d.Message)
}

// List collects diagnostics for one file.
type List struct {
	File  string
	Diags []Diagnostic
}

// Add appends a diagnostic about line of l.File.
func (l *List) Add(line int, sev Severity, format string, args ...any) {
	l.Diags = append(l.Diags, Diagnostic{File: l.File, Line: line, Severity: sev, Message: fmt.Sprintf(format, args...)})
}

// Errorf adds an error.
func (l *List) Errorf(line int, format string, args ...any) { l.Add(line, Error, format, args...) }

// Warnf adds a warning.
func (l *List) Warnf(line int, format string, args ...any) { l.Add(line, Warning, format, args...) }

// Notef adds a note.
func (l *List) Notef(line int, format string, args ...any) { l.Add(line, Note, format, args...) }

// HasErrors reports whether ds holds an error.
func HasErrors(ds []Diagnostic) bool {
	return slices.ContainsFunc(ds, func(d Diagnostic) bool { return d.Severity == Error })
}

// Sort orders ds by file and line, keeping the order of equal positions.
func Sort(ds []Diagnostic) {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
}

// Errors is the error an import returns when it found errors: every error
// diagnostic, one per line.
type Errors []Diagnostic

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, d := range e {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// ErrorsOf returns the errors in ds as an Errors, or nil when there are none.
func ErrorsOf(ds []Diagnostic) error {
	var out Errors
	for _, d := range ds {
		if d.Severity == Error {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
