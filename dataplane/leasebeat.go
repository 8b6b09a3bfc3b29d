package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The beat-renewed lease. With LeaseBeats set (SetBeats), the lease lives
// in a netdev table per VIP family whose egress chains do both jobs: each
// heartbeat datagram this node sends saying it holds the VIP refreshes the
// lease element (a dynamic set update, in the kernel, with no system call
// of its own), and every ARP packet with the VIP as sender (replies,
// requests and gratuitous ARPs alike), every neighbour advertisement for
// the VIP and every solicitation from it leaves the VIP's interface only
// while the element is there. The element's timeout is the heartbeat's
// detection time: an owner whose beats stop (crashed helper, paused host,
// a daemon that told its helper to stop saying it holds the VIP) falls
// silent for the VIP no later than its peers count it gone, which is the
// earliest a successor claims. The nft text form for an IPv4 VIP on eth0,
// beats to port 7947 leaving on eth0 and eth1:
//
//	table netdev epconsole-lease4 {
//		set owner { type ipv4_addr; flags dynamic,timeout; }
//		chain egress-eth0 {
//			type filter hook egress device "eth0" priority filter; policy accept;
//			meta l4proto udp udp dport 7947 @ih,0,16 "eh" @ih,24,8 & HOLDING == HOLDING @ih,32,64 SENDER update @owner { VIP timeout TTL }
//			meta protocol arp arp hlen 6 arp plen 4 arp saddr ip VIP arp saddr ip != @owner drop
//		}
//		chain egress-eth1 {
//			type filter hook egress device "eth1" priority filter; policy accept;
//			meta l4proto udp udp dport 7947 ... update @owner { VIP timeout TTL }
//		}
//	}
//
// and for an IPv6 VIP the same in "epconsole-lease6", with set owner of
// type ipv6_addr and the two neighbour-discovery rules of the ip6 lease.
// Packet sockets (the gratuitous ARPs of VIP.Announce) go through the
// egress hook too, so an announcement passes only under a lease: open it
// (Renew) before announcing, as before.
//
// Lease.Renew and Drop work on these tables as on the others (a claim
// opens the lease with one commit; the beats keep it). The daemon does not
// renew it on a timer.

// LeaseBeats says where the owner's heartbeats leave and how to tell one
// that says "I hold the VIP". Every field is required.
type LeaseBeats struct {
	// Devices are the interfaces the gate sits on (the VIPs'
	// interfaces) followed by any other interface beats leave on.
	// Gated: the first GateDevices of them.
	Devices     []string
	GateDevices int
	// Ports are the peers' heartbeat ports (UDP destination).
	Ports []uint16
	// Match is what an owner beat's UDP payload holds: every byte range
	// under its mask.
	Match []PayloadMatch
	// TTL is the lease element's timeout after each beat: the heartbeat's
	// detection time.
	TTL time.Duration
}

// PayloadMatch is bytes of a UDP payload at Offset that, under Mask (nil:
// all bits), equal Value.
type PayloadMatch struct {
	Offset uint32
	Value  []byte
	Mask   []byte
}

// Names of the beat-renewed lease tables (netdev family).
const (
	BeatLeaseTable4 = TableName + "-lease4"
	BeatLeaseTable6 = TableName + "-lease6"
)

// udpHeaderLen is where a UDP payload starts after the transport header.
const udpHeaderLen = 8

// SetBeats switches the lease to the beat-renewed tables (nil: back to
// the arp and ip6 tables renewed by Renew). It takes effect at the next
// Install.
func (l *Lease) SetBeats(b *LeaseBeats) error {
	if b != nil {
		if err := b.validate(); err != nil {
			return err
		}
		b = &LeaseBeats{Devices: slices.Clone(b.Devices), GateDevices: b.GateDevices, Ports: slices.Clone(b.Ports), Match: slices.Clone(b.Match), TTL: b.TTL}
	}
	l.mu.Lock()
	l.beats = b
	l.mu.Unlock()
	return nil
}

// BeatRenewed reports whether the lease is renewed by the beats (SetBeats).
func (l *Lease) BeatRenewed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.beats != nil
}

func (b *LeaseBeats) validate() error {
	switch {
	case b.GateDevices < 1 || b.GateDevices > len(b.Devices):
		return fmt.Errorf("dataplane: beat lease: %d gate interfaces of %d: want at least one VIP interface", b.GateDevices, len(b.Devices))
	case len(b.Ports) == 0:
		return errors.New("dataplane: beat lease: no heartbeat port")
	case len(b.Match) == 0:
		return errors.New("dataplane: beat lease: nothing to tell an owner beat by")
	case b.TTL < time.Millisecond:
		return fmt.Errorf("dataplane: beat lease: ttl %v below the kernel's 1 ms resolution", b.TTL)
	}
	for i, d := range b.Devices {
		if d == "" || len(d) >= unix.IFNAMSIZ || slices.Contains(b.Devices[:i], d) {
			return fmt.Errorf("dataplane: beat lease: interface %q empty, too long or repeated", d)
		}
	}
	for _, m := range b.Match {
		if len(m.Value) == 0 || len(m.Value) > 16 || (m.Mask != nil && len(m.Mask) != len(m.Value)) {
			return fmt.Errorf("dataplane: beat lease: payload match at %d: 1 to 16 bytes, mask as long", m.Offset)
		}
	}
	return nil
}

// beatLeaseTableName is the netdev table of vip's family.
func beatLeaseTableName(vip netip.Addr) string {
	if vip.Is4() {
		return BeatLeaseTable4
	}
	return BeatLeaseTable6
}

// beatLeaseSpec is one family's beat-renewed lease table.
type beatLeaseSpec struct {
	leaseSpec
	chains []*nftables.Chain
	rules  [][]*nftables.Rule // per chain
}

// buildBeatLeaseTable builds the netdev lease table of vip's family.
func buildBeatLeaseTable(vip netip.Addr, b *LeaseBeats) beatLeaseSpec {
	id, keyType := uint32(leaseSetID4), nftables.TypeIPAddr
	if vip.Is6() {
		id, keyType = leaseSetID6, nftables.TypeIP6Addr
	}
	t := &nftables.Table{Name: beatLeaseTableName(vip), Family: nftables.TableFamilyNetdev}
	set := &nftables.Set{Table: t, ID: id, Name: LeaseSetName, KeyType: keyType, HasTimeout: true, Dynamic: true}
	s := beatLeaseSpec{leaseSpec: leaseSpec{vip: vip, table: t, set: set}}
	accept := nftables.ChainPolicyAccept
	fam := byte(nftables.TableFamilyNetdev)
	for i, dev := range b.Devices {
		ch := &nftables.Chain{Name: "egress-" + dev, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookEgress, Priority: nftables.ChainPriorityFilter, Policy: &accept, Device: dev}
		var rules []*nftables.Rule
		add := func(comment string, exprs []expr.Any) {
			rules = append(rules, &nftables.Rule{Table: t, Chain: ch, Exprs: exprs, UserData: ruleComment(fam, comment, exprs)})
		}
		for _, port := range b.Ports {
			add(fmt.Sprintf("owner lease: a beat to port %d saying this node holds %s renews it", port, vip), beatRenewExprs(vip, port, b, set))
		}
		if i < b.GateDevices {
			if vip.Is4() {
				add("owner lease: arp from "+vip.String(), concat(metaProtocolExprs(unix.ETH_P_ARP), leaseARPExprs(vip, set)))
			} else {
				add("owner lease: neighbour advertisements for "+vip.String(), concat(metaProtocolExprs(unix.ETH_P_IPV6), leaseNAExprs(vip, set)))
				add("owner lease: neighbour solicitations from "+vip.String(), concat(metaProtocolExprs(unix.ETH_P_IPV6), leaseNSExprs(vip, set)))
			}
		}
		s.chains = append(s.chains, ch)
		s.rules = append(s.rules, rules)
	}
	return s
}

// metaProtocolExprs: meta protocol P (the frame's ethertype).
func metaProtocolExprs(p uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{byte(p >> 8), byte(p)}},
	}
}

// beatRenewExprs: meta l4proto udp udp dport PORT, the owner beat's
// payload bytes, update @owner { VIP timeout TTL }.
func beatRenewExprs(vip netip.Addr, port uint16, b *LeaseBeats, set *nftables.Set) []expr.Any {
	out := concat(l4protoExprs(unix.IPPROTO_UDP), []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{byte(port >> 8), byte(port)}},
	})
	for _, m := range b.Match {
		out = append(out, &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: udpHeaderLen + m.Offset, Len: uint32(len(m.Value))})
		want := m.Value
		if m.Mask != nil {
			out = append(out, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: uint32(len(m.Mask)), Mask: m.Mask, Xor: make([]byte, len(m.Mask))})
			want = make([]byte, len(m.Value))
			for i := range want {
				want[i] = m.Value[i] & m.Mask[i]
			}
		}
		out = append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: want})
	}
	return append(out,
		&expr.Immediate{Register: reg1, Data: vip.AsSlice()},
		&expr.Dynset{SrcRegKey: reg1, SetName: set.Name, SetID: set.ID, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: b.TTL},
	)
}

// installBeats makes the kernel hold the beat-renewed lease tables for
// want (by family), adopting tables that already hold exactly that (a
// restarted daemon keeps a lease its beats keep), and deletes the arp and
// ip6 lease tables. Called with l.mu held.
func (l *Lease) installBeats(ctx context.Context, c *nftables.Conn, want map[nftables.TableFamily]netip.Addr) ([]leaseSpec, bool, error) {
	var specs []leaseSpec
	queued := false
	for _, fam := range leaseFamilies {
		t, err := findNamedTable(c, fam, leaseTableName(fam))
		if err != nil {
			return nil, false, fmt.Errorf("listing %s tables: %w", leaseFamilyName(fam), err)
		}
		if t != nil {
			c.DelTable(t)
			queued = true
		}
	}
	for _, name := range []string{BeatLeaseTable4, BeatLeaseTable6} {
		var vip netip.Addr
		if name == BeatLeaseTable4 {
			vip = want[nftables.TableFamilyARP]
		} else {
			vip = want[nftables.TableFamilyIPv6]
		}
		cur, err := findNamedTable(c, nftables.TableFamilyNetdev, name)
		if err != nil {
			return nil, false, fmt.Errorf("listing netdev tables: %w", err)
		}
		if !vip.IsValid() {
			if cur != nil {
				c.DelTable(cur)
				queued = true
			}
			continue
		}
		spec := buildBeatLeaseTable(vip, l.beats)
		specs = append(specs, spec.leaseSpec)
		if cur != nil {
			same, err := sameBeatLeaseTable(c, cur, spec)
			if err != nil {
				return nil, false, err
			}
			if same {
				continue
			}
			c.DelTable(cur)
			l.log.Warn("replacing the owner lease table; the lease is dropped until the next claim", "table", name, "vip", vip)
		}
		c.AddTable(spec.table)
		if err := c.AddSet(spec.set, nil); err != nil {
			return nil, false, fmt.Errorf("queueing the lease set: %w", err)
		}
		for i, ch := range spec.chains {
			c.AddChain(ch)
			for _, r := range spec.rules[i] {
				c.AddRule(r)
			}
		}
		queued = true
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	return specs, queued, nil
}

// sameBeatLeaseTable reports whether the kernel's netdev lease table t is
// exactly spec: its set, its chains (by name, which carries the device)
// and each chain's rules (by their comments, which carry a digest of the
// expressions).
func sameBeatLeaseTable(c *nftables.Conn, t *nftables.Table, spec beatLeaseSpec) (bool, error) {
	sets, err := c.GetSets(t)
	if err != nil {
		return false, fmt.Errorf("listing sets: %w", err)
	}
	if len(sets) != 1 || sets[0].Name != spec.set.Name || !sets[0].HasTimeout || !sets[0].Dynamic ||
		sets[0].KeyType.GetNFTMagic() != spec.set.KeyType.GetNFTMagic() {
		return false, nil
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return false, fmt.Errorf("listing chains: %w", err)
	}
	var mine []*nftables.Chain
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == t.Name {
			mine = append(mine, ch)
		}
	}
	if len(mine) != len(spec.chains) {
		return false, nil
	}
	for i, want := range spec.chains {
		j := slices.IndexFunc(mine, func(ch *nftables.Chain) bool { return ch.Name == want.Name })
		if j < 0 || !sameChain(mine[j], want) {
			return false, nil
		}
		rules, err := c.GetRules(t, mine[j])
		if err != nil {
			return false, fmt.Errorf("listing rules: %w", err)
		}
		if len(rules) != len(spec.rules[i]) {
			return false, nil
		}
		for k, r := range spec.rules[i] {
			if string(rules[k].UserData) != string(r.UserData) {
				return false, nil
			}
		}
	}
	return true, nil
}

// BeatDevices returns the interfaces the routes to addrs leave on (in the
// namespace given by the options), in order and without repeats: where a
// node's beats to those peers go out. An address without a route is
// skipped.
func BeatDevices(addrs []netip.Addr, opts ...Option) ([]string, error) {
	v, err := NewVIP(opts...)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	h, err := v.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var out []string
	for _, a := range addrs {
		routes, err := h.RouteGet(net.IP(a.Unmap().AsSlice()))
		if err != nil || len(routes) == 0 {
			continue
		}
		link, err := h.LinkByIndex(routes[0].LinkIndex)
		if err != nil {
			continue
		}
		if name := link.Attrs().Name; name != "lo" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}
