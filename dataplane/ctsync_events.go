package dataplane

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The owner's conntrack events, read cheaply: at thousands of new flows a
// second every event costs a wakeup, a system call and a decode. So the
// event socket carries a classic BPF filter that keeps only the events of
// TCP flows to the synced VIP:ports (the events of any other traffic never
// wake the daemon), many events are read per system call (recvmmsg), and
// each is decoded in place into a SyncEntry without building a full flow.

// Conntrack event groups (NFNLGRP_CONNTRACK_*): new entries, changes
// (the TCP state moving to ESTABLISHED among them) and destroyed entries
// are all needed.
const (
	groupCTNew     = 1
	groupCTUpdate  = 2
	groupCTDestroy = 3
)

// Bounds of the event reader.
const (
	eventBatch   = 64      // messages per recvmmsg
	eventMsgMax  = 4096    // bytes of one event message
	eventRcvBuf  = 8 << 20 // the socket's receive buffer
	ctnlSubsysCT = 1       // NFNL_SUBSYS_CTNETLINK
)

// openSyncEvents opens the event socket: joined to the three groups,
// its receive buffer raised, and filtered to vips.
func (c *Conntrack) openSyncEvents(vips []netip.AddrPort, filter bool) (*netlink.Conn, error) {
	cfg := &netlink.Config{}
	if c.ns.fd >= 0 {
		cfg.NetNS = c.ns.fd
	}
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("dialing ctnetlink: %w", err)
	}
	rc, err := nl.SyscallConn()
	if err != nil {
		nl.Close()
		return nil, err
	}
	if err := rc.Control(func(fd uintptr) {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, eventRcvBuf); err != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, eventRcvBuf)
		}
	}); err != nil {
		nl.Close()
		return nil, err
	}
	if filter {
		if err := attachFilter(nl, eventFilter(vips)); err != nil {
			// Not fatal: without the filter every event is read and decoded.
			c.log.Debug("conntrack event socket: BPF filter", "err", err)
		}
	}
	for _, g := range []uint32{groupCTNew, groupCTUpdate, groupCTDestroy} {
		if err := nl.JoinGroup(g); err != nil {
			nl.Close()
			return nil, fmt.Errorf("subscribing to conntrack events: %w", err)
		}
	}
	return nl, nil
}

// attachFilter sets (or replaces) the socket filter of nl.
func attachFilter(nl *netlink.Conn, prog []unix.SockFilter) error {
	rc, err := nl.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("attaching the event filter: %w", serr)
	}
	return nil
}

// readSyncEvents reads events off nl until ctx ends (nil) or the socket
// fails (an overrun: ENOBUFS), calling fn with every change of a DNATed
// TCP flow through vips (and seen, if not nil, with every message read).
func readSyncEvents(ctx context.Context, nl *netlink.Conn, vips []netip.AddrPort, fn func(SyncEntry), seen func()) error {
	rc, err := nl.SyscallConn()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { nl.Close() })
	defer stop()
	bufs := make([]byte, eventBatch*eventMsgMax)
	iov := make([]unix.Iovec, eventBatch)
	hdrs := make([]unix.Mmsghdr, eventBatch)
	for i := range hdrs {
		iov[i].Base = &bufs[i*eventMsgMax]
		iov[i].SetLen(eventMsgMax)
		hdrs[i].Hdr.Iov = &iov[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), eventBatch, unix.MSG_DONTWAIT, 0, 0)
			n, rerr = int(r), nil
			if e != 0 {
				rerr = e
			}
			return rerr != unix.EAGAIN
		}); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("conntrack events: %w", err)
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("conntrack events: %w", rerr)
		}
		for i := range n {
			m := bufs[i*eventMsgMax : i*eventMsgMax+int(hdrs[i].Len)]
			if hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
				continue
			}
			for len(m) >= nlmsgHeaderLen {
				l := int(binary.NativeEndian.Uint32(m[0:4]))
				if l < nlmsgHeaderLen || l > len(m) {
					break
				}
				if seen != nil {
					seen()
				}
				if e, ok := decodeSyncEvent(m[:l], vips); ok {
					fn(e)
				}
				m = m[min(nlmsgAlign(l), len(m)):]
			}
		}
	}
}

func nlmsgAlign(l int) int { return (l + 3) &^ 3 }

// decodeSyncEvent turns one ctnetlink event message into a SyncEntry, as
// syncEntryOf does for a decoded flow: a new entry or a change with TCP
// protocol info as SyncUpsert (not in a handshake state), a destroyed
// one as SyncDelete; only TCP flows to vips that were DNATed.
func decodeSyncEvent(m []byte, vips []netip.AddrPort) (SyncEntry, bool) {
	if len(m) < nlmsgHeaderLen+4 {
		return SyncEntry{}, false
	}
	typ := binary.NativeEndian.Uint16(m[4:6])
	flags := binary.NativeEndian.Uint16(m[6:8])
	if typ>>8 != ctnlSubsysCT {
		return SyncEntry{}, false
	}
	var op SyncOp
	isNew := false
	switch uint8(typ) {
	case ctnetlinkNewCT:
		op = SyncUpsert
		isNew = flags&(unix.NLM_F_CREATE|unix.NLM_F_EXCL) != 0
	case ctnetlinkDelCT:
		op = SyncDelete
	default:
		return SyncEntry{}, false
	}
	var e SyncEntry
	e.Op = op
	var proto uint8
	var hasTCP bool
	var origOK, replyOK bool
	for a := range nlAttrs(m[nlmsgHeaderLen+4:]) {
		switch a.typ {
		case ctaTupleOrig:
			e.OrigSrc, e.OrigDst, proto, origOK = eventTuple(a.data)
		case ctaTupleReply:
			e.ReplySrc, e.ReplyDst, _, replyOK = eventTuple(a.data)
		case ctaProtoInfo:
			for p := range nlAttrs(a.data) {
				if p.typ != ctaProtoInfoTCP {
					continue
				}
				hasTCP = true
				for t := range nlAttrs(p.data) {
					if t.typ == ctaProtoInfoTCPState && len(t.data) >= 1 {
						e.TCPState = t.data[0]
					}
				}
			}
		case ctaTimeout:
			if len(a.data) >= 4 {
				e.Timeout = binary.BigEndian.Uint32(a.data)
			}
		case ctaMark:
			if len(a.data) >= 4 {
				e.Mark = binary.BigEndian.Uint32(a.data)
			}
		}
	}
	if !origOK || !replyOK || proto != unix.IPPROTO_TCP || !slices.Contains(vips, e.OrigDst) || e.ReplySrc == e.OrigDst {
		return SyncEntry{}, false
	}
	if op == SyncUpsert {
		if !isNew && !hasTCP {
			return SyncEntry{}, false // no state change: nothing a peer needs
		}
		if hasTCP && !Syncable(e.TCPState) {
			return SyncEntry{}, false
		}
	}
	return e, e.validate() == nil
}

// eventTuple reads a CTA_TUPLE_* nest: source, destination, protocol.
func eventTuple(b []byte) (src, dst netip.AddrPort, proto uint8, ok bool) {
	var sa, da netip.Addr
	var sp, dp uint16
	for a := range nlAttrs(b) {
		switch a.typ {
		case ctaTupleIP:
			for ip := range nlAttrs(a.data) {
				switch ip.typ {
				case ctaIPv4Src, ctaIPv6Src:
					sa, _ = netip.AddrFromSlice(ip.data)
				case ctaIPv4Dst, ctaIPv6Dst:
					da, _ = netip.AddrFromSlice(ip.data)
				}
			}
		case ctaTupleProto:
			for p := range nlAttrs(a.data) {
				switch {
				case p.typ == ctaProtoNum && len(p.data) >= 1:
					proto = p.data[0]
				case p.typ == ctaProtoSrc && len(p.data) >= 2:
					sp = binary.BigEndian.Uint16(p.data)
				case p.typ == ctaProtoDst && len(p.data) >= 2:
					dp = binary.BigEndian.Uint16(p.data)
				}
			}
		}
	}
	if !sa.IsValid() || !da.IsValid() {
		return netip.AddrPort{}, netip.AddrPort{}, 0, false
	}
	return netip.AddrPortFrom(sa.Unmap(), sp), netip.AddrPortFrom(da.Unmap(), dp), proto, true
}

// nlAttr is one netlink attribute: its type without the nested and byte
// order flags, and its payload.
type nlAttr struct {
	typ  uint16
	data []byte
}

// nlAttrs iterates over the attributes in b.
func nlAttrs(b []byte) func(func(nlAttr) bool) {
	return func(yield func(nlAttr) bool) {
		for len(b) >= 4 {
			l := int(binary.NativeEndian.Uint16(b[0:2]))
			if l < 4 || l > len(b) {
				return
			}
			if !yield(nlAttr{typ: binary.NativeEndian.Uint16(b[2:4]) & 0x3fff, data: b[4:l]}) {
				return
			}
			b = b[min(nlmsgAlign(l), len(b)):]
		}
	}
}
