// Package termtext makes text from the network safe to show on a
// terminal. Peers and probed servers choose some of the text the status
// model carries (readyz check names, failure reasons, certificate names,
// peer names and event details); a control character or escape sequence
// in it could move the cursor, recolour or retitle the operator's
// terminal, or hide what is shown. Clean removes them.
package termtext

import (
	"strings"
	"unicode/utf8"
)

// Clean returns s without control characters and terminal escape
// sequences: C0 controls and DEL (a tab, newline or carriage return
// becomes a space), C1 controls, ANSI/VT escape sequences (CSI, OSC, DCS,
// SOS, PM and APC strings, two-character escapes) in their 7-bit and
// 8-bit forms, and Unicode bidirectional overrides; invalid UTF-8
// becomes U+FFFD. Plain text is returned as is, without allocating.
func Clean(s string) string {
	if isPlain(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r == 0x1b: // ESC
			i = skipEscape(rs, i)
		case r == 0x9b: // 8-bit CSI
			i = skipCSI(rs, i+1)
		case r == 0x90 || r == 0x9d || r == 0x98 || r == 0x9e || r == 0x9f: // 8-bit DCS, OSC, SOS, PM, APC
			i = skipString(rs, i+1)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0), isBidi(r):
			// dropped
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isPlain reports whether s needs no cleaning.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return false
		}
		if c >= 0x80 {
			for _, r := range s[i:] {
				if r == utf8.RuneError || (r >= 0x80 && r < 0xa0) || isBidi(r) {
					return false
				}
			}
			return utf8.ValidString(s)
		}
	}
	return true
}

// isBidi reports whether r is a bidirectional embedding, override or
// isolate, which reorder what follows on screen.
func isBidi(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}

// skipEscape skips the escape sequence whose ESC is at rs[i] and returns
// the index of its last rune.
func skipEscape(rs []rune, i int) int {
	if i+1 >= len(rs) {
		return i
	}
	switch rs[i+1] {
	case '[':
		return skipCSI(rs, i+2)
	case ']', 'P', 'X', '^', '_':
		return skipString(rs, i+2)
	}
	if rs[i+1] >= 0x20 && rs[i+1] < 0x7f {
		// Intermediates (0x20-0x2f) then one final character.
		j := i + 1
		for j < len(rs) && rs[j] >= 0x20 && rs[j] <= 0x2f {
			j++
		}
		if j < len(rs) && rs[j] >= 0x30 && rs[j] < 0x7f {
			return j
		}
		return j - 1
	}
	return i
}

// skipCSI skips a control sequence's parameters, intermediates and final
// byte starting at rs[j]; it returns the index of the final byte (or of
// the last rune that belongs to the sequence).
func skipCSI(rs []rune, j int) int {
	for j < len(rs) && rs[j] >= 0x20 && rs[j] <= 0x3f {
		j++
	}
	if j < len(rs) && rs[j] >= 0x40 && rs[j] <= 0x7e {
		return j
	}
	return j - 1
}

// skipString skips a control string (OSC, DCS, ...) starting at rs[j] up
// to its terminator: BEL, ST (ESC \ or 0x9c), or the end of the text.
func skipString(rs []rune, j int) int {
	for ; j < len(rs); j++ {
		switch {
		case rs[j] == 0x07 || rs[j] == 0x9c:
			return j
		case rs[j] == 0x1b && j+1 < len(rs) && rs[j+1] == '\\':
			return j + 1
		}
	}
	return len(rs) - 1
}
