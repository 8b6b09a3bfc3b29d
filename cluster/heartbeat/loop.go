package heartbeat

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loopConfig is what the daemon sends the beat loop first, as JSON.
type loopConfig struct {
	Self           string        `json:"self"`
	Cluster        string        `json:"cluster"`
	Peers          []loopPeer    `json:"peers"`
	Keys           [][]byte      `json:"keys"` // heartbeat keys (derived), primary first
	Interval       time.Duration `json:"interval"`
	Misses         int           `json:"misses"`
	SlowMisses     int           `json:"slow_misses"`
	TokenTTL       time.Duration `json:"token_ttl"`
	ReportInterval time.Duration `json:"report_interval"`
	Realtime       bool          `json:"realtime"`
	Priority       int           `json:"priority"`
	// AnySource reads datagrams from any source against the peers'
	// budget, as releases before the source check did (TestAnySourceEnv;
	// for drills that show what the check prevents).
	AnySource bool `json:"any_source,omitempty"`
	// Claim switches the helper's claim and lease renewal on (claim.go).
	Claim *ClaimConfig `json:"claim,omitempty"`
}

type loopPeer struct {
	Name string         `json:"name"`
	Addr netip.AddrPort `json:"addr"`
}

// helloMsg is the loop's first message to the daemon, as JSON.
type helloMsg struct {
	Boot      uint64    `json:"boot"`
	Realtime  Realtime  `json:"realtime"`
	Hardening Hardening `json:"hardening"`
	Err       string    `json:"err,omitempty"`
}

// Poll slots.
const (
	pollCtl = iota
	pollUDP
	pollTimer
)

// nonPeerBudget bounds the datagrams from sources that are not configured
// peers read per interval (about 200,000 a second at 5 ms): they are
// dropped on their source address alone, before any other work, and do
// not count against the peers' budget. A flood beyond it fills the socket
// buffer; the daemon's nftables peer filter drops such floods before they
// reach the socket.
const nonPeerBudget = 1024

// errParentGone ends the loop: the daemon closed its end of the control
// socket (or died).
var errParentGone = errors.New("heartbeat: the daemon closed the control socket")

// loop is the beat loop's state. Everything it touches per iteration is
// allocated here, up front: step does not allocate.
type loop struct {
	cfg           loopConfig
	udp, tfd, ctl int
	keys          *Keyring
	tr            *Tracker
	cluster       ClusterID
	dests         []unix.Sockaddr
	srcs          []netip.AddrPort // the peers' addresses, unmapped, in config order
	peerV1        []bool           // the peer's last authentic beat was version 1: answer in version 1
	realtime      bool
	// rawPoll waits in ppoll without telling the Go runtime (helper
	// process only; see wait).
	rawPoll     bool
	recvBudget  int // peer datagrams read per interval at most (flood guard)
	recvLeft    int
	nonPeerLeft int // datagrams from other sources read this interval at most
	pfd         [3]unix.PollFd
	ts          unix.Timespec
	its         unix.ItimerSpec
	out         [DatagramSize]byte
	outV2       [DatagramSizeV2]byte
	in          [MaxDatagramSize + 1]byte // one more byte: longer datagrams show as such
	from        unix.RawSockaddrAny
	rxp         rxPath // recvmsg with the kernel's receive time (rxtime.go)
	ctlIn       [maxCtlSize + 1]byte
	ctlEmpty    bool // the last readCtl found no message
	tbuf        [8]byte
	beat, rx    Beat
	next        Mono // deadline of the next tick (the send cadence)
	wake        Mono // when the timer is armed for: next, or a peer's deadline before it (schedule.go)
	// awaitUntil: the loop also wakes on beats arriving until then (0:
	// on its timer alone; schedule.go).
	awaitUntil Mono
	// verdictWakes and newsBeats count the wake-ups before a send and the
	// beats sent out of turn at them (schedule.go).
	verdictWakes, newsBeats uint64
	token                   refresh
	tokenAt                 Mono
	tokenSeen               bool
	stats                   Stats
	rep, prev               report
	repBuf                  []byte
	lastReport              Mono
	reported                bool
	claim                   claimState
	hold                    leaseHold // leasehold.go
}

// newLoop builds a loop on an open UDP socket (bound, blocking) and the
// loop's end of the control socket. It creates the timerfd.
func newLoop(cfg loopConfig, udp, ctl int) (*loop, error) {
	if cfg.Interval <= 0 || cfg.TokenTTL <= 0 || cfg.ReportInterval <= 0 {
		return nil, fmt.Errorf("heartbeat: loop config without interval, token TTL or report interval")
	}
	names := make([]string, len(cfg.Peers))
	for i, p := range cfg.Peers {
		names[i] = p.Name
	}
	tr, err := NewTracker(TrackerConfig{Self: cfg.Self, Peers: names, Interval: cfg.Interval, Misses: cfg.Misses, SlowMisses: cfg.SlowMisses})
	if err != nil {
		return nil, err
	}
	keys, err := newKeyringDerived(cfg.Keys)
	if err != nil {
		return nil, err
	}
	var boot [8]byte
	for binary.BigEndian.Uint64(boot[:]) == 0 {
		if _, err := rand.Read(boot[:]); err != nil {
			return nil, fmt.Errorf("heartbeat: boot ID: %w", err)
		}
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: timerfd_create: %w", err)
	}
	l := &loop{
		cfg: cfg, udp: udp, tfd: tfd, ctl: ctl, keys: keys, tr: tr, cluster: ClusterIDOf(cfg.Cluster),
		recvBudget: 4*len(cfg.Peers) + 16, peerV1: make([]bool, len(cfg.Peers)),
		beat:   Beat{Sender: IDOf(cfg.Self), Boot: binary.BigEndian.Uint64(boot[:])},
		rep:    report{peers: make([]peerReport, len(cfg.Peers))},
		prev:   report{peers: make([]peerReport, len(cfg.Peers))},
		repBuf: make([]byte, reportHeaderSize+len(cfg.Peers)*peerRecordSize),
	}
	for _, p := range cfg.Peers {
		sa, err := sockaddr(p.Addr)
		if err != nil {
			unix.Close(tfd)
			return nil, fmt.Errorf("heartbeat: peer %s: %w", p.Name, err)
		}
		l.dests = append(l.dests, sa)
		l.srcs = append(l.srcs, netip.AddrPortFrom(p.Addr.Addr().Unmap(), p.Addr.Port()))
	}
	l.recvLeft, l.nonPeerLeft = l.recvBudget, nonPeerBudget
	l.rxp.stamped = enableRxTime(udp)
	l.rxp.setup(l.in[:], &l.from)
	// The loop wakes on its timer (and on the daemon closing the control
	// socket): beats and control messages are read at the tick or the
	// peer deadline it woke for (tickread.go, schedule.go).
	l.pfd[pollCtl] = unix.PollFd{Fd: int32(ctl)}
	l.pfd[pollUDP] = unix.PollFd{Fd: -1}
	l.pfd[pollTimer] = unix.PollFd{Fd: int32(tfd), Events: unix.POLLIN}
	if err := l.initClaim(); err != nil {
		unix.Close(tfd)
		return nil, err
	}
	return l, nil
}

func sockaddr(ap netip.AddrPort) (unix.Sockaddr, error) {
	if !ap.IsValid() || ap.Port() == 0 {
		return nil, fmt.Errorf("invalid address %v", ap)
	}
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}, nil
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}, nil
}

// close releases the timerfd (the sockets belong to the caller).
func (l *loop) close() {
	l.closeClaim()
	unix.Close(l.tfd)
}

// start arms the first tick one interval from now.
func (l *loop) start() error {
	l.next = l.now().Add(l.cfg.Interval)
	l.wake = l.next
	return l.arm()
}

func (l *loop) now() Mono {
	monoRead(&l.ts)
	return Mono(l.ts.Nano())
}

// arm sets the timerfd to fire at l.wake (absolute, CLOCK_MONOTONIC).
func (l *loop) arm() error {
	l.its.Value = unix.NsecToTimespec(int64(l.wake))
	for {
		err := unix.TimerfdSettime(l.tfd, unix.TFD_TIMER_ABSTIME, &l.its, nil)
		if err != unix.EINTR {
			return err
		}
	}
}

// run steps until the daemon goes away or a system call fails.
func (l *loop) run() error {
	if err := l.start(); err != nil {
		return fmt.Errorf("heartbeat: arming the timer: %w", err)
	}
	for {
		if err := l.step(); err != nil {
			if err == errParentGone {
				return nil
			}
			return err
		}
	}
}

// step waits for the timer (or the daemon closing the control socket,
// or a beat while the loop awaits news, schedule.go) and handles the
// wake-up: control messages, then received beats (so a late tick counts
// the beats that arrived meanwhile, by their receive time), then the
// verdict and, at a send tick, the beats sent.
func (l *loop) step() error {
	if err := l.wait(); err != nil {
		if err == unix.EINTR {
			return nil
		}
		return fmt.Errorf("heartbeat: ppoll: %w", err)
	}
	now := l.now()
	if l.pfd[pollCtl].Revents != 0 {
		if err := l.readCtl(now); err != nil {
			return err
		}
	}
	if l.pfd[pollTimer].Revents&unix.POLLIN != 0 {
		if _, err := unix.Read(l.tfd, l.tbuf[:]); err == nil {
			if err := l.readAtTick(now); err != nil {
				return err
			}
			if now < l.next {
				return l.verdictWake(now)
			}
			if err := l.tick(now); err != nil {
				return err
			}
		} else if err != unix.EAGAIN && err != unix.EINTR {
			return fmt.Errorf("heartbeat: reading the timerfd: %w", err)
		}
		return nil
	}
	if l.pfd[pollUDP].Fd >= 0 && l.pfd[pollUDP].Revents != 0 {
		return l.beatWake(now)
	}
	return nil
}

// wait blocks in ppoll until a descriptor is ready.
//
// In the helper process it does so as a raw system call, which the Go
// runtime does not see: the loop's goroutine keeps the process's only P
// (GOMAXPROCS=1) while it waits. Through the runtime (unix.Ppoll), sysmon
// took the P away from every wait of more than 20 µs and started another
// thread to look for work, and every wake-up had to get the P back:
// futex wake-ups and a spinning real-time thread for every beat sent or
// received, about 3,600 context switches a second at 5 ms. Nothing else
// runs in the helper (no garbage collection, no timers); sysmon asks the
// goroutine to yield every 10 ms, which it does when ppoll returns
// (asynchronous preemption is off in the helper, helperEnv).
func (l *loop) wait() error {
	if !l.rawPoll {
		_, err := unix.Ppoll(l.pfd[:], nil, nil)
		return err
	}
	_, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&l.pfd[0])), uintptr(len(l.pfd)), 0, 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// readCtl reads one control message.
func (l *loop) readCtl(now Mono) error {
	n, errno := recvDontWait(l.ctl, l.ctlIn[:])
	switch {
	case errno == unix.EAGAIN || errno == unix.EINTR:
		l.ctlEmpty = true
		if l.pfd[pollCtl].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
			return errParentGone
		}
		return nil
	case errno != 0:
		return errParentGone
	case n == 0:
		return errParentGone // EOF: the daemon closed its end
	}
	if l.ctlIn[0] == msgPlan {
		l.readPlan(l.ctlIn[:n])
		return nil
	}
	var r refresh
	if !r.decode(l.ctlIn[:n]) {
		return nil
	}
	// The token is as old as its sending: a loop that was stopped and
	// reads a backlog of refreshes does not take them for fresh ones.
	at := min(r.sentAt, now)
	if l.tokenSeen && at < l.tokenAt {
		return nil // an older refresh than the one in force
	}
	l.token, l.tokenAt, l.tokenSeen = r, at, true
	return nil
}

// readBeats drains the UDP socket, within the interval's budgets. A
// datagram whose source is not a configured peer's address is dropped
// first, before it counts against the peers' budget and before any
// cryptography. A beat counts from when the kernel received it.
func (l *loop) readBeats(now Mono) {
	for l.recvLeft > 0 && l.nonPeerLeft > 0 {
		n, errno := l.recvFrom()
		if errno != 0 {
			return // EAGAIN: drained; anything else is retried next time
		}
		l.stats.Received++
		i := l.peerOf()
		if i < 0 && !l.cfg.AnySource {
			l.stats.NonPeer++
			l.nonPeerLeft--
			continue
		}
		l.recvLeft--
		if err := l.keys.Open(l.in[:n], &l.rx); err != nil {
			if err == ErrBadMAC {
				l.stats.BadMAC++
			} else {
				l.stats.Malformed++
			}
			continue
		}
		if l.rx.Version == Version && l.rx.Cluster != l.cluster {
			l.stats.OtherCluster++
			continue
		}
		if i >= 0 {
			l.peerV1[i] = l.rx.Version == Version1
		}
		switch l.tr.Observe(&l.rx, l.rxp.at(now)) {
		case Accepted:
			l.stats.Accepted++
			l.stats.MaxBeatGap = l.tr.MaxGap()
			l.stats.MaxRxDelay = l.rxp.maxDelay
		case Replayed:
			l.stats.Replayed++
		case OldBoot:
			l.stats.OldBoot++
		default:
			l.stats.Unknown++
		}
	}
	// Budget spent: stop reading until the next tick; the kernel drops
	// what does not fit the socket buffer meanwhile.
	l.pfd[pollUDP].Events = 0
}

// recvFrom reads one datagram into l.in, its source into l.from and its
// receive time into l.rxp, without allocating.
func (l *loop) recvFrom() (int, unix.Errno) { return l.rxp.recv(l.udp) }

// peerOf returns the index of the peer whose address l.from is: the peer
// with that address and port, else the only peer with that address; -1
// for any other source.
func (l *loop) peerOf() int {
	var src netip.AddrPort
	switch l.from.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&l.from))
		src = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&l.from))
		src = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port))
	default:
		return -1
	}
	byAddr := -1
	for i, p := range l.srcs {
		if p == src {
			return i
		}
		if p.Addr() == src.Addr() {
			if byAddr >= 0 {
				byAddr = -2 // two peers on that address: the port must match
			} else if byAddr == -1 {
				byAddr = i
			}
		}
	}
	if byAddr < 0 {
		return -1
	}
	return byAddr
}

// ntohs reads a port as the kernel stores it in a sockaddr (network byte
// order).
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return binary.BigEndian.Uint16(b[:])
}

// tick sends a beat to every peer while the daemon's token is fresh,
// reports to the daemon, and arms the next deadline.
func (l *loop) tick(now Mono) error {
	l.stats.Ticks++
	late := now.Sub(l.next)
	if late > l.stats.MaxLateness {
		l.stats.MaxLateness = late
	}
	if stall := now.Sub(l.wake); stall >= l.cfg.Interval {
		// The loop did not run for a whole interval or more: that time
		// is not counted against the peers (Tracker.Stalled).
		l.tr.Stalled(now, stall)
	}
	majority := l.tr.Majority(now)
	beating := l.tokenSeen && now.Sub(l.tokenAt) <= l.cfg.TokenTTL
	l.noteTick(now, late, majority) // leasehold.go
	l.claimTick(now, beating, majority)
	if beating {
		l.composeBeat(now, majority)
		l.sendBeat()
	}
	if err := l.report(now, beating, majority); err != nil {
		return err
	}
	l.recvLeft, l.nonPeerLeft = l.recvBudget, nonPeerBudget
	l.pfd[pollUDP].Events = unix.POLLIN
	l.next = l.next.Add(l.cfg.Interval)
	if l.next <= now {
		l.stats.LateTicks++
		for l.next <= now {
			l.next = l.next.Add(l.cfg.Interval)
		}
	}
	if err := l.schedule(now); err != nil {
		return fmt.Errorf("heartbeat: arming the timer: %w", err)
	}
	return nil
}

// composeBeat sets what this node's next beat says: the daemon's token,
// real-time priority, the majority heard, and the helper's claim.
func (l *loop) composeBeat(now Mono, majority bool) {
	l.beat.Flags = l.token.flags & advertFlags
	if l.realtime {
		l.beat.Flags |= FlagRealtime
	}
	if majority {
		l.beat.Flags |= FlagMajority
	}
	l.beat.Owner, l.beat.Epoch = l.token.owner, l.token.epoch
	l.claimAdvert(now)
	l.hold.composed = now
	l.holdLease(now, majority) // leasehold.go
}

// sendBeat sends the composed beat, with the next sequence number, to
// every peer.
func (l *loop) sendBeat() {
	l.beat.Seq++
	l.keys.SealV2(&l.outV2, &l.beat, l.cluster)
	sealedV1 := false
	for i, d := range l.dests {
		if l.beat.Flags&FlagHolding != 0 && l.holdStale() { // leasehold.go
			l.keys.SealV2(&l.outV2, &l.beat, l.cluster)
			sealedV1 = false
		}
		pkt := l.outV2[:]
		if l.peerV1[i] {
			if !sealedV1 {
				l.keys.Seal(&l.out, &l.beat)
				sealedV1 = true
			}
			pkt = l.out[:]
		}
		if err := unix.Sendto(l.udp, pkt, unix.MSG_DONTWAIT, d); err != nil {
			l.stats.SendErrors++
		} else {
			l.stats.Sent++
		}
	}
}

// report sends the verdict to the daemon when it changed, and at least
// every ReportInterval.
func (l *loop) report(now Mono, beating, majority bool) error {
	r := &l.rep
	r.at, r.beating, r.majority, r.realtime = now, beating, majority, l.realtime
	r.lease = l.leaseHeld(now)
	r.boot, r.seq, r.stats = l.beat.Boot, l.beat.Seq, l.stats
	for i := range r.peers {
		p := l.tr.peers[i]
		r.peers[i] = peerReport{seen: p.Seen, alive: l.tr.alive(i, now), flags: p.Flags, lastBeat: p.LastBeat,
			boot: p.Boot, seq: p.Seq, owner: p.Owner, epoch: p.Epoch}
	}
	if l.reported && sameVerdict(r, &l.prev) && now.Sub(l.lastReport) < l.cfg.ReportInterval {
		return nil
	}
	msg := r.encode(l.repBuf)
	if err := unix.Sendto(l.ctl, msg, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, nil); err != nil {
		if err == unix.EAGAIN {
			l.stats.ReportsDropped++
			return nil // the daemon is slow; the next report says it all again
		}
		return errParentGone
	}
	l.lastReport, l.reported = now, true
	l.prev.at, l.prev.beating, l.prev.majority, l.prev.realtime = r.at, r.beating, r.majority, r.realtime
	l.prev.lease = r.lease
	copy(l.prev.peers, r.peers)
	return nil
}

// recvDontWait is recv(fd, p, MSG_DONTWAIT) without the source address,
// returning the errno as a value: unix.Recvfrom allocates the address. It
// never blocks, so it is a raw system call: through the runtime's
// entersyscall, each of the daemon's 50 reads a second (Beater) woke the
// runtime's sysmon from its sleep to poll every 20 µs until the process
// was idle again.
func recvDontWait(fd int, p []byte) (int, unix.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_DONTWAIT, 0, 0)
	return int(r), e
}
