package preflight

import (
	"bytes"
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Packet is the traffic a chain is judged against. Unset fields are
// unknown: a condition on them is neither true nor false.
type Packet struct {
	IPv6    bool
	Src     netip.Addr
	Dst     netip.Addr
	L4proto uint8
	Sport   uint16
	Dport   uint16
	// CtState is one of expr.CtStateBit*.
	CtState uint32
	IIF     string
	OIF     string
}

// fieldValue returns the packet's bytes for f, or false when unknown.
func (p Packet) fieldValue(f Field) ([]byte, bool) {
	switch f {
	case FieldNfproto:
		if p.IPv6 {
			return []byte{unix.NFPROTO_IPV6}, true
		}
		return []byte{unix.NFPROTO_IPV4}, true
	case FieldL4proto:
		return []byte{p.L4proto}, p.L4proto != 0
	case FieldIPProto:
		return []byte{p.L4proto}, p.L4proto != 0 && !p.IPv6
	case FieldIP6Next:
		// Our traffic carries no extension headers: nexthdr is the L4 protocol.
		return []byte{p.L4proto}, p.L4proto != 0 && p.IPv6
	case FieldIIFName:
		return ifname(p.IIF), p.IIF != ""
	case FieldOIFName:
		return ifname(p.OIF), p.OIF != ""
	case FieldIPSaddr:
		return addrBytes(p.Src, false, p.IPv6)
	case FieldIPDaddr:
		return addrBytes(p.Dst, false, p.IPv6)
	case FieldIP6Saddr:
		return addrBytes(p.Src, true, p.IPv6)
	case FieldIP6Daddr:
		return addrBytes(p.Dst, true, p.IPv6)
	case FieldSport:
		return binary.BigEndian.AppendUint16(nil, p.Sport), p.Sport != 0
	case FieldDport:
		return binary.BigEndian.AppendUint16(nil, p.Dport), p.Dport != 0
	case FieldCtState:
		return binary.NativeEndian.AppendUint32(nil, p.CtState), p.CtState != 0
	}
	return nil, false
}

func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// addrBytes returns a's bytes for an ip (v6 false) or ip6 field, known
// only when the packet is of that family and a is set.
func addrBytes(a netip.Addr, v6, pktV6 bool) ([]byte, bool) {
	if !a.IsValid() || v6 != pktV6 {
		return nil, false
	}
	if v6 {
		b := a.As16()
		return b[:], true
	}
	b := a.Unmap().As4()
	return b[:], true
}

// tri is a three-valued truth.
type tri int

const (
	no tri = iota
	yes
	maybe
)

// eval decides a condition for p.
func (c Cond) eval(p Packet) tri {
	if c.Unknown != "" || c.Field == "" {
		return maybe
	}
	v, ok := p.fieldValue(c.Field)
	if !ok {
		return maybe
	}
	if c.Mask != nil {
		v = apply(v, c.Mask, c.Xor)
	}
	var r bool
	if c.Set != nil {
		r = c.Set.contains(v) == (c.Op == "in")
	} else if c.From != nil {
		in := compare(v, c.From) >= 0 && compare(v, c.To) <= 0
		r = in == (c.Op == "in")
	} else {
		// A shorter compare (an interface-name prefix "eth*") looks at the first bytes.
		cmp := compare(v, c.Data)
		switch c.Op {
		case "==":
			r = cmp == 0
		case "!=":
			r = cmp != 0
		case "<":
			r = cmp < 0
		case "<=":
			r = cmp <= 0
		case ">":
			r = cmp > 0
		case ">=":
			r = cmp >= 0
		default:
			return maybe
		}
	}
	if r {
		return yes
	}
	return no
}

// compare compares v's leading len(d) bytes with d.
func compare(v, d []byte) int {
	if len(v) > len(d) {
		v = v[:len(d)]
	}
	return bytes.Compare(v, d)
}

func apply(v, mask, xor []byte) []byte {
	out := make([]byte, len(v))
	for i := range v {
		var m, x byte = 0xff, 0
		if i < len(mask) {
			m = mask[i]
		}
		if i < len(xor) {
			x = xor[i]
		}
		out[i] = v[i]&m ^ x
	}
	return out
}

// match decides whether all of r's conditions hold for p.
func (r Rule) match(p Packet) tri {
	out := yes
	for _, c := range r.Conds {
		switch c.eval(p) {
		case no:
			return no
		case maybe:
			out = maybe
		}
	}
	return out
}
