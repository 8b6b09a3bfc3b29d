package heartbeat

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// DefaultPriority is the SCHED_FIFO priority of the beat loop: above every
// normal task (a busy machine cannot delay it), below the kernel's threaded
// interrupt handlers (priority 50), which deliver its packets.
const DefaultPriority = 10

// Realtime says whether the beat loop runs at real-time priority.
type Realtime struct {
	// Requested: the loop tried to switch to SCHED_FIFO.
	Requested bool `json:"requested"`
	// InEffect: SCHED_FIFO was read back on the loop's thread. Peers then
	// use the short threshold (Misses) for this node's beats, otherwise
	// the long one (SlowMisses).
	InEffect bool `json:"in_effect"`
	// Priority is the SCHED_FIFO priority read back.
	Priority int `json:"priority,omitempty"`
	// Threads counts the helper's threads switched to SCHED_FIFO.
	Threads int `json:"threads,omitempty"`
	// MemoryLocked: mlockall succeeded, so the loop never waits on a page
	// fault to swap.
	MemoryLocked bool `json:"memory_locked"`
	// Reason says why real-time priority is not in effect.
	Reason string `json:"reason,omitempty"`
}

// enableRealtime locks the process's memory and moves every thread of the
// process to SCHED_FIFO at prio, then reads the policy of the calling
// thread back. The caller has locked its goroutine to the thread that runs
// the loop. Threads created later inherit the policy from their creator.
func enableRealtime(prio int) Realtime {
	rt := Realtime{Requested: true}
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err == nil {
		rt.MemoryLocked = true
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(prio)}
	tids, err := os.ReadDir("/proc/self/task")
	if err != nil {
		rt.Reason = fmt.Sprintf("listing threads: %v", err)
		return rt
	}
	var firstErr error
	for _, e := range tids {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		rt.Threads++
	}
	got, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		rt.Reason = fmt.Sprintf("reading the scheduling policy back: %v", err)
		return rt
	}
	rt.Priority = int(got.Priority)
	if got.Policy != unix.SCHED_FIFO {
		rt.Reason = fmt.Sprintf("sched_setattr(SCHED_FIFO, %d): %v (needs CAP_SYS_NICE; the systemd unit grants it)", prio, firstErr)
		if firstErr == nil {
			rt.Reason = fmt.Sprintf("policy read back is %d, not SCHED_FIFO", got.Policy)
		}
		return rt
	}
	rt.InEffect = true
	return rt
}
