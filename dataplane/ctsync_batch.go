package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Batched applies: a peer that takes 50,000 entries at a join, or
// thousands a second in churn, sends many ctnetlink requests in one
// sendmsg. The kernel handles the messages of one buffer in order, in the
// sender's system call; only the last asks for an acknowledgement, and
// every failed one answers with an error carrying its sequence number, so
// each error still belongs to its entry.

// syncBatchChunk is the number of requests in one sendmsg: small enough
// that the error answers of a chunk where every request fails fit the
// socket's receive buffer.
const syncBatchChunk = 128

// syncApplierRcvBuf is the receive buffer the applier's socket asks for.
const syncApplierRcvBuf = 4 << 20

// syncAnswerTimeout bounds the wait for a chunk's answers.
const syncAnswerTimeout = 5 * time.Second

// ApplyAll applies entries in order as Apply does (add: as Add does),
// many requests to a system call. It returns one error per entry (nil
// when applied or nothing to do). A batch the socket cannot carry falls
// back to one request per entry.
func (a *SyncApplier) ApplyAll(ctx context.Context, entries []SyncEntry, add bool) []error {
	errs := make([]error, len(entries))
	var msgs []netlink.Message
	var idx []int // entry of each message
	for i, e := range entries {
		if err := e.validate(); err != nil {
			errs[i] = err
			continue
		}
		var m netlink.Message
		var err error
		switch {
		case e.Op == SyncDelete && add:
			continue
		case e.Op == SyncDelete:
			m, err = deleteMessage(e)
		case !Syncable(e.TCPState):
			continue
		default:
			m, err = syncedMessage(e, true)
		}
		if err != nil {
			errs[i] = err
			continue
		}
		msgs, idx = append(msgs, m), append(idx, i)
	}
	// First pass: creates and deletes in order; the creates that find an
	// existing entry are refreshed in a second pass (Apply) or left (Add).
	var exist []int
	a.sendAll(ctx, msgs, idx, entries, errs, func(i int, errno syscall.Errno) error {
		e := entries[i]
		switch {
		case errno == unix.ENOENT && e.Op == SyncDelete:
			return nil
		case errno == unix.EEXIST && add:
			return nil
		case errno == unix.EEXIST:
			exist = append(exist, i)
			return nil
		}
		return a.wrap(e, errno)
	})
	if len(exist) == 0 {
		return errs
	}
	msgs, idx = msgs[:0], idx[:0]
	for _, i := range exist {
		m, err := syncedMessage(entries[i], false)
		if err != nil {
			errs[i] = err
			continue
		}
		msgs, idx = append(msgs, m), append(idx, i)
	}
	a.sendAll(ctx, msgs, idx, entries, errs, func(i int, errno syscall.Errno) error {
		if errno == unix.ENOENT {
			return nil // gone meanwhile
		}
		return a.wrap(entries[i], errno)
	})
	return errs
}

func (a *SyncApplier) wrap(e SyncEntry, errno syscall.Errno) error {
	return fmt.Errorf("synced entry %s %v -> %v via %v: %w", e.Op, e.OrigSrc, e.OrigDst, e.ReplySrc, errno)
}

// sendAll sends msgs (msgs[k] is for entries[idx[k]]) in chunks and sets
// errs from the kernel's answers through judge. An entry the kernel
// answered EAGAIN (it loads the NAT module) is retried alone, and so is
// every entry of a chunk whose answers were lost.
func (a *SyncApplier) sendAll(ctx context.Context, msgs []netlink.Message, idx []int, entries []SyncEntry, errs []error, judge func(int, syscall.Errno) error) {
	single := func(i int) {
		e := entries[i]
		var err error
		switch {
		case e.Op == SyncDelete:
			err = a.delete(ctx, e)
		default:
			// A create, then whatever the first pass would have done.
			err = a.send(ctx, e, true)
			var errno syscall.Errno
			if errors.As(err, &errno) {
				err = judge(i, errno)
			}
		}
		errs[i] = err
	}
	for start := 0; start < len(msgs); start += syncBatchChunk {
		end := min(start+syncBatchChunk, len(msgs))
		if err := ctx.Err(); err != nil {
			for _, i := range idx[start:end] {
				errs[i] = err
			}
			continue
		}
		answers, err := a.exchange(msgs[start:end])
		if err != nil {
			a.c.log.Debug("connection sync: batched apply failed; one request per entry", "entries", end-start, "err", err)
			for _, i := range idx[start:end] {
				single(i)
			}
			continue
		}
		for k, errno := range answers {
			i := idx[start+k]
			switch errno {
			case 0:
				errs[i] = nil
			case unix.EAGAIN:
				single(i)
			default:
				errs[i] = judge(i, errno)
			}
		}
	}
}

// exchange sends msgs in one sendmsg, only the last asking for an
// acknowledgement, and returns each message's answer (0: applied).
func (a *SyncApplier) exchange(msgs []netlink.Message) ([]syscall.Errno, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	a.seq += 1
	base := a.seq
	a.seq += uint32(len(msgs))
	buf := a.buf[:0]
	for k := range msgs {
		m := msgs[k]
		m.Header.Sequence = base + uint32(k)
		m.Header.Length = uint32(nlmsgHeaderLen + len(m.Data))
		m.Header.Flags &^= netlink.Acknowledge
		if k == len(msgs)-1 {
			m.Header.Flags |= netlink.Acknowledge
		}
		buf = appendNetlinkMessage(buf, m)
	}
	a.buf = buf
	rc, err := a.nl.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("sending %d requests: %w", len(msgs), serr)
	}
	answers := make([]syscall.Errno, len(msgs))
	last := base + uint32(len(msgs)) - 1
	// The kernel answers within the sendmsg; a lost answer (an overrun
	// buffer) must not hang the applier.
	_ = a.nl.SetReadDeadline(time.Now().Add(syncAnswerTimeout))
	defer a.nl.SetReadDeadline(time.Time{})
	rb := a.rbuf
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), rb, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return nil, err
		}
		if rerr != nil {
			return nil, fmt.Errorf("reading answers: %w", rerr)
		}
		raw, err := syscall.ParseNetlinkMessage(rb[:n])
		if err != nil {
			return nil, fmt.Errorf("reading answers: %w", err)
		}
		done := false
		for _, m := range raw {
			if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			seq := m.Header.Seq
			if seq < base || seq > last {
				continue // an answer to an earlier request
			}
			code := int32(binary.NativeEndian.Uint32(m.Data[:4]))
			answers[seq-base] = syscall.Errno(-code)
			if seq == last {
				done = true
			}
		}
		if done {
			return answers, nil
		}
	}
}

// nlmsgHeaderLen is the length of a netlink message header.
const nlmsgHeaderLen = 16

// appendNetlinkMessage appends m as netlink.Message.MarshalBinary encodes
// it (header in host order, then the data padded to 4 bytes), without a
// buffer of its own per request.
func appendNetlinkMessage(b []byte, m netlink.Message) []byte {
	b = binary.NativeEndian.AppendUint32(b, m.Header.Length)
	b = binary.NativeEndian.AppendUint16(b, uint16(m.Header.Type))
	b = binary.NativeEndian.AppendUint16(b, uint16(m.Header.Flags))
	b = binary.NativeEndian.AppendUint32(b, m.Header.Sequence)
	b = binary.NativeEndian.AppendUint32(b, m.Header.PID)
	b = append(b, m.Data...)
	return append(b, make([]byte, nlmsgAlign(len(m.Data))-len(m.Data))...)
}

// deleteMessage is the IPCTNL_MSG_CT_DELETE request for e's original
// tuple.
func deleteMessage(e SyncEntry) (netlink.Message, error) {
	msg, err := ctMessage(ctnetlinkDelCT, e, netlink.Request|netlink.Acknowledge, tupleAttr(ctaTupleOrig, e.OrigSrc, e.OrigDst))
	if err != nil {
		return netlink.Message{}, fmt.Errorf("encoding synced delete: %w", err)
	}
	return msg, nil
}

// ctMessage is a ctnetlink request of type typ in e's address family.
func ctMessage(typ uint8, e SyncEntry, flags netlink.HeaderFlags, attrs ...netfilter.Attribute) (netlink.Message, error) {
	fam := netfilter.ProtoIPv6
	if e.OrigSrc.Addr().Unmap().Is4() {
		fam = netfilter.ProtoIPv4
	}
	return netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: netfilter.MessageType(typ),
		Family:      fam,
		Flags:       flags,
	}, attrs)
}
