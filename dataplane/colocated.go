package dataplane

// Rules for a node that is both a VIP peer and a backend (the co-located
// topology: the daemon on the control-plane nodes themselves). They are
// in every table, and do nothing on a node that serves no backend.
//
// A flow through the VIP has one conntrack entry on the owner, and the
// same entry on every peer through connection sync:
//
//	original  client:cport -> VIP:port
//	reply     backend:bport -> VIP:sport   (DNAT to the backend, SNAT to the VIP)
//
// On LB hosts the backend is always another host. Co-located, the backend
// may be the owner itself or the next owner, and both must keep that
// shape for the entry to be valid wherever the VIP goes:
//
//   - The owner SNATs the flows it delivers to its own backend to the VIP
//     too (input-nat), so the local socket talks to VIP:sport exactly as
//     a remote backend's socket does, and the synced entry is the same as
//     for a forwarded flow. When the VIP moves away, the new owner
//     forwards the flow back to this node from VIP:sport, to the same
//     socket.
//   - A node that does not hold the VIP does not track the packets it
//     exchanges as a backend with the owner (raw-prerouting: from the VIP
//     to a backend port; raw-output: from a backend port to the VIP): it
//     does no NAT on them, and an entry of its own for them (VIP:sport ->
//     backend:bport) would clash with the synced entry, whose reply tuple
//     is the same, so connection sync could not create the entry the node
//     needs when it takes the VIP over; and the old owner's entry of a
//     flow it delivered locally would catch the flow when the new owner
//     forwards it back. Whether the node holds the VIP is asked of the
//     routing table at each packet (fib type local), so the rules never
//     change with ownership: the moment the VIP address is added, the
//     packets are tracked again and the synced entry de-NATs the replies
//     to the client.

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Chains of the co-located rules.
const (
	ChainInputNAT      = "input-nat"
	ChainRawPrerouting = "raw-prerouting"
	ChainRawOutput     = "raw-output"
)

// colocatedChains returns the three chains of table t.
func colocatedChains(t *nftables.Table) (inNAT, rawPre, rawOut *nftables.Chain) {
	accept := nftables.ChainPolicyAccept
	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept}
	}
	inNAT = chain(ChainInputNAT, nftables.ChainTypeNAT, nftables.ChainHookInput, nftables.ChainPriorityNATSource)
	rawPre = chain(ChainRawPrerouting, nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRaw)
	rawOut = chain(ChainRawOutput, nftables.ChainTypeFilter, nftables.ChainHookOutput, nftables.ChainPriorityRaw)
	return inNAT, rawPre, rawOut
}

// addColocatedRules adds the chains and rules of the co-located topology
// to spec, add being buildTable's rule adder.
func addColocatedRules(spec *tableSpec, p familyPlan, add func(*nftables.Chain, string, []expr.Any)) {
	inNAT, rawPre, rawOut := colocatedChains(spec.table)
	spec.chains = append(spec.chains, inNAT, rawPre, rawOut)
	svc := netip.AddrPortFrom(p.vip, p.port).String()
	add(inNAT, "snat locally delivered flows of "+svc+" to the VIP", snatExprs(p))
	for _, port := range backendPorts(p) {
		add(rawPre, fmt.Sprintf("not holding the VIP: flows from %s to backend port %d untracked", p.vip, port), backendInExprs(p, port))
		add(rawOut, fmt.Sprintf("not holding the VIP: flows from backend port %d to %s untracked", port, p.vip), backendOutExprs(p, port))
	}
}

// backendPorts returns the distinct ports of p's backends, ascending.
func backendPorts(p familyPlan) []uint16 {
	var out []uint16
	for _, b := range p.backends {
		if !slices.Contains(out, b.Addr.Port()) {
			out = append(out, b.Addr.Port())
		}
	}
	slices.Sort(out)
	return out
}

// backendInExprs builds, for raw-prerouting:
//
//	ip saddr VIP tcp dport PORT fib saddr type != local notrack
//
// A packet from the VIP that reaches a node not holding it was sent by the
// owner to this node's backend.
func backendInExprs(p familyPlan, port uint16) []expr.Any {
	return concat(
		saddrExprs(p.is6(), p.vip.AsSlice()),
		l4protoExprs(unix.IPPROTO_TCP),
		dportExprs(port),
		notLocalExprs(true),
		[]expr.Any{&expr.Notrack{}},
	)
}

// backendOutExprs builds, for raw-output:
//
//	ip daddr VIP tcp sport PORT fib daddr type != local notrack
//
// The answer of this node's backend to the owner. A process of this node
// that connects to the VIP has an ephemeral source port, not a backend's,
// and is tracked (the output DNAT needs it).
func backendOutExprs(p familyPlan, port uint16) []expr.Any {
	return concat(
		daddrExprs(p.is6(), p.vip.AsSlice()),
		l4protoExprs(unix.IPPROTO_TCP),
		sportExprs(port),
		notLocalExprs(false),
		[]expr.Any{&expr.Notrack{}},
	)
}

// sportExprs matches th sport (after an l4proto match).
func sportExprs(port uint16) []expr.Any { return thPortExprs(0, port) }

// notLocalExprs matches fib saddr (or daddr) type != local: the address
// is not one of this node's, so it does not hold the VIP.
func notLocalExprs(saddr bool) []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, ResultADDRTYPE: true, FlagSADDR: saddr, FlagDADDR: !saddr},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}
