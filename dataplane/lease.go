package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/google/nftables"
)

// The kernel-side owner lease. A crashed daemon leaves its VIP address and
// nft rules in the kernel, and the host would go on answering ARP / NDP for
// the VIP next to the new owner. So every ARP packet the host sends with
// the VIP as sender, and every neighbour advertisement for the VIP (and
// solicitation from it), passes only while an element with a timeout sits
// in a set; the owner renews the element every few tens of milliseconds and
// a dead daemon cannot. The nft text form of what Install programs:
//
//	table arp epconsole {
//		set owner { type ipv4_addr; flags timeout; }
//		chain output {
//			type filter hook output priority filter; policy accept;
//			arp hlen 6 arp plen 4 arp saddr ip VIP arp saddr ip != @owner drop
//		}
//	}
//	table ip6 epconsole-lease {
//		set owner { type ipv6_addr; flags timeout; }
//		chain output {
//			type filter hook output priority filter; policy accept;
//			meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert @th,64,128 VIP @th,64,128 != @owner drop
//			ip6 saddr VIP meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit ip6 saddr != @owner drop
//		}
//	}
//
// IPv6 has no arp family, and the lease lives in a table of its own rather
// than in the ip6 "epconsole" table: Reconcile replaces that table whenever
// its structure differs from the desired one, which would wipe the lease.
//
// Gratuitous ARPs sent by VIP.Announce leave on a packet socket, which the
// arp hook does not see; unsolicited NAs go through the ip6 output hook and
// are dropped without the lease. Renew before announcing.
const (
	// LeaseTable6 is the ip6 table that holds the IPv6 lease. The IPv4
	// lease lives in the arp table TableName.
	LeaseTable6 = "epconsole-lease"
	// LeaseSetName is the lease set in both tables.
	LeaseSetName = "owner"
	// LeaseChainName is the output chain in both tables.
	LeaseChainName = "output"

	// DefaultLeaseTTL and DefaultLeaseRenew are the lease length and renewal
	// period the design settles on: each renewal is a ruleset commit, so
	// not at heartbeat rate, and the lease bounds how long a crashed owner
	// keeps answering for the VIP.
	DefaultLeaseTTL   = 150 * time.Millisecond
	DefaultLeaseRenew = 30 * time.Millisecond
)

// nfARPOut is the arp family's output hook (NF_ARP_OUT in
// linux/netfilter_arp.h; x/sys/unix does not define it).
const nfARPOut = 1

// ICMPv6 neighbour discovery message types (RFC 4861).
const (
	icmpv6NeighborSolicit = 135
	icmpv6NeighborAdvert  = 136
)

// Fixed set IDs, so batches are reproducible (the slot maps use 1 and 2).
const (
	leaseSetID4 = 3
	leaseSetID6 = 4
)

// ErrLeaseNotInstalled is returned by Renew and Drop before Install.
var ErrLeaseNotInstalled = errors.New("dataplane: owner lease not installed")

// ErrLeaseLapsed is returned by Renew when the lease it would extend has
// already run out: this process did not renew it in time (it was paused,
// as a VM can be, or starved), the host stopped answering for the VIP, and
// another node may own the VIP by now. Renew does not reopen it: the
// caller decides again on what it hears now, and opens a new lease with
// Drop then Renew only if it still owns the VIP.
var ErrLeaseLapsed = errors.New("dataplane: the owner lease ran out before it was renewed")

// LapsedError is the ErrLeaseLapsed that Renew returns: when the lease was
// last renewed, for how long, and when a Renew first found it lapsed
// (every Renew until Drop or Install finds it lapsed again).
type LapsedError struct {
	Renewed time.Time
	TTL     time.Duration
	Noticed time.Time
	// First says this Renew is the one that noticed.
	First bool
}

func (e *LapsedError) Error() string {
	return fmt.Sprintf("%v: last renewed %s before it was noticed, for %s", ErrLeaseLapsed, e.Noticed.Sub(e.Renewed).Round(time.Millisecond), e.TTL)
}

// Unwrap makes errors.Is(err, ErrLeaseLapsed) hold.
func (e *LapsedError) Unwrap() error { return ErrLeaseLapsed }

// Lease is the kernel-side owner lease of one network namespace: the arp
// and ip6 tables that gate the host's ARP and NDP for the VIP, and the
// element with a timeout that opens the gate. Methods are safe for
// concurrent use; changes are serialised.
type Lease struct {
	ns  netNS
	log *slog.Logger

	mu    sync.Mutex
	conn  *nftables.Conn
	specs []leaseSpec // installed, one per family with a VIP
	// renewed and ttl are the last successful Renew (zero: no lease this
	// process opened, or one it dropped): a Renew later than renewed+ttl
	// finds the lease lapsed.
	renewed time.Time
	ttl     time.Duration
	// lapsed is when a Renew first found the lease lapsed (zero: not).
	lapsed time.Time
	// beats, when set, makes Install build the beat-renewed netdev
	// tables (leasebeat.go) instead of the arp and ip6 ones.
	beats *LeaseBeats
}

// leaseSpec is one family's lease table, built by buildLeaseTable.
type leaseSpec struct {
	vip   netip.Addr
	table *nftables.Table
	chain *nftables.Chain
	set   *nftables.Set
	rules []*nftables.Rule
}

// NewLease returns a Lease for the namespace given by the options (default:
// the calling process's namespace). It does not touch the kernel.
func NewLease(opts ...Option) (*Lease, error) {
	o := buildOptions(opts)
	ns, err := openNetNS(o)
	if err != nil {
		return nil, err
	}
	return &Lease{ns: ns, log: o.log}, nil
}

// Close releases the netlink socket and the namespace handle if the Lease
// opened it. The tables and any element stay in the kernel (the element
// times out by itself).
func (l *Lease) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropConn()
	return l.ns.close()
}

// Install makes the kernel hold the lease tables for vips (at most one
// IPv4 and one IPv6 address): the arp table for an IPv4 VIP, the ip6 table
// for an IPv6 one, and neither for a family without a VIP. Tables that
// already hold exactly this are adopted as they are, element included (a
// restarted daemon does not reset a lease it may still hold); otherwise they
// are replaced, which drops the lease until the next Renew. Everything is
// one batch; nothing is sent when the kernel already matches.
func (l *Lease) Install(ctx context.Context, vips []netip.Addr) error {
	want, err := leasePlan(vips)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.renewed, l.lapsed = time.Time{}, time.Time{}
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := l.connLocked()
	if err != nil {
		return err
	}
	if l.beats != nil {
		specs, queued, err := l.installBeats(ctx, c, want)
		if err != nil {
			l.dropConn()
			return err
		}
		return l.commitInstall(c, specs, queued, vips)
	}
	var specs []leaseSpec
	queued, err := queueDelBeatTables(c)
	if err != nil {
		l.dropConn()
		return err
	}
	for _, fam := range leaseFamilies {
		vip := want[fam]
		cur, err := readLeaseTable(c, fam)
		if err != nil {
			l.dropConn()
			return fmt.Errorf("reading the %s lease table: %w", leaseFamilyName(fam), err)
		}
		if !vip.IsValid() {
			if cur != nil {
				c.DelTable(cur.table)
				queued = true
			}
			continue
		}
		spec := buildLeaseTable(vip)
		specs = append(specs, spec)
		if cur != nil && sameLeaseTable(cur, spec) {
			continue
		}
		if cur != nil {
			c.DelTable(cur.table)
			l.log.Warn("replacing the owner lease table; the lease is dropped until renewed", "family", leaseFamilyName(fam), "vip", vip)
		}
		if err := queueLeaseTable(c, spec); err != nil {
			return err
		}
		queued = true
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.commitInstall(c, specs, queued, vips)
}

// commitInstall commits what Install queued, if anything, and records
// specs as installed. Called with l.mu held.
func (l *Lease) commitInstall(c *nftables.Conn, specs []leaseSpec, queued bool, vips []netip.Addr) error {
	if queued {
		if err := c.Flush(); err != nil {
			l.dropConn()
			return fmt.Errorf("committing the owner lease tables: %w", err)
		}
		l.log.Info("owner lease tables installed", "vips", vips, "renewed_by_beats", l.beats != nil)
	}
	l.specs = specs
	return nil
}

// Renew (re)starts the lease for ttl: in one batch, for each installed
// family, it adds the element (a no-op when present), deletes it and adds
// it again with the new timeout. A plain re-add would keep the old expiry;
// the first add makes the delete valid when the element has expired or was
// never there.
//
// A Renew that comes later than the ttl of this Lease's previous
// successful Renew changes nothing and returns a *LapsedError (which is
// ErrLeaseLapsed): a lapsed lease is never extended in passing. After Drop or Install, or on a new
// Lease, Renew opens a new lease.
func (l *Lease) Renew(ctx context.Context, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("dataplane: lease ttl %v below the kernel's 1 ms resolution", ttl)
	}
	l.mu.Lock()
	if !l.renewed.IsZero() && time.Since(l.renewed) > l.ttl {
		e := &LapsedError{Renewed: l.renewed, TTL: l.ttl, Noticed: l.lapsed}
		if e.Noticed.IsZero() {
			now := time.Now()
			l.lapsed, e.Noticed, e.First = now, now, true
		}
		l.mu.Unlock()
		return e
	}
	l.mu.Unlock()
	if err := l.elements(ctx, ttl, true); err != nil {
		return err
	}
	l.mu.Lock()
	l.renewed, l.ttl, l.lapsed = time.Now(), ttl, time.Time{}
	l.mu.Unlock()
	return nil
}

// Held reports whether a lease this process opened runs now: renewed, and
// not past its ttl since (a process paused for longer finds it not held,
// whatever the kernel's timer says).
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.renewed.IsZero() && time.Since(l.renewed) <= l.ttl
}

// Drop ends the lease at once: the host stops answering ARP / NDP for the
// VIP with the next packet. The next Renew opens a new lease.
func (l *Lease) Drop(ctx context.Context) error {
	l.mu.Lock()
	l.renewed, l.lapsed = time.Time{}, time.Time{}
	l.mu.Unlock()
	return l.elements(ctx, time.Second, false)
}

// elements queues add (ensuring existence), delete and, with readd, add
// with ttl of each family's lease element, and commits.
func (l *Lease) elements(ctx context.Context, ttl time.Duration, readd bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.specs == nil {
		return ErrLeaseNotInstalled
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := l.connLocked()
	if err != nil {
		return err
	}
	for _, s := range l.specs {
		elem := []nftables.SetElement{{Key: s.vip.AsSlice(), Timeout: ttl}}
		key := []nftables.SetElement{{Key: s.vip.AsSlice()}}
		if err := c.SetAddElements(s.set, elem); err != nil {
			return fmt.Errorf("queueing the lease element: %w", err)
		}
		if err := c.SetDeleteElements(s.set, key); err != nil {
			return fmt.Errorf("queueing the lease element: %w", err)
		}
		if readd {
			if err := c.SetAddElements(s.set, elem); err != nil {
				return fmt.Errorf("queueing the lease element: %w", err)
			}
		}
	}
	if err := c.Flush(); err != nil {
		l.dropConn()
		what := "renewing"
		if !readd {
			what = "dropping"
		}
		return fmt.Errorf("%s the owner lease: %w", what, err)
	}
	return nil
}

// Remove deletes the lease tables (both families) in one batch: ARP and
// NDP for the VIP are no longer gated. Removing absent tables is not an
// error.
func (l *Lease) Remove(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := l.connLocked()
	if err != nil {
		return err
	}
	queued := false
	for _, fam := range leaseFamilies {
		t, err := findNamedTable(c, fam, leaseTableName(fam))
		if err != nil {
			l.dropConn()
			return fmt.Errorf("listing %s tables: %w", leaseFamilyName(fam), err)
		}
		if t != nil {
			c.DelTable(t)
			queued = true
		}
	}
	q, err := queueDelBeatTables(c)
	if err != nil {
		l.dropConn()
		return err
	}
	queued = queued || q
	l.specs = nil
	if !queued {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		l.dropConn()
		return fmt.Errorf("deleting the owner lease tables: %w", err)
	}
	l.log.Info("owner lease tables removed")
	return nil
}

// connLocked returns the Lease's lasting netlink connection, opening it
// when needed. Renewals come every few tens of milliseconds; one socket
// serves them all.
func (l *Lease) connLocked() (*nftables.Conn, error) {
	if l.conn != nil {
		return l.conn, nil
	}
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if l.ns.fd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(l.ns.fd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink socket: %w", err)
	}
	l.conn = c
	return c, nil
}

// dropConn closes the connection after an error, so the next call starts
// from a clean socket.
func (l *Lease) dropConn() {
	if l.conn != nil {
		l.conn.CloseLasting()
		l.conn = nil
	}
}
