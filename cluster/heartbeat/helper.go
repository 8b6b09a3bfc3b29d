package heartbeat

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// HelperEnv is the environment variable that makes a process started by
// Start run the beat loop (RunHelper) instead of its normal main.
const HelperEnv = "EPCONSOLE_HEARTBEAT_HELPER"

// File descriptors the helper process inherits (exec.Cmd.ExtraFiles).
const (
	helperCtlFd = 3
	helperUDPFd = 4
)

// helperMemoryLimit bounds the helper's heap: its garbage collector is off
// (the loop does not allocate) and runs only near this limit.
const helperMemoryLimit = 64 << 20

// RunHelper runs the beat loop and exits when this process was started by
// Start as the heartbeat helper; otherwise it returns false at once. Call
// it first thing in main of every binary that calls Start (and in TestMain
// of tests that start the real helper):
//
//	func main() {
//		heartbeat.RunHelper()
//		...
//	}
func RunHelper() bool {
	if os.Getenv(HelperEnv) != "1" {
		// The daemon's binary as it is now, for every helper it starts
		// later (selfexe.go); an error shows when a helper starts.
		_, _ = openSelfExe()
		return false
	}
	os.Unsetenv(HelperEnv)
	helperStarted()
	if err := helperMain(); err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("heartbeat helper failed", "err", err, "pid", os.Getpid())
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

// helperMain runs the loop on the main thread: GOMAXPROCS=1, no garbage
// collection, SCHED_FIFO when asked and permitted.
func helperMain() error {
	runtime.LockOSThread()
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(helperMemoryLimit)
	if os.Getppid() == 1 {
		return nil // the daemon died before PR_SET_PDEATHSIG took effect
	}
	return serve(helperCtlFd, helperUDPFd, true)
}

// serve reads the loop's configuration from ctl, builds the loop, switches
// to real-time priority when allowed and asked, drops its capabilities
// (helper process only), says hello, and runs the
// loop until the daemon goes away. In the helper process allowRT is true;
// the in-process variant (tests) never changes its threads' priority.
func serve(ctl, udp int, allowRT bool) error {
	buf := make([]byte, 64<<10)
	n, err := readMsg(ctl, buf)
	if err != nil {
		return fmt.Errorf("reading the loop configuration: %w", err)
	}
	var cfg loopConfig
	if err := json.Unmarshal(buf[:n], &cfg); err != nil {
		return fmt.Errorf("decoding the loop configuration: %w", err)
	}
	l, err := newLoop(cfg, udp, ctl)
	if err != nil {
		sendHello(ctl, helloMsg{Err: err.Error()})
		return err
	}
	defer l.close()
	var rt Realtime
	if cfg.Realtime && allowRT {
		rt = enableRealtime(cfg.Priority)
	} else if cfg.Realtime {
		rt = Realtime{Reason: "the loop runs inside the daemon's process (in-process mode)"}
	} else {
		rt = Realtime{Reason: "real-time priority switched off in the configuration"}
	}
	l.realtime = rt.InEffect
	hello := helloMsg{Boot: l.beat.Boot, Realtime: rt}
	if allowRT {
		// Real-time priority is set (or refused): nothing the loop does
		// from now on needs a capability.
		hello.Hardening = dropCapabilities(keepCaps(cfg.Claim != nil))
	}
	if err := sendHello(ctl, hello); err != nil {
		return err
	}
	if allowRT {
		// The loop waits in a raw ppoll (loop.wait), keeping the only P.
		l.rawPoll = true
		if hello.Hardening.AllThreads {
			// Every thread has the same priority and capabilities, so
			// the loop need not stay on this one: the runtime's request
			// to yield (every 10 ms) then costs a pass through the
			// scheduler on the same thread, not a hand-over of the P to
			// another thread and back.
			runtime.UnlockOSThread()
		}
	}
	return l.run()
}

func sendHello(ctl int, h helloMsg) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := unix.Sendto(ctl, b, unix.MSG_NOSIGNAL, nil); err != nil {
		return fmt.Errorf("sending hello: %w", err)
	}
	return nil
}

// readMsg reads one message from a blocking socket, retrying on EINTR.
func readMsg(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, errParentGone
		}
		return n, nil
	}
}
