package dataplane

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The peer filter: the heartbeat port (UDP) and the gossip port (TCP and
// UDP) of this host take packets from the configured peers' addresses
// only. Everything else sent to them is dropped in the raw prerouting
// hook, before conntrack and before any socket sees it, so a flood from a
// host that is not a peer costs the kernel one set lookup per packet and
// the heartbeat nothing.
//
// Packets to a VIP are left alone: the raw hook runs before NAT, so a
// backend's answer to a forwarded flow still carries the VIP and the
// client's source port as its destination, and a client whose source
// port happened to be the gossip or heartbeat port had every answer
// dropped (its connect hung; seen at ~50,000 flows from one client with a
// widened ephemeral range). Nothing listens on the VIP's gossip or
// heartbeat port: the sockets bind the node's own address, and the
// table's input chain drops every new packet to the VIP but the service
// port. The nft text form of what Install programs:
//
//	table inet epconsole {
//		set peers4 { type ipv4_addr; elements = { PEER, ... } }
//		set peers6 { type ipv6_addr; elements = { PEER, ... } }
//		chain peers {
//			type filter hook prerouting priority raw; policy accept;
//			meta nfproto ipv4 meta l4proto udp th dport HEARTBEAT fib daddr type local ip daddr != VIP iifname != "lo" ip saddr != @peers4 counter drop
//			meta nfproto ipv4 meta l4proto udp th dport GOSSIP ...
//			meta nfproto ipv4 meta l4proto tcp th dport GOSSIP ...
//			(the same three for ipv6 with ip6 saddr and @peers6)
//		}
//	}
//
// The table is of the inet family, so it is apart from the ip and ip6
// "epconsole" tables that Reconcile replaces.
const (
	// PeerFilterChain is the chain of the peer filter in the inet table
	// TableName.
	PeerFilterChain = "peers"
	peerSet4        = "peers4"
	peerSet6        = "peers6"
	peerSetID4      = 5 // fixed set IDs (the slot maps use 1 and 2, the lease 3 and 4)
	peerSetID6      = 6
)

// PeerFilterSpec is what the peer filter lets through.
type PeerFilterSpec struct {
	// HeartbeatPort is the UDP port of the heartbeat; GossipPort the TCP
	// and UDP port of the gossip (memberlist). 0 leaves a port unfiltered.
	HeartbeatPort, GossipPort uint16
	// Peers are the addresses allowed to reach them (the other LB nodes).
	Peers []netip.Addr
	// VIPs are the virtual addresses, whose packets the filter leaves
	// alone (answers of forwarded flows, whatever their port).
	VIPs []netip.Addr
}

// PeerFilter programs the peer filter table of one network namespace.
// Methods are safe for concurrent use.
type PeerFilter struct {
	ns  netNS
	log *slog.Logger
	mu  sync.Mutex
}

// NewPeerFilter returns a PeerFilter for the namespace given by the options
// (default: the calling process's namespace). It does not touch the
// kernel.
func NewPeerFilter(opts ...Option) (*PeerFilter, error) {
	o := buildOptions(opts)
	ns, err := openNetNS(o)
	if err != nil {
		return nil, err
	}
	return &PeerFilter{ns: ns, log: o.log}, nil
}

// Close releases the namespace handle if the PeerFilter opened it; the
// table stays (Remove deletes it).
func (f *PeerFilter) Close() error { return f.ns.close() }

func (f *PeerFilter) conn() (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if f.ns.fd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(f.ns.fd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink socket: %w", err)
	}
	return c, nil
}

// Install replaces the peer filter table with one for spec, in one batch
// (the old table's delete and the new one's add commit together: no
// moment without a filter).
func (f *PeerFilter) Install(ctx context.Context, spec PeerFilterSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.conn()
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	cur, err := findNamedTable(c, nftables.TableFamilyINet, TableName)
	if err != nil {
		return fmt.Errorf("listing inet tables: %w", err)
	}
	if cur != nil {
		c.DelTable(cur)
	}
	if err := queuePeerFilter(c, spec); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("installing the peer filter (table inet %s): %w", TableName, err)
	}
	f.log.Info("peer filter installed", "heartbeat_port", spec.HeartbeatPort, "gossip_port", spec.GossipPort, "peers", spec.Peers, "vips_exempt", spec.VIPs)
	return nil
}

// Remove deletes the peer filter table if there is one.
func (f *PeerFilter) Remove(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.conn()
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	cur, err := findNamedTable(c, nftables.TableFamilyINet, TableName)
	if err != nil || cur == nil {
		return err
	}
	c.DelTable(cur)
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("removing the peer filter (table inet %s): %w", TableName, err)
	}
	f.log.Info("peer filter removed")
	return nil
}

// queuePeerFilter queues the table, its sets and its chain.
func queuePeerFilter(c *nftables.Conn, spec PeerFilterSpec) error {
	t := c.AddTable(&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet})
	sets := [2]*nftables.Set{
		{Table: t, Name: peerSet4, ID: peerSetID4, KeyType: nftables.TypeIPAddr},
		{Table: t, Name: peerSet6, ID: peerSetID6, KeyType: nftables.TypeIP6Addr},
	}
	var elems [2][]nftables.SetElement
	for _, a := range spec.Peers {
		a = a.Unmap()
		if a.Is4() {
			elems[0] = append(elems[0], nftables.SetElement{Key: a.AsSlice()})
		} else if a.Is6() {
			elems[1] = append(elems[1], nftables.SetElement{Key: a.AsSlice()})
		}
	}
	for i, s := range sets {
		if err := c.AddSet(s, elems[i]); err != nil {
			return fmt.Errorf("peer filter set %s: %w", s.Name, err)
		}
	}
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name: PeerFilterChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &policy,
	})
	for _, r := range peerFilterRules(spec) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r.exprs(sets, spec.VIPs)})
	}
	return nil
}

// peerRule is one drop rule: packets of family v6 or not, protocol proto
// to port, from an address not in the family's peer set.
type peerRule struct {
	v6    bool
	proto byte
	port  uint16
}

// peerFilterRules lists the rules of spec, IPv4 first.
func peerFilterRules(spec PeerFilterSpec) []peerRule {
	var out []peerRule
	for _, v6 := range []bool{false, true} {
		if spec.HeartbeatPort != 0 {
			out = append(out, peerRule{v6, unix.IPPROTO_UDP, spec.HeartbeatPort})
		}
		if spec.GossipPort != 0 {
			out = append(out, peerRule{v6, unix.IPPROTO_UDP, spec.GossipPort}, peerRule{v6, unix.IPPROTO_TCP, spec.GossipPort})
		}
	}
	return out
}

// exprs is the rule's expressions; a packet to one of vips (of the rule's
// family) does not match.
func (r peerRule) exprs(sets [2]*nftables.Set, vips []netip.Addr) []expr.Any {
	nfproto, saddrOff, daddrOff, addrLen, set := byte(unix.NFPROTO_IPV4), uint32(12), uint32(16), uint32(4), sets[0]
	if r.v6 {
		nfproto, saddrOff, daddrOff, addrLen, set = unix.NFPROTO_IPV6, 8, 24, 16, sets[1]
	}
	port := binary.BigEndian.AppendUint16(nil, r.port)
	local := binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)
	lo := make([]byte, unix.IFNAMSIZ)
	copy(lo, "lo")
	out := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: local},
	}
	for _, v := range vips {
		v = v.Unmap()
		if v.Is6() != r.v6 {
			continue
		}
		out = append(out,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: daddrOff, Len: addrLen},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: v.AsSlice()})
	}
	return append(out,
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: lo},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddrOff, Len: addrLen},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID, Invert: true},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
}
