// Package haproxy reads the parts of haproxy.cfg that a TCP load balancer
// in front of Kubernetes apiservers uses (global, defaults, frontend,
// backend and listen sections: bind, mode, balance, the health-check
// options, server and default-server lines, timeouts) into a model, with
// every problem and every keyword it does not map reported at its file and
// line.
package haproxy

import (
	"strings"

	"github.com/epconsole/epconsole/internal/migrate/diag"
)

// Line is one configuration line split into words.
type Line struct {
	Num   int
	Words []string
}

// Section is a section header and its lines.
type Section struct {
	Kind  string // global, defaults, frontend, backend, listen, or an ignored kind
	Name  string
	Line  int
	Lines []Line
}

// proxySections are the sections the import reads; ignoredSections are
// known sections it does not.
var (
	readSections    = map[string]bool{"global": true, "defaults": true, "frontend": true, "backend": true, "listen": true}
	ignoredSections = map[string]bool{"peers": true, "resolvers": true, "userlist": true, "mailers": true, "program": true,
		"http-errors": true, "ring": true, "cache": true, "crt-store": true, "traces": true, "log-forward": true, "fcgi-app": true}
)

// Split reads src into sections. A keyword before the first section is an
// error; a known section the import does not use is a warning.
func Split(src []byte, dl *diag.List) []*Section {
	var out []*Section
	var cur *Section
	for i, raw := range strings.Split(string(src), "\n") {
		num := i + 1
		words, ok := words(raw)
		if !ok {
			dl.Errorf(num, "unterminated quoted string")
		}
		if len(words) == 0 {
			continue
		}
		kw := words[0]
		switch {
		case readSections[kw]:
			cur = &Section{Kind: kw, Line: num}
			if len(words) > 1 {
				cur.Name = words[1]
			}
			if kw != "global" && kw != "defaults" && cur.Name == "" {
				dl.Errorf(num, "%s section without a name", kw)
			}
			out = append(out, cur)
		case ignoredSections[kw]:
			dl.Warnf(num, "%s section: not carried over (epconsole has no equivalent)", kw)
			cur = &Section{Kind: kw, Line: num}
		case cur == nil:
			dl.Errorf(num, "unknown section %q: expected global, defaults, frontend, backend or listen", kw)
			cur = &Section{Kind: "unknown", Line: num}
		default:
			cur.Lines = append(cur.Lines, Line{Num: num, Words: words})
		}
	}
	return out
}

// words splits a line on blanks, honouring quotes and backslash escapes,
// and drops a '#' comment. ok is false for an unterminated quote.
func words(line string) (out []string, ok bool) {
	var b strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				b.WriteByte(c)
			}
		case c == '\\' && i+1 < len(line):
			i++
			b.WriteByte(line[i])
			inWord = true
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case c == '#':
			i = len(line)
		case c == ' ' || c == '\t' || c == '\r':
			if inWord {
				out = append(out, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, b.String())
	}
	return out, quote == 0
}
