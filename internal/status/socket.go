package status

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxSocketPath is sun_path's size minus the terminating NUL.
const maxSocketPath = 107

// listenUnix creates the socket's directory, removes a stale socket left by
// a crashed daemon (refusing a live one) and listens on path with mode
// 0600, or 0660 with the group gid when gid is not noGroup. The socket is
// bound inside a private 0700 directory, given its group and mode and
// only then renamed into place, so it is never reachable with looser
// permissions. It returns the socket file's identity, so that shutdown
// removes only its own socket.
func listenUnix(path string, gid int) (*net.UnixListener, os.FileInfo, error) {
	if path == "" {
		return nil, nil, errors.New("status socket: no path given")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("creating the status socket's directory: %w", err)
	}
	if err := clearStale(path); err != nil {
		return nil, nil, err
	}
	tmpDir, err := os.MkdirTemp(dir, ".s")
	if err != nil {
		return nil, nil, fmt.Errorf("status socket: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	if len(tmp) > maxSocketPath {
		// No room for the private directory: bind in place. The peer
		// credential check still guards the moment before the chmod.
		tmp = path
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("listening on the status socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, os.FileInfo, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, nil, err
	}
	mode := os.FileMode(0o600)
	if gid != noGroup {
		if err := os.Chown(tmp, -1, gid); err != nil {
			return fail(fmt.Errorf("status socket: giving it the group %d: %w", gid, err))
		}
		mode = 0o660
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(fmt.Errorf("status socket: %w", err))
	}
	if tmp != path {
		if err := renameNoReplace(tmp, path); err != nil {
			if errors.Is(err, unix.EEXIST) {
				// Another daemon started in between.
				if live(path) {
					return fail(fmt.Errorf("another epconsole daemon is serving %s", path))
				}
				return fail(fmt.Errorf("status socket %s appeared while starting; start again", path))
			}
			return fail(fmt.Errorf("status socket: %w", err))
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fail(fmt.Errorf("status socket: %w", err))
	}
	return ln, fi, nil
}

// renameNoReplace renames old to new unless new exists.
func renameNoReplace(oldPath, newPath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldPath, unix.AT_FDCWD, newPath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// The file system cannot do it: the stale check just ran.
		return os.Rename(oldPath, newPath)
	}
	return err
}

// clearStale removes a socket at path that nobody answers on; a live one or
// a file that is not a socket is an error.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("status socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("status socket %s exists and is not a socket: remove it or set status.socket to another path", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("another epconsole daemon is serving %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("checking the existing status socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the stale status socket %s: %w", path, err)
	}
	return nil
}

// live reports whether something answers on the unix socket at path.
func live(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// removeIfSame removes path if it is still the file fi (a newer daemon may
// have replaced it).
func removeIfSame(path string, fi os.FileInfo) {
	cur, err := os.Lstat(path)
	if err == nil && os.SameFile(cur, fi) {
		os.Remove(path)
	}
}

// peerKey is the context key of a connection's peer credentials.
type peerKey struct{}

// peer is who is on the other end of a connection, as the kernel saw it
// when the client connected.
type peer struct {
	uid, gid, pid int
	// groups are the supplementary groups.
	groups []int
	err    error
}

// peerCred reads SO_PEERCRED (uid, gid, pid) and the supplementary groups
// of a unix connection: SO_PEERGROUPS (Linux 4.13+, taken at connect
// time), or else the Groups: line of /proc/<pid>/status.
func peerCred(c net.Conn) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{uid: -1, err: fmt.Errorf("not a unix connection (%T)", c)}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{uid: -1, err: err}
	}
	var (
		cred       *unix.Ucred
		cerr, gerr error
		groups     []int
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if cerr == nil {
			groups, gerr = peerGroups(int(fd))
		}
	}); err != nil {
		return peer{uid: -1, err: err}
	}
	if cerr != nil {
		return peer{uid: -1, err: fmt.Errorf("SO_PEERCRED: %w", cerr)}
	}
	p := peer{uid: int(cred.Uid), gid: int(cred.Gid), pid: int(cred.Pid), groups: groups}
	if gerr != nil {
		// An old kernel: read the groups the process has now.
		p.groups, err = procGroups(p.pid)
		if err != nil {
			p.err = fmt.Errorf("reading the groups of pid %d: %w (SO_PEERGROUPS: %v)", p.pid, err, gerr)
		}
	}
	return p
}

// peerGroups reads SO_PEERGROUPS: the peer's supplementary groups.
func peerGroups(fd int) ([]int, error) {
	buf := make([]uint32, 64)
	for range 3 {
		n := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch errno {
		case 0:
			out := make([]int, n/4)
			for i := range out {
				out[i] = int(buf[i])
			}
			return out, nil
		case unix.ERANGE:
			buf = make([]uint32, n/4+1)
			continue
		}
		return nil, fmt.Errorf("SO_PEERGROUPS: %w", errno)
	}
	return nil, errors.New("SO_PEERGROUPS: the group list keeps growing")
}

// procGroups reads the Groups: line of /proc/<pid>/status.
func procGroups(pid int) ([]int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	return parseGroupsLine(string(data))
}

// parseGroupsLine returns the gids of the "Groups:" line of a
// /proc/<pid>/status text.
func parseGroupsLine(status string) ([]int, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, "Groups:")
		if !ok {
			continue
		}
		var out []int
		for _, f := range strings.Fields(rest) {
			g, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("bad gid %q in the Groups: line", f)
			}
			out = append(out, g)
		}
		return out, nil
	}
	return nil, errors.New("no Groups: line")
}

// withPeer is http.Server.ConnContext: it records the peer's credentials.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, peerCred(c))
}
