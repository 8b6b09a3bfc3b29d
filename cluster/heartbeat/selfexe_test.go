package heartbeat

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testUpgradeEnv makes the test binary act as a daemon that starts a real
// helper, prints its PID, and on every line read from stdin stops that
// helper and starts a new one, printing its PID (TestHelperSameBinaryAfterUpgrade).
const testUpgradeEnv = "EPCONSOLE_HEARTBEAT_TEST_UPGRADE"

func runUpgradeDaemon(addr string) int {
	start := func() *Beater {
		b, err := Start(context.Background(), Config{
			Self: "d", Bind: netip.MustParseAddrPort(addr), Keys: [][]byte{testKey(1)},
		})
		if err != nil {
			fmt.Printf("error: %v\n", err)
			return nil
		}
		fmt.Printf("%d\n", b.HelperPID())
		return b
	}
	b := start()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if b != nil {
			b.Close()
		}
		b = start()
	}
	return 0
}

// TestHelperSameBinaryAfterUpgrade: a daemon (a copy of this test binary)
// starts its helper; the copy on disk is then replaced by another file, as
// a package upgrade does, and the daemon starts a new helper (as a reload
// that changes a heartbeat setting does). The new helper runs the daemon's
// own binary, the replaced inode, not the new file at the path.
func TestHelperSameBinaryAfterUpgrade(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "epconsole")
	copyFile(t, self, bin)
	var orig syscall.Stat_t
	if err := syscall.Stat(bin, &orig); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), testUpgradeEnv+"=127.0.5.96:17996")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := bufio.NewReader(out)
	helperPID := func() int {
		t.Helper()
		line, err := readLineTimeout(r, 10*time.Second)
		if err != nil {
			t.Fatalf("reading the helper PID: %v; stderr: %s", err, stderr.String())
		}
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || pid <= 0 {
			t.Fatalf("helper start: %q; stderr: %s", strings.TrimSpace(line), stderr.String())
		}
		return pid
	}
	first := helperPID()
	checkExe(t, first, orig)

	// The upgrade: a new file at the path (another inode), then the old
	// inode is gone from the file system.
	copyFile(t, self, bin+".new")
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "restart\n"); err != nil {
		t.Fatal(err)
	}
	second := helperPID()
	if second == first {
		t.Fatalf("the helper was not restarted (pid %d)", first)
	}
	checkExe(t, second, orig)
}

// checkExe fails unless process pid runs the binary whose inode is want.
func checkExe(t *testing.T, pid int, want syscall.Stat_t) {
	t.Helper()
	var st syscall.Stat_t
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	if err := syscall.Stat(exe, &st); err != nil {
		t.Fatalf("helper %d: %v", pid, err)
	}
	link, _ := os.Readlink(exe)
	if st.Dev != want.Dev || st.Ino != want.Ino {
		t.Fatalf("helper %d runs %s (inode %d), want the daemon's own binary (inode %d)", pid, link, st.Ino, want.Ino)
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	t.Logf("helper %d runs %s (inode %d, the daemon's), comm %q", pid, link, st.Ino, strings.TrimSpace(string(comm)))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// readLineTimeout reads a line, giving up after d.
func readLineTimeout(r *bufio.Reader, d time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := r.ReadString('\n')
		ch <- res{s, err}
	}()
	select {
	case x := <-ch:
		return x.s, x.err
	case <-time.After(d):
		return "", fmt.Errorf("no line within %s", d)
	}
}
