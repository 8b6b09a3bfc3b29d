package heartbeat

import (
	"time"
	_ "unsafe" // go:linkname

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

// monoRead reads CLOCK_MONOTONIC into ts (which the loop preallocates),
// through the vDSO as the Go runtime does (unix.ClockGettime is a system
// call: one more per wake-up of the beat loop).
func monoRead(ts *unix.Timespec) {
	*ts = unix.NsecToTimespec(runtimeNano())
}

// runtimeNano is the runtime's clock: CLOCK_MONOTONIC read through the
// vDSO on Linux.
//
//go:linkname runtimeNano runtime.nanotime
func runtimeNano() int64

// Sub returns m - o.
func (m Mono) Sub(o Mono) time.Duration { return time.Duration(m - o) }

// Add returns m + d.
func (m Mono) Add(d time.Duration) Mono { return m + Mono(d) }
