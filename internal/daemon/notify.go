package daemon

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// The service manager's notifications (sd_notify): READY=1 once the
// daemon is up, STATUS= with the owner and the healthy backends, WATCHDOG=1
// from the decision loop, RELOADING=1 and STOPPING=1. Without
// NOTIFY_SOCKET (not started by systemd with Type=notify) every call is a
// no-op.

// notifier sends one notification state ("READY=1", "STATUS=...").
// sdNotify is the real one; the tests send to a socket of their own.
type notifier interface {
	notify(state string)
}

// sdNotify sends to $NOTIFY_SOCKET through go-systemd's daemon package.
type sdNotify struct{}

func (sdNotify) notify(state string) { _, _ = daemon.SdNotify(false, state) }

// noNotify is the notifier without a service manager.
type noNotify struct{}

func (noNotify) notify(string) {}

// sdState is what the daemon told the service manager, so that it says
// each thing once: READY=1 after the first reconcile, STATUS= on a change,
// WATCHDOG=1 every half watchdog interval.
type sdState struct {
	n notifier
	// watchdog is WATCHDOG_USEC (0: no watchdog); pinged every half of it.
	watchdog time.Duration
	lastPing time.Time
	ready    bool
	status   string
	// key is what status was made of: it is made again only when that
	// changed (the loop passes 40 times a second).
	key sdKey
}

// sdKey is what sdStatus reads: the healthy set by identity (the loop
// replaces the map when it changes, never writes into it).
type sdKey struct {
	reconciled, waiting, holding bool
	owner                        string
	programmed                   unsafe.Pointer
	backends                     int
}

// newSDState reads NOTIFY_SOCKET and WATCHDOG_USEC (and WATCHDOG_PID,
// which must be this process when set): without a socket it notifies
// nothing.
func newSDState() *sdState {
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		wd = 0
	}
	var n notifier = noNotify{}
	if os.Getenv("NOTIFY_SOCKET") != "" {
		n = sdNotify{}
	}
	return &sdState{n: n, watchdog: wd}
}

// notifyLoop runs on every pass of the decision loop: READY=1 once the
// datapath is first programmed (the config is loaded and the gossip
// started before the loop runs), STATUS= when the owner or the healthy
// set changed, WATCHDOG=1 when half the watchdog interval passed. A
// stalled loop sends no WATCHDOG=1, and the service manager restarts it.
func (d *Daemon) notifyLoop(s *state) {
	sd := d.sd
	if !sd.ready && s.reconciled {
		sd.ready = true
		sd.n.notify(daemon.SdNotifyReady)
	}
	key := sdKey{s.reconciled, s.waiting, s.holding, s.last.Owner, reflect.ValueOf(s.programmed).UnsafePointer(), len(s.cfg.Backends)}
	if key != sd.key || sd.status == "" {
		sd.key = key
		if st := sdStatus(s); st != sd.status {
			sd.status = st
			sd.n.notify("STATUS=" + st)
		}
	}
	if sd.watchdog > 0 && time.Since(sd.lastPing) >= sd.watchdog/2 {
		sd.lastPing = time.Now()
		sd.n.notify(daemon.SdNotifyWatchdog)
	}
}

// notifyReloading says a reload (SIGHUP) started; notifyReloaded that it
// ended (READY=1 again, once the daemon was ready).
func (d *Daemon) notifyReloading() {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	d.sd.n.notify(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", daemon.SdNotifyReloading, ts.Nano()/1000))
}

func (d *Daemon) notifyReloaded() {
	if d.sd.ready {
		d.sd.n.notify(daemon.SdNotifyReady)
	}
}

// notifyStopping says the graceful stop (the VIP handoff) started.
func (d *Daemon) notifyStopping() { d.sd.n.notify(daemon.SdNotifyStopping) }

// sdStatus is the one-line STATUS=: the owner and the healthy backends.
func sdStatus(s *state) string {
	if !s.reconciled {
		return "starting: waiting for the first probe results"
	}
	var healthy []string
	for name, ok := range s.programmed {
		if ok {
			healthy = append(healthy, name)
		}
	}
	slices.Sort(healthy)
	owner := s.last.Owner
	switch {
	case s.waiting:
		owner = "(startup wait)"
	case owner == "":
		owner = "none"
	case s.holding:
		owner += " (this node)"
	}
	list := "none"
	if len(healthy) > 0 {
		list = strings.Join(healthy, " ")
	}
	return fmt.Sprintf("owner %s; healthy backends %d/%d: %s", owner, len(healthy), len(s.cfg.Backends), list)
}
