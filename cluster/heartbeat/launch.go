package heartbeat

// Starting the helper: the heartbeat socket, the helper process (this binary
// re-executed from the descriptor opened at start, selfexe.go) and the
// handshake that hands it the loop's configuration.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// listenUDP opens the blocking heartbeat socket and binds it.
func listenUDP(ap netip.AddrPort) (int, error) {
	sa, err := sockaddr(ap)
	if err != nil && ap.Port() == 0 {
		err = fmt.Errorf("heartbeat: bind %v: a fixed port is needed (peers are configured with it)", ap)
	}
	if err != nil {
		return -1, err
	}
	fam := unix.AF_INET6
	if _, ok := sa.(*unix.SockaddrInet4); ok {
		fam = unix.AF_INET
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("heartbeat: socket: %w", err)
	}
	if fam == unix.AF_INET {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, dscpCS6)
	} else {
		if err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err == nil {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, dscpCS6)
		}
	}
	if err == nil {
		// The larger buffer is best effort: without CAP_NET_ADMIN the
		// kernel caps SO_RCVBUF at net.core.rmem_max.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, RecvBuffer) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, RecvBuffer)
		}
		err = unix.Bind(fd, sa)
	}
	if err != nil {
		unix.Close(fd)
		be := &BindError{Addr: ap, Err: err}
		if errors.Is(err, unix.EADDRINUSE) {
			be.Holder = portHolder(ap)
		}
		return -1, be
	}
	return fd, nil
}

// launch starts the loop on its fds, which it takes over.
func (b *Beater) launch(loopFd, udp int) error {
	if b.cfg.InProcess {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			err := serve(loopFd, udp, false)
			unix.Close(loopFd)
			unix.Close(udp)
			b.setExit(err)
		}()
		return nil
	}
	// The helper is started from the descriptor of this process's own
	// binary, opened at start (selfexe.go): after an in-place upgrade it
	// is still the daemon's binary, not whatever the path names now.
	exe, path := b.cfg.Executable, b.cfg.Executable
	var exeF *os.File
	if exe == "" {
		var err error
		if exeF, err = openSelfExe(); err != nil {
			unix.Close(loopFd)
			unix.Close(udp)
			return fmt.Errorf("heartbeat: finding the executable: %w", err)
		}
		exe = fmt.Sprintf("/proc/self/fd/%d", selfExeFd) // the child's descriptor (ExtraFiles below)
		if path, err = os.Executable(); err != nil {
			path = "epconsole"
		}
	}
	ctlF, udpF := os.NewFile(uintptr(loopFd), "heartbeat-loop-control"), os.NewFile(uintptr(udp), "heartbeat-udp")
	defer ctlF.Close()
	defer udpF.Close()
	cmd := exec.Command(exe)
	cmd.Args = []string{path}
	cmd.Env = helperEnv(os.Environ())
	cmd.ExtraFiles = []*os.File{ctlF, udpF} // fds 3 and 4
	if exeF != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, exeF) // fd 5 (selfExeFd)
		cmd.Env = append(cmd.Env, helperExeFdEnv+"=1")
	}
	cmd.Stderr = b.cfg.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: b.cfg.credential}
	// PR_SET_PDEATHSIG fires when the thread that forked the helper exits,
	// not the process: fork from a locked thread that stays until the
	// helper is gone. That thread sets no_new_privs and bounds its
	// capabilities to the helper's before the fork, so it is never
	// unlocked: the runtime ends it with the goroutine.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := forkThreadRestrict(b.cfg.Claim != nil); err != nil {
			started <- fmt.Errorf("restricting the helper's privileges: %w", err)
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		b.setExit(cmd.Wait())
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("heartbeat: starting the helper %s: %w", path, err)
	}
	b.pid = cmd.Process.Pid
	return nil
}

// helperEnv is the helper's environment: the daemon's, the helper switch,
// one P, no garbage collection, and no asynchronous preemption (the loop
// waits in a raw ppoll, loop.wait, which a preemption signal would only
// interrupt every 10 ms for nothing).
func helperEnv(env []string) []string {
	out := make([]string, 0, len(env)+5)
	debug := "asyncpreemptoff=1"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "GODEBUG="); ok {
			if v != "" {
				debug = v + "," + debug
			}
			continue
		}
		out = append(out, e)
	}
	return append(out, HelperEnv+"=1", "GOMAXPROCS=1", "GOGC=off", "GOMEMLIMIT=64MiB", "GODEBUG="+debug)
}

// setExit records how the loop ended.
func (b *Beater) setExit(err error) {
	b.mu.Lock()
	if err != nil {
		b.exitErr = err
	}
	b.mu.Unlock()
	close(b.exited)
}

// kill ends a helper that never got going.
func (b *Beater) kill() {
	if b.pid > 0 {
		syscall.Kill(b.pid, syscall.SIGKILL)
	}
	<-b.exited
}

// handshake sends the configuration and waits for the loop's hello.
func (b *Beater) handshake(ctx context.Context, lc loopConfig) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(startTimeout)
	}
	cfgMsg, err := json.Marshal(lc)
	if err != nil {
		return fmt.Errorf("heartbeat: encoding the loop configuration: %w", err)
	}
	b.ctl.SetDeadline(deadline)
	defer b.ctl.SetDeadline(time.Time{})
	var serr error
	err = b.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), cfgMsg, unix.MSG_NOSIGNAL, nil)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("heartbeat: sending the loop configuration: %w", err)
	}
	buf := make([]byte, 64<<10)
	var n int
	var rerr error
	err = b.rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), buf)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err == nil && n == 0 {
		err = errors.New("the loop exited")
	}
	if err != nil {
		if b.pid > 0 {
			return fmt.Errorf("heartbeat: waiting for the helper (pid %d) to start (does main call heartbeat.RunHelper?): %w", b.pid, err)
		}
		return fmt.Errorf("heartbeat: waiting for the loop to start: %w", err)
	}
	if err := json.Unmarshal(buf[:n], &b.hello); err != nil {
		return fmt.Errorf("heartbeat: decoding the loop's hello: %w", err)
	}
	if b.hello.Err != "" {
		return fmt.Errorf("heartbeat: the loop failed to start: %s", b.hello.Err)
	}
	return nil
}
