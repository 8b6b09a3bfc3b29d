package dataplane

import (
	"context"
	"errors"
	"fmt"

	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// A synced entry clashes with a local one when the kernel refuses to
// create it (EEXIST) although no entry has its original tuple: another
// entry holds its reply tuple (backend:bport -> VIP:sport). On a node that
// is itself the flow's backend (co-located, see colocated.go) that is the
// node's own plain entry of the same flow as a backend saw it, from before
// its raw rules stopped tracking those packets (an upgrade from a version
// without them, or a conntrack table an earlier process left):
//
//	original  VIP:sport -> backend:bport, no NAT
//
// It is of no use any more (those packets are untracked while the node
// does not hold the VIP, and never arrive from the VIP while it does), and
// it keeps the node from creating the entry it needs to carry the flow
// when it takes the VIP over; so it is deleted and the synced entry
// created. Any other clash (a NAT entry of another flow that holds the
// same reply tuple) is left alone and reported.

// ErrSyncClash is wrapped by the error of a synced entry that clashes
// with a local entry that is not this node's own backend-side entry of
// the flow.
var ErrSyncClash = errors.New("reply tuple held by another entry")

// createOrResolve handles a create of e that failed with EEXIST: if the
// entry with e's original tuple exists, it refreshes it (refresh true)
// or leaves it (false); otherwise it resolves a clash with this node's
// backend-side entry of the flow.
func (c *Conntrack) createOrResolve(ctx context.Context, e SyncEntry, refresh bool) error {
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	if refresh {
		// The common case: the entry exists, refresh it.
		err = c.refreshExisting(e)
	} else {
		orig := conntrack.NewFlow(unix.IPPROTO_TCP, 0, e.OrigSrc.Addr(), e.OrigDst.Addr(), e.OrigSrc.Port(), e.OrigDst.Port(), 0, 0)
		_, err = conn.Get(orig)
	}
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, unix.ENOENT):
		return fmt.Errorf("synced entry %v -> %v: %w", e.OrigSrc, e.OrigDst, err)
	}
	// Nothing has the original tuple: the reply tuple clashes.
	local := conntrack.NewFlow(unix.IPPROTO_TCP, 0, e.ReplyDst.Addr(), e.ReplySrc.Addr(), e.ReplyDst.Port(), e.ReplySrc.Port(), 0, 0)
	f, err := conn.Get(local)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("creating synced entry %v -> %v via %v: %w", e.OrigSrc, e.OrigDst, e.ReplySrc, ErrSyncClash)
		}
		return fmt.Errorf("looking up the local entry %v -> %v: %w", e.ReplyDst, e.ReplySrc, err)
	}
	if f.Status.SrcNAT() || f.Status.DstNAT() {
		return fmt.Errorf("creating synced entry %v -> %v via %v: %w (a NAT entry from %v)", e.OrigSrc, e.OrigDst, e.ReplySrc, ErrSyncClash, e.ReplyDst)
	}
	if err := conn.Delete(local); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("deleting the local entry %v -> %v that clashes with a synced one: %w", e.ReplyDst, e.ReplySrc, err)
	}
	c.log.Debug("connection sync: local backend-side entry replaced by the synced one",
		"client", e.OrigSrc, "vip", e.OrigDst, "backend", e.ReplySrc, "from", e.ReplyDst)
	err = c.createSynced(ctx, e)
	if errors.Is(err, unix.EEXIST) && refresh {
		return c.refreshSynced(e) // created meanwhile by a packet or another apply
	}
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// refreshExisting updates the TCP state and timeout of the entry with e's
// original tuple; an error wrapping ENOENT if there is none.
func (c *Conntrack) refreshExisting(e SyncEntry) error {
	conn, err := c.dialNetfilter()
	if err != nil {
		return err
	}
	defer conn.Close()
	msg, err := syncedMessage(e, false)
	if err != nil {
		return err
	}
	_, err = conn.Query(msg)
	return err
}
