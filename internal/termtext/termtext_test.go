package termtext

import "testing"

func TestClean(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "readyz: [-]etcd failed", "readyz: [-]etcd failed"},
		{"utf-8", "backend café ✓", "backend café ✓"},
		{"colour", "\x1b[31mred\x1b[0m text", "red text"},
		{"cursor movement and erase", "ok\x1b[2K\x1b[1A\x1b[999Dfaked", "okfaked"},
		{"private CSI", "a\x1b[?1049hb", "ab"},
		{"window title (OSC, BEL)", "x\x1b]0;pwned\x07y", "xy"},
		{"hyperlink (OSC, ST)", "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\", "click"},
		{"DCS", "a\x1bPq#0;2;0;0;0\x1b\\b", "ab"},
		{"two-character escape (reset)", "a\x1bcb", "ab"},
		{"charset escape", "a\x1b(0b", "ab"},
		{"lone ESC at the end", "a\x1b", "a"},
		{"8-bit CSI", "a\u009b31mb", "ab"},
		{"8-bit OSC", "a\u009d0;title\u009cb", "ab"},
		{"C1 control", "a\u0085b", "ab"},
		{"newlines and tabs become spaces", "line1\nline2\tx\r", "line1 line2 x "},
		{"other C0 and DEL", "a\x00b\x07c\x08d\x7fe", "abcde"},
		{"bidi override", "ab\u202ecd\u2066e", "abcde"},
		{"invalid UTF-8 (a raw 8-bit CSI byte)", "a\x9b31mb", "a\uFFFD31mb"},
		{"unterminated OSC", "a\x1b]0;title", "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Clean(tc.in); got != tc.want {
				t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func BenchmarkCleanPlain(b *testing.B) {
	s := "/readyz 500, failing: etcd, poststarthook/start-apiextensions-controllers"
	for b.Loop() {
		_ = Clean(s)
	}
}
