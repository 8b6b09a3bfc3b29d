package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrStopped is returned by Refresh after the loop stopped.
var ErrStopped = errors.New("heartbeat: beat loop stopped")

// Beater is the daemon's side of a running beat loop.
type Beater struct {
	cfg    Config
	log    *slog.Logger
	names  map[NodeID]string
	local  netip.AddrPort
	rcvbuf int
	hello  helloMsg
	pid    int

	ctl     *os.File
	rc      syscall.RawConn
	exited  chan struct{} // the helper process or loop goroutine ended
	stopped chan struct{} // Close ran or the loop ended
	changes chan struct{}

	mu         sync.Mutex
	rep        report
	haveReport bool
	stale      bool
	exitErr    error
	refreshBuf [refreshSize]byte
	recvBuf    [maxReportSize + 1]byte
	closeOnce  sync.Once
	claim      beaterClaim
}

// Start starts the beat loop (a helper process, or a goroutine with
// cfg.InProcess) and returns once it said hello, so the Beater knows
// whether real-time priority is in effect. The loop beats only after the
// first Refresh. ctx bounds the start and the Beater's life: when it ends,
// the loop stops.
func Start(ctx context.Context, cfg Config) (*Beater, error) {
	cfg = cfg.withDefaults()
	lc, names, err := loopConfigOf(cfg)
	if err != nil {
		return nil, err
	}
	udp, err := listenUDP(cfg.Bind)
	if err != nil {
		return nil, err
	}
	rcvbuf, _ := unix.GetsockoptInt(udp, unix.SOL_SOCKET, unix.SO_RCVBUF)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		unix.Close(udp)
		return nil, fmt.Errorf("heartbeat: socketpair: %w", err)
	}
	parentFd, loopFd := fds[0], fds[1]
	b := &Beater{
		cfg: cfg, log: cfg.Logger.With("component", "heartbeat", "node", cfg.Self), names: names,
		local: cfg.Bind, rcvbuf: rcvbuf, exited: make(chan struct{}), stopped: make(chan struct{}), changes: make(chan struct{}, 1),
		rep: report{peers: make([]peerReport, len(cfg.Peers))},
	}
	if err := b.launch(loopFd, udp); err != nil {
		unix.Close(parentFd)
		return nil, err
	}
	if err := unix.SetNonblock(parentFd, true); err != nil {
		unix.Close(parentFd)
		b.kill()
		return nil, fmt.Errorf("heartbeat: control socket: %w", err)
	}
	b.ctl = os.NewFile(uintptr(parentFd), "heartbeat-control")
	if b.rc, err = b.ctl.SyscallConn(); err != nil {
		b.ctl.Close()
		b.kill()
		return nil, fmt.Errorf("heartbeat: control socket: %w", err)
	}
	if err := b.handshake(ctx, lc); err != nil {
		b.ctl.Close()
		b.kill()
		return nil, err
	}
	b.log.Info("heartbeat loop started", "pid", b.pid, "bind", cfg.Bind, "peers", len(cfg.Peers),
		"interval", cfg.Interval, "receive_buffer", rcvbuf, "realtime", b.hello.Realtime.InEffect, "boot", fmt.Sprintf("%016x", b.hello.Boot))
	if lc.AnySource {
		b.log.Warn("heartbeat reads datagrams from any source (" + TestAnySourceEnv + "=1, a test setting)")
	}
	if h := b.hello.Hardening; !cfg.InProcess && h.Reason != "" {
		b.log.Warn("heartbeat helper keeps privileges it does not need", "reason", h.Reason,
			"no_new_privs", h.NoNewPrivs, "cap_eff", fmt.Sprintf("%#x", h.CapEff))
	}
	if !b.hello.Realtime.InEffect && !cfg.InProcess && !cfg.NoRealtime {
		b.log.Warn("heartbeat loop runs without real-time priority; peers give this node the longer threshold",
			"reason", b.hello.Realtime.Reason, "threshold", time.Duration(cfg.SlowMisses)*cfg.Interval)
	}
	go b.readLoop()
	go func() {
		select {
		case <-ctx.Done():
			b.Close()
		case <-b.stopped:
		}
	}()
	return b, nil
}

// loopConfigOf checks cfg and builds the loop's configuration and the
// table from node IDs to names.
func loopConfigOf(cfg Config) (loopConfig, map[NodeID]string, error) {
	if !cfg.Bind.IsValid() {
		return loopConfig{}, nil, fmt.Errorf("heartbeat: invalid bind address %v", cfg.Bind)
	}
	peerNames := make([]string, len(cfg.Peers))
	lc := loopConfig{
		Self: cfg.Self, Cluster: cfg.Cluster, Interval: cfg.Interval, Misses: cfg.Misses, SlowMisses: cfg.SlowMisses,
		TokenTTL: cfg.TokenTTL, ReportInterval: cfg.ReportInterval, Realtime: !cfg.NoRealtime, Priority: cfg.Priority,
	}
	for i, p := range cfg.Peers {
		if p.Addr.Addr().Unmap().Is4() != cfg.Bind.Addr().Unmap().Is4() || !p.Addr.IsValid() || p.Addr.Port() == 0 {
			return loopConfig{}, nil, fmt.Errorf("heartbeat: peer %s: address %v is not a valid address of the bind address's family", p.Name, p.Addr)
		}
		peerNames[i] = p.Name
		lc.Peers = append(lc.Peers, loopPeer{Name: p.Name, Addr: p.Addr})
	}
	if _, err := NewTracker(TrackerConfig{Self: cfg.Self, Peers: peerNames}); err != nil {
		return loopConfig{}, nil, err
	}
	lc.AnySource = os.Getenv(TestAnySourceEnv) == "1"
	lc.Claim = cfg.Claim
	names := map[NodeID]string{IDOf(cfg.Self): cfg.Self}
	for _, n := range peerNames {
		names[IDOf(n)] = n
	}
	if len(cfg.Keys) == 0 {
		return loopConfig{}, nil, errors.New("heartbeat: no gossip key")
	}
	for i, k := range cfg.Keys {
		d, err := DeriveKey(k)
		if err != nil {
			return loopConfig{}, nil, fmt.Errorf("heartbeat: key %d: %w", i+1, err)
		}
		lc.Keys = append(lc.Keys, d)
	}
	return lc, names, nil
}

// readLoop drains reports as they arrive, notifies Changes, and marks the
// view stale when reports stop.
func (b *Beater) readLoop() {
	defer b.Close()
	staleAfter := staleReports * b.cfg.ReportInterval
	for {
		b.ctl.SetReadDeadline(time.Now().Add(staleAfter))
		eof := false
		err := b.rc.Read(func(fd uintptr) bool {
			b.mu.Lock()
			changed, gone := b.drainLocked(int(fd))
			b.mu.Unlock()
			if changed {
				b.notify()
			}
			eof = gone
			return gone
		})
		switch {
		case eof:
			b.log.Warn("heartbeat loop ended", "pid", b.pid, "err", b.waitExit())
			b.markStale()
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			b.mu.Lock()
			b.drainPendingLocked()
			became := !b.stale && b.staleLocked(MonoNow())
			if became {
				b.stale = true
			}
			b.mu.Unlock()
			if became {
				b.log.Error("heartbeat loop stopped reporting; every peer counts as gone", "pid", b.pid, "after", staleAfter)
				b.notify()
			}
		case err != nil:
			return // closed
		}
	}
}

// waitExit waits briefly for the loop's end and returns its error.
func (b *Beater) waitExit() error {
	select {
	case <-b.exited:
	case <-time.After(stopTimeout):
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.exitErr
}

func (b *Beater) markStale() {
	b.mu.Lock()
	b.stale = true
	b.mu.Unlock()
	b.notify()
}

// drainPendingLocked reads pending reports unless the Beater is closed.
func (b *Beater) drainPendingLocked() {
	select {
	case <-b.stopped:
		return
	default:
	}
	b.rc.Control(func(fd uintptr) { b.drainLocked(int(fd)) })
}

// drainLocked reads every pending report from fd; it returns whether the
// verdict changed and whether the loop closed its end.
func (b *Beater) drainLocked(fd int) (changed, gone bool) {
	var next report
	next.peers = make([]peerReport, len(b.rep.peers))
	for {
		n, errno := recvDontWait(fd, b.recvBuf[:])
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return changed, errno != unix.EAGAIN
		}
		if n == 0 {
			return changed, true
		}
		if b.recvBuf[0] == msgClaim {
			changed = b.takeClaimLocked(b.recvBuf[:n]) || changed
			continue
		}
		if err := next.decode(b.recvBuf[:n]); err != nil {
			b.log.Error("dropping a malformed report from the heartbeat loop", "len", n)
			continue
		}
		if !b.haveReport || !sameVerdict(&next, &b.rep) {
			changed = true
		}
		if st, was := next.stats, b.rep.stats; st.MaxLateness > was.MaxLateness || st.MaxBeatGap > was.MaxBeatGap {
			b.log.Debug("heartbeat new worst", "loop_max_lateness", st.MaxLateness, "max_beat_gap", st.MaxBeatGap,
				"late_ticks", st.LateTicks, "ticks", st.Ticks)
		}
		b.rep.at, b.rep.beating, b.rep.majority, b.rep.realtime = next.at, next.beating, next.majority, next.realtime
		b.rep.lease = next.lease
		b.rep.boot, b.rep.seq, b.rep.stats = next.boot, next.seq, next.stats
		copy(b.rep.peers, next.peers)
		b.haveReport = true
		if b.stale {
			b.stale, changed = false, true
			b.log.Info("heartbeat loop reports again")
		}
	}
}

func (b *Beater) staleLocked(now Mono) bool {
	if b.stale {
		return true
	}
	if !b.haveReport {
		return false
	}
	return now.Sub(b.rep.at) > staleReports*b.cfg.ReportInterval
}

func (b *Beater) notify() {
	select {
	case b.changes <- struct{}{}:
	default:
	}
}

// Refresh renews the loop's liveness token and sets what its beats
// advertise. The daemon calls it from its decision loop at least every
// TokenTTL (DefaultTokenRefresh is a good period); the loop sends no beat
// before the first Refresh and stops TokenTTL after the last one.
func (b *Beater) Refresh(a Advert) error {
	r := refresh{flags: a.Flags, epoch: a.Epoch, sentAt: MonoNow()}
	if a.Owner != "" {
		r.owner = IDOf(a.Owner)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r.encode(&b.refreshBuf)
	return b.sendLocked(b.refreshBuf[:], "refreshing the liveness token")
}

// sendLocked sends one control message to the loop (b.mu held); what
// names the message in the error.
func (b *Beater) sendLocked(msg []byte, what string) error {
	select {
	case <-b.stopped:
		return ErrStopped
	default:
	}
	var serr error
	err := b.rc.Control(func(fd uintptr) {
		serr = unix.Sendto(int(fd), msg, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, nil)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("heartbeat: %s: %w", what, err)
	}
	return nil
}

// View returns the liveness picture of the latest report (reading any
// pending report first).
func (b *Beater) View() View {
	now := MonoNow()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drainPendingLocked()
	r := &b.rep
	stale := b.staleLocked(now) || !b.haveReport
	select {
	case <-b.stopped:
		stale = true
	default:
	}
	tc := TrackerConfig{Interval: b.cfg.Interval, Misses: b.cfg.Misses, SlowMisses: b.cfg.SlowMisses}
	v := View{
		Self: b.cfg.Self, Boot: b.hello.Boot, At: r.at, Stale: stale,
		Beating: r.beating && !stale, Majority: r.majority && !stale, Realtime: b.hello.Realtime,
		Threshold: thresholdFor(tc, FlagRealtime), SlowThreshold: thresholdFor(tc, 0),
		Stats: r.stats, Peers: make([]PeerView, len(r.peers)),
	}
	for i, p := range r.peers {
		v.Peers[i] = PeerView{
			Name: b.cfg.Peers[i].Name, Addr: b.cfg.Peers[i].Addr, Alive: p.alive && !stale, Seen: p.seen,
			LastBeat: p.lastBeat, Boot: p.boot, Seq: p.seq, Flags: p.flags, OwnerID: p.owner, Epoch: p.epoch,
			Realtime: p.flags&FlagRealtime != 0,
		}
		if p.owner != 0 {
			if name, ok := b.names[p.owner]; ok {
				v.Peers[i].Owner = name
			} else {
				v.Peers[i].Owner = p.owner.String()
			}
		}
	}
	return v
}

// Wake signals Changes without a change in the verdict: the daemon's
// token keeper asks its decision loop for a pass this way, to see that the
// loop still runs.
func (b *Beater) Wake() { b.notify() }

// Changes delivers a signal whenever the verdict (who is alive, majority,
// claims, beating, stale) changed; signals coalesce. Call View to see it.
func (b *Beater) Changes() <-chan struct{} { return b.changes }

// Done is closed when the loop stopped (Close, ctx, or the helper died).
func (b *Beater) Done() <-chan struct{} { return b.stopped }

// Err returns why the loop ended (nil while it runs or after a clean stop).
func (b *Beater) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.exitErr
}

// Realtime says whether the loop runs at real-time priority.
func (b *Beater) Realtime() Realtime { return b.hello.Realtime }

// HelperPID returns the helper's process ID (0 in-process).
func (b *Beater) HelperPID() int { return b.pid }

// Hardening says what the helper dropped (zero in-process).
func (b *Beater) Hardening() Hardening { return b.hello.Hardening }

// RecvBuffer returns the heartbeat socket's receive buffer in bytes, as
// the kernel reports it (SO_RCVBUF: twice the size asked, for its
// bookkeeping).
func (b *Beater) RecvBuffer() int { return b.rcvbuf }

// LocalAddr returns the heartbeat socket's address.
func (b *Beater) LocalAddr() netip.AddrPort { return b.local }

// Close stops the loop: it closes the control socket, which the loop
// sees at once, and waits for the loop to end (killing a helper that does
// not within a few seconds). It is safe to call more than once.
func (b *Beater) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		close(b.stopped)
		b.mu.Unlock()
		// Not under b.mu: Close waits for callbacks on the socket, which
		// take b.mu.
		b.ctl.Close()
		select {
		case <-b.exited:
		case <-time.After(stopTimeout):
			if b.pid > 0 {
				b.log.Warn("heartbeat helper did not stop; killing it", "pid", b.pid)
				syscall.Kill(b.pid, syscall.SIGKILL)
			}
			<-b.exited
		}
		b.notify()
	})
	return nil
}
