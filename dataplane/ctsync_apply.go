package dataplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// SyncApplier applies received sync entries over one ctnetlink socket it
// keeps open: a peer applying thousands of entries a second pays one
// request and its acknowledgement per entry, not a socket each (and, in
// a test's namespace, a thread switching namespaces each). Not safe for
// concurrent use; Close it.
type SyncApplier struct {
	c  *Conntrack
	nl *netlink.Conn
	// seq numbers the batched requests (ctsync_batch.go); buf and rbuf
	// are their send and receive buffers.
	seq       uint32
	buf, rbuf []byte
}

// NewSyncApplier opens the socket of a SyncApplier: its error answers
// carry no copy of the request (NETLINK_CAP_ACK), and its receive buffer
// holds a chunk's answers.
func (c *Conntrack) NewSyncApplier() (*SyncApplier, error) {
	cfg := &netlink.Config{}
	if c.ns.fd >= 0 {
		cfg.NetNS = c.ns.fd
	}
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("dialing ctnetlink: %w", err)
	}
	if err := nl.SetOption(netlink.CapAcknowledge, true); err != nil {
		c.log.Debug("ctnetlink applier: NETLINK_CAP_ACK", "err", err)
	}
	if rc, err := nl.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, syncApplierRcvBuf); err != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, syncApplierRcvBuf)
			}
		})
	}
	return &SyncApplier{c: c, nl: nl, seq: 1 << 20, rbuf: make([]byte, 64<<10)}, nil
}

// Close closes the socket.
func (a *SyncApplier) Close() error { return a.nl.Close() }

// Apply is Conntrack.ApplySynced over the applier's socket.
func (a *SyncApplier) Apply(ctx context.Context, e SyncEntry) error {
	if e.Op == SyncDelete {
		return a.delete(ctx, e)
	}
	if !Syncable(e.TCPState) {
		return nil
	}
	err := a.send(ctx, e, true)
	if errors.Is(err, unix.EEXIST) {
		err = a.send(ctx, e, false)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
	}
	return err
}

// Add is Conntrack.AddSynced over the applier's socket.
func (a *SyncApplier) Add(ctx context.Context, e SyncEntry) error {
	if !Syncable(e.TCPState) {
		return nil
	}
	if err := a.send(ctx, e, true); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

// delete deletes the entry with e's original tuple; a missing entry is
// not an error.
func (a *SyncApplier) delete(ctx context.Context, e SyncEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := e.validate(); err != nil {
		return err
	}
	msg, err := deleteMessage(e)
	if err != nil {
		return err
	}
	if _, err := a.nl.Execute(msg); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("deleting synced entry %v -> %v: %w", e.OrigSrc, e.OrigDst, err)
	}
	return nil
}

// ctnetlinkDelCT is IPCTNL_MSG_CT_DELETE.
const ctnetlinkDelCT = 2

// send creates (create) or refreshes e.
func (a *SyncApplier) send(ctx context.Context, e SyncEntry, create bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := e.validate(); err != nil {
		return err
	}
	msg, err := syncedMessage(e, create)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		_, err = a.nl.Execute(msg)
		// The kernel answers EAGAIN once while it loads the NAT module.
		if !errors.Is(err, unix.EAGAIN) || attempt >= 3 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("synced entry %v -> %v via %v: %w", e.OrigSrc, e.OrigDst, e.ReplySrc, err)
	}
	return nil
}
