package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/testenv"
	"github.com/epconsole/epconsole/probes/probetest"
)

// The console tests re-execute this test binary in a tmux pane as
// `epconsole`: consoleChild (called from TestMain) runs Run with the
// arguments in consoleArgsEnv on the terminal; with consoleBackendsEnv it
// loads ./config.hcl and swaps in loopback stand-ins as backends (which
// config.hcl refuses), then runs the console on it.
const (
	consoleChildEnv    = "EPCONSOLE_CLI_CONSOLE_CHILD"
	consoleArgsEnv     = "EPCONSOLE_CLI_CONSOLE_ARGS"
	consoleBackendsEnv = "EPCONSOLE_CLI_CONSOLE_BACKENDS"
)

// consoleChild runs the console and exits when this process is a child of
// the console tests.
func consoleChild() {
	if os.Getenv(consoleChildEnv) == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	stdio := IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
	var code int
	if bs := os.Getenv(consoleBackendsEnv); bs != "" {
		// As runConsole: the console never reads the gossip key.
		cfg, diags := config.Load("config.hcl", config.WithoutSecrets())
		if diags.HasErrors() {
			fmt.Fprintln(os.Stderr, diags)
			os.Exit(3)
		}
		cfg.Backends = nil
		for _, b := range strings.Split(bs, ",") {
			name, addr, _ := strings.Cut(b, "=")
			ap := netip.MustParseAddrPort(addr)
			cfg.Backends = append(cfg.Backends, config.Backend{Name: name, Address: ap.Addr(), Port: ap.Port()})
		}
		code = console(ctx, cfg, nil, nil, stdio)
	} else {
		code = Run(ctx, strings.Fields(os.Getenv(consoleArgsEnv)), stdio)
	}
	stop()
	os.Exit(code)
}

func TestConsoleArgs(t *testing.T) {
	dir := t.TempDir()
	good := checkHCL(t, dir, "")
	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(bad, []byte("cluster_name = \"x\"\nhealth {\n  timeout = \"5 s\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{"help", []string{"console", "-h"}, 0, "usage: epconsole [console]", ""},
		{"unexpected argument", []string{"console", "extra"}, 2, "", `unexpected argument "extra"`},
		{"bad flag", []string{"console", "--nope"}, 2, "", "flag provided but not defined"},
		{"invalid config", []string{"console", "-c", bad}, 1, "", "bad.hcl:3:"},
		{"missing config", []string{"console", "-c", filepath.Join(dir, "none.hcl")}, 1, "", "none.hcl"},
		{"not a terminal", []string{"console", "-c", good}, 2, "", "epconsole check"},
		// Without a command, the console's flags open the console.
		{"root -c, invalid config", []string{"-c", bad}, 1, "", "bad.hcl:3:"},
		{"root --config, not a terminal", []string{"--config", good}, 2, "", "the console needs a terminal"},
		{"root -c --socket, not a terminal", []string{"-c", good, "--socket", filepath.Join(dir, "a.sock") + "," + filepath.Join(dir, "b.sock")}, 2, "", "the console needs a terminal"},
		{"root --config=", []string{"--config=" + bad}, 1, "", "bad.hcl:3:"},
		{"root stray argument", []string{"-c", good, "extra"}, 2, "", `unknown command "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.err) {
				t.Errorf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errs)
			}
		})
	}
	// The diagnostics come with the source line they point at.
	if _, _, errs := runCLI(t, "console", "-c", bad); !strings.Contains(errs, `timeout = "5 s"`) {
		t.Errorf("no source snippet:\n%s", errs)
	}
}

// childCommand is the shell command that runs this test binary as
// `epconsole` with env and records its exit code in exitFile.
func childCommand(t *testing.T, env, exitFile string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("env %s=1 NO_COLOR=1 TERM=xterm-256color %s %s -test.run=^$; echo $? > %s", consoleChildEnv, env, exe, exitFile)
}

// TestConsoleTmux runs `epconsole` without arguments (./config.hcl, its
// status.socket) in a real terminal, tmux at 80×24, against a real status
// server publishing a test snapshot: the overview shows the daemon's live
// view, `2` switches to the backends, `q` quits with exit code 0.
func TestConsoleTmux(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "status.sock")
	checkHCL(t, dir, fmt.Sprintf("status {\n  socket = %q\n}\n", sock))
	serveTestSnapshot(t, sock)

	exitFile := filepath.Join(t.TempDir(), "exit")
	x := testenv.NewPane(t, dir, childCommand(t, consoleArgsEnv+"=", exitFile))
	x.WaitScreen(10*time.Second, "[1 Overview]", "owner lb1 since", "● live")
	x.Keys("2")
	screen := x.WaitScreen(10*time.Second, "[2 Backends]", "cp1", "cp2", "cp3", "Latency")
	if lines := strings.Split(strings.TrimRight(screen, "\n"), "\n"); len(lines) != 24 {
		t.Errorf("the screen has %d lines, want 24:\n%s", len(lines), screen)
	}
	x.Keys("q")
	if code := x.WaitExit(exitFile, 10*time.Second); code != "0" {
		t.Errorf("epconsole exited %s, want 0", code)
	}
}

// TestConsoleConfigFlagTmux runs `epconsole -c FILE` (no command) from a
// directory without a config.hcl: the console opens live on FILE's
// status.socket.
func TestConsoleConfigFlagTmux(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "status.sock")
	cfg := checkHCL(t, dir, fmt.Sprintf("status {\n  socket = %q\n}\n", sock))
	serveTestSnapshot(t, sock)

	exitFile := filepath.Join(t.TempDir(), "exit")
	x := testenv.NewPane(t, t.TempDir(), childCommand(t, consoleArgsEnv+"='-c "+cfg+"'", exitFile))
	x.WaitScreen(10*time.Second, "[1 Overview]", "owner lb1 since", "● live")
	x.Keys("q")
	if code := x.WaitExit(exitFile, 10*time.Second); code != "0" {
		t.Errorf("epconsole -c %s exited %s, want 0", cfg, code)
	}
}

// serveTestSnapshot serves tui/testdata/healthy.json on a status server
// at sock until the test ends.
func serveTestSnapshot(t *testing.T, sock string) {
	t.Helper()
	b, err := os.ReadFile("../../tui/testdata/healthy.json")
	if err != nil {
		t.Fatal(err)
	}
	var snap status.Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	snap.Generated = time.Now()
	pub := status.NewPublisher(snap)
	srv, err := status.NewServer(status.ServerOptions{Socket: sock, Source: pub, Coalesce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("status server: %v", err)
		}
	})
}

// TestConsoleDirectTmux runs the console where no daemon answers: it shows
// the direct view of three stand-in apiservers probed with config.hcl's
// default health settings, read-only; a stand-in stopped shows DOWN on the
// backends view, and the time from the stop to the screen is logged (the
// direct-mode figure).
func TestConsoleDirectTmux(t *testing.T) {
	f := probetest.NewFixture(t)
	var bs []*probetest.Backend
	var list []string
	for i := 1; i <= 3; i++ {
		b := f.Backend(t, fmt.Sprintf("cp%d", i), checkIP(50+i), probetest.Healthy)
		bs = append(bs, b)
		list = append(list, b.Name+"="+b.Addr.String())
	}
	dir := t.TempDir()
	checkHCL(t, dir, fmt.Sprintf("tls {\n  ca_file = %q\n}\nstatus {\n  socket = %q\n}\n", f.CAFile, filepath.Join(dir, "no-daemon.sock")))
	exitFile := filepath.Join(t.TempDir(), "exit")
	x := testenv.NewPane(t, dir, childCommand(t, consoleBackendsEnv+"="+strings.Join(list, ","), exitFile))

	overview := x.WaitScreen(15*time.Second, "● direct view · no daemon · read-only", "owner not known (direct view)", "OK       backends 3/3 ready", "OK       tls")
	t.Logf("the direct view's overview:\n%s", overview)
	x.Keys("2")
	row := func(b, state string) *regexp.Regexp { return regexp.MustCompile(`(?m)^\W*` + b + ` +` + state + ` `) }
	x.WaitMatch(10*time.Second, regexp.MustCompile(`\[2 Backends\]`), row("cp2", "up"))
	stopped := time.Now()
	bs[1].Stop()
	screen := x.WaitMatch(10*time.Second, row("cp2", "DOWN"))
	took := time.Since(stopped)
	t.Logf("direct mode, config.hcl health defaults (interval 1s, fast 200ms, timeout 500ms, fall 2): stand-in stopped -> DOWN on the screen in %v", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("DOWN took %v to show, want < 5s", took)
	}
	if !row("cp1", "up").MatchString(screen) || !row("cp3", "up").MatchString(screen) {
		t.Errorf("the other backends are not up:\n%s", screen)
	}
	x.Keys("d")
	x.WaitScreen(5*time.Second, "read-only: no daemon to drain through")
	x.Keys("q")
	if code := x.WaitExit(exitFile, 10*time.Second); code != "0" {
		t.Errorf("epconsole exited %s, want 0", code)
	}
}

// TestConsolePermission: a user other than root reaching a daemon's
// status socket (mode 0600, root's) is told to run as root, and the
// console does not fall back to a direct view. The console runs as this
// test binary re-executed as nobody.
func TestConsolePermission(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the console as another user")
	}
	// A directory nobody may enter, with a copy of this binary.
	dir, err := os.MkdirTemp("", "epc-console-perm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	copyExe := filepath.Join(dir, "epconsole.test")
	if err := os.WriteFile(copyExe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "status.sock")
	checkHCL(t, dir, fmt.Sprintf("status {\n  socket = %q\n}\n", sock))
	// nobody may read the config but not the gossip key (0600, root's):
	// the console does not need it.
	if err := os.Chmod(filepath.Join(dir, "config.hcl"), 0o644); err != nil {
		t.Fatal(err)
	}
	pub := status.NewPublisher(status.Snapshot{Schema: status.Schema, Source: "daemon", Node: "lb1"})
	srv, err := status.NewServer(status.ServerOptions{Socket: sock, Source: pub})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	cmd := exec.CommandContext(cctx, copyExe, "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = []string{consoleChildEnv + "=1", consoleBackendsEnv + "=cp1=127.0.36.60:6443", "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "run as root") {
		t.Fatalf("as nobody: %v, output:\n%s", err, out)
	}
	t.Logf("as nobody: %s", strings.TrimSpace(string(out)))
}
