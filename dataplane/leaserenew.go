package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// LeaseRenewer renews the owner lease (Lease) at heartbeat rate: one
// netlink batch, built once, that adds, deletes and adds again the lease
// element of each family with its timeout, exactly what Lease.Renew
// sends. A renewal is one write and the reads of its acknowledgement on a
// socket opened at the start: no allocation, no table listing. The
// heartbeat helper renews with it on every beat while this node holds
// the VIP, so the lease can be as short as about twice the heartbeat's
// detection time.
//
// It works in the network namespace of the thread that calls
// NewLeaseRenewer, and only after Lease.Install created the tables.
// A LeaseRenewer is not safe for concurrent use.
type LeaseRenewer struct {
	fd          int
	renew, drop leaseBatch
	seq         uint32
	lastSeq     uint32 // the sequence number of the acknowledged message
	rbuf        [4096]byte
	ttl         time.Duration
}

// leaseBatch is one pre-built netlink batch: msg, and the offsets of
// each message's sequence number in it.
type leaseBatch struct {
	msg   []byte
	seqAt []int
}

// buildLeaseBatch builds the batch that, for each family's lease element,
// adds it (a no-op when present), deletes it and, with readd, adds it
// again with ttl: Lease.Renew's and Lease.Drop's batches.
//
// With beats, the elements are those of the beat-renewed netdev tables
// (leasebeat.go).
func buildLeaseBatch(want map[nftables.TableFamily]netip.Addr, ttl time.Duration, readd, beats bool) (leaseBatch, error) {
	var b leaseBatch
	var msgs []netlink.Message
	for _, fam := range leaseFamilies {
		vip, ok := want[fam]
		if !ok {
			continue
		}
		proto, table := uint8(nfprotoARP), leaseTableName(fam)
		if vip.Is6() {
			proto = nfprotoIPv6
		}
		if beats {
			proto, table = nfprotoNetdev, beatLeaseTableName(vip)
		}
		withTTL, err := elemListAttrs(table, vip, ttl)
		if err != nil {
			return b, err
		}
		keyOnly, err := elemListAttrs(table, vip, 0)
		if err != nil {
			return b, err
		}
		hdr := []byte{proto, unix.NFNETLINK_V0, 0, 0}
		newElem := netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM)
		delElem := netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELSETELEM)
		msgs = append(msgs,
			netlink.Message{Header: netlink.Header{Type: newElem, Flags: netlink.Request | netlink.Create}, Data: append(slices.Clone(hdr), withTTL...)},
			netlink.Message{Header: netlink.Header{Type: delElem, Flags: netlink.Request}, Data: append(slices.Clone(hdr), keyOnly...)},
		)
		if readd {
			msgs = append(msgs, netlink.Message{Header: netlink.Header{Type: newElem, Flags: netlink.Request | netlink.Create}, Data: append(slices.Clone(hdr), withTTL...)})
		}
	}
	batchHdr := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}
	all := append([]netlink.Message{{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request}, Data: batchHdr}},
		msgs...)
	all = append(all, netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: netlink.Request}, Data: batchHdr})
	// Only the last element message asks for an acknowledgement: errors
	// come back whether asked for or not, and the acknowledgement of the
	// last message says the batch was read to its end.
	all[len(all)-2].Header.Flags |= netlink.Acknowledge
	for _, m := range all {
		m.Header.Length = uint32(nlmsgAlign(16 + len(m.Data)))
		raw, err := m.MarshalBinary()
		if err != nil {
			return b, fmt.Errorf("dataplane: building the lease batch: %w", err)
		}
		b.seqAt = append(b.seqAt, len(b.msg)+8)
		b.msg = append(b.msg, raw...)
	}
	return b, nil
}

// NFPROTO values of the lease tables' families (linux/netfilter.h).
const (
	nfprotoARP    = 3
	nfprotoNetdev = 5
	nfprotoIPv6   = 10
)

// NewLeaseRenewer opens a netfilter netlink socket and builds the renewal
// batch for vips (at most one IPv4 and one IPv6 address, as Install takes)
// with the lease length ttl: for the beat-renewed tables (Lease.SetBeats)
// when the namespace holds them, else for the arp and ip6 ones.
func NewLeaseRenewer(vips []netip.Addr, ttl time.Duration) (*LeaseRenewer, error) {
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("dataplane: lease ttl %v below the kernel's 1 ms resolution", ttl)
	}
	want, err := leasePlan(vips)
	if err != nil {
		return nil, err
	}
	if len(want) == 0 {
		return nil, errors.New("dataplane: no VIP to renew a lease for")
	}
	beats, err := beatLeaseInstalled()
	if err != nil {
		return nil, err
	}
	r := &LeaseRenewer{ttl: ttl}
	if r.renew, err = buildLeaseBatch(want, ttl, true, beats); err != nil {
		return nil, err
	}
	if r.drop, err = buildLeaseBatch(want, ttl, false, beats); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("dataplane: opening the netfilter netlink socket: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("dataplane: connecting the netfilter netlink socket: %w", err)
	}
	r.fd = fd
	return r, nil
}

// beatLeaseInstalled reports whether the calling thread's namespace holds
// a beat-renewed lease table (Lease.SetBeats): the renewals then go to its
// elements.
func beatLeaseInstalled() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("dataplane: opening nftables netlink socket: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return false, fmt.Errorf("dataplane: listing netdev tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == BeatLeaseTable4 || t.Name == BeatLeaseTable6 {
			return true, nil
		}
	}
	return false, nil
}

// elemListAttrs are the attributes of a set element message for the
// lease element of vip in table: with a timeout when ttl > 0.
func elemListAttrs(table string, vip netip.Addr, ttl time.Duration) ([]byte, error) {
	key, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_DATA_VALUE, Data: vip.AsSlice()}})
	if err != nil {
		return nil, err
	}
	item := []netlink.Attribute{{Type: unix.NFTA_SET_ELEM_KEY | unix.NLA_F_NESTED, Data: key}}
	if ttl > 0 {
		item = append(item, netlink.Attribute{Type: unix.NFTA_SET_ELEM_TIMEOUT, Data: binary.BigEndian.AppendUint64(nil, uint64(ttl.Milliseconds()))})
	}
	elem, err := netlink.MarshalAttributes(item)
	if err != nil {
		return nil, err
	}
	list, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_LIST_ELEM | unix.NLA_F_NESTED, Data: elem}})
	if err != nil {
		return nil, err
	}
	return netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: append([]byte(table), 0)},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: append([]byte(LeaseSetName), 0)},
		{Type: unix.NFTA_SET_ELEM_LIST_ELEMENTS | unix.NLA_F_NESTED, Data: list},
	})
}

// TTL is the lease length each renewal sets.
func (r *LeaseRenewer) TTL() time.Duration { return r.ttl }

// Renew commits the renewal batch and waits for its acknowledgement (the
// kernel handles a batch within the write, so the answer is already
// queued when the write returns).
func (r *LeaseRenewer) Renew() error {
	if err := r.commit(&r.renew); err != nil {
		return fmt.Errorf("dataplane: renewing the owner lease: %w", err)
	}
	return nil
}

// Drop ends the lease at once, as Lease.Drop does: the host stops
// answering ARP / NDP for the VIP with the next packet.
func (r *LeaseRenewer) Drop() error {
	if err := r.commit(&r.drop); err != nil {
		return fmt.Errorf("dataplane: dropping the owner lease: %w", err)
	}
	return nil
}

func (r *LeaseRenewer) commit(b *leaseBatch) error {
	for _, at := range b.seqAt {
		r.seq++
		binary.NativeEndian.PutUint32(b.msg[at:], r.seq)
	}
	r.lastSeq = r.seq - 1 // the last element message; the batch end follows it
	r.drain()
	if _, err := unix.Write(r.fd, b.msg); err != nil {
		return err
	}
	var first error
	for {
		n, err := unix.Read(r.fd, r.rbuf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if first == nil {
				first = fmt.Errorf("no acknowledgement: %w", err)
			}
			return first
		}
		done, err := r.parse(r.rbuf[:n])
		if err != nil && first == nil {
			first = err
		}
		if done {
			return first
		}
	}
}

// drain discards answers left from an earlier renewal.
func (r *LeaseRenewer) drain() {
	for {
		if _, err := unix.Read(r.fd, r.rbuf[:]); err != nil && err != unix.EINTR {
			return
		}
	}
}

// parse reads netlink errors and acknowledgements; done once the last
// message's acknowledgement is seen.
func (r *LeaseRenewer) parse(b []byte) (done bool, err error) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		typ := binary.NativeEndian.Uint16(b[4:])
		seq := binary.NativeEndian.Uint32(b[8:])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return done, errors.New("malformed netlink answer")
		}
		if typ == unix.NLMSG_ERROR && l >= unix.NLMSG_HDRLEN+4 {
			if e := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); e != 0 && err == nil {
				err = fmt.Errorf("%w (are the lease tables installed?)", unix.Errno(-e))
			}
			if seq == r.lastSeq {
				done = true
			}
		}
		b = b[min(nlmsgAlign(l), len(b)):]
	}
	return done, err
}

// Close closes the socket.
func (r *LeaseRenewer) Close() error { return unix.Close(r.fd) }
