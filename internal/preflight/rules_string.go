package preflight

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// String renders the rule roughly as nft would.
func (r Rule) String() string {
	var parts []string
	for _, c := range r.Conds {
		parts = append(parts, c.String())
	}
	v := r.Verdict
	if v == VerdictJump || v == VerdictGoto {
		v += " " + r.Target
	}
	if v != "" {
		parts = append(parts, v)
	}
	return strings.Join(parts, " ")
}

// String renders the condition roughly as nft would.
func (c Cond) String() string {
	if c.Unknown != "" {
		return "<" + c.Unknown + ">"
	}
	val := func(b []byte) string { return formatValue(c.Field, b) }
	if c.Set != nil {
		var elems []string
		for _, v := range c.Set.Values {
			elems = append(elems, val(v))
		}
		for _, r := range c.Set.Ranges {
			if bytes.Equal(r[0], r[1]) {
				elems = append(elems, val(r[0]))
				continue
			}
			elems = append(elems, val(r[0])+"-"+val(r[1]))
		}
		if len(elems) > 8 {
			elems = append(elems[:8], "...")
		}
		neg := ""
		if c.Op == "not in" {
			neg = "!= "
		}
		return fmt.Sprintf("%s %s@%s { %s }", c.Field, neg, c.Set.Name, strings.Join(elems, ", "))
	}
	if c.From != nil {
		return fmt.Sprintf("%s %s%s-%s", c.Field, opPrefix(c.Op), val(c.From), val(c.To))
	}
	if c.Field == FieldCtState && c.Op == "!=" && isZero(c.Data) {
		return fmt.Sprintf("ct state %s", formatCtState(c.Mask))
	}
	if c.Field == FieldCtState && c.Op == "==" && isZero(c.Data) {
		return fmt.Sprintf("ct state != %s", formatCtState(c.Mask))
	}
	if c.Mask != nil && (c.Field == FieldIPSaddr || c.Field == FieldIPDaddr || c.Field == FieldIP6Saddr || c.Field == FieldIP6Daddr) {
		ones := 0
		for _, b := range c.Mask {
			for ; b&0x80 != 0; b <<= 1 {
				ones++
			}
		}
		return fmt.Sprintf("%s %s%s/%d", c.Field, opPrefix(c.Op), val(c.Data), ones)
	}
	return fmt.Sprintf("%s %s%s", c.Field, opPrefix(c.Op), val(c.Data))
}

func opPrefix(op string) string {
	if op == "==" {
		return ""
	}
	return op + " "
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func formatCtState(mask []byte) string {
	if len(mask) != 4 {
		return fmt.Sprintf("%x", mask)
	}
	m := binary.NativeEndian.Uint32(mask)
	var names []string
	for _, s := range []struct {
		bit  uint32
		name string
	}{{expr.CtStateBitINVALID, "invalid"}, {expr.CtStateBitESTABLISHED, "established"}, {expr.CtStateBitRELATED, "related"}, {expr.CtStateBitNEW, "new"}, {expr.CtStateBitUNTRACKED, "untracked"}} {
		if m&s.bit != 0 {
			names = append(names, s.name)
		}
	}
	return strings.Join(names, ",")
}

func formatValue(f Field, b []byte) string {
	switch f {
	case FieldIPSaddr, FieldIPDaddr, FieldIP6Saddr, FieldIP6Daddr:
		if a, ok := netip.AddrFromSlice(b); ok {
			return a.String()
		}
	case FieldSport, FieldDport:
		if len(b) == 2 {
			return fmt.Sprint(binary.BigEndian.Uint16(b))
		}
	case FieldL4proto, FieldIPProto, FieldIP6Next:
		if len(b) == 1 {
			switch b[0] {
			case unix.IPPROTO_TCP:
				return "tcp"
			case unix.IPPROTO_UDP:
				return "udp"
			}
			return fmt.Sprint(b[0])
		}
	case FieldNfproto:
		if len(b) == 1 {
			switch b[0] {
			case unix.NFPROTO_IPV4:
				return "ipv4"
			case unix.NFPROTO_IPV6:
				return "ipv6"
			}
		}
	case FieldIIFName, FieldOIFName:
		return fmt.Sprintf("%q", string(bytes.TrimRight(b, "\x00")))
	}
	return fmt.Sprintf("0x%x", b)
}
