package dataplane

import (
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func mustPlan(t *testing.T, d Desired) [2]familyPlan {
	t.Helper()
	p, err := plan(d)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDnatExprsIPv4 pins the DNAT rule of the prerouting chain, expression
// by expression, next to the nft debug output it corresponds to.
func TestDnatExprsIPv4(t *testing.T) {
	p := mustPlan(t, desired4())[0]
	le := binaryutil.NativeEndian.PutUint32
	want := []expr.Any{
		// [ payload load 4b @ network header + 16 => reg 1 ]
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		// [ cmp eq reg 1 0x6401 12c6 ]  (198.18.1.100)
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{198, 18, 1, 100}},
		// [ meta load l4proto => reg 1 ]
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		// [ cmp eq reg 1 0x00000006 ]
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		// [ payload load 2b @ transport header + 2 => reg 1 ]
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		// [ cmp eq reg 1 0x00000b19 ]  (6443)
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x19, 0x2b}},
		// [ payload load 4b @ network header + 12 => reg 1 ]
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		// [ payload load 2b @ transport header + 0 => reg 9 ]
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		// [ hash reg 1 = jhash(reg 1, 8, 0x5eed) % mod 1021 ]
		&expr.Hash{SourceRegister: 1, DestRegister: 1, Length: 8, Modulus: 1021, Seed: 0x5eed, Type: expr.HashTypeJenkins},
		// [ lookup reg 1 set slots dreg 1 ]
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: "slots"},
		// [ ct load mark => reg 3 ]
		&expr.Ct{Register: 3, Key: expr.CtKeyMARK},
		// [ bitwise reg 3 = ( reg 3 & 0xdfffffff ) ^ 0x20000000 ]
		&expr.Bitwise{SourceRegister: 3, DestRegister: 3, Len: 4, Mask: le(^uint32(0x20000000)), Xor: le(0x20000000)},
		// [ ct set mark with reg 3 ]
		&expr.Ct{Register: 3, Key: expr.CtKeyMARK, SourceRegister: true},
		// [ nat dnat ip addr_min reg 1 addr_max reg 1 proto_min reg 9 proto_max reg 9 flags 0x2 ]
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 9, RegProtoMax: 9, Specified: true},
	}
	got := dnatExprs(p, true)
	if !reflect.DeepEqual(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w any
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("expression %d:\n got %#v\nwant %#v", i, g, w)
			}
		}
	}
	// The output chain's rule is the same without the mark.
	out := dnatExprs(p, false)
	if len(out) != len(want)-3 || !reflect.DeepEqual(out[:10], want[:10]) || !reflect.DeepEqual(out[10], want[13]) {
		t.Errorf("output DNAT rule is not the prerouting one without the ct mark")
	}
}

// TestPostroutingExprs pins the two postrouting rules, IPv4 and IPv6:
// forwarded flows (mark bit set) are SNATed to the VIP; flows DNATed in
// output whose source is the VIP (mark bit clear) are masqueraded.
func TestPostroutingExprs(t *testing.T) {
	le := binaryutil.NativeEndian.PutUint32
	ctStatusDNAT := []expr.Any{
		// [ ct load status => reg 1 ]
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		// [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: le(0x20), Xor: le(0)},
		// [ cmp neq reg 1 0x00000000 ]
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: le(0)},
	}
	for _, tc := range []struct {
		vip       netip.Addr
		backends  []Backend
		off, size uint32
		natFamily uint32
	}{
		{vip4, backends4(), 12, 4, unix.NFPROTO_IPV4},
		{vip6, backends6(), 8, 16, unix.NFPROTO_IPV6},
	} {
		t.Run(tc.vip.String(), func(t *testing.T) {
			p := mustPlan(t, Desired{VIPs: serviceVIPs(tc.vip), Backends: tc.backends})[familyIndex(tc.vip)]
			snat := concat([]expr.Any{
				// [ ct load mark => reg 1 ]
				&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
				// [ bitwise reg 1 = ( reg 1 & 0x20000000 ) ^ 0x00000000 ]
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: le(DefaultCtMark), Xor: le(0)},
				// [ cmp neq reg 1 0x00000000 ]
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: le(0)},
			}, ctStatusDNAT, []expr.Any{
				// [ immediate reg 1 VIP ]
				&expr.Immediate{Register: 1, Data: tc.vip.AsSlice()},
				// [ nat snat ip addr_min reg 1 addr_max reg 1 ]
				&expr.NAT{Type: expr.NATTypeSourceNAT, Family: tc.natFamily, RegAddrMin: 1, RegAddrMax: 1},
			})
			masq := concat([]expr.Any{
				// [ payload load 4b @ network header + 12 => reg 1 ]  (ip6: 16b @ + 8)
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: tc.off, Len: tc.size},
				// [ cmp eq reg 1 VIP ]
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: tc.vip.AsSlice()},
				// [ ct load mark => reg 1 ]
				&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
				// [ bitwise reg 1 = ( reg 1 & 0x20000000 ) ^ 0x00000000 ]
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: le(DefaultCtMark), Xor: le(0)},
				// [ cmp eq reg 1 0x00000000 ]
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: le(0)},
			}, ctStatusDNAT, []expr.Any{
				// [ masq ]
				&expr.Masq{},
			})
			var post [][]expr.Any
			for _, r := range buildTable(p).rules {
				if r.Chain.Name == ChainPostrouting {
					post = append(post, r.Exprs)
				}
			}
			if len(post) != 2 {
				t.Fatalf("%d postrouting rules, want 2", len(post))
			}
			for i, want := range [][]expr.Any{snat, masq} {
				if !reflect.DeepEqual(post[i], want) {
					t.Errorf("postrouting rule %d:\n got %s\nwant %s", i, exprString(post[i]), exprString(want))
				}
			}
		})
	}
}

func exprString(exprs []expr.Any) string {
	var b strings.Builder
	for _, e := range exprs {
		fmt.Fprintf(&b, "%T%+v ", e, e)
	}
	return b.String()
}

// TestDnatExprsVariants checks what changes with family and balance mode.
func TestDnatExprsVariants(t *testing.T) {
	for _, tc := range []struct {
		desc               string
		vip                netip.Addr
		backends           []Backend
		mode               BalanceMode
		hashLen, portReg   uint32
		sportLoaded        bool
		natFamily, dataLen uint32
	}{
		{"ipv4 per connection", vip4, backends4(), BalanceConnection, 8, 9, true, unix.NFPROTO_IPV4, 8},
		{"ipv4 per source", vip4, backends4(), BalanceSource, 4, 9, false, unix.NFPROTO_IPV4, 8},
		{"ipv6 per connection", vip6, backends6(), BalanceConnection, 20, 2, true, unix.NFPROTO_IPV6, 20},
		{"ipv6 per source", vip6, backends6(), BalanceSource, 16, 2, false, unix.NFPROTO_IPV6, 20},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			d := Desired{VIPs: serviceVIPs(tc.vip), Backends: tc.backends, Mode: tc.mode, Healthy: healthySet(tc.backends[0].Name)}
			p := mustPlan(t, d)[familyIndex(tc.vip)]
			e := dnatExprs(p, true)
			var hash *expr.Hash
			var nat *expr.NAT
			sport := false
			for _, x := range e {
				switch x := x.(type) {
				case *expr.Hash:
					hash = x
				case *expr.NAT:
					nat = x
				case *expr.Payload:
					if x.Base == expr.PayloadBaseTransportHeader && x.Offset == 0 {
						sport = true
						if x.DestRegister != tc.portReg {
							t.Errorf("sport loaded into reg %d, want %d", x.DestRegister, tc.portReg)
						}
					}
				}
			}
			if hash == nil || hash.Length != tc.hashLen || hash.Seed != DefaultSeed || hash.Modulus != DefaultSlots {
				t.Errorf("hash %+v, want length %d", hash, tc.hashLen)
			}
			if sport != tc.sportLoaded {
				t.Errorf("sport in hash: %v, want %v", sport, tc.sportLoaded)
			}
			if nat == nil || nat.Family != tc.natFamily || nat.RegProtoMin != tc.portReg {
				t.Errorf("nat %+v", nat)
			}
			spec := buildTable(p)
			if spec.set.DataType.Bytes != tc.dataLen || spec.set.KeyType.Bytes != 4 || !spec.set.IsMap {
				t.Errorf("slot map key %d bytes, data %d bytes", spec.set.KeyType.Bytes, spec.set.DataType.Bytes)
			}
			for _, el := range spec.elems {
				if len(el.Val) != int(tc.dataLen) {
					t.Fatalf("element value %x: %d bytes, want %d", el.Val, len(el.Val), tc.dataLen)
				}
			}
		})
	}
}

func TestBuildTableShape(t *testing.T) {
	p := mustPlan(t, desired4())[0]
	spec := buildTable(p)
	if spec.table.Name != TableName || spec.table.Family != nftables.TableFamilyIPv4 {
		t.Errorf("table %+v", spec.table)
	}
	type chainWant struct {
		typ   nftables.ChainType
		hook  nftables.ChainHook
		prio  nftables.ChainPriority
		rules int
	}
	want := map[string]chainWant{
		ChainPrerouting:  {nftables.ChainTypeNAT, *nftables.ChainHookPrerouting, -100, 1},
		ChainOutput:      {nftables.ChainTypeNAT, *nftables.ChainHookOutput, -100, 1},
		ChainPostrouting: {nftables.ChainTypeNAT, *nftables.ChainHookPostrouting, 100, 2},
		ChainInput:       {nftables.ChainTypeFilter, *nftables.ChainHookInput, 0, 5},
		// Co-located: one rule, then one per distinct backend port.
		ChainInputNAT:      {nftables.ChainTypeNAT, *nftables.ChainHookInput, 100, 1},
		ChainRawPrerouting: {nftables.ChainTypeFilter, *nftables.ChainHookPrerouting, -300, len(backendPorts(p))},
		ChainRawOutput:     {nftables.ChainTypeFilter, *nftables.ChainHookOutput, -300, len(backendPorts(p))},
	}
	if len(spec.chains) != len(want) {
		t.Fatalf("%d chains", len(spec.chains))
	}
	for _, c := range spec.chains {
		w, ok := want[c.Name]
		if !ok || c.Type != w.typ || *c.Hooknum != w.hook || *c.Priority != w.prio || *c.Policy != nftables.ChainPolicyAccept {
			t.Errorf("chain %s: %s hook %d prio %d", c.Name, c.Type, *c.Hooknum, *c.Priority)
		}
		n := 0
		for _, r := range spec.rules {
			if r.Chain == c {
				n++
				if cm := RuleComment(r.UserData); !strings.HasPrefix(cm, "epconsole: ") {
					t.Errorf("rule in %s has comment %q", c.Name, cm)
				}
			}
		}
		if n != w.rules {
			t.Errorf("chain %s: %d rules, want %d", c.Name, n, w.rules)
		}
	}
	// The input chain: established, icmp accepted; invalid dropped;
	// service port accepted; the rest to the VIP dropped, in that order.
	var verdicts []expr.VerdictKind
	for _, r := range spec.rules {
		if r.Chain.Name == ChainInput {
			verdicts = append(verdicts, r.Exprs[len(r.Exprs)-1].(*expr.Verdict).Kind)
		}
	}
	if !slices.Equal(verdicts, []expr.VerdictKind{expr.VerdictAccept, expr.VerdictAccept, expr.VerdictDrop, expr.VerdictAccept, expr.VerdictDrop}) {
		t.Errorf("input verdicts %v", verdicts)
	}
	// Elements: one per slot, keys in host order, values addr . port.
	if len(spec.elems) != DefaultSlots {
		t.Fatalf("%d elements", len(spec.elems))
	}
	for s, el := range spec.elems {
		if k := binaryutil.NativeEndian.Uint32(el.Key); int(k) != s {
			t.Fatalf("element %d has key %d", s, k)
		}
		ap, ok := decodeBackendValue(el.Val)
		if !ok || ap != p.backends[p.slots[s]].Addr {
			t.Fatalf("slot %d: %v, want %v", s, ap, p.backends[p.slots[s]].Addr)
		}
	}
	// The comment changes with the expressions (digest).
	p2 := p
	p2.seed++
	if slices.Equal(buildTable(p2).rules[0].UserData, spec.rules[0].UserData) {
		t.Error("a different seed left the DNAT rule's comment unchanged")
	}
}

func TestPlanRejectsBadDesired(t *testing.T) {
	for _, tc := range []struct {
		desc string
		d    Desired
	}{
		{"two IPv4 VIPs", Desired{VIPs: serviceVIPs(vip4, netip.MustParseAddr("198.18.1.101"))}},
		{"two IPv6 VIPs", Desired{VIPs: serviceVIPs(vip6, netip.MustParseAddr("fd00:198:18:1::101"))}},
		{"unspecified VIP", Desired{VIPs: serviceVIPs(netip.IPv4Unspecified())}},
		{"invalid VIP", Desired{VIPs: []ServiceVIP{{}}}},
		{"unnamed backend", Desired{Backends: []Backend{{Addr: backends4()[0].Addr}}}},
		{"duplicate names", Desired{VIPs: serviceVIPs(vip4), Backends: []Backend{backends4()[0], backends4()[0]}}},
		{"duplicate addresses", Desired{Backends: []Backend{{Name: "a", Addr: backends4()[0].Addr}, {Name: "b", Addr: backends4()[0].Addr}}}},
		{"duplicate after default port", Desired{Backends: []Backend{{Name: "a", Addr: netip.MustParseAddrPort("198.18.1.11:0")}, {Name: "b", Addr: netip.MustParseAddrPort("198.18.1.11:6443")}}}},
		{"backend is VIP", Desired{VIPs: serviceVIPs(vip4), Backends: []Backend{{Name: "x", Addr: netip.AddrPortFrom(vip4, 6443)}}}},
		{"unknown mode", Desired{VIPs: serviceVIPs(vip4), Mode: "random"}},
		{"mark of two bits", Desired{VIPs: serviceVIPs(vip4), CtMark: 3}},
	} {
		if _, err := plan(tc.d); err == nil {
			t.Errorf("%s: no error", tc.desc)
		}
		if _, err := (&Dataplane{}).Reconcile(t.Context(), tc.d); err == nil {
			t.Errorf("%s: Reconcile did not refuse", tc.desc)
		}
	}
	// Defaults and family split.
	p := mustPlan(t, Desired{
		VIPs:     serviceVIPs(netip.MustParseAddr("::ffff:198.18.1.100"), vip6),
		Backends: append([]Backend{{Name: "p0", Addr: netip.MustParseAddrPort("198.18.1.20:0")}}, backends6()...),
	})
	if p[0].vip != vip4 || p[0].port != DefaultPort || p[0].seed != DefaultSeed || p[0].mark != DefaultCtMark || p[0].mode != BalanceConnection {
		t.Errorf("defaults: %+v", p[0])
	}
	if len(p[0].backends) != 1 || p[0].backends[0].Addr.Port() != DefaultPort || len(p[1].backends) != 3 {
		t.Errorf("family split: %v / %v", p[0].backends, p[1].backends)
	}
	if len(p[0].slots) != DefaultSlots || p[0].slots[0] != -1 {
		t.Errorf("nobody healthy: slots[0] = %d", p[0].slots[0])
	}
}

func TestDiffElements(t *testing.T) {
	el := func(slot int, backend string) nftables.SetElement {
		return nftables.SetElement{Key: slotKey(slot), Val: backendValue(netip.MustParseAddrPort(backend))}
	}
	a, b, c := "198.18.1.11:6443", "198.18.1.12:6443", "198.18.1.13:16443"
	for _, tc := range []struct {
		desc      string
		cur, want []nftables.SetElement
		del, add  []int // slots
		withdrawn []string
	}{
		{"equal", []nftables.SetElement{el(0, a), el(1, b)}, []nftables.SetElement{el(0, a), el(1, b)}, nil, nil, nil},
		{"moved slot", []nftables.SetElement{el(0, a), el(1, b)}, []nftables.SetElement{el(0, a), el(1, a)}, []int{1}, []int{1}, []string{b}},
		{"emptied", []nftables.SetElement{el(0, a), el(1, c)}, nil, []int{0, 1}, nil, []string{a, c}},
		{"filled", nil, []nftables.SetElement{el(0, a), el(1, b)}, nil, []int{0, 1}, nil},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			del, add := diffElements(tc.cur, tc.want)
			slotsOf := func(els []nftables.SetElement) []int {
				var out []int
				for _, e := range els {
					out = append(out, int(binaryutil.NativeEndian.Uint32(e.Key)))
				}
				return out
			}
			if !slices.Equal(slotsOf(del), tc.del) || !slices.Equal(slotsOf(add), tc.add) {
				t.Errorf("del %v add %v, want %v %v", slotsOf(del), slotsOf(add), tc.del, tc.add)
			}
			for _, e := range del {
				if e.Val != nil {
					t.Errorf("delete of slot %v carries a value", e.Key)
				}
			}
			var w []string
			for _, ap := range withdrawn(tc.cur, tc.want) {
				w = append(w, ap.String())
			}
			if !slices.Equal(w, tc.withdrawn) {
				t.Errorf("withdrawn %v, want %v", w, tc.withdrawn)
			}
		})
	}
}

// recorder is an nftables connection that records the netlink messages of
// a batch instead of sending them, acknowledging each.
func recorder(t *testing.T) (*nftables.Conn, *[]netlink.Message) {
	t.Helper()
	var msgs []netlink.Message
	c, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		msgs = append(msgs, req...)
		var acks []netlink.Message
		for _, m := range req {
			if m.Header.Flags&netlink.Acknowledge != 0 {
				acks = append(acks, netlink.Message{Header: netlink.Header{Type: netlink.Error, Sequence: m.Header.Sequence, PID: m.Header.PID}, Data: make([]byte, 4)})
			}
		}
		return acks, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c, &msgs
}

var nftMsgNames = map[uint16]string{
	unix.NFNL_MSG_BATCH_BEGIN: "batch begin", unix.NFNL_MSG_BATCH_END: "batch end",
	unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE:   "add table",
	unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWCHAIN:   "add chain",
	unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSET:     "add map",
	unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM: "add element",
	unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWRULE:    "add rule",
}

// TestTableBatchGolden pins the bytes of the batch that creates both
// tables for a small slot map (go test -update rewrites the golden). Each
// message is preceded by what it is and, for rules, the rule's comment.
func TestTableBatchGolden(t *testing.T) {
	d := Desired{
		VIPs:     serviceVIPs(vip4, vip6),
		Backends: append(backends4(), backends6()...),
		Healthy:  healthySet("cp1", "cp3", "cp1v6", "cp2v6"),
		Slots:    7,
	}
	plans := mustPlan(t, d)
	c, msgs := recorder(t)
	var comments []string
	for _, p := range plans {
		spec := buildTable(p)
		if err := queueTable(c, spec); err != nil {
			t.Fatal(err)
		}
		for _, r := range spec.rules {
			comments = append(comments, RuleComment(r.UserData))
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("# nft -f equivalent: two tables (ip, ip6) epconsole, 7 chains, map slots (7 slots), 14 rules (ip: two backend ports) and 12 (ip6).\n")
	for _, m := range *msgs {
		name := nftMsgNames[uint16(m.Header.Type)]
		if name == "" {
			name = fmt.Sprintf("type %#x", m.Header.Type)
		}
		if name == "add rule" {
			name += ": " + comments[0]
			comments = comments[1:]
		}
		fmt.Fprintf(&b, "## %s (flags %#x)\n", name, uint16(m.Header.Flags))
		data := hex.EncodeToString(m.Data)
		for len(data) > 64 {
			b.WriteString(data[:64] + "\n")
			data = data[64:]
		}
		b.WriteString(data + "\n")
	}
	golden := filepath.Join("testdata", "table-batch.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("batch differs from %s at line %d:\n got %s\nwant %s", golden, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("batch differs from %s in length: %d lines, want %d", golden, len(gl), len(wl))
	}
}
