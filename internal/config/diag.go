package config

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// DiagnosticLine formats a diagnostic as one line,
// "file:line:col: summary; detail" (warnings get "warning: " before the
// summary). hcl's own text writer puts the position on a separate line, so
// `validate` uses this form, which editors and grep understand.
func DiagnosticLine(d *hcl.Diagnostic) string {
	var b strings.Builder
	if d.Subject != nil {
		fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	if d.Severity == hcl.DiagWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(oneLine(d.Summary))
	if d.Detail != "" {
		b.WriteString("; ")
		b.WriteString(oneLine(d.Detail))
	}
	return b.String()
}

// oneLine folds line breaks and runs of spaces into single spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// WriteDiagnostics writes each diagnostic as its DiagnosticLine followed by
// the source lines it points at, the subject underlined with carets:
//
//	config.hcl:12:14: Invalid duration; timeout = "5 s" is not a duration: ...
//	   12 |   timeout = "5 s"
//	      |             ^^^^^
//
// sources maps file names to their content; a file missing from it is read
// from disk with ReadFile (nil sources reads every file). When a source is
// not available the snippet is left out.
func WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, sources map[string][]byte) error {
	cache := map[string][]byte{}
	for k, v := range sources {
		cache[k] = v
	}
	bw := bufio.NewWriter(w)
	for _, d := range diags {
		fmt.Fprintln(bw, DiagnosticLine(d))
		if d.Subject == nil {
			continue
		}
		src, ok := cache[d.Subject.Filename]
		if !ok {
			src, _ = ReadFile(d.Subject.Filename)
			cache[d.Subject.Filename] = src
		}
		writeSnippet(bw, src, *d.Subject)
	}
	return bw.Flush()
}

// maxSnippetLines bounds the source shown for one diagnostic.
const maxSnippetLines = 3

func writeSnippet(w io.Writer, src []byte, rng hcl.Range) {
	if len(src) == 0 || rng.Start.Byte > len(src) || rng.End.Byte > len(src) || rng.Start.Byte > rng.End.Byte {
		return
	}
	// Find the start of the subject's first line.
	lineStart := rng.Start.Byte
	for lineStart > 0 && src[lineStart-1] != '\n' {
		lineStart--
	}
	end := rng.End.Byte
	if end == rng.Start.Byte {
		end++ // an empty range still marks one column
	}
	width := len(fmt.Sprint(rng.End.Line))
	for n, line := 0, rng.Start.Line; n < maxSnippetLines && lineStart < len(src); n, line = n+1, line+1 {
		lineEnd := lineStart
		for lineEnd < len(src) && src[lineEnd] != '\n' {
			lineEnd++
		}
		text := strings.TrimRight(string(src[lineStart:lineEnd]), "\r")
		// Underline the part of this line inside the subject; a following
		// line the subject only touches (its line break) is not shown.
		from := max(rng.Start.Byte, lineStart) - lineStart
		to := min(end, lineStart+len(text)+1) - lineStart
		if n > 0 && (to <= from || from >= len(text)) {
			break
		}
		fmt.Fprintf(w, "  %*d | %s\n", width, line, text)
		if to > from {
			var u strings.Builder
			for _, r := range text[:min(from, len(text))] {
				if r == '\t' {
					u.WriteByte('\t')
				} else {
					u.WriteByte(' ')
				}
			}
			marks := utf8.RuneCountInString(text[min(from, len(text)):min(to, len(text))])
			u.WriteString(strings.Repeat("^", max(marks, 1)))
			fmt.Fprintf(w, "  %*s | %s\n", width, "", u.String())
		}
		if lineEnd >= end || lineEnd >= len(src) {
			break
		}
		lineStart = lineEnd + 1
	}
}
