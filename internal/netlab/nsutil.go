package netlab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/internal/netnsx"
)

// netnsDir is where named namespaces live (as with `ip netns add`).
const netnsDir = "/run/netns"

// ensureNetnsDir makes /run/netns a shared mount point, as `ip netns add`
// does, so that removing a namespace file also removes the copies that
// `ip netns exec` children hold in their own mount namespaces.
func ensureNetnsDir() error {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", netnsDir, err)
	}
	for made := false; ; made = true {
		err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || made {
			return fmt.Errorf("making %s a shared mount: %w", netnsDir, err)
		}
		if err := unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mounting %s on itself: %w", netnsDir, err)
		}
	}
}

// createNamedNetns creates /run/netns/name as a new network namespace, on
// a thread of its own that returns to its namespace afterwards (or is
// retired: netnsx's policy).
func createNamedNetns(name string) error {
	return netnsx.Locked(func() error {
		h, err := netns.NewNamed(name)
		if err != nil {
			if !errors.Is(err, fs.ErrExist) {
				// NewNamed may leave an empty file behind when the mount fails.
				_ = os.Remove(filepath.Join(netnsDir, name))
			}
			return fmt.Errorf("creating namespace %s: %w", name, err)
		}
		h.Close()
		return nil
	})
}

// deleteNamedNetns unmounts and removes /run/netns/name; a missing one is fine.
func deleteNamedNetns(name string) error {
	p := filepath.Join(netnsDir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", p, err)
	}
	return nil
}

// inNetns runs fn on a locked thread that has joined the namespace at
// nsPath (netnsx's thread policy).
func inNetns(nsPath string, fn func() error) error {
	return netnsx.DoPath(nsPath, fn)
}

// writeSysctl writes /proc/sys/<key> as seen from the namespace at nsPath
// (/proc/sys/net resolves against the network namespace of the thread
// that looks it up).
func writeSysctl(nsPath, key, value string) error {
	return inNetns(nsPath, func() error {
		p := filepath.Join("/proc/sys", key)
		if err := os.WriteFile(p, []byte(value+"\n"), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, nsPath, err)
		}
		return nil
	})
}

// readSysctl reads /proc/sys/<key> as seen from the namespace at nsPath.
func readSysctl(nsPath, key string) (string, error) {
	var v string
	err := inNetns(nsPath, func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", key))
		if err != nil {
			return fmt.Errorf("reading sysctl %s in %s: %w", key, nsPath, err)
		}
		v = strings.TrimSpace(string(b))
		return nil
	})
	return v, err
}

// netnsPids lists the processes whose network namespace is the one at
// nsPath (as `ip netns pids`), leaving out this process.
func netnsPids(nsPath string) ([]int, error) {
	var st unix.Stat_t
	if err := unix.Stat(nsPath, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", nsPath, err)
	}
	want := "net:[" + strconv.FormatUint(st.Ino, 10) + "]"
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing /proc: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		link, err := os.Readlink("/proc/" + e.Name() + "/ns/net")
		if err == nil && link == want {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNetnsPids SIGKILLs every process in the namespace at nsPath and waits
// (bounded) until none is left alive.
func killNetnsPids(nsPath string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		pids, err := netnsPids(nsPath)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		alive := 0
		for _, pid := range pids {
			if zombie(pid) {
				continue
			}
			alive++
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if alive == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes still alive in %s after %v", alive, nsPath, wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// zombie reports whether pid has exited and waits to be reaped (or is gone).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses, which may itself hold ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] == 'Z' || s[i+2] == 'X'
}

// namedNetns lists the names in /run/netns that start with "<prefix>-".
func namedNetns(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", netnsDir, err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
