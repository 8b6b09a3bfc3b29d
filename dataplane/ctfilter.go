package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// A conntrack dump filtered in the kernel (CTA_FILTER, Linux 5.8 and
// later): the kernel walks its table and sends only the TCP entries of one
// service (original destination VIP:port) and, optionally, one backend
// (reply source), instead of every entry of the family for the daemon to
// decode and throw away. For IPv6 the kernel matches the ports only and
// the addresses are matched here (filterRequest says why). ti-mo/conntrack's Filter knows only mark, status
// and zone, so the request and the decoding of the few attributes a cut
// needs (the tuples and the zone) are here.

// ctEntry is what a cut needs of one conntrack entry: its tuples and zone.
type ctEntry struct {
	origSrc, origDst   netip.AddrPort
	replySrc, replyDst netip.AddrPort
	zone               uint16
}

// ctMatch selects entries: the original destination is service and, when
// backend is valid, the reply source is backend. A zero
// service matches any original destination.
type ctMatch struct {
	service, backend netip.AddrPort
}

func (m ctMatch) is4() bool {
	if m.service.IsValid() {
		return m.service.Addr().Unmap().Is4()
	}
	return m.backend.Addr().Unmap().Is4()
}

// keeps reports whether e is selected by m (checked again here: a kernel
// without CTA_FILTER ignores the filter and sends the whole table, and
// for IPv6 the kernel does not match the addresses).
func (m ctMatch) keeps(e ctEntry) bool {
	return (!m.service.IsValid() || e.origDst == m.service) && (!m.backend.IsValid() || e.replySrc == m.backend)
}

// ctnetlink numbers used here (linux/netfilter/nfnetlink_conntrack.h; the
// CTA_FILTER_F_* flags are the kernel's nf_conntrack_netlink.c).
const (
	ctfMsgGet    = 1 // IPCTNL_MSG_CT_GET
	ctfMsgDelete = 2 // IPCTNL_MSG_CT_DELETE

	ctfTupleOrig  = 1  // CTA_TUPLE_ORIG
	ctfTupleReply = 2  // CTA_TUPLE_REPLY
	ctfZone       = 18 // CTA_ZONE
	ctfFilter     = 25 // CTA_FILTER

	ctfTupleIP    = 1 // CTA_TUPLE_IP
	ctfTupleProto = 2 // CTA_TUPLE_PROTO
	ctfTupleZone  = 3 // CTA_TUPLE_ZONE
	ctfIPv4Src    = 1
	ctfIPv4Dst    = 2
	ctfIPv6Src    = 3
	ctfIPv6Dst    = 4
	ctfProtoNum   = 1
	ctfProtoSrc   = 2
	ctfProtoDst   = 3

	ctfFilterOrigFlags  = 1 // CTA_FILTER_ORIG_FLAGS
	ctfFilterReplyFlags = 2 // CTA_FILTER_REPLY_FLAGS

	ctfFlagIPSrc    = 1 << 0 // CTA_FILTER_F_CTA_IP_SRC
	ctfFlagIPDst    = 1 << 1 // CTA_FILTER_F_CTA_IP_DST
	ctfFlagProtoNum = 1 << 3 // CTA_FILTER_F_CTA_PROTO_NUM
	ctfFlagSrcPort  = 1 << 4 // CTA_FILTER_F_CTA_PROTO_SRC_PORT
	ctfFlagDstPort  = 1 << 5 // CTA_FILTER_F_CTA_PROTO_DST_PORT
)

// dialNetlink opens a netfilter netlink socket in the Conntrack's
// namespace.
func (c *Conntrack) dialNetlink() (*netlink.Conn, error) {
	cfg := &netlink.Config{}
	if c.ns.fd >= 0 {
		cfg.NetNS = c.ns.fd
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("dialing ctnetlink: %w", err)
	}
	return conn, nil
}

// dumpMatching returns the TCP entries m selects, filtered by the kernel.
func (c *Conntrack) dumpMatching(ctx context.Context, conn *netlink.Conn, m ctMatch) ([]ctEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req, err := filterRequest(m)
	if err != nil {
		return nil, err
	}
	msgs, err := conn.Execute(req)
	if err != nil {
		return nil, fmt.Errorf("dumping conntrack entries of %v: %w", m, err)
	}
	out := make([]ctEntry, 0, len(msgs))
	for _, msg := range msgs {
		e, ok, err := decodeEntry(msg)
		if err != nil {
			return nil, fmt.Errorf("decoding a conntrack entry: %w", err)
		}
		if ok && m.keeps(e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m ctMatch) String() string {
	switch {
	case !m.backend.IsValid():
		return "service " + m.service.String()
	case !m.service.IsValid():
		return "backend " + m.backend.String()
	}
	return "backend " + m.backend.String() + " via " + m.service.String()
}

// filterRequest builds the dump request: family of m, TCP, CTA_FILTER
// with the original destination (when a service is given) and the reply
// source (when a backend is given).
//
// For IPv6 the kernel is asked to match the protocol and ports only; the
// addresses are matched here (ctMatch.keeps), because the kernel's IPv6
// address test is inverted: ctnetlink_filter_match_tuple
// (net/netfilter/nf_conntrack_netlink.c), case NFPROTO_IPV6, drops the
// entry when `!ipv6_addr_cmp(&filter_tuple->dst.u3.in6,
// &ct_tuple->dst.u3.in6)` (and the same for src), but ipv6_addr_cmp is a
// memcmp, 0 when the addresses are equal: the kernel drops exactly the
// entries whose address matches and sends the others (seen on Linux
// 6.18: a filter on VIP6:6443 brings the entries to other addresses on
// port 6443 and none through the VIP). The IPv4 case compares with !=
// and is right. The request is well formed for both families (family in
// nfgenmsg, CTA_IP_V6_* in the tuple, the flags as the kernel reads them
// in ctnetlink_parse_tuple_filter).
func filterRequest(m ctMatch) (netlink.Message, error) {
	if !m.service.IsValid() && !m.backend.IsValid() {
		return netlink.Message{}, errors.New("conntrack filter: neither a service nor a backend")
	}
	fam := netfilter.ProtoIPv6
	var dstIP, srcIP uint32 // no kernel address match for IPv6 (above)
	if m.is4() {
		fam = netfilter.ProtoIPv4
		dstIP, srcIP = ctfFlagIPDst, ctfFlagIPSrc
	}
	var attrs []netfilter.Attribute
	filter := netfilter.Attribute{Type: ctfFilter, Nested: true}
	if m.service.IsValid() {
		attrs = append(attrs, filterTuple(ctfTupleOrig, netip.AddrPort{}, m.service))
		filter.Children = append(filter.Children, nativeU32(ctfFilterOrigFlags, dstIP|ctfFlagProtoNum|ctfFlagDstPort))
	}
	if m.backend.IsValid() {
		attrs = append(attrs, filterTuple(ctfTupleReply, m.backend, netip.AddrPort{}))
		filter.Children = append(filter.Children, nativeU32(ctfFilterReplyFlags, srcIP|ctfFlagProtoNum|ctfFlagSrcPort))
	}
	attrs = append(attrs, filter)
	msg, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: ctfMsgGet,
		Family:      fam,
		Flags:       netlink.Request | netlink.Dump,
	}, attrs)
	if err != nil {
		return netlink.Message{}, fmt.Errorf("encoding a conntrack filter: %w", err)
	}
	return msg, nil
}

// nativeU32 is a u32 attribute in host byte order (the CTA_FILTER flags
// are NLA_U32, unlike most ctnetlink numbers).
func nativeU32(typ uint16, v uint32) netfilter.Attribute {
	return netfilter.Attribute{Type: typ, Data: binary.NativeEndian.AppendUint32(nil, v)}
}

// filterTuple is a TCP tuple src -> dst; an invalid end is sent as the
// zero address and port of the other end's family (the filter flags say
// which fields count).
func filterTuple(typ uint16, src, dst netip.AddrPort) netfilter.Attribute {
	is4 := src.Addr().Unmap().Is4() || dst.Addr().Unmap().Is4()
	srcType, dstType := uint16(ctfIPv6Src), uint16(ctfIPv6Dst)
	zero := netip.IPv6Unspecified()
	if is4 {
		srcType, dstType = ctfIPv4Src, ctfIPv4Dst
		zero = netip.IPv4Unspecified()
	}
	addr := func(ap netip.AddrPort) []byte {
		if !ap.IsValid() {
			return zero.AsSlice()
		}
		return ap.Addr().Unmap().AsSlice()
	}
	return netfilter.Attribute{Type: typ, Nested: true, Children: []netfilter.Attribute{
		{Type: ctfTupleIP, Nested: true, Children: []netfilter.Attribute{
			{Type: srcType, Data: addr(src)},
			{Type: dstType, Data: addr(dst)},
		}},
		{Type: ctfTupleProto, Nested: true, Children: []netfilter.Attribute{
			{Type: ctfProtoNum, Data: []byte{unix.IPPROTO_TCP}},
			{Type: ctfProtoSrc, Data: netfilter.Uint16Bytes(src.Port())},
			{Type: ctfProtoDst, Data: netfilter.Uint16Bytes(dst.Port())},
		}},
	}}
}

// deleteRequest builds the delete of e by its original tuple and zone.
func deleteRequest(e ctEntry) (netlink.Message, error) {
	fam := netfilter.ProtoIPv6
	if e.origSrc.Addr().Is4() {
		fam = netfilter.ProtoIPv4
	}
	attrs := []netfilter.Attribute{filterTuple(ctfTupleOrig, e.origSrc, e.origDst)}
	if e.zone != 0 {
		attrs = append(attrs, netfilter.Attribute{Type: ctfZone, Data: netfilter.Uint16Bytes(e.zone)})
	}
	msg, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: ctfMsgDelete,
		Family:      fam,
		Flags:       netlink.Request | netlink.Acknowledge,
	}, attrs)
	if err != nil {
		return netlink.Message{}, fmt.Errorf("encoding a conntrack delete: %w", err)
	}
	return msg, nil
}

// decodeEntry reads the tuples and zone of one dumped entry; ok is false
// for an entry that is not TCP.
func decodeEntry(msg netlink.Message) (e ctEntry, ok bool, err error) {
	if len(msg.Data) < 4 {
		return e, false, fmt.Errorf("message of %d bytes", len(msg.Data))
	}
	ad, err := netlink.NewAttributeDecoder(msg.Data[4:])
	if err != nil {
		return e, false, err
	}
	tcpOrig, tcpReply := false, false
	for ad.Next() {
		switch ad.Type() {
		case ctfTupleOrig:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				e.origSrc, e.origDst, tcpOrig = decodeTuple(nad)
				return nil
			})
		case ctfTupleReply:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				e.replySrc, e.replyDst, tcpReply = decodeTuple(nad)
				return nil
			})
		case ctfZone:
			if b := ad.Bytes(); len(b) == 2 {
				e.zone = binary.BigEndian.Uint16(b)
			}
		}
	}
	if err := ad.Err(); err != nil {
		return e, false, err
	}
	return e, tcpOrig && tcpReply && e.origSrc.IsValid() && e.replySrc.IsValid(), nil
}

// decodeTuple reads a CTA_TUPLE_* nest: its ends, and whether it is TCP.
func decodeTuple(ad *netlink.AttributeDecoder) (src, dst netip.AddrPort, tcp bool) {
	var sa, da netip.Addr
	var sp, dp uint16
	for ad.Next() {
		switch ad.Type() {
		case ctfTupleIP:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					a, _ := netip.AddrFromSlice(nad.Bytes())
					switch nad.Type() {
					case ctfIPv4Src, ctfIPv6Src:
						sa = a
					case ctfIPv4Dst, ctfIPv6Dst:
						da = a
					}
				}
				return nil
			})
		case ctfTupleProto:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					b := nad.Bytes()
					switch nad.Type() {
					case ctfProtoNum:
						tcp = len(b) == 1 && b[0] == unix.IPPROTO_TCP
					case ctfProtoSrc:
						if len(b) == 2 {
							sp = binary.BigEndian.Uint16(b)
						}
					case ctfProtoDst:
						if len(b) == 2 {
							dp = binary.BigEndian.Uint16(b)
						}
					}
				}
				return nil
			})
		case ctfTupleZone:
		}
	}
	if sa.IsValid() {
		src = netip.AddrPortFrom(sa, sp)
	}
	if da.IsValid() {
		dst = netip.AddrPortFrom(da, dp)
	}
	return src, dst, tcp
}
