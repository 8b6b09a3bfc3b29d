package heartbeat

import (
	"time"

	"golang.org/x/sys/unix"
)

// Mono is a reading of CLOCK_MONOTONIC in nanoseconds. The daemon and its
// helper process read the same clock, so times cross the process boundary
// unchanged. 0 means "never".
type Mono int64

// MonoNow reads CLOCK_MONOTONIC.
func MonoNow() Mono {
	var ts unix.Timespec
	monoRead(&ts)
	return Mono(ts.Nano())
}

// monoRead reads CLOCK_MONOTONIC into ts (which the loop preallocates).
func monoRead(ts *unix.Timespec) {
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, ts); err != nil {
		// CLOCK_MONOTONIC exists on every Linux this runs on.
		panic("heartbeat: clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
}

// Sub returns m - o.
func (m Mono) Sub(o Mono) time.Duration { return time.Duration(m - o) }

// Add returns m + d.
func (m Mono) Add(d time.Duration) Mono { return m + Mono(d) }
