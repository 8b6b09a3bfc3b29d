package drills

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
)

// diagCounters logs the counters that tell why a connection through the
// VIP was not answered: each host's TCP listen and SYN drops (nstat), its
// conntrack table's statistics, its listeners' queues, and the client's
// sockets by state.
func diagCounters(t *testing.T, hosts []*netlab.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, h := range hosts {
		for _, argv := range [][]string{
			{"nstat", "-az", "TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDrop", "TcpExtSyncookiesSent", "TcpExtTCPTimeWaitOverflow", "TcpActiveOpens", "TcpPassiveOpens", "TcpAttemptFails", "TcpExtTCPBacklogDrop", "TcpInErrs", "IpInDiscards", "IpOutNoRoutes"},
			{"conntrack", "-S"},
			{"conntrack", "-C"},
			{"ss", "-ltn"},
			{"ss", "-s"},
		} {
			out, err := h.Command(ctx, argv...).CombinedOutput()
			t.Logf("%s: %s: %v\n%s", h.Name(), strings.Join(argv, " "), err, out)
		}
	}
}

// raiseFileLimit lifts this process's open-file limit (soft and hard) to
// at least need, up to fs.nr_open: the drill holds every client socket
// here, and the stand-ins and daemons it starts inherit the limit (a Go
// program that sets the limit itself passes it on to its children). At
// 50,000 flows the client holds 55,000 sockets and each stand-in some
// 18,000, past the 20,000 a shell here starts with: the client's dial
// failed with "socket: too many open files" after 19,967 connections.
func raiseFileLimit(t *testing.T, need int) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("reading the open-file limit: %v", err)
	}
	if lim.Cur >= uint64(need) {
		return
	}
	want := uint64(need)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if max, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && max < want {
			t.Fatalf("%d flows need %d open files, past fs.nr_open %d: raise it (sysctl fs.nr_open) or run fewer flows", need/2, need, max)
		}
	}
	next := syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err != nil {
		t.Fatalf("raising the open-file limit from %d/%d to %d: %v (the drill needs root or CAP_SYS_RESOURCE)", lim.Cur, lim.Max, want, err)
	}
	t.Logf("open-file limit raised from %d/%d to %d/%d for %d sockets", lim.Cur, lim.Max, next.Cur, next.Max, need)
}
