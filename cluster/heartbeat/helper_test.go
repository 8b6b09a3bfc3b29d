package heartbeat

import (
	"bufio"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// TestHelperWithoutRealtime runs one helper as an unprivileged user (no
// CAP_SYS_NICE): it reports why real-time priority is not in effect, its
// beats lack FlagRealtime, and its peers give it the long threshold.
func TestHelperWithoutRealtime(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a helper as another user")
	}
	m := modes[1]
	all := map[string]netip.AddrPort{"a": addrFor(m, 6, 1), "b": addrFor(m, 6, 2)}
	a := startNode(t, testConfig(t, m, "a", all, testKey(1)))
	cfg := testConfig(t, m, "b", all, testKey(1))
	cfg.credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	cfg.Executable = worldExecutableCopy(t)
	b := startNode(t, cfg)
	rt := b.b.Realtime()
	t.Logf("unprivileged helper: %+v", rt)
	if rt.InEffect || !rt.Requested || rt.Reason == "" {
		t.Fatalf("unprivileged helper reports %+v", rt)
	}
	if attr, err := unix.SchedGetAttr(b.b.HelperPID(), 0); err != nil || attr.Policy == unix.SCHED_FIFO {
		t.Fatalf("kernel policy of the unprivileged helper: %+v, %v", attr, err)
	}
	v, _ := a.waitView(5*time.Second, "b alive", alive("b"))
	pb, _ := v.Peer("b")
	if pb.Realtime || pb.Flags&FlagRealtime != 0 {
		t.Fatalf("b's beats claim real-time: %s", describe(v))
	}
	b.waitView(bound, "a alive and real-time", func(v View) bool { p, _ := v.Peer("a"); return p.Alive && p.Realtime })
	start := time.Now()
	syscall.Kill(b.b.HelperPID(), syscall.SIGKILL)
	a.waitView(bound, "b dead", dead("b"))
	took := time.Since(start)
	t.Logf("normal-priority b declared dead %v after its helper was killed (long threshold %v)", took, v.SlowThreshold)
	if took < v.Threshold {
		t.Errorf("b declared dead after %v, before even the short threshold", took)
	}
}

// worldExecutableCopy copies the test binary where another user can run
// it (the build directory is private).
func worldExecutableCopy(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "heartbeat-helper")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dst := dir + "/heartbeat.test"
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
