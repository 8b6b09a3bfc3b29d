package heartbeat

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHelperDiesWithDaemon kills a daemon (a copy of this test binary that
// started a real helper) and checks that its helper goes too.
func TestHelperDiesWithDaemon(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), testDaemonEnv+"=127.0.5.97:17997")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the helper PID: %v; stderr: %s", err, stderr.String())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		t.Fatalf("helper PID %q: %v", line, err)
	}
	if !running(pid) {
		t.Fatalf("helper %d not running", pid)
	}
	start := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for running(pid) {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("helper %d still runs %v after its daemon was killed", pid, time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("helper %d gone %v after its daemon was killed", pid, time.Since(start))
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestStuckHelperMakesViewStale stops a helper (SIGSTOP): its daemon's view
// turns stale (no majority, every peer dead) and its peers declare it dead;
// SIGCONT brings both back.
func TestStuckHelperMakesViewStale(t *testing.T) {
	_, nodes := threeNodes(t, modes[1], 5)
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		n.waitView(5*time.Second, "all alive", allAlive)
	}
	pid := a.b.HelperPID()
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	v, took := a.waitView(bound, "stale", func(v View) bool { return v.Stale })
	t.Logf("a's view stale %v after its helper stopped (report interval %v)", took, DefaultReportInterval)
	if v.Majority || v.Beating {
		t.Errorf("stale view claims majority or beating: %s", describe(v))
	}
	for _, p := range v.Peers {
		if p.Alive {
			t.Errorf("stale view has %s alive", p.Name)
		}
	}
	b.waitView(bound, "a dead", dead("a"))
	t.Logf("b declared a dead %v after its helper stopped", time.Since(start))
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	a.waitView(bound, "fresh again", allAlive)
	b.waitView(bound, "a alive again", alive("a"))
}
