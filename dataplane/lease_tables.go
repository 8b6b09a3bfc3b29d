package dataplane

// The owner lease's nftables tables: their names, how they are built from
// the VIPs, read back and compared (lease.go uses them).

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

var leaseFamilies = [2]nftables.TableFamily{nftables.TableFamilyARP, nftables.TableFamilyIPv6}

func leaseTableName(fam nftables.TableFamily) string {
	if fam == nftables.TableFamilyARP {
		return TableName
	}
	return LeaseTable6
}

func leaseFamilyName(fam nftables.TableFamily) string {
	if fam == nftables.TableFamilyARP {
		return "arp"
	}
	return "ip6"
}

// leasePlan sorts vips by lease family: at most one of each.
func leasePlan(vips []netip.Addr) (map[nftables.TableFamily]netip.Addr, error) {
	want := map[nftables.TableFamily]netip.Addr{}
	for _, v := range vips {
		v = v.Unmap()
		if !v.IsValid() || v.IsUnspecified() {
			return nil, fmt.Errorf("dataplane: invalid lease VIP %v", v)
		}
		fam := nftables.TableFamilyIPv6
		if v.Is4() {
			fam = nftables.TableFamilyARP
		}
		if prev, dup := want[fam]; dup && prev != v {
			return nil, fmt.Errorf("dataplane: two %s VIPs (%v, %v); the lease takes one per family", leaseFamilyName(fam), prev, v)
		}
		want[fam] = v
	}
	return want, nil
}

// buildLeaseTable builds the lease table of vip's family.
func buildLeaseTable(vip netip.Addr) leaseSpec {
	fam, id, keyType := nftables.TableFamilyARP, uint32(leaseSetID4), nftables.TypeIPAddr
	if vip.Is6() {
		fam, id, keyType = nftables.TableFamilyIPv6, leaseSetID6, nftables.TypeIP6Addr
	}
	t := &nftables.Table{Name: leaseTableName(fam), Family: fam}
	accept := nftables.ChainPolicyAccept
	hook := nftables.ChainHookOutput
	if fam == nftables.TableFamilyARP {
		hook = nftables.ChainHookRef(nfARPOut)
	}
	ch := &nftables.Chain{Name: LeaseChainName, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &accept}
	set := &nftables.Set{Table: t, ID: id, Name: LeaseSetName, KeyType: keyType, HasTimeout: true}
	spec := leaseSpec{vip: vip, table: t, chain: ch, set: set}
	add := func(comment string, exprs []expr.Any) {
		spec.rules = append(spec.rules, &nftables.Rule{Table: t, Chain: ch, Exprs: exprs, UserData: ruleComment(byte(fam), comment, exprs)})
	}
	if fam == nftables.TableFamilyARP {
		add("owner lease: arp from "+vip.String(), leaseARPExprs(vip, set))
	} else {
		add("owner lease: neighbour advertisements for "+vip.String(), leaseNAExprs(vip, set))
		add("owner lease: neighbour solicitations from "+vip.String(), leaseNSExprs(vip, set))
	}
	return spec
}

// leaseARPExprs: arp hlen 6 arp plen 4 arp saddr ip VIP arp saddr ip != @owner drop
func leaseARPExprs(vip netip.Addr, set *nftables.Set) []expr.Any {
	return []expr.Any{
		// [ payload load 2b @ network header + 4 => reg 1 ]  (hlen, plen: Ethernet and IPv4 sizes)
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 4, Len: 2},
		// [ cmp eq reg 1 0x00000406 ]
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{6, 4}},
		// [ payload load 4b @ network header + 14 => reg 1 ]  (arp saddr ip)
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 14, Len: 4},
		// [ cmp eq reg 1 VIP ]
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: vip.AsSlice()},
		// [ lookup reg 1 set owner 0x1 ]  (not in the set)
		&expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID, Invert: true},
		// [ immediate reg 0 drop ]
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// icmpv6TypeExprs matches meta l4proto ipv6-icmp icmpv6 type typ.
func icmpv6TypeExprs(typ byte) []expr.Any {
	return concat(l4protoExprs(unix.IPPROTO_ICMPV6), []expr.Any{
		// [ payload load 1b @ transport header + 0 => reg 1 ]
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		// [ cmp eq reg 1 typ ]
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{typ}},
	})
}

// leaseNAExprs: meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert
// @th,64,128 VIP @th,64,128 != @owner drop
func leaseNAExprs(vip netip.Addr, set *nftables.Set) []expr.Any {
	return concat(icmpv6TypeExprs(icmpv6NeighborAdvert), []expr.Any{
		// [ payload load 16b @ transport header + 8 => reg 1 ]  (target address)
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 8, Len: 16},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: vip.AsSlice()},
		&expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID, Invert: true},
		&expr.Verdict{Kind: expr.VerdictDrop},
	})
}

// leaseNSExprs: ip6 saddr VIP meta l4proto ipv6-icmp icmpv6 type
// nd-neighbor-solicit ip6 saddr != @owner drop
func leaseNSExprs(vip netip.Addr, set *nftables.Set) []expr.Any {
	saddr := func() expr.Any {
		// [ payload load 16b @ network header + 8 => reg 1 ]
		return &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16}
	}
	return concat(
		[]expr.Any{saddr(), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: vip.AsSlice()}},
		icmpv6TypeExprs(icmpv6NeighborSolicit),
		[]expr.Any{
			saddr(),
			&expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID, Invert: true},
			&expr.Verdict{Kind: expr.VerdictDrop},
		},
	)
}

// queueLeaseTable queues the creation of a whole lease table (no element).
func queueLeaseTable(c *nftables.Conn, s leaseSpec) error {
	c.AddTable(s.table)
	c.AddChain(s.chain)
	if err := c.AddSet(s.set, nil); err != nil {
		return fmt.Errorf("queueing the lease set: %w", err)
	}
	for _, r := range s.rules {
		c.AddRule(r)
	}
	return nil
}

// currentLease is what the kernel holds in one family's lease table.
type currentLease struct {
	table  *nftables.Table
	chains []*nftables.Chain
	sets   []*nftables.Set
	rules  []*nftables.Rule // of the output chain
}

func findNamedTable(c *nftables.Conn, fam nftables.TableFamily, name string) (*nftables.Table, error) {
	tables, err := c.ListTablesOfFamily(fam)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		if t.Name == name && t.Family == fam {
			return t, nil
		}
	}
	return nil, nil
}

// readLeaseTable reads a family's lease table, or returns nil if there is
// none. It never lists the set's elements: their expiry is lazy, so a
// listing decides nothing.
func readLeaseTable(c *nftables.Conn, fam nftables.TableFamily) (*currentLease, error) {
	t, err := findNamedTable(c, fam, leaseTableName(fam))
	if err != nil || t == nil {
		return nil, err
	}
	cur := &currentLease{table: t}
	chains, err := c.ListChainsOfTableFamily(fam)
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != t.Name {
			continue
		}
		cur.chains = append(cur.chains, ch)
		if ch.Name == LeaseChainName {
			if cur.rules, err = c.GetRules(t, ch); err != nil {
				return nil, fmt.Errorf("listing rules: %w", err)
			}
		}
	}
	if cur.sets, err = c.GetSets(t); err != nil {
		return nil, fmt.Errorf("listing sets: %w", err)
	}
	return cur, nil
}

// sameLeaseTable reports whether the kernel's lease table is exactly spec.
func sameLeaseTable(cur *currentLease, spec leaseSpec) bool {
	if len(cur.chains) != 1 || cur.chains[0].Name != spec.chain.Name || !sameChain(cur.chains[0], spec.chain) {
		return false
	}
	if len(cur.sets) != 1 {
		return false
	}
	s := cur.sets[0]
	if s.Name != spec.set.Name || !s.HasTimeout || s.IsMap || s.Interval || s.Constant || s.Anonymous ||
		s.KeyType.GetNFTMagic() != spec.set.KeyType.GetNFTMagic() || s.KeyType.Bytes != spec.set.KeyType.Bytes {
		return false
	}
	if len(cur.rules) != len(spec.rules) {
		return false
	}
	for i, r := range spec.rules {
		if !sameRule(cur.rules[i], r) {
			return false
		}
	}
	return true
}

// queueDelBeatTables queues the deletion of the beat-renewed lease's
// netdev tables that exist, and says whether it queued any.
func queueDelBeatTables(c *nftables.Conn) (bool, error) {
	queued := false
	for _, name := range []string{BeatLeaseTable4, BeatLeaseTable6} {
		t, err := findNamedTable(c, nftables.TableFamilyNetdev, name)
		if err != nil {
			return queued, fmt.Errorf("listing netdev tables: %w", err)
		}
		if t != nil {
			c.DelTable(t)
			queued = true
		}
	}
	return queued, nil
}
