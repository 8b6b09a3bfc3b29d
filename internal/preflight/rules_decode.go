package preflight

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

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
