package heartbeat

// The helper is this process's own binary, even after an in-place
// upgrade: the daemon opens /proc/self/exe when it starts (RunHelper) and
// starts every helper from that descriptor, not from the path on disk,
// which a package upgrade may have replaced or deleted meanwhile.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// selfExeFd is the descriptor number the helper's binary has in the
// helper while it starts (exec.Cmd.ExtraFiles: after the control and UDP
// sockets). The helper closes it first thing.
const selfExeFd = 5

// selfExe is this process's executable, opened once (O_RDONLY|O_CLOEXEC)
// at the first call of RunHelper or Start and kept for the process's life:
// it is process-wide state, as /proc/self/exe is.
var selfExe struct {
	once sync.Once
	f    *os.File
	err  error
}

// openSelfExe opens /proc/self/exe once and returns it.
func openSelfExe() (*os.File, error) {
	selfExe.once.Do(func() {
		fd, err := unix.Open("/proc/self/exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			selfExe.err = fmt.Errorf("opening /proc/self/exe: %w", err)
			return
		}
		selfExe.f = os.NewFile(uintptr(fd), "self-exe")
	})
	return selfExe.f, selfExe.err
}

// helperExeFdEnv tells the helper that selfExeFd is its binary, inherited
// from the daemon.
const helperExeFdEnv = "EPCONSOLE_HEARTBEAT_EXE_FD"

// helperStarted tidies up in a helper started from the descriptor: it
// closes its copy of the descriptor and names its process after the
// daemon's binary (the kernel named it after the descriptor's number).
func helperStarted() {
	if os.Getenv(helperExeFdEnv) == "" {
		return
	}
	os.Unsetenv(helperExeFdEnv)
	unix.Close(selfExeFd)
	name := filepath.Base(os.Args[0])
	if len(name) > 15 {
		name = name[:15]
	}
	b := append([]byte(name), 0)
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
	runtime.KeepAlive(b)
}
