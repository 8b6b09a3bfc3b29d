package preflight

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// Field names a packet property a rule condition reads. The names are the
// nft ones, so messages read like `nft list ruleset`.
type Field string

// The fields decodeRule understands. Anything else makes a condition
// Unknown.
const (
	FieldNfproto  Field = "meta nfproto"
	FieldL4proto  Field = "meta l4proto"
	FieldIPProto  Field = "ip protocol"
	FieldIP6Next  Field = "ip6 nexthdr"
	FieldIIFName  Field = "iifname"
	FieldOIFName  Field = "oifname"
	FieldIPSaddr  Field = "ip saddr"
	FieldIPDaddr  Field = "ip daddr"
	FieldIP6Saddr Field = "ip6 saddr"
	FieldIP6Daddr Field = "ip6 daddr"
	FieldSport    Field = "th sport"
	FieldDport    Field = "th dport"
	FieldCtState  Field = "ct state"
)

// Cond is one decoded match of a rule: (field & Mask) ^ Xor compared with
// Data by Op (or within From..To for a range). A condition the decoder
// cannot follow has Unknown set to what it is ("set lookup", "xt match
// conntrack", ...) and is neither true nor false for any packet.
type Cond struct {
	Field     Field  `json:"field,omitempty"`
	Op        string `json:"op,omitempty"` // "==", "!=", "<", "<=", ">", ">=", "in", "not in"
	Mask, Xor []byte `json:"-"`
	Data      []byte `json:"-"`
	From, To  []byte `json:"-"`
	// Set is the set of an "in" / "not in" lookup (with its name).
	Set     *SetFacts `json:"-"`
	Unknown string    `json:"unknown,omitempty"`
}

// SetFacts is a plain (not concatenated, not a map) nftables set's
// elements: single values and inclusive ranges (from interval sets).
type SetFacts struct {
	Name   string
	Values [][]byte
	Ranges [][2][]byte
}

// contains reports whether v is in the set.
func (s *SetFacts) contains(v []byte) bool {
	for _, e := range s.Values {
		if compare(v, e) == 0 {
			return true
		}
	}
	for _, r := range s.Ranges {
		if compare(v, r[0]) >= 0 && compare(v, r[1]) <= 0 {
			return true
		}
	}
	return false
}

// Verdict kinds of a Rule.
const (
	VerdictNone   = ""       // no verdict: evaluation continues with the next rule
	VerdictAccept = "accept" // ends this hook's base chain for the packet
	VerdictDrop   = "drop"   // drop (and reject, which also drops)
	VerdictJump   = "jump"
	VerdictGoto   = "goto"
	VerdictReturn = "return"
)

// Rule is a decoded nftables rule: all of Conds must hold for Verdict to
// apply.
type Rule struct {
	Handle  uint64 `json:"handle"`
	Conds   []Cond `json:"conds,omitempty"`
	Verdict string `json:"verdict,omitempty"`
	// Target is the chain of a jump or goto.
	Target string `json:"target,omitempty"`
}

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

// regContent is what a register holds while a rule is decoded.
type regContent struct {
	field     Field
	unknown   string
	mask, xor []byte
}

// DecodeRule turns a rule's expressions (as google/nftables reads them
// back) into conditions and a verdict. It is pure. Set lookups are
// undecidable; DecodeRuleSets resolves them.
func DecodeRule(handle uint64, exprs []expr.Any) Rule { return DecodeRuleSets(handle, exprs, nil) }

// DecodeRuleSets is DecodeRule with the table's plain sets by name: a
// lookup in one of them becomes a membership condition.
func DecodeRuleSets(handle uint64, exprs []expr.Any, sets map[string]*SetFacts) Rule {
	r := Rule{Handle: handle}
	regs := map[uint32]regContent{}
	set := func(reg uint32, c regContent) { regs[normReg(reg)] = c }
	get := func(reg uint32) (regContent, bool) {
		c, ok := regs[normReg(reg)]
		return c, ok
	}
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Payload:
			if e.OperationType != expr.PayloadLoad {
				continue // a payload write (mangle) matches nothing
			}
			set(e.DestRegister, regContent{field: payloadField(e), unknown: payloadUnknown(e)})
		case *expr.Meta:
			if e.SourceRegister {
				continue // meta set
			}
			f := metaField(e.Key)
			c := regContent{field: f}
			if f == "" {
				c.unknown = fmt.Sprintf("meta key %d", e.Key)
			}
			set(e.Register, c)
		case *expr.Ct:
			if e.SourceRegister {
				continue // ct set
			}
			c := regContent{field: FieldCtState}
			if e.Key != expr.CtKeySTATE {
				c = regContent{unknown: fmt.Sprintf("ct key %d", e.Key)}
			}
			set(e.Register, c)
		case *expr.Bitwise:
			c, ok := get(e.SourceRegister)
			if !ok || c.mask != nil {
				c = regContent{unknown: "bitwise on " + string(c.field)}
			} else {
				c.mask, c.xor = e.Mask, e.Xor
			}
			set(e.DestRegister, c)
		case *expr.Cmp:
			c, ok := get(e.Register)
			cond := Cond{Field: c.field, Op: cmpOp(e.Op), Mask: c.mask, Xor: c.xor, Data: e.Data, Unknown: c.unknown}
			if !ok {
				cond = Cond{Unknown: "compare of an unloaded register"}
			}
			r.Conds = append(r.Conds, cond)
		case *expr.Range:
			c, ok := get(e.Register)
			op := "in"
			if e.Op == expr.CmpOpNeq {
				op = "not in"
			}
			cond := Cond{Field: c.field, Op: op, Mask: c.mask, Xor: c.xor, From: e.FromData, To: e.ToData, Unknown: c.unknown}
			if !ok {
				cond = Cond{Unknown: "range on an unloaded register"}
			}
			r.Conds = append(r.Conds, cond)
		case *expr.Lookup:
			if e.IsDestRegSet {
				// A map lookup (verdict map or data): the rule's outcome depends on it.
				r.Conds = append(r.Conds, Cond{Unknown: "map @" + e.SetName})
				continue
			}
			c, ok := get(e.SourceRegister)
			set := sets[e.SetName]
			if !ok || c.unknown != "" || set == nil {
				r.Conds = append(r.Conds, Cond{Unknown: "set @" + e.SetName})
				continue
			}
			op := "in"
			if e.Invert {
				op = "not in"
			}
			r.Conds = append(r.Conds, Cond{Field: c.field, Op: op, Mask: c.mask, Xor: c.xor, Set: set})
		case *expr.Match:
			if e.Name == "comment" {
				continue
			}
			if c, ok := xtCtState(e); ok {
				r.Conds = append(r.Conds, c)
				continue
			}
			r.Conds = append(r.Conds, Cond{Unknown: "xt match " + e.Name})
		case *expr.Limit, *expr.Quota, *expr.Connlimit, *expr.Numgen, *expr.Hash, *expr.Fib, *expr.Rt, *expr.Exthdr, *expr.Socket:
			r.Conds = append(r.Conds, Cond{Unknown: fmt.Sprintf("%T", e)[len("*expr."):]})
		case *expr.Verdict:
			switch e.Kind {
			case expr.VerdictAccept:
				r.Verdict = VerdictAccept
			case expr.VerdictDrop:
				r.Verdict = VerdictDrop
			case expr.VerdictJump:
				r.Verdict, r.Target = VerdictJump, e.Chain
			case expr.VerdictGoto:
				r.Verdict, r.Target = VerdictGoto, e.Chain
			case expr.VerdictReturn:
				r.Verdict = VerdictReturn
			default:
				// queue, stolen, continue, break: not a filter decision we judge.
			}
		case *expr.Reject:
			r.Verdict = VerdictDrop
		case *expr.Target:
			switch e.Name {
			case "REJECT":
				r.Verdict = VerdictDrop
			case "DROP":
				r.Verdict = VerdictDrop
			case "ACCEPT":
				r.Verdict = VerdictAccept
			}
		case *expr.Immediate:
			// Data into a register (for nat, a map key, ...), not a match by itself.
		default:
			// counter, log, notrack, nat, masq, dynset, objref...: no match.
		}
	}
	return r
}

// xtCtState decodes iptables' `-m conntrack --ctstate S` and `-m state
// --state S` (as iptables-nft leaves them: xt matches) into a ct state
// condition; their state bits are nft's (INVALID 1, ESTABLISHED 2, RELATED
// 4, NEW 8, UNTRACKED 64). Other conntrack options are not decoded.
func xtCtState(m *expr.Match) (Cond, bool) {
	var mask uint32
	var inv bool
	switch info := m.Info.(type) {
	case *xt.ConntrackMtinfo1:
		if !stateOnly(info.ConntrackMtinfoBase) {
			return Cond{}, false
		}
		mask, inv = uint32(info.StateMask), info.InvertFlags&uint16(xt.ConntrackState) != 0
	case *xt.ConntrackMtinfo2:
		if !stateOnly(info.ConntrackMtinfoBase) {
			return Cond{}, false
		}
		mask, inv = uint32(info.StateMask), info.InvertFlags&uint16(xt.ConntrackState) != 0
	case *xt.ConntrackMtinfo3:
		if !stateOnly(info.ConntrackMtinfoBase) {
			return Cond{}, false
		}
		mask, inv = uint32(info.StateMask), info.InvertFlags&uint16(xt.ConntrackState) != 0
	case *xt.Unknown:
		if m.Name != "state" || len(*info) < 4 {
			return Cond{}, false
		}
		mask = binary.NativeEndian.Uint32((*info)[:4])
	default:
		return Cond{}, false
	}
	op := "!="
	if inv {
		op = "=="
	}
	return Cond{Field: FieldCtState, Op: op, Mask: binary.NativeEndian.AppendUint32(nil, mask), Xor: make([]byte, 4), Data: make([]byte, 4)}, true
}

// stateOnly reports whether a conntrack match tests the state and nothing else.
func stateOnly(b xt.ConntrackMtinfoBase) bool {
	state := uint16(xt.ConntrackState | xt.ConntrackStateAlias)
	return b.MatchFlags&state != 0 && b.MatchFlags&^state == 0
}

// normReg maps the 16-byte registers 1-4 onto the 4-byte registers they
// start (NFT_REG_1 = NFT_REG32_00, NFT_REG_2 = NFT_REG32_04, ...).
func normReg(r uint32) uint32 {
	if r >= unix.NFT_REG_1 && r <= unix.NFT_REG_4 {
		return unix.NFT_REG32_00 + (r-unix.NFT_REG_1)*4
	}
	return r
}

func cmpOp(op expr.CmpOp) string {
	switch op {
	case expr.CmpOpEq:
		return "=="
	case expr.CmpOpNeq:
		return "!="
	case expr.CmpOpLt:
		return "<"
	case expr.CmpOpLte:
		return "<="
	case expr.CmpOpGt:
		return ">"
	case expr.CmpOpGte:
		return ">="
	}
	return fmt.Sprintf("op%d", op)
}

func metaField(k expr.MetaKey) Field {
	switch k {
	case expr.MetaKeyNFPROTO:
		return FieldNfproto
	case expr.MetaKeyL4PROTO:
		return FieldL4proto
	case expr.MetaKeyIIFNAME:
		return FieldIIFName
	case expr.MetaKeyOIFNAME:
		return FieldOIFName
	}
	return ""
}

func payloadField(p *expr.Payload) Field {
	switch p.Base {
	case expr.PayloadBaseNetworkHeader:
		switch {
		case p.Offset == 12 && p.Len == 4:
			return FieldIPSaddr
		case p.Offset == 16 && p.Len == 4:
			return FieldIPDaddr
		case p.Offset == 9 && p.Len == 1:
			return FieldIPProto
		case p.Offset == 8 && p.Len == 16:
			return FieldIP6Saddr
		case p.Offset == 24 && p.Len == 16:
			return FieldIP6Daddr
		case p.Offset == 6 && p.Len == 1:
			return FieldIP6Next
		}
	case expr.PayloadBaseTransportHeader:
		switch {
		case p.Offset == 0 && p.Len == 2:
			return FieldSport
		case p.Offset == 2 && p.Len == 2:
			return FieldDport
		}
	}
	return ""
}

func payloadUnknown(p *expr.Payload) string {
	if payloadField(p) != "" {
		return ""
	}
	return fmt.Sprintf("payload base %d offset %d len %d", p.Base, p.Offset, p.Len)
}

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
