package preflight

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// Expressions as iptables-nft and nft put them in the kernel (and as
// google/nftables reads them back), each labelled with its nft form.

// ipDaddr: ip daddr a
func ipDaddr(a string) []expr.Any {
	ip := netip.MustParseAddr(a)
	b := ip.AsSlice()
	off := uint32(16)
	if ip.Is6() {
		off = 24
	}
	return []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(b))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// ipSaddrPrefix: ip saddr p (masked)
func ipSaddrPrefix(p string) []expr.Any {
	pf := netip.MustParsePrefix(p)
	mask := make([]byte, 4)
	binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-pf.Bits()))
	a := pf.Addr().As4()
	return []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
	}
}

// tcpDport: meta l4proto tcp tcp dport p
func tcpDport(p uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, p)},
	}
}

// ctState: ct state bits
func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binary.NativeEndian.AppendUint32(nil, bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// iifname: iifname name
func iifname(name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)},
	}
}

func verdict(k expr.VerdictKind, chain string) expr.Any { return &expr.Verdict{Kind: k, Chain: chain} }

func join(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestDecodeRule(t *testing.T) {
	tests := []struct {
		desc  string
		exprs []expr.Any
		want  string
	}{
		{"daddr and dport accept", join(ipDaddr("198.18.7.21"), tcpDport(6443), []expr.Any{&expr.Counter{}, verdict(expr.VerdictAccept, "")}),
			"ip daddr 198.18.7.21 meta l4proto tcp th dport 6443 accept"},
		{"ip6 daddr drop", join(ipDaddr("fd00:198:18:7::21"), []expr.Any{verdict(expr.VerdictDrop, "")}), "ip6 daddr fd00:198:18:7::21 drop"},
		{"saddr prefix", join(ipSaddrPrefix("198.18.7.0/24"), []expr.Any{verdict(expr.VerdictReturn, "")}), "ip saddr 198.18.7.0/24 return"},
		{"ct state", join(ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), []expr.Any{verdict(expr.VerdictAccept, "")}),
			"ct state established,related accept"},
		{"jump", []expr.Any{verdict(expr.VerdictJump, "ufw-before-forward")}, "jump ufw-before-forward"},
		{"goto", []expr.Any{verdict(expr.VerdictGoto, "x")}, "goto x"},
		{"xt match is unknown", []expr.Any{&expr.Match{Name: "recent"}, verdict(expr.VerdictAccept, "")}, "<xt match recent> accept"},
		// -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT (iptables-nft, ufw)
		{"xt conntrack state", []expr.Any{&expr.Match{Name: "conntrack", Rev: 3, Info: &xt.ConntrackMtinfo3{ConntrackMtinfo2: xt.ConntrackMtinfo2{
			ConntrackMtinfoBase: xt.ConntrackMtinfoBase{MatchFlags: uint16(xt.ConntrackState | xt.ConntrackStateAlias)},
			StateMask:           uint16(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED)}}}, verdict(expr.VerdictAccept, "")},
			"ct state established,related accept"},
		// -m conntrack ! --ctstate NEW
		{"xt conntrack inverted state", []expr.Any{&expr.Match{Name: "conntrack", Rev: 1, Info: &xt.ConntrackMtinfo1{
			ConntrackMtinfoBase: xt.ConntrackMtinfoBase{MatchFlags: uint16(xt.ConntrackState), InvertFlags: uint16(xt.ConntrackState)},
			StateMask:           uint8(expr.CtStateBitNEW)}}, verdict(expr.VerdictDrop, "")},
			"ct state != new drop"},
		{"xt conntrack with more than the state", []expr.Any{&expr.Match{Name: "conntrack", Rev: 1, Info: &xt.ConntrackMtinfo1{
			ConntrackMtinfoBase: xt.ConntrackMtinfoBase{MatchFlags: uint16(xt.ConntrackState | xt.ConntrackOrigDst)},
			StateMask:           uint8(expr.CtStateBitNEW)}}, verdict(expr.VerdictDrop, "")},
			"<xt match conntrack> drop"},
		// -m state --state NEW
		{"xt state", []expr.Any{&expr.Match{Name: "state", Info: &xt.Unknown{8, 0, 0, 0}}, verdict(expr.VerdictAccept, "")}, "ct state new accept"},
		{"xt comment", []expr.Any{&expr.Match{Name: "comment", Info: &xt.Unknown{}}, verdict(expr.VerdictAccept, "")}, "accept"},
		{"set lookup is unknown", join(ipDaddr("198.18.7.21")[:1], []expr.Any{&expr.Lookup{SourceRegister: 1, SetName: "allowed"}, verdict(expr.VerdictAccept, "")}),
			"<set @allowed> accept"},
		{"reject is a drop", []expr.Any{&expr.Reject{}}, "drop"},
		{"xt REJECT target is a drop", []expr.Any{&expr.Target{Name: "REJECT"}}, "drop"},
		{"xt LOG target is no verdict", []expr.Any{&expr.Target{Name: "LOG"}}, ""},
		{"iifname", join(iifname("eth0"), []expr.Any{verdict(expr.VerdictAccept, "")}), `iifname "eth0" accept`},
		{"unknown payload", []expr.Any{&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 6)}, verdict(expr.VerdictDrop, "")}, "<payload base 0 offset 6 len 6> drop"},
		{"32-bit register alias", []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: unix.NFT_REG32_00},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: unix.NFT_REG_1, Data: []byte{unix.IPPROTO_UDP}}, verdict(expr.VerdictDrop, "")}, "meta l4proto != udp drop"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got := DecodeRule(1, tt.exprs).String()
			if got != tt.want {
				t.Errorf("DecodeRule = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCondEval(t *testing.T) {
	fwd := Packet{Dst: netip.MustParseAddr("198.18.7.21"), L4proto: unix.IPPROTO_TCP, Dport: 6443, CtState: expr.CtStateBitNEW, IIF: "eth0"}
	fwd6 := Packet{IPv6: true, Dst: netip.MustParseAddr("fd00:198:18:7::21"), L4proto: unix.IPPROTO_TCP, Dport: 6443, CtState: expr.CtStateBitNEW}
	tests := []struct {
		desc  string
		exprs []expr.Any
		p     Packet
		want  tri
	}{
		{"daddr matches", ipDaddr("198.18.7.21"), fwd, yes},
		{"daddr differs", ipDaddr("198.18.7.22"), fwd, no},
		{"ip daddr on an IPv6 packet is undecided", ipDaddr("198.18.7.21"), fwd6, maybe},
		{"ip6 daddr matches", ipDaddr("fd00:198:18:7::21"), fwd6, yes},
		{"dport matches", tcpDport(6443), fwd, yes},
		{"dport differs", tcpDport(443), fwd, no},
		{"unknown source prefix", ipSaddrPrefix("198.18.7.0/24"), fwd, maybe},
		{"known source in prefix", ipSaddrPrefix("198.18.7.0/24"), Packet{Src: netip.MustParseAddr("198.18.7.21")}, yes},
		{"known source outside prefix", ipSaddrPrefix("198.18.6.0/24"), Packet{Src: netip.MustParseAddr("198.18.7.21")}, no},
		{"ct state established on new", ctState(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), fwd, no},
		{"ct state new", ctState(expr.CtStateBitNEW), fwd, yes},
		{"iifname matches", iifname("eth0"), fwd, yes},
		{"iifname differs", iifname("eth1"), fwd, no},
		{"iifname unknown", iifname("eth0"), fwd6, maybe},
		{"iifname prefix eth*", []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("eth")}}, fwd, yes},
		{"port range", []expr.Any{&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{0x19, 0x00}, ToData: []byte{0x19, 0xff}}}, fwd, yes}, // 6400-6655
		{"port range excluded", []expr.Any{&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Range{Op: expr.CmpOpNeq, Register: 1, FromData: []byte{0x19, 0x00}, ToData: []byte{0x19, 0xff}}}, fwd, no},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			r := DecodeRule(1, append(tt.exprs, verdict(expr.VerdictAccept, "")))
			if got := r.match(tt.p); got != tt.want {
				t.Errorf("%s: match = %v, want %v", r, got, tt.want)
			}
		})
	}
}

// ufwTable is the shape of ufw's iptables-nft ruleset with the default
// DEFAULT_FORWARD_POLICY="DROP" (`iptables-nft -S` trimmed to what matters).
func ufwTable(extra ...Rule) Table {
	dec := func(h uint64, e ...[]expr.Any) Rule { return DecodeRule(h, join(e...)) }
	user := Chain{Name: "ufw-user-forward", Rules: extra}
	return Table{Family: "ip", Name: "filter", Chains: []Chain{
		{Name: "FORWARD", Hook: "forward", Type: "filter", Policy: "drop", Rules: []Rule{
			dec(1, []expr.Any{verdict(expr.VerdictJump, "ufw-before-logging-forward")}),
			dec(2, []expr.Any{verdict(expr.VerdictJump, "ufw-before-forward")}),
			dec(3, []expr.Any{verdict(expr.VerdictJump, "ufw-after-forward")}),
			dec(4, []expr.Any{verdict(expr.VerdictJump, "ufw-reject-forward")}),
		}},
		{Name: "ufw-before-logging-forward"},
		{Name: "ufw-before-forward", Rules: []Rule{
			dec(10, ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), []expr.Any{verdict(expr.VerdictAccept, "")}),
			dec(11, []expr.Any{verdict(expr.VerdictJump, "ufw-user-forward")}),
		}},
		user,
		{Name: "ufw-after-forward"},
		{Name: "ufw-reject-forward"},
	}}
}

func TestJudgeBaseChain(t *testing.T) {
	newConn := Packet{Dst: netip.MustParseAddr("198.18.7.21"), L4proto: unix.IPPROTO_TCP, Dport: 6443, CtState: expr.CtStateBitNEW, IIF: "eth0", OIF: "eth0"}
	reply := Packet{Src: netip.MustParseAddr("198.18.7.21"), L4proto: unix.IPPROTO_TCP, Sport: 6443, CtState: expr.CtStateBitESTABLISHED, IIF: "eth0", OIF: "eth0"}
	allow := DecodeRule(20, join(ipDaddr("198.18.7.21"), tcpDport(6443), []expr.Any{verdict(expr.VerdictAccept, "")}))
	allowOther := DecodeRule(21, join(ipDaddr("198.18.7.22"), tcpDport(6443), []expr.Any{verdict(expr.VerdictAccept, "")}))
	fromSet := DecodeRule(22, []expr.Any{&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: "trusted"}, verdict(expr.VerdictAccept, "")})
	simple := func(policy string, rules ...Rule) Table {
		return Table{Family: "inet", Name: "fw", Chains: []Chain{{Name: "forward", Hook: "forward", Type: "filter", Policy: policy, Rules: rules}}}
	}
	tests := []struct {
		desc      string
		t         Table
		p         Packet
		want      string
		wherePart string
	}{
		{"ufw default drops new connections", ufwTable(), newConn, OutcomeDrop, "ip filter FORWARD policy drop"},
		{"ufw accepts replies (established)", ufwTable(), reply, OutcomeAccept, "ufw-before-forward"},
		{"ufw route allow accepts", ufwTable(allow), newConn, OutcomeAccept, "ufw-user-forward"},
		{"ufw route allow for another backend still drops", ufwTable(allowOther), newConn, OutcomeDrop, "policy drop"},
		{"ufw allow from a set may accept", ufwTable(fromSet), newConn, OutcomeMaybe, "policy drop unless"},
		{"empty accept chain", simple("accept"), newConn, OutcomeAccept, "policy accept"},
		{"empty drop chain", simple("drop"), newConn, OutcomeDrop, "inet fw forward policy drop"},
		{"explicit drop rule", simple("accept", DecodeRule(5, join(tcpDport(6443), []expr.Any{verdict(expr.VerdictDrop, "")}))), newConn, OutcomeDrop, "handle 5"},
		{"drop rule on another port", simple("accept", DecodeRule(5, join(tcpDport(22), []expr.Any{verdict(expr.VerdictDrop, "")}))), newConn, OutcomeAccept, "policy accept"},
		{"undecidable drop rule", simple("accept", DecodeRule(6, []expr.Any{&expr.Match{Name: "recent"}, verdict(expr.VerdictDrop, "")})), newConn, OutcomeMaybe, "handle 6"},
		{"undecidable accept before drop policy", simple("drop", fromSet), newConn, OutcomeMaybe, "policy drop unless"},
		{"undecidable rule, both ways accept", simple("accept", DecodeRule(7, []expr.Any{&expr.Match{Name: "recent"}, verdict(expr.VerdictAccept, "")})), newConn, OutcomeAccept, ""},
		{"goto ends in the target", Table{Family: "inet", Name: "fw", Chains: []Chain{
			{Name: "forward", Hook: "forward", Type: "filter", Policy: "accept", Rules: []Rule{
				DecodeRule(1, []expr.Any{verdict(expr.VerdictGoto, "g")}),
				DecodeRule(2, []expr.Any{verdict(expr.VerdictDrop, "")}),
			}},
			{Name: "g"},
		}}, newConn, OutcomeAccept, "policy accept"},
		{"jump returns and continues", Table{Family: "inet", Name: "fw", Chains: []Chain{
			{Name: "forward", Hook: "forward", Type: "filter", Policy: "accept", Rules: []Rule{
				DecodeRule(1, []expr.Any{verdict(expr.VerdictJump, "j")}),
				DecodeRule(2, []expr.Any{verdict(expr.VerdictDrop, "")}),
			}},
			{Name: "j", Rules: []Rule{DecodeRule(3, []expr.Any{verdict(expr.VerdictReturn, "")}), DecodeRule(4, []expr.Any{verdict(expr.VerdictAccept, "")})}},
		}}, newConn, OutcomeDrop, "handle 2"},
		{"missing jump target", simple("accept", DecodeRule(8, []expr.Any{verdict(expr.VerdictJump, "gone")})), newConn, OutcomeMaybe, "not found"},
		{"jump loop is bounded", Table{Family: "inet", Name: "fw", Chains: []Chain{
			{Name: "forward", Hook: "forward", Type: "filter", Policy: "accept", Rules: []Rule{DecodeRule(1, []expr.Any{verdict(expr.VerdictJump, "a")})}},
			{Name: "a", Rules: []Rule{DecodeRule(2, []expr.Any{verdict(expr.VerdictJump, "a")})}},
		}}, newConn, OutcomeMaybe, "too many"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got := JudgeBaseChain(tt.t, tt.t.Chains[0], tt.p)
			if got.Kind != tt.want || !strings.Contains(got.Where, tt.wherePart) {
				t.Errorf("JudgeBaseChain = %+v, want %s at %q", got, tt.want, tt.wherePart)
			}
		})
	}
}

// TestJudgeBaseChainBounded: many undecidable rules fork both ways; the
// step bound keeps the work finite.
func TestJudgeBaseChainBounded(t *testing.T) {
	var rules []Rule
	for i := range 200 {
		rules = append(rules, DecodeRule(uint64(i), []expr.Any{&expr.Match{Name: "recent"}, verdict(expr.VerdictJump, "j")}))
	}
	tab := Table{Family: "inet", Name: "fw", Chains: []Chain{
		{Name: "forward", Hook: "forward", Type: "filter", Policy: "drop", Rules: rules},
		{Name: "j", Rules: []Rule{DecodeRule(1000, []expr.Any{&expr.Match{Name: "recent"}, verdict(expr.VerdictAccept, "")})}},
	}}
	got := JudgeBaseChain(tab, tab.Chains[0], Packet{Dport: 6443})
	if got.Kind != OutcomeMaybe {
		t.Fatalf("got %+v, want maybe-drop", got)
	}
}

func TestSetFromElements(t *testing.T) {
	port := func(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }
	tests := []struct {
		desc     string
		interval bool
		elems    []nftables.SetElement
		in, out  []uint16
		want     string
	}{
		{desc: "plain", elems: []nftables.SetElement{{Key: port(22)}, {Key: port(6443)}}, in: []uint16{22, 6443}, out: []uint16{23, 6442}, want: "{ 22, 6443 }"},
		// { 22, 6000-7000 } as the kernel lists it: starts and the first key after each range, in any order.
		{desc: "interval", interval: true, elems: []nftables.SetElement{
			{Key: port(7001), IntervalEnd: true}, {Key: port(6000)}, {Key: port(23), IntervalEnd: true}, {Key: port(22)}, {Key: port(0), IntervalEnd: true},
		}, in: []uint16{22, 6000, 6443, 7000}, out: []uint16{21, 23, 5999, 7001}, want: "{ 22, 6000-7000 }"},
		{desc: "open interval to the top", interval: true, elems: []nftables.SetElement{{Key: port(1024)}},
			in: []uint16{1024, 65535}, out: []uint16{1023}, want: "{ 1024-65535 }"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s := SetFromElements("s", tt.interval, tt.elems)
			c := Cond{Field: FieldDport, Op: "in", Set: s}
			if got := c.String(); !strings.HasSuffix(got, tt.want) {
				t.Errorf("String = %q, want suffix %q", got, tt.want)
			}
			for _, p := range tt.in {
				if c.eval(Packet{Dport: p}) != yes {
					t.Errorf("%d not in %s", p, c)
				}
			}
			for _, p := range tt.out {
				if c.eval(Packet{Dport: p}) != no {
					t.Errorf("%d in %s", p, c)
				}
			}
			neg := Cond{Field: FieldDport, Op: "not in", Set: s}
			if len(tt.in) > 0 && neg.eval(Packet{Dport: tt.in[0]}) != no {
				t.Errorf("not in: %d matched", tt.in[0])
			}
		})
	}
}

func TestDecodeRuleSets(t *testing.T) {
	sets := map[string]*SetFacts{"backends": {Name: "backends", Values: [][]byte{netip.MustParseAddr("198.18.7.21").AsSlice()}}}
	exprs := []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: "backends"},
		verdict(expr.VerdictAccept, ""),
	}
	r := DecodeRuleSets(1, exprs, sets)
	if got := r.String(); got != "ip daddr @backends { 198.18.7.21 } accept" {
		t.Errorf("String = %q", got)
	}
	if r.match(Packet{Dst: netip.MustParseAddr("198.18.7.21")}) != yes || r.match(Packet{Dst: netip.MustParseAddr("198.18.7.22")}) != no {
		t.Error("membership not decided")
	}
	// An unknown set stays undecidable.
	if DecodeRuleSets(1, exprs, nil).match(Packet{Dst: netip.MustParseAddr("198.18.7.21")}) != maybe {
		t.Error("lookup in an unread set decided")
	}
}
