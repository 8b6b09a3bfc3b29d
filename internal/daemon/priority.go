package daemon

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// DefaultNice is the nice value the daemon asks for (`epconsole --daemon`
// sets it at start). The beat loop runs at real-time priority in its own
// process and detects a dead owner on time whatever the load; claiming
// the VIP (address, lease, gratuitous ARP) is the daemon's work, at
// normal priority. On a 2-core LB where other work (here: the lab's
// stand-in apiservers doing TLS, the probes' own handshakes) takes the
// cores, that claim waited 10-40 ms more now and then; at nice -10 the
// daemon gets about nine times the share of a nice-0 task. It needs
// CAP_SYS_NICE, which the systemd unit grants for the beat loop anyway.
const DefaultNice = -10

// RaisePriority sets the nice value of every thread of this process (on
// Linux each thread has its own; threads created later inherit it from
// their creator) and returns how many threads it set. Without the
// capability it changes nothing and says why.
func RaisePriority(nice int) (int, error) {
	tids, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, fmt.Errorf("listing threads: %w", err)
	}
	n := 0
	var firstErr error
	for _, e := range tids {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		n++
	}
	if firstErr != nil {
		return n, fmt.Errorf("setpriority(%d): %w (needs CAP_SYS_NICE)", nice, firstErr)
	}
	return n, nil
}
