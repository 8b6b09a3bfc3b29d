package heartbeat

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The helper gives up what it does not need. The daemon forks it from a
// thread with no_new_privs set and a capability bounding set of
// helperCaps only (forkThreadRestrict), so the helper starts with those
// capabilities at most; once it runs at real-time priority it drops them
// all and empties its bounding set (dropCapabilities). It reads and sends
// UDP on a socket the daemon opened and bound: that needs no capability.

// helperCaps are the capabilities the helper starts with: CAP_SYS_NICE
// for SCHED_FIFO, CAP_IPC_LOCK for mlockall, CAP_SETPCAP to empty its own
// bounding set afterwards.
var helperCaps = [...]uintptr{unix.CAP_SYS_NICE, unix.CAP_IPC_LOCK, unix.CAP_SETPCAP}

// claimCaps are what the helper's claim needs on top (Config.Claim), kept
// for the helper's life: CAP_NET_ADMIN to renew the owner lease (every
// nftables message is checked against the sender) and to add the VIP
// address, CAP_NET_RAW for the packet socket of the gratuitous ARP and
// the raw ICMPv6 socket of the unsolicited NA.
const claimCaps = uint64(1)<<unix.CAP_NET_ADMIN | uint64(1)<<unix.CAP_NET_RAW

// keepCaps is what the helper keeps after dropping the rest.
func keepCaps(claim bool) uint64 {
	if claim {
		return keptCaps | claimCaps
	}
	return keptCaps
}

// Hardening says what the helper runs with after its start.
type Hardening struct {
	// NoNewPrivs: no_new_privs is set (execve cannot gain privileges).
	NoNewPrivs bool `json:"no_new_privs"`
	// CapEff and CapBnd are the helper's effective and bounding capability
	// sets as /proc reports them (0: none).
	CapEff uint64 `json:"cap_eff"`
	CapBnd uint64 `json:"cap_bnd"`
	// AllThreads: the sets were changed on every thread of the helper,
	// not only on the one that runs the loop (not possible in a binary
	// built with cgo; its other threads then keep helperCaps at most).
	AllThreads bool `json:"all_threads"`
	// Reason says what could not be dropped.
	Reason string `json:"reason,omitempty"`
}

// forkThreadRestrict prepares the calling thread, which must be locked
// and never returned to the runtime, to fork the helper: no_new_privs,
// and a bounding set of helperCaps only. Without CAP_SETPCAP (a daemon
// not run as root) the bounding set stays as it is.
func forkThreadRestrict(claim bool) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("PR_SET_NO_NEW_PRIVS: %w", err)
	}
	last := lastCap()
	for c := uintptr(0); c <= last; c++ {
		if isHelperCap(c) || (claim && claimCaps&(1<<c) != 0) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil && err != unix.EINVAL {
			if err == unix.EPERM {
				return nil // no CAP_SETPCAP: nothing to bound
			}
			return fmt.Errorf("PR_CAPBSET_DROP %d: %w", c, err)
		}
	}
	return nil
}

func isHelperCap(c uintptr) bool {
	for _, k := range helperCaps {
		if k == c {
			return true
		}
	}
	return false
}

// lastCap is the highest capability the kernel knows.
func lastCap() uintptr {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
			return uintptr(n)
		}
	}
	return unix.CAP_LAST_CAP
}

// keptCaps is what the helper keeps after dropping the rest: CAP_IPC_LOCK,
// because its memory is locked with MCL_FUTURE, and without the
// capability every later heap growth beyond RLIMIT_MEMLOCK fails and the
// Go runtime dies ("cannot map pages in arena address space").
const keptCaps = uint64(1) << unix.CAP_IPC_LOCK

// dropCapabilities sets no_new_privs, empties the bounding set but for
// keep (CAP_IPC_LOCK, and the claim's claimCaps when it is on) and clears every other capability, on every thread when the runtime allows it (a
// binary without cgo), else on the calling thread (the loop's). It then
// reads back what is in force.
func dropCapabilities(keep uint64) Hardening {
	var h Hardening
	all := true
	sys := func(trap, a1, a2, a3 uintptr) unix.Errno {
		if all {
			_, _, e := syscall.AllThreadsSyscall(trap, a1, a2, a3)
			if e != unix.ENOTSUP {
				return e
			}
			all = false
		}
		_, _, e := unix.RawSyscall(trap, a1, a2, a3)
		return e
	}
	var reasons []string
	if e := sys(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); e != 0 {
		reasons = append(reasons, "no_new_privs: "+e.Error())
	}
	last := lastCap()
	for c := uintptr(0); c <= last; c++ {
		if keep&(1<<c) != 0 {
			continue
		}
		if e := sys(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); e != 0 && e != unix.EINVAL {
			if e != unix.EPERM || c == 0 {
				reasons = append(reasons, fmt.Sprintf("bounding set: %v", e))
			}
			break
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	data[0].Effective, data[0].Permitted = uint32(keep), uint32(keep)
	if e := sys(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		reasons = append(reasons, "capset: "+e.Error())
	}
	h.AllThreads = all
	h.NoNewPrivs, h.CapEff, h.CapBnd = readCaps("/proc/thread-self/status")
	if h.CapEff&^keep != 0 {
		reasons = append(reasons, fmt.Sprintf("effective capabilities %#x left", h.CapEff))
	}
	h.Reason = strings.Join(reasons, "; ")
	return h
}

// readCaps reads NoNewPrivs, CapEff and CapBnd from a /proc status file.
func readCaps(path string) (nnp bool, eff, bnd uint64) {
	f, err := os.Open(path)
	if err != nil {
		return false, 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "NoNewPrivs":
			nnp = v == "1"
		case "CapEff":
			eff, _ = strconv.ParseUint(v, 16, 64)
		case "CapBnd":
			bnd, _ = strconv.ParseUint(v, 16, 64)
		}
	}
	return nnp, eff, bnd
}
