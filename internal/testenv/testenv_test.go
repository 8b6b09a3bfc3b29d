package testenv

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBinaryFromEnv(t *testing.T) {
	t.Setenv(BinEnv, "/prebuilt/epconsole")
	t.Setenv(LabBinEnv, "/prebuilt/epconsole-lab")
	if got := Binary(t); got != "/prebuilt/epconsole" {
		t.Errorf("Binary = %s, want $%s", got, BinEnv)
	}
	if got := LabBinary(t); got != "/prebuilt/epconsole-lab" {
		t.Errorf("LabBinary = %s, want $%s", got, LabBinEnv)
	}
}

// TestBinariesBuild builds both binaries from the checkout and runs them:
// epconsole prints its version; the demo binary hands `version` to
// epconsole's CLI and answers -h with the lab's own usage.
func TestBinariesBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	t.Setenv(BinEnv, "")
	t.Setenv(LabBinEnv, "")
	out, err := exec.Command(Binary(t), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "epconsole ") {
		t.Errorf("epconsole version: %v: %q", err, out)
	}
	lab := LabBinary(t)
	if out, err := exec.Command(lab, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "epconsole ") {
		t.Errorf("epconsole-lab version: %v: %q", err, out)
	}
	if out, err := exec.Command(lab, "-h").CombinedOutput(); err != nil || !strings.Contains(string(out), "usage: epconsole-lab") {
		t.Errorf("epconsole-lab -h: %v: %q", err, out)
	}
}

// TestPane drives a shell command on a tmux terminal: what it prints
// shows, keys reach it, its exit code comes back.
func TestPane(t *testing.T) {
	exitFile := filepath.Join(t.TempDir(), "exit")
	x := NewPane(t, t.TempDir(), fmt.Sprintf("sh -c 'printf \"ready\\n\"; read line; echo got $line; sleep 0.2; exit 3'; echo $? > %s", exitFile))
	x.WaitScreen(10*time.Second, "ready")
	x.Keys("hello", "Enter")
	if s := x.WaitScreen(10*time.Second, "got hello"); !strings.Contains(s, "ready") {
		t.Errorf("screen lost the first line:\n%s", s)
	}
	if code := x.WaitExit(exitFile, 10*time.Second); code != "3" {
		t.Errorf("exit code %q, want 3", code)
	}
}
