package daemon

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// threadNices reads the nice value of every thread of this process.
func threadNices(t *testing.T) map[string]int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended
		}
		// Fields after the command's closing parenthesis: state is 3,
		// nice is 19.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		n, err := strconv.Atoi(f[19-3])
		if err != nil {
			t.Fatalf("%s: nice field %q", p, f[19-3])
		}
		out[filepath.Base(filepath.Dir(p))] = n
	}
	return out
}

// TestRaisePriority sets a nice value on every thread (a lower priority,
// which needs no capability, so the test also runs unprivileged) and reads
// it back from /proc for each of them.
func TestRaisePriority(t *testing.T) {
	before := threadNices(t)
	t.Cleanup(func() {
		if os.Geteuid() == 0 {
			_, _ = RaisePriority(0)
		}
	})
	n, err := RaisePriority(7)
	if err != nil {
		t.Fatal(err)
	}
	if n < len(before) {
		t.Errorf("set %d threads, the process had %d", n, len(before))
	}
	for tid, nice := range threadNices(t) {
		if _, old := before[tid]; old && nice != 7 {
			t.Errorf("thread %s: nice %d, want 7", tid, nice)
		}
	}
}
