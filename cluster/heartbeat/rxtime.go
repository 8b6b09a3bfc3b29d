package heartbeat

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A beat is as fresh as the moment the kernel received it, not the
// moment the loop read it: a datagram that waited in the socket while the
// loop (or the whole process) was paused is old when it is read. The beat
// socket asks the kernel to stamp every datagram (SO_TIMESTAMPNS, the
// software receive time, CLOCK_REALTIME), and the loop reads with
// recvmsg, converting the stamp to CLOCK_MONOTONIC with the two clocks'
// offset taken once per wake-up.

// rxOOBSize holds one SCM_TIMESTAMPNS control message (a struct timespec)
// with room to spare.
const rxOOBSize = 64

// maxRxBoost bounds how many intervals' worth of datagrams one read after
// a stall may take (the socket buffer holds a few thousand anyway).
const maxRxBoost = 256

// rxPath is the loop's receive path: one preallocated message header,
// so reading does not allocate.
type rxPath struct {
	hdr     unix.Msghdr
	iov     unix.Iovec
	oob     [rxOOBSize]byte
	stamped bool  // the socket stamps datagrams (setsockopt succeeded)
	realOff int64 // CLOCK_REALTIME minus CLOCK_MONOTONIC at the last wake-up (ns)
	// lastDelay is how long the datagram last read waited in the socket
	// (its kernel receive time to the loop's wake-up); maxDelay the
	// longest so far.
	lastDelay, maxDelay time.Duration
}

// enableRxTime asks the kernel to stamp every datagram received on fd.
func enableRxTime(fd int) bool {
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil
}

// setup points the message header at the loop's buffers.
func (r *rxPath) setup(buf []byte, from *unix.RawSockaddrAny) {
	r.iov.Base = &buf[0]
	r.iov.SetLen(len(buf))
	r.hdr.Name = (*byte)(unsafe.Pointer(from))
	r.hdr.Iov = &r.iov
	r.hdr.Iovlen = 1
	r.hdr.Control = &r.oob[0]
}

// clocks takes the offset of CLOCK_REALTIME from CLOCK_MONOTONIC at now
// (the wall clock through the vDSO, which does not allocate).
func (r *rxPath) clocks(now Mono) {
	r.realOff = time.Now().UnixNano() - int64(now)
}

// recv reads one datagram without waiting: its length, or the errno.
func (r *rxPath) recv(fd int) (int, unix.Errno) {
	r.hdr.Namelen = uint32(unsafe.Sizeof(unix.RawSockaddrAny{}))
	r.hdr.SetControllen(rxOOBSize)
	r.hdr.Flags = 0
	n, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.hdr)), unix.MSG_DONTWAIT)
	return int(n), e
}

// at returns when the kernel received the datagram last read, on the
// monotonic clock: now when it carries no stamp, and never later than now
// (a wall clock stepped back between the receipt and the read).
func (r *rxPath) at(now Mono) Mono {
	r.lastDelay = 0
	if !r.stamped || r.hdr.Controllen < unix.SizeofCmsghdr {
		return now
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&r.oob[0]))
	if h.Level != unix.SOL_SOCKET || h.Type != unix.SCM_TIMESTAMPNS || h.Len < uint64(unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{})))) {
		return now
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&r.oob[unix.CmsgLen(0)]))
	at := Mono(ts.Nano() - r.realOff)
	if at >= now {
		return now
	}
	r.lastDelay = now.Sub(at)
	r.maxDelay = max(r.maxDelay, r.lastDelay)
	return at
}
