package dataplane

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// TableName is the name of epconsole's table in every family it uses.
const TableName = "epconsole"

// SlotMapName is the name of the slot map in each table.
const SlotMapName = "slots"

// Chain names in each table.
const (
	ChainPrerouting  = "prerouting"
	ChainOutput      = "output"
	ChainPostrouting = "postrouting"
	ChainInput       = "input"
)

// Registers as the kernel reports them back: a 32-bit register that starts
// a 16-byte register is dumped under the 16-byte name, so rules are built
// with those names and read back unchanged.
const (
	reg1   = unix.NFT_REG_1    // bytes 0..15 (NFT_REG32_00..03)
	reg2   = unix.NFT_REG_2    // bytes 16..31 (NFT_REG32_04..07)
	reg3   = unix.NFT_REG_3    // bytes 32..47
	reg1b4 = unix.NFT_REG32_01 // bytes 4..7
)

// tableSpec is the complete desired content of one family's table, built
// by pure functions from a familyPlan.
type tableSpec struct {
	table  *nftables.Table
	chains []*nftables.Chain
	set    *nftables.Set
	elems  []nftables.SetElement // sorted by slot
	rules  []*nftables.Rule      // in chain order, then rule order
}

// tableFamily returns the nftables family of a plan.
func tableFamily(is6 bool) nftables.TableFamily {
	if is6 {
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyIPv4
}

// buildTable builds the table for one family. The caller ensures p.vip is
// valid.
func buildTable(p familyPlan) tableSpec {
	fam := tableFamily(p.is6())
	t := &nftables.Table{Name: TableName, Family: fam}
	accept := nftables.ChainPolicyAccept
	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept}
	}
	pre := chain(ChainPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	out := chain(ChainOutput, nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	post := chain(ChainPostrouting, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	in := chain(ChainInput, nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter)

	set := slotMap(t, p.is6(), len(p.slots))
	spec := tableSpec{
		table:  t,
		chains: []*nftables.Chain{pre, out, post, in},
		set:    set,
		elems:  slotElements(p),
	}
	vip := p.vip.AsSlice()
	add := func(c *nftables.Chain, comment string, exprs []expr.Any) {
		spec.rules = append(spec.rules, &nftables.Rule{
			Table:    t,
			Chain:    c,
			Exprs:    exprs,
			UserData: ruleComment(byte(fam), comment, exprs),
		})
	}
	svc := fmt.Sprintf("%s", netip.AddrPortFrom(p.vip, p.port))
	add(pre, "dnat "+svc+" via @"+SlotMapName, dnatExprs(p, true))
	add(out, "dnat "+svc+" via @"+SlotMapName+" (local clients)", dnatExprs(p, false))
	add(post, "snat forwarded flows of "+svc+" to the VIP", snatExprs(p))
	add(post, "masquerade local flows of "+svc+" from the VIP", masqExprs(p))

	// Input: on the VIP only the service port (plus replies to the host's
	// own connections from the VIP, and ICMP, which NDP and PMTU need);
	// conntrack-invalid packets dropped, not reset.
	matchVIP := daddrExprs(p.is6(), vip)
	add(in, "vip "+p.vip.String()+": established", concat(matchVIP, ctStateExprs(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept)))
	icmp := byte(unix.IPPROTO_ICMP)
	if p.is6() {
		icmp = unix.IPPROTO_ICMPV6
	}
	add(in, "vip "+p.vip.String()+": icmp", concat(matchVIP, l4protoExprs(icmp), verdict(expr.VerdictAccept)))
	// A packet conntrack calls invalid was not DNATed; accepted, the host
	// would answer it with a RST. During a VIP move that is a flow of the
	// old owner whose synced state is a step behind here (an ACK while
	// the entry still says SYN_SENT): dropped, TCP retransmits once the
	// state has caught up, and the connection lives.
	add(in, "vip "+p.vip.String()+": drop invalid, never reset", concat(matchVIP, ctStateExprs(expr.CtStateBitINVALID), verdict(expr.VerdictDrop)))
	add(in, "vip "+svc+": service port", concat(matchVIP, l4protoExprs(unix.IPPROTO_TCP), dportExprs(p.port), verdict(expr.VerdictAccept)))
	add(in, "vip "+p.vip.String()+": drop other traffic", concat(matchVIP, verdict(expr.VerdictDrop)))
	addColocatedRules(&spec, p, add)
	return spec
}

// slotMap is the map from slot number to backend address . port:
//
//	map slots { typeof numgen inc mod 2 : ip daddr . tcp dport; size 1021; }
//
// The key is the hash expression's output, a host-endian 32-bit integer.
// The value is a concatenation, so backends may listen on other ports than
// the VIP: address, then port padded to 4 bytes.
func slotMap(t *nftables.Table, is6 bool, size int) *nftables.Set {
	addr := nftables.TypeIPAddr
	if is6 {
		addr = nftables.TypeIP6Addr
	}
	id := uint32(1) // fixed, so batches are reproducible; unique per batch
	if is6 {
		id = 2
	}
	return &nftables.Set{
		Table:        t,
		ID:           id,
		Name:         SlotMapName,
		IsMap:        true,
		KeyType:      nftables.TypeInteger,
		KeyByteOrder: binaryutil.NativeEndian,
		DataType:     nftables.MustConcatSetType(addr, nftables.TypeInetService),
		Size:         uint32(size),
	}
}

// slotElements returns the map's elements: one per slot that has a healthy
// backend, in slot order.
func slotElements(p familyPlan) []nftables.SetElement {
	var elems []nftables.SetElement
	for s, b := range p.slots {
		if b < 0 {
			continue
		}
		elems = append(elems, nftables.SetElement{
			Key: slotKey(s),
			Val: backendValue(p.backends[b].Addr),
		})
	}
	return elems
}

func slotKey(s int) []byte { return binaryutil.NativeEndian.PutUint32(uint32(s)) }

// backendValue encodes addr . port as the map stores it.
func backendValue(ap netip.AddrPort) []byte {
	v := ap.Addr().AsSlice()
	return append(v, byte(ap.Port()>>8), byte(ap.Port()), 0, 0)
}

// decodeBackendValue is the inverse of backendValue.
func decodeBackendValue(v []byte) (netip.AddrPort, bool) {
	var n int
	switch len(v) {
	case 8:
		n = 4
	case 20:
		n = 16
	default:
		return netip.AddrPort{}, false
	}
	a, ok := netip.AddrFromSlice(v[:n])
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, binary.BigEndian.Uint16(v[n:n+2])), true
}

// dnatExprs builds, for prerouting (mark true) and output:
//
//	ip daddr VIP tcp dport PORT [ct mark set ct mark | MARK]
//	  dnat ip to jhash ip saddr . tcp sport mod SLOTS seed SEED map @slots
//
// (ip saddr only with BalanceSource). The ct mark is set only once the map
// lookup found a backend, right before the NAT statement.
func dnatExprs(p familyPlan, mark bool) []expr.Any {
	e := concat(daddrExprs(p.is6(), p.vip.AsSlice()), l4protoExprs(unix.IPPROTO_TCP), dportExprs(p.port))
	// [ payload load 4b @ network header + 12 => reg 1 ]  (ip saddr; ip6: 16b @ +8)
	addrLen := uint32(4)
	saddrOff := uint32(12)
	portReg := uint32(reg1b4)
	if p.is6() {
		addrLen, saddrOff, portReg = 16, 8, reg2
	}
	e = append(e, &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: saddrOff, Len: addrLen})
	hashLen := addrLen
	if p.mode == BalanceConnection {
		// [ payload load 2b @ transport header + 0 => reg 9 ]  (tcp sport, after the address)
		e = append(e, &expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2})
		hashLen += 4 // concatenations pad each field to 4 bytes
	}
	e = append(e,
		// [ hash reg 1 = jhash(reg 1, 8) % mod 1021 seed 0x5eed ]
		&expr.Hash{SourceRegister: reg1, DestRegister: reg1, Length: hashLen, Modulus: uint32(len(p.slots)), Seed: p.seed, Type: expr.HashTypeJenkins},
		// [ lookup reg 1 set slots dreg 1 ]  (address in reg 1, port after it)
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: SlotMapName},
	)
	if mark {
		e = append(e, ctMarkSetExprs(p.mark)...)
	}
	// [ nat dnat ip addr_min reg 1 addr_max reg 1 proto_min reg 9 proto_max reg 9 ]
	return append(e, &expr.NAT{
		Type: expr.NATTypeDestNAT, Family: uint32(natFamily(p.is6())),
		RegAddrMin: reg1, RegAddrMax: reg1, RegProtoMin: portReg, RegProtoMax: portReg,
		Specified: true,
	})
}

// snatExprs builds, for postrouting:
//
//	ct mark & MARK != 0 ct status & dnat != 0 snat ip to VIP
//
// Only flows DNATed in prerouting carry the mark; the host's own
// connections (DNATed in output) keep their source address. (A match on
// `ct original ip daddr VIP` would be tighter, but google/nftables v0.3.0
// decodes the kernel's u8 NFTA_CT_DIRECTION as a u32, so rules holding it
// cannot be read back; the table is per family and the mark is set only by
// the DNAT rule of this table's VIP.)
func snatExprs(p familyPlan) []expr.Any {
	vip := p.vip.AsSlice()
	return concat(
		ctMarkTestExprs(p.mark),
		ctStatusExprs(ipsDstNAT),
		[]expr.Any{
			// [ immediate reg 1 VIP ]
			&expr.Immediate{Register: reg1, Data: vip},
			// [ nat snat ip addr_min reg 1 addr_max reg 1 ]
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: uint32(natFamily(p.is6())), RegAddrMin: reg1, RegAddrMax: reg1},
		},
	)
}

// masqExprs builds, for postrouting:
//
//	ip saddr VIP ct mark & MARK == 0 ct status & dnat != 0 masquerade
//
// A process on the VIP owner that connects to VIP:port gets the VIP as its
// source address (the kernel picks the local destination as the source
// before the output DNAT). Left alone, the backend would see the VIP as
// the client and answer to whichever peer owns it, and two owners' local
// flows could collide on the backend. These flows (DNATed in output, so
// without the mark bit) are masqueraded to the node's own address on the
// egress interface, like every other connection the host starts.
func masqExprs(p familyPlan) []expr.Any {
	return concat(
		saddrExprs(p.is6(), p.vip.AsSlice()),
		ctMarkZeroExprs(p.mark),
		ctStatusExprs(ipsDstNAT),
		[]expr.Any{&expr.Masq{}},
	)
}

func natFamily(is6 bool) byte {
	if is6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

// daddrExprs matches ip daddr (ip6 daddr) against addr.
func daddrExprs(is6 bool, addr []byte) []expr.Any {
	if is6 {
		return nhFieldExprs(24, 16, addr)
	}
	return nhFieldExprs(16, 4, addr)
}

// saddrExprs matches ip saddr (ip6 saddr) against addr.
func saddrExprs(is6 bool, addr []byte) []expr.Any {
	if is6 {
		return nhFieldExprs(8, 16, addr)
	}
	return nhFieldExprs(12, 4, addr)
}

// nhFieldExprs matches the n bytes at offset off of the network header
// against data.
func nhFieldExprs(off, n uint32, data []byte) []expr.Any {
	return []expr.Any{
		// [ payload load <n>b @ network header + <off> => reg 1 ]
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		// [ cmp eq reg 1 <data> ]
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: data},
	}
}

// l4protoExprs matches meta l4proto.
func l4protoExprs(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{proto}},
	}
}

// dportExprs matches th dport (after an l4proto match).
func dportExprs(port uint16) []expr.Any { return thPortExprs(2, port) }

// thPortExprs matches the 16-bit transport header field at offset (0:
// sport, 2: dport) against port.
func thPortExprs(offset uint32, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// ctStateExprs matches ct state in bits.
func ctStateExprs(bits uint32) []expr.Any { return ctBitsExprs(expr.CtKeySTATE, bits, expr.CmpOpNeq) }

// ctBitsExprs matches ct key & bits compared with 0 by op (!= 0: some of
// the bits are set; == 0: none is).
func ctBitsExprs(key expr.CtKey, bits uint32, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: key},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: op, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// ctStatusExprs matches ct status & bits != 0.
func ctStatusExprs(bits uint32) []expr.Any { return ctBitsExprs(expr.CtKeySTATUS, bits, expr.CmpOpNeq) }

// ctMarkSetExprs sets one mark bit and keeps the others:
// ct mark set ct mark | bit. It uses reg 3, leaving reg 1 (the backend) alone.
func ctMarkSetExprs(bit uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg3, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: reg3, DestRegister: reg3, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^bit), Xor: binaryutil.NativeEndian.PutUint32(bit)},
		&expr.Ct{Register: reg3, Key: expr.CtKeyMARK, SourceRegister: true},
	}
}

// ctMarkTestExprs matches ct mark & bit != 0.
func ctMarkTestExprs(bit uint32) []expr.Any { return ctBitsExprs(expr.CtKeyMARK, bit, expr.CmpOpNeq) }

// ctMarkZeroExprs matches ct mark & bit == 0.
func ctMarkZeroExprs(bit uint32) []expr.Any { return ctBitsExprs(expr.CtKeyMARK, bit, expr.CmpOpEq) }

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func concat(parts ...[]expr.Any) []expr.Any {
	return slices.Concat(parts...)
}

// ruleComment is the rule's UserData: an nft comment naming the rule and a
// digest of its expressions, so a rule is recognised by its comment and a
// changed rule by its digest.
func ruleComment(fam byte, what string, exprs []expr.Any) []byte {
	h := sha256.New()
	for _, e := range exprs {
		b, err := expr.Marshal(fam, e)
		if err != nil {
			panic(fmt.Sprintf("dataplane: marshalling %T: %v", e, err)) // our own builders only
		}
		h.Write(b)
	}
	sum := hex.EncodeToString(h.Sum(nil)[:6])
	return userdata.AppendString(nil, userdata.TypeComment, "epconsole: "+what+" ["+sum+"]")
}

// RuleComment returns the comment of a rule built by this package, or ""
// when udata carries none.
func RuleComment(udata []byte) string {
	s, _ := userdata.GetString(udata, userdata.TypeComment)
	return s
}

// ipsDstNAT is IPS_DST_NAT of enum ip_conntrack_status.
const ipsDstNAT = 1 << 5
