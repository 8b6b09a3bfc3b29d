package dataplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// SyncApplier applies received sync entries over one ctnetlink socket it
// keeps open: a peer applying thousands of entries a second pays one
// request and its acknowledgement per entry, not a socket each (and, in
// a test's namespace, a thread switching namespaces each). Not safe for
// concurrent use; Close it.
type SyncApplier struct {
	c    *Conntrack
	conn *netfilter.Conn
}

// NewSyncApplier opens the socket of a SyncApplier.
func (c *Conntrack) NewSyncApplier() (*SyncApplier, error) {
	conn, err := c.dialNetfilter()
	if err != nil {
		return nil, err
	}
	return &SyncApplier{c: c, conn: conn}, nil
}

// Close closes the socket.
func (a *SyncApplier) Close() error { return a.conn.Close() }

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
	fam := netfilter.ProtoIPv6
	if e.OrigSrc.Addr().Unmap().Is4() {
		fam = netfilter.ProtoIPv4
	}
	msg, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: ctnetlinkDelCT,
		Family:      fam,
		Flags:       netlink.Request | netlink.Acknowledge,
	}, []netfilter.Attribute{tupleAttr(ctaTupleOrig, e.OrigSrc, e.OrigDst)})
	if err != nil {
		return fmt.Errorf("encoding synced delete: %w", err)
	}
	if _, err := a.conn.Query(msg); err != nil && !errors.Is(err, unix.ENOENT) {
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
		_, err = a.conn.Query(msg)
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
