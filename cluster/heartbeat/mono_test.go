package heartbeat

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMonoIsClockMonotonic: the vDSO reading the loop uses is the
// CLOCK_MONOTONIC the daemon and other processes read.
func TestMonoIsClockMonotonic(t *testing.T) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	before := Mono(ts.Nano())
	m := MonoNow()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	after := Mono(ts.Nano())
	if m < before || m > after || after.Sub(before) > time.Second {
		t.Errorf("MonoNow %d not between two clock_gettime(CLOCK_MONOTONIC) readings %d and %d", m, before, after)
	}
}
