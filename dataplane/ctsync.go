package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Connection sync: the VIP owner reads its conntrack entries of flows
// through the VIP (a dump, then new/update/destroy events) and the peers
// create the same entries in their own tables, so an established flow
// keeps going when the VIP moves. A peer creates each entry with the reply
// tuple set to the plain inverse of the original and the NAT given as
// CTA_NAT_DST (the backend) and CTA_NAT_SRC (the address and port the
// owner's SNAT chose), so the kernel sets up the NAT binding itself;
// ti-mo/conntrack's Flow cannot send those attributes, so the request is
// built here with ti-mo/netfilter.

// SyncOp says what a SyncEntry asks of a peer.
type SyncOp uint8

// The sync operations.
const (
	// SyncUpsert creates the entry, or refreshes its state and timeout.
	SyncUpsert SyncOp = 1
	// SyncDelete deletes the entry.
	SyncDelete SyncOp = 2
)

func (o SyncOp) String() string {
	switch o {
	case SyncUpsert:
		return "upsert"
	case SyncDelete:
		return "delete"
	}
	return fmt.Sprintf("SyncOp(%d)", uint8(o))
}

// SyncEntry is one TCP conntrack entry of a flow through a VIP as the
// owner sees it, in the form the peers exchange.
type SyncEntry struct {
	Op SyncOp
	// The original tuple: client -> VIP.
	OrigSrc, OrigDst netip.AddrPort
	// The reply tuple after NAT: backend -> the address and port the
	// owner's SNAT chose (the VIP).
	ReplySrc, ReplyDst netip.AddrPort
	// TCPState is the conntrack TCP state (TCP_CONNTRACK_*; 3 is
	// ESTABLISHED); Timeout the entry's timeout in seconds; Mark its
	// conntrack mark.
	TCPState uint8
	Timeout  uint32
	Mark     uint32
}

// syncWireVersion is the first byte of an encoded SyncEntry.
const syncWireVersion = 1

// syncHeaderLen is the fixed part of the wire form: version, op, address
// length, TCP state, timeout, mark.
const syncHeaderLen = 12

// validate checks that the entry's tuples are complete and of one family.
func (e SyncEntry) validate() error {
	if e.Op != SyncUpsert && e.Op != SyncDelete {
		return fmt.Errorf("sync entry: unknown op %d", e.Op)
	}
	ends := []netip.AddrPort{e.OrigSrc, e.OrigDst, e.ReplySrc, e.ReplyDst}
	is4 := e.OrigSrc.Addr().Unmap().Is4()
	for _, a := range ends {
		if !a.IsValid() {
			return errors.New("sync entry: incomplete tuples")
		}
		if a.Addr().Unmap().Is4() != is4 {
			return errors.New("sync entry: tuples mix address families")
		}
	}
	return nil
}

// MarshalBinary encodes the entry in its compact wire form: 36 bytes for
// IPv4, 84 for IPv6.
func (e SyncEntry) MarshalBinary() ([]byte, error) {
	return e.AppendBinary(make([]byte, 0, syncHeaderLen+4*(16+2)))
}

// AppendBinary appends the entry's wire form (MarshalBinary's) to b.
func (e SyncEntry) AppendBinary(b []byte) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	alen := 16
	if e.OrigSrc.Addr().Unmap().Is4() {
		alen = 4
	}
	b = append(b, syncWireVersion, byte(e.Op), byte(alen), e.TCPState)
	b = binary.BigEndian.AppendUint32(b, e.Timeout)
	b = binary.BigEndian.AppendUint32(b, e.Mark)
	for _, ap := range []netip.AddrPort{e.OrigSrc, e.OrigDst, e.ReplySrc, e.ReplyDst} {
		a := ap.Addr().Unmap()
		if alen == 4 {
			v := a.As4()
			b = append(b, v[:]...)
		} else {
			v := a.As16()
			b = append(b, v[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, ap.Port())
	}
	return b, nil
}

// UnmarshalBinary decodes an entry encoded by MarshalBinary.
func (e *SyncEntry) UnmarshalBinary(b []byte) error {
	if len(b) < syncHeaderLen {
		return fmt.Errorf("sync entry: %d bytes, too short", len(b))
	}
	if b[0] != syncWireVersion {
		return fmt.Errorf("sync entry: wire version %d, want %d", b[0], syncWireVersion)
	}
	alen := int(b[2])
	if alen != 4 && alen != 16 {
		return fmt.Errorf("sync entry: address length %d", alen)
	}
	if want := syncHeaderLen + 4*(alen+2); len(b) != want {
		return fmt.Errorf("sync entry: %d bytes, want %d", len(b), want)
	}
	out := SyncEntry{
		Op:       SyncOp(b[1]),
		TCPState: b[3],
		Timeout:  binary.BigEndian.Uint32(b[4:]),
		Mark:     binary.BigEndian.Uint32(b[8:]),
	}
	var ends [4]netip.AddrPort
	p := b[syncHeaderLen:]
	for i := range ends {
		a, _ := netip.AddrFromSlice(p[:alen])
		ends[i] = netip.AddrPortFrom(a, binary.BigEndian.Uint16(p[alen:]))
		p = p[alen+2:]
	}
	out.OrigSrc, out.OrigDst, out.ReplySrc, out.ReplyDst = ends[0], ends[1], ends[2], ends[3]
	if err := out.validate(); err != nil {
		return err
	}
	*e = out
	return nil
}

// Conntrack TCP states (TCP_CONNTRACK_*) that matter to the sync.
const (
	tcpStateSynSent  = 1
	tcpStateSynRecv  = 2
	tcpStateSynSent2 = 9
)

// Syncable reports whether an entry in TCP state st is worth creating on
// a peer. A flow still in its handshake (SYN_SENT, SYN_RECV, SYN_SENT2)
// is not, as conntrackd does not sync those either: created in that
// state on a peer, every packet of the now established flow is invalid
// there, and if the update that says ESTABLISHED never comes (the owner
// died) or comes first (reordered), the flow is dead after a VIP move.
// Left alone, the peer picks the flow up from its next packet with the
// same NAT (the same slot map, SNAT to the VIP), and the owner's update
// to ESTABLISHED brings the entry anyway. An unknown state (0) is
// syncable: the owner did not say.
func Syncable(st uint8) bool {
	return st != tcpStateSynSent && st != tcpStateSynRecv && st != tcpStateSynSent2
}

// syncEntryOf turns an owner's flow into a SyncEntry if it is a TCP flow
// to one of vips that was DNATed (its reply comes from elsewhere) and,
// for an upsert, Syncable.
func syncEntryOf(op SyncOp, f conntrack.Flow, vips []netip.AddrPort) (SyncEntry, bool) {
	if f.TupleOrig.Proto.Protocol != unix.IPPROTO_TCP || !slices.Contains(vips, origDst(f)) || replySrc(f) == origDst(f) {
		return SyncEntry{}, false
	}
	if op == SyncUpsert && f.ProtoInfo.TCP != nil && !Syncable(f.ProtoInfo.TCP.State) {
		return SyncEntry{}, false
	}
	e := SyncEntry{
		Op:       op,
		OrigSrc:  netip.AddrPortFrom(f.TupleOrig.IP.SourceAddress.Unmap(), f.TupleOrig.Proto.SourcePort),
		OrigDst:  origDst(f),
		ReplySrc: replySrc(f),
		ReplyDst: netip.AddrPortFrom(f.TupleReply.IP.DestinationAddress.Unmap(), f.TupleReply.Proto.DestinationPort),
		Timeout:  f.Timeout,
		Mark:     f.Mark,
	}
	if f.ProtoInfo.TCP != nil {
		e.TCPState = f.ProtoInfo.TCP.State
	}
	return e, e.validate() == nil
}

// SyncDump returns the TCP entries of flows through vips that were DNATed,
// as SyncUpsert entries: the full state an owner sends a joining peer.
func (c *Conntrack) SyncDump(ctx context.Context, vips []netip.AddrPort) ([]SyncEntry, error) {
	flows, err := c.match(ctx, func(f conntrack.Flow) bool {
		_, ok := syncEntryOf(SyncUpsert, f, vips)
		return ok
	})
	if err != nil {
		return nil, err
	}
	out := make([]SyncEntry, 0, len(flows))
	for _, f := range flows {
		e, _ := syncEntryOf(SyncUpsert, f, vips)
		out = append(out, e)
	}
	return out, nil
}

// WatchSync subscribes to the namespace's conntrack events and calls fn
// for every change of a DNATed TCP flow through vips: new entries and
// TCP state changes as SyncUpsert, destroyed entries as SyncDelete. fn runs
// on one goroutine, in event order. WatchSync returns when ctx ends (nil)
// or the subscription fails (for example the socket overran: the caller
// then starts again with a SyncDump).
func (c *Conntrack) WatchSync(ctx context.Context, vips []netip.AddrPort, fn func(SyncEntry)) error {
	ev, err := c.SubscribeSync(vips)
	if err != nil {
		return err
	}
	defer ev.Close()
	return ev.Read(ctx, fn)
}

// SyncEvents is a subscription to the conntrack events of flows through
// some VIPs (ctsync_events.go): events from its start are kept until
// read.
type SyncEvents struct {
	nl   *netlink.Conn
	vips []netip.AddrPort
}

// SubscribeSync subscribes to the events of flows through vips; Read
// them, then Close.
func (c *Conntrack) SubscribeSync(vips []netip.AddrPort) (*SyncEvents, error) {
	nl, err := c.openSyncEvents(vips, true)
	if err != nil {
		return nil, err
	}
	return &SyncEvents{nl: nl, vips: slices.Clone(vips)}, nil
}

// Read calls fn for every change of a DNATed TCP flow through the VIPs,
// as WatchSync does, until ctx ends (nil) or the subscription fails.
func (ev *SyncEvents) Read(ctx context.Context, fn func(SyncEntry)) error {
	return readSyncEvents(ctx, ev.nl, ev.vips, fn, nil)
}

// Close ends the subscription.
func (ev *SyncEvents) Close() error { return ev.nl.Close() }

// Pause (true) makes the socket filter drop every event, so none wakes
// the reader, while the subscription stays (the kernel reports only the
// flows created while someone listens); Pause(false) keeps the VIPs'
// events again.
func (ev *SyncEvents) Pause(on bool) error {
	prog := eventFilter(ev.vips)
	if on {
		prog = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	}
	return attachFilter(ev.nl, prog)
}

// ApplySynced applies an entry received from the owner: SyncUpsert
// creates it (CreateSynced), SyncDelete deletes it.
func (c *Conntrack) ApplySynced(ctx context.Context, e SyncEntry) error {
	if e.Op == SyncDelete {
		return c.DeleteSynced(ctx, e)
	}
	return c.CreateSynced(ctx, e)
}

// DeleteSynced deletes the entry with e's original tuple; a missing entry
// is not an error.
func (c *Conntrack) DeleteSynced(ctx context.Context, e SyncEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := e.validate(); err != nil {
		return err
	}
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	f := conntrack.NewFlow(unix.IPPROTO_TCP, 0, e.OrigSrc.Addr(), e.OrigDst.Addr(), e.OrigSrc.Port(), e.OrigDst.Port(), 0, 0)
	if err := conn.Delete(f); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("deleting synced entry %v -> %v: %w", e.OrigSrc, e.OrigDst, err)
	}
	return nil
}

// syncedStatus is the status a synced entry is created with (the kernel
// keeps CONFIRMED to itself and adds the NAT bits).
const syncedStatus = conntrack.StatusAssured | conntrack.StatusSeenReply | conntrack.StatusConfirmed

// defaultSyncTimeout is used when the owner's entry had no timeout.
const defaultSyncTimeout = 120

// CreateSynced creates e in this namespace's table: the original tuple,
// the reply tuple as the plain inverse of the original, the NAT as
// CTA_NAT_DST (e.ReplySrc, the backend) and CTA_NAT_SRC (e.ReplyDst, the
// VIP and port), status ASSURED|SEEN_REPLY, e's TCP state, timeout and
// mark, and the TCP flags the kernel gives a flow it picks up mid-stream
// (SACK_PERM|BE_LIBERAL: the entry has no window history). If the entry
// exists already its TCP state and timeout are refreshed (the NAT of an
// existing entry cannot change).
//
// An entry in a handshake state (not Syncable) is ignored: never created,
// and never the state an existing entry is refreshed to.
func (c *Conntrack) CreateSynced(ctx context.Context, e SyncEntry) error {
	if !Syncable(e.TCPState) {
		return nil
	}
	err := c.createSynced(ctx, e)
	if errors.Is(err, unix.EEXIST) {
		return c.createOrResolve(ctx, e, true) // ctclash.go
	}
	return err
}

// createSynced sends the create; an existing entry is an error wrapping
// EEXIST.
func (c *Conntrack) createSynced(ctx context.Context, e SyncEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := e.validate(); err != nil {
		return err
	}
	conn, err := c.dialNetfilter()
	if err != nil {
		return err
	}
	defer conn.Close()
	msg, err := syncedMessage(e, true)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		_, err = conn.Query(msg)
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
		return fmt.Errorf("creating synced entry %v -> %v via %v: %w", e.OrigSrc, e.OrigDst, e.ReplySrc, err)
	}
	return nil
}

// AddSynced creates e like CreateSynced but leaves an existing entry
// as it is: for a node that forwards the flows itself (the VIP owner),
// whose own entries a peer's copy must not overwrite.
func (c *Conntrack) AddSynced(ctx context.Context, e SyncEntry) error {
	if !Syncable(e.TCPState) {
		return nil
	}
	err := c.createSynced(ctx, e)
	if errors.Is(err, unix.EEXIST) {
		return c.createOrResolve(ctx, e, false) // ctclash.go
	}
	return err
}

// refreshSynced updates the TCP state and timeout of an existing entry.
// An entry gone meanwhile is no error.
func (c *Conntrack) refreshSynced(e SyncEntry) error {
	if err := c.refreshExisting(e); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("refreshing synced entry %v -> %v: %w", e.OrigSrc, e.OrigDst, err)
	}
	return nil
}

func syncTimeout(e SyncEntry) uint32 {
	if e.Timeout == 0 {
		return defaultSyncTimeout
	}
	return e.Timeout
}

func (c *Conntrack) dialNetfilter() (*netfilter.Conn, error) {
	cfg := &netlink.Config{}
	if c.ns.fd >= 0 {
		cfg.NetNS = c.ns.fd
	}
	conn, err := netfilter.Dial(cfg)
	if err != nil {
		return nil, fmt.Errorf("dialing ctnetlink: %w", err)
	}
	return conn, nil
}

// ctnetlink attribute numbers (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaStatus     = 3
	ctaProtoInfo  = 4
	ctaNatSrc     = 6
	ctaTimeout    = 7
	ctaMark       = 8
	ctaNatDst     = 13

	ctaTupleIP    = 1
	ctaTupleProto = 2
	ctaIPv4Src    = 1
	ctaIPv4Dst    = 2
	ctaIPv6Src    = 3
	ctaIPv6Dst    = 4
	ctaProtoNum   = 1
	ctaProtoSrc   = 2
	ctaProtoDst   = 3

	ctaProtoInfoTCP              = 1
	ctaProtoInfoTCPState         = 1
	ctaProtoInfoTCPFlagsOriginal = 4
	ctaProtoInfoTCPFlagsReply    = 5

	// tcpFlagsLiberal are IP_CT_TCP_FLAG_SACK_PERM|IP_CT_TCP_FLAG_BE_LIBERAL,
	// what the kernel sets on a TCP flow it picks up mid-stream: a synced
	// entry has no window history (td_maxwin 0), so its first packets must
	// not be judged out of window (INVALID, not NATed, then reset).
	tcpFlagsLiberal = 0x02 | 0x08

	ctaNatV4MinIP  = 1
	ctaNatV4MaxIP  = 2
	ctaNatProto    = 3
	ctaNatV6MinIP  = 4
	ctaNatV6MaxIP  = 5
	ctaNatPortMin  = 1
	ctaNatPortMax  = 2
	ctnetlinkNewCT = 0 // IPCTNL_MSG_CT_NEW
)

// syncedMessage builds the IPCTNL_MSG_CT_NEW request for e: a create
// (tuples, status, NAT, timeout, TCP state and flags, mark) or, for an
// existing entry, an update of its timeout and TCP state and flags (the
// kernel refuses NAT changes on an existing entry).
func syncedMessage(e SyncEntry, create bool) (netlink.Message, error) {
	attrs := []netfilter.Attribute{
		tupleAttr(ctaTupleOrig, e.OrigSrc, e.OrigDst),
		u32Attr(ctaTimeout, syncTimeout(e)),
	}
	flags := netlink.Request | netlink.Acknowledge
	if create {
		flags |= netlink.Excl | netlink.Create
		attrs = append(attrs,
			tupleAttr(ctaTupleReply, e.OrigDst, e.OrigSrc), // the plain inverse
			u32Attr(ctaStatus, uint32(syncedStatus)),
			natAttr(ctaNatDst, e.ReplySrc),
			natAttr(ctaNatSrc, e.ReplyDst))
		if e.Mark != 0 {
			attrs = append(attrs, u32Attr(ctaMark, e.Mark))
		}
	}
	tcp := []netfilter.Attribute{
		{Type: ctaProtoInfoTCPFlagsOriginal, Data: []byte{tcpFlagsLiberal, tcpFlagsLiberal}},
		{Type: ctaProtoInfoTCPFlagsReply, Data: []byte{tcpFlagsLiberal, tcpFlagsLiberal}},
	}
	if e.TCPState != 0 {
		tcp = append([]netfilter.Attribute{{Type: ctaProtoInfoTCPState, Data: []byte{e.TCPState}}}, tcp...)
	}
	attrs = append(attrs, netfilter.Attribute{Type: ctaProtoInfo, Nested: true, Children: []netfilter.Attribute{
		{Type: ctaProtoInfoTCP, Nested: true, Children: tcp},
	}})
	msg, err := ctMessage(ctnetlinkNewCT, e, flags, attrs...)
	if err != nil {
		return netlink.Message{}, fmt.Errorf("encoding synced entry: %w", err)
	}
	return msg, nil
}

func u32Attr(typ uint16, v uint32) netfilter.Attribute {
	a := netfilter.Attribute{Type: typ}
	a.PutUint32(v)
	return a
}

func addrBytes(a netip.Addr) []byte {
	a = a.Unmap()
	if a.Is4() {
		v := a.As4()
		return v[:]
	}
	v := a.As16()
	return v[:]
}

// tupleAttr is a TCP tuple src -> dst.
func tupleAttr(typ uint16, src, dst netip.AddrPort) netfilter.Attribute {
	srcType, dstType := uint16(ctaIPv6Src), uint16(ctaIPv6Dst)
	if src.Addr().Unmap().Is4() {
		srcType, dstType = ctaIPv4Src, ctaIPv4Dst
	}
	return netfilter.Attribute{Type: typ, Nested: true, Children: []netfilter.Attribute{
		{Type: ctaTupleIP, Nested: true, Children: []netfilter.Attribute{
			{Type: srcType, Data: addrBytes(src.Addr())},
			{Type: dstType, Data: addrBytes(dst.Addr())},
		}},
		{Type: ctaTupleProto, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaProtoNum, Data: []byte{unix.IPPROTO_TCP}},
			{Type: ctaProtoSrc, Data: netfilter.Uint16Bytes(src.Port())},
			{Type: ctaProtoDst, Data: netfilter.Uint16Bytes(dst.Port())},
		}},
	}}
}

// natAttr is a NAT to exactly to (CTA_NAT_SRC or CTA_NAT_DST).
func natAttr(typ uint16, to netip.AddrPort) netfilter.Attribute {
	minT, maxT := uint16(ctaNatV6MinIP), uint16(ctaNatV6MaxIP)
	if to.Addr().Unmap().Is4() {
		minT, maxT = ctaNatV4MinIP, ctaNatV4MaxIP
	}
	return netfilter.Attribute{Type: typ, Nested: true, Children: []netfilter.Attribute{
		{Type: minT, Data: addrBytes(to.Addr())},
		{Type: maxT, Data: addrBytes(to.Addr())},
		{Type: ctaNatProto, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaNatPortMin, Data: netfilter.Uint16Bytes(to.Port())},
			{Type: ctaNatPortMax, Data: netfilter.Uint16Bytes(to.Port())},
		}},
	}}
}
