package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/epconsole/epconsole/internal/netlab"
)

// faultMode is how the owner fails.
type faultMode string

const (
	// faultLink pulls the owner's cable.
	faultLink faultMode = "link-down"
	// faultPowerOff kills every process in the owner's namespace and
	// pulls its cable; it comes back with no VIP and an empty conntrack
	// table, as after a reboot.
	faultPowerOff faultMode = "power-off"
	// faultKill sends SIGKILL to the failover daemon alone (keepalived,
	// epconsole); the link and the datapath stay.
	faultKill faultMode = "kill-9"
	// faultStop sends SIGTERM to the failover daemon: a graceful stop.
	faultStop faultMode = "graceful-stop"
)

var faultModes = []faultMode{faultLink, faultPowerOff, faultKill, faultStop}

// probeJob is a client program running in the client's namespace.
type probeJob struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr strings.Builder
}

// startProbe starts role with args in the client's namespace.
func (s *stack) startProbe(ctx context.Context, role string, args any) (*probeJob, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	a, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	j := &probeJob{lines: make(chan string, 4)}
	argv := []string{self}
	if role == "connects" {
		// The failover runs' instrument runs at nice -20 (for every
		// system alike): a client on another host is not starved by the
		// LB hosts' processes, and on this machine's two cores a client
		// waiting for a CPU made gaps that were not the VIP's (no connect
		// failed in them; in the loaded mode epconsole's VIP moved in
		// 15 ms and the client saw 23-24 ms). Not SCHED_FIFO: with a
		// real-time client at 1,000 connects a second the loaded mode's VIP
		// moved only after 0.9-1.0 s with keepalived (its VRRP process is
		// SCHED_OTHER) and 0.15-0.9 s with epconsole.
		argv = append([]string{"nice", "-n", "-20"}, argv...)
	}
	j.cmd = s.client.Command(ctx, argv...)
	j.cmd.Env = append(os.Environ(), probeRoleEnv+"="+role, probeArgsEnv+"="+string(a))
	j.cmd.Stderr = &j.stderr
	out, err := j.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := j.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			j.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
		close(j.lines)
	}()
	return j, nil
}

// next returns the probe's next output line.
func (j *probeJob) next(timeout time.Duration) (string, error) {
	select {
	case l, ok := <-j.lines:
		if !ok {
			_ = j.cmd.Wait()
			return "", fmt.Errorf("probe ended without output: %s", strings.TrimSpace(j.stderr.String()))
		}
		return l, nil
	case <-time.After(timeout):
		return "", errors.New("probe: no output in time")
	}
}

// result decodes the probe's result line into v and waits for it.
func (j *probeJob) result(timeout time.Duration, v any) error {
	l, err := j.next(timeout)
	if err != nil {
		return err
	}
	_ = j.cmd.Wait()
	return json.Unmarshal([]byte(l), v)
}

// nsPIDs lists the processes in h's network namespace.
func nsPIDs(h *netlab.Host) []int {
	var want syscall.Stat_t
	if err := syscall.Stat(h.NsPath(), &want); err != nil {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			out = append(out, pid)
		}
	}
	return out
}

// fault makes LB 0 fail in mode.
func (s *stack) fault(mode faultMode) error {
	owner := s.lbs[0]
	switch mode {
	case faultLink:
		return owner.SetCable(false)
	case faultPowerOff:
		// The cable first: a host that loses power sends nothing more,
		// not even what its dying processes would send (keepalived's
		// VRRP child sends a priority-0 advert when its parent dies).
		err := owner.SetCable(false)
		for _, p := range s.procs {
			if p.host == owner.Name() {
				p.expectDead = true
			}
		}
		for _, pid := range nsPIDs(owner) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return err
	case faultKill, faultStop:
		sig := syscall.SIGKILL
		if mode == faultStop {
			sig = syscall.SIGTERM
		}
		for _, p := range s.procs {
			if p.host == owner.Name() && s.isDaemon(p.name) && !p.expectDead {
				p.expectDead = true
				// The process itself (ip netns exec execs it): its
				// children are the system's business.
				_ = syscall.Kill(p.cmd.Process.Pid, sig)
			}
		}
		return nil
	}
	return fmt.Errorf("unknown fault %q", mode)
}

// isDaemon tells whether the process named name is a daemon of the system.
func (s *stack) isDaemon(name string) bool {
	return strings.HasSuffix(name, "-keepalived") || strings.HasSuffix(name, "-epconsole")
}

// heal undoes the fault: the cable back, the killed processes restarted.
func (s *stack) heal(mode faultMode) error {
	owner := s.lbs[0]
	switch mode {
	case faultLink:
		return owner.SetCable(true)
	case faultPowerOff:
		// Every killed process reaped, no stale pid file: keepalived
		// exits at once when a pid file names a process still there.
		for deadline := time.Now().Add(5 * time.Second); len(nsPIDs(owner)) > 0 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		for _, p := range s.procs {
			if p.host == owner.Name() {
				select {
				case <-p.done:
				case <-time.After(5 * time.Second):
				}
			}
		}
		s.removePidFiles(owner)
		if err := s.clearOwner(owner); err != nil {
			return err
		}
		if err := owner.SetCable(true); err != nil {
			return err
		}
		return s.startHost(0, false)
	case faultKill, faultStop:
		// Whatever the daemon left (a keepalived child, a heartbeat
		// helper) goes with its process group before the restart.
		for _, p := range s.procs {
			if p.host == owner.Name() && s.isDaemon(p.name) {
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				select {
				case <-p.done:
				case <-time.After(5 * time.Second):
				}
			}
		}
		s.removePidFiles(owner)
		return s.startHost(0, true)
	}
	return nil
}

// removePidFiles removes the pid files of h's processes.
func (s *stack) removePidFiles(h *netlab.Host) {
	files, _ := filepath.Glob(filepath.Join(s.dir, h.Name()+"-*.pid"))
	for _, f := range files {
		_ = os.Remove(f)
	}
}

// clearOwner makes a powered-off host come back as from a reboot: no VIP
// on its link, an empty conntrack table.
func (s *stack) clearOwner(h *netlab.Host) error {
	nh, err := h.NetlinkHandle()
	if err != nil {
		return err
	}
	defer nh.Close()
	link, err := nh.LinkByName(netlab.HostLink)
	if err != nil {
		return err
	}
	addrs, err := nh.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == s.vip {
			_ = nh.AddrDel(link, &a)
		}
	}
	_ = h.Command(s.ctx, "conntrack", "-F").Run()
	return nil
}
