package heartbeat

// maxCtlPerTick bounds the control messages read at one tick.
const maxCtlPerTick = 64

// readAtTick reads what arrived since the last wake-up: the daemon's
// control messages, then the beats. The loop wakes on its timer: at its
// send ticks and at the peers' deadlines (schedule.go). A beat is judged
// by when the kernel received it (rxtime.go), so reading it then gives
// the verdict reading it at once would, and the loop wakes 200 times a
// second at 5 ms instead of once per beat received and per refresh as
// well. It wakes on beats arriving only while the successor awaits the
// other peers' word that the owner is gone (schedule.go). The daemon
// closing the control socket still wakes it (ppoll reports a hang-up
// without being asked).
func (l *loop) readAtTick(now Mono) error {
	for range maxCtlPerTick {
		l.ctlEmpty = false
		if err := l.readCtl(now); err != nil {
			return err
		}
		if l.ctlEmpty {
			break
		}
	}
	l.rxp.clocks(now)
	if late := now.Sub(l.wake); late >= l.cfg.Interval {
		// Woken late: what queued meanwhile is read now, whole (judged
		// by when it arrived), so this tick's verdict is that of the
		// newest beats.
		boost := min(int(late/l.cfg.Interval)+1, maxRxBoost)
		l.recvLeft, l.nonPeerLeft = max(l.recvLeft, boost*l.recvBudget), max(l.nonPeerLeft, boost*nonPeerBudget)
	}
	l.readBeats(now)
	return nil
}
