package heartbeat

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// BindError is a heartbeat socket that could not be bound: usually the
// port is in use. Holder names the process holding it when /proc tells.
type BindError struct {
	Addr netip.AddrPort
	Err  error
	// Holder is "pid 1234 (keepalived)" when the port's socket was found
	// in /proc/net/udp* and in a process's descriptors, else "".
	Holder string
}

func (e *BindError) Error() string {
	msg := fmt.Sprintf("heartbeat: binding UDP %v: %v", e.Addr, e.Err)
	if errors.Is(e.Err, unix.EADDRINUSE) {
		if e.Holder != "" {
			msg += fmt.Sprintf(" (UDP port %d is held by %s)", e.Addr.Port(), e.Holder)
		}
		msg += fmt.Sprintf("; free UDP port %d or set gossip.heartbeat_port to a free port on every peer (the daemon retries on its own)", e.Addr.Port())
	}
	return msg
}

func (e *BindError) Unwrap() error { return e.Err }

// portHolder finds the process holding UDP port ap.Port() on ap's address
// (or the wildcard address): the socket's inode from /proc/net/udp or
// udp6, then the process with a descriptor on that socket. It returns ""
// when it cannot tell (another network namespace, no permission).
func portHolder(ap netip.AddrPort) string {
	table := "/proc/net/udp"
	if !ap.Addr().Unmap().Is4() {
		table = "/proc/net/udp6"
	}
	inodes := socketInodes(table, ap)
	if len(inodes) == 0 {
		return ""
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		if !inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			continue
		}
		pid := strings.Split(fd, "/")[2]
		comm, _ := os.ReadFile("/proc/" + pid + "/comm")
		return fmt.Sprintf("pid %s (%s)", pid, strings.TrimSpace(string(comm)))
	}
	return ""
}

// socketInodes returns the inodes of the sockets in a /proc/net/udp*
// table bound to ap's port on ap's address or the wildcard address.
func socketInodes(table string, ap netip.AddrPort) map[string]bool {
	f, err := os.Open(table)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 {
			continue
		}
		addr, port, ok := parseProcAddr(fs[1])
		if !ok || port != ap.Port() {
			continue
		}
		if addr.IsUnspecified() || addr == ap.Addr().Unmap() || ap.Addr().IsUnspecified() {
			out[fs[9]] = true
		}
	}
	return out
}

// parseProcAddr parses "0100007F:1F90" (IPv4) or the 32-digit IPv6 form:
// the address in the kernel's byte order, 32 bits at a time, and the port
// in hex.
func parseProcAddr(s string) (netip.Addr, uint16, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil || (len(a) != 8 && len(a) != 32) {
		return netip.Addr{}, 0, false
	}
	var b [16]byte
	for i := 0; i < len(a)/8; i++ {
		w, err := strconv.ParseUint(a[8*i:8*i+8], 16, 32)
		if err != nil {
			return netip.Addr{}, 0, false
		}
		binary.NativeEndian.PutUint32(b[4*i:], uint32(w))
	}
	if len(a) == 8 {
		return netip.AddrFrom4([4]byte(b[:4])), uint16(port), true
	}
	return netip.AddrFrom16(b).Unmap(), uint16(port), true
}
