// Package keepalived reads the parts of keepalived.conf that a VRRP VIP in
// front of Kubernetes apiservers uses (global_defs, vrrp_script,
// vrrp_instance with its authentication, unicast_peer, virtual_ipaddress
// and track_script blocks) into a model, with every problem and every
// keyword it does not map reported at its file and line.
package keepalived

import (
	"strings"

	"github.com/epconsole/epconsole/internal/migrate/diag"
)

// Stmt is one keepalived statement: a keyword, its arguments, and the
// statements of its { } block when it has one.
type Stmt struct {
	Keyword  string
	Args     []string
	Line     int
	HasBlock bool
	Block    []*Stmt
}

type tokKind int

const (
	tWord tokKind = iota
	tOpen
	tClose
	tEnd // end of statement: a line break or ';'
)

type token struct {
	kind tokKind
	text string
	line int
}

// lex splits src into words, braces and statement ends. '#' and '!' start
// a comment that runs to the end of the line; double quotes group words.
func lex(src string, dl *diag.List) []token {
	var toks []token
	line := 1
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n':
			toks = append(toks, token{tEnd, "", line})
			line++
			i++
		case c == ';':
			toks = append(toks, token{tEnd, "", line})
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#' || c == '!':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '{':
			toks = append(toks, token{tOpen, "{", line})
			i++
		case c == '}':
			toks = append(toks, token{tClose, "}", line})
			i++
		case c == '"':
			j := strings.IndexAny(src[i+1:], "\"\n")
			if j < 0 || src[i+1+j] == '\n' {
				dl.Errorf(line, "unterminated quoted string")
				end := len(src)
				if j >= 0 {
					end = i + 1 + j
				}
				toks = append(toks, token{tWord, src[i+1 : end], line})
				i = end
				continue
			}
			toks = append(toks, token{tWord, src[i+1 : i+1+j], line})
			i += j + 2
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n{};#!\"", rune(src[j])) {
				j++
			}
			toks = append(toks, token{tWord, src[i:j], line})
			i = j
		}
	}
	return toks
}

// Parse splits src into statements. An unterminated or unmatched brace is
// an error at its line; the statements read so far are returned anyway.
func Parse(src []byte, dl *diag.List) []*Stmt {
	p := &parser{toks: lex(string(src), dl), dl: dl}
	stmts := p.block(0, 0)
	return stmts
}

type parser struct {
	toks []token
	pos  int
	dl   *diag.List
}

// block reads statements until the '}' closing a block opened on openLine
// (depth > 0) or the end of the input (depth 0).
func (p *parser) block(depth, openLine int) []*Stmt {
	var out []*Stmt
	var cur *Stmt
	for p.pos < len(p.toks) {
		t := p.toks[p.pos]
		p.pos++
		switch t.kind {
		case tEnd:
			cur = nil
		case tWord:
			if cur == nil {
				cur = &Stmt{Keyword: t.text, Line: t.line}
				out = append(out, cur)
			} else {
				cur.Args = append(cur.Args, t.text)
			}
		case tOpen:
			if cur == nil {
				// "{" on the line after its keyword belongs to the last
				// statement, if it has no block yet.
				if n := len(out); n > 0 && !out[n-1].HasBlock {
					cur = out[n-1]
				} else {
					p.dl.Errorf(t.line, "'{' without a keyword before it")
					cur = &Stmt{Line: t.line}
				}
			}
			cur.HasBlock = true
			cur.Block = p.block(depth+1, t.line)
			cur = nil
		case tClose:
			if depth == 0 {
				p.dl.Errorf(t.line, "'}' without a matching '{'")
				continue
			}
			return out
		}
	}
	if depth > 0 {
		p.dl.Errorf(openLine, "unterminated brace: the '{' on this line is never closed")
	}
	return out
}
