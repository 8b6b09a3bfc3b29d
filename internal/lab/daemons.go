package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// daemonProc is one running `epconsole --daemon`.
type daemonProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// explainDead adds, to err, the last log lines of every daemon that exited.
func (l *Lab) explainDead(err error) error {
	for _, p := range l.Peers() {
		if l.daemonRunning(p) {
			continue
		}
		b, _ := os.ReadFile(l.LogPath(p))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 5 {
			lines = lines[len(lines)-5:]
		}
		err = fmt.Errorf("%w\nthe daemon on %s exited; its log (%s) ends:\n%s", err, p, l.LogPath(p), strings.Join(lines, "\n"))
	}
	return err
}

func (l *Lab) stateDir(peer string) string { return filepath.Join(l.net.Dir(), peer+"-state") }

// startDaemon starts `epconsole --daemon` on LB peer with extra flags
// args, appending to its log.
func (l *Lab) startDaemon(peer string, args ...string) error {
	h := l.net.Host(peer)
	f, err := os.OpenFile(l.LogPath(peer), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("lab: daemon log: %w", err)
	}
	argv := append([]string{l.opts.Binary, "--daemon", "-c", l.ConfigPath(peer)}, l.opts.DaemonArgs...)
	cmd := h.Command(l.ctx, append(argv, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// The daemon must not see netlab's child variables (it would run a role).
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("lab: starting the daemon on %s: %w", peer, err)
	}
	d := &daemonProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(d.done)
	}()
	l.mu.Lock()
	l.daemons[peer] = d
	l.mu.Unlock()
	l.log.Info("daemon started", "peer", peer, "pid", cmd.Process.Pid, "config", l.ConfigPath(peer))
	return nil
}

// daemonRunning reports whether the daemon on peer runs.
func (l *Lab) daemonRunning(peer string) bool {
	l.mu.Lock()
	d := l.daemons[peer]
	l.mu.Unlock()
	if d == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// killDaemon kills the daemon on peer with SIGKILL (a crash: its VIP and
// rules stay in the kernel) and waits until it is gone.
func (l *Lab) killDaemon(peer string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.signalDaemon(ctx, peer, syscall.SIGKILL)
}

// signalDaemon sends sig to the daemon on peer and waits until it exits
// or ctx ends.
func (l *Lab) signalDaemon(ctx context.Context, peer string, sig syscall.Signal) error {
	l.mu.Lock()
	d := l.daemons[peer]
	l.mu.Unlock()
	if d == nil {
		return fmt.Errorf("lab: no daemon on %s", peer)
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("lab: the daemon on %s did not exit after %s: %w", peer, unix.SignalName(sig), ctx.Err())
	}
}

// DaemonPid returns the process id of the daemon on peer (0 if none).
func (l *Lab) DaemonPid(peer string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.daemons[peer]; d != nil {
		return d.cmd.Process.Pid
	}
	return 0
}

// StopDaemon stops the daemon on peer with SIGTERM (a graceful handoff:
// it gives the VIP away and removes its rules) and waits until it exits.
func (l *Lab) StopDaemon(ctx context.Context, peer string) error {
	return l.signalDaemon(ctx, peer, syscall.SIGTERM)
}

// StartDaemon starts the daemon on peer again (after StopDaemon or a
// kill), with extra flags args (a drill's control: --no-conn-sync).
func (l *Lab) StartDaemon(peer string, args ...string) error {
	if l.daemonRunning(peer) {
		return fmt.Errorf("lab: the daemon on %s runs already", peer)
	}
	return l.startDaemon(peer, args...)
}
