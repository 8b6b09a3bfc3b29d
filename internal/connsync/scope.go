package connsync

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/epconsole/epconsole/dataplane"
)

// Scope is what a received entry may describe: a TCP flow from a client
// to a configured VIP:port, DNATed to a configured backend and SNATed to
// the VIP, carrying no conntrack mark but the dataplane's own. A peer
// holding the gossip key could send anything else (an entry that NATs a
// connection to some host's SSH port to another host, with any mark); it
// is dropped, counted and logged (limited).
type Scope struct {
	// VIPs are the configured VIP:port pairs.
	VIPs []netip.AddrPort
	// Backends are the configured backends' addresses; port 0 is the
	// service port of the VIP of the backend's family.
	Backends []netip.AddrPort
	// Mark is the conntrack mark bit of forwarded flows (0:
	// dataplane.DefaultCtMark); an entry may carry it or no mark.
	Mark uint32
}

func (sc Scope) clone() Scope {
	return Scope{VIPs: slices.Clone(sc.VIPs), Backends: slices.Clone(sc.Backends), Mark: sc.Mark}
}

func (sc Scope) equal(o Scope) bool {
	return slices.Equal(sc.VIPs, o.VIPs) && slices.Equal(sc.Backends, o.Backends) && sc.Mark == o.Mark
}

// Reasons an entry is out of scope (the first word of Check's error).
var (
	errOp      = errors.New("unknown operation")
	errState   = errors.New("not a TCP state worth syncing")
	errVIP     = errors.New("original destination is not a configured VIP:port")
	errBackend = errors.New("NAT target is not a configured backend")
	errSNAT    = errors.New("reply does not go to the VIP")
	errMark    = errors.New("carries a conntrack mark")
)

// tcpStateMax is the highest TCP conntrack state (TCP_CONNTRACK_SYN_SENT2).
const tcpStateMax = 9

// Check says why e is out of scope, or nil. Upserts and deletes are
// checked alike (a delete of a flow that is not the VIP's is as foreign
// as its creation).
func (sc Scope) Check(e dataplane.SyncEntry) error {
	if e.Op != dataplane.SyncUpsert && e.Op != dataplane.SyncDelete {
		return fmt.Errorf("%w %d", errOp, e.Op)
	}
	if e.Op == dataplane.SyncUpsert && (e.TCPState > tcpStateMax || !dataplane.Syncable(e.TCPState)) {
		return fmt.Errorf("%w: %d", errState, e.TCPState)
	}
	dst := unmap(e.OrigDst)
	if !slices.Contains(sc.VIPs, dst) {
		return fmt.Errorf("%w: %v", errVIP, e.OrigDst)
	}
	if !sc.isBackend(unmap(e.ReplySrc), dst.Port()) {
		return fmt.Errorf("%w: %v", errBackend, e.ReplySrc)
	}
	if e.ReplyDst.Addr().Unmap() != dst.Addr() {
		return fmt.Errorf("%w: %v", errSNAT, e.ReplyDst)
	}
	mark := sc.Mark
	if mark == 0 {
		mark = dataplane.DefaultCtMark
	}
	if e.Mark != 0 && e.Mark != mark {
		return fmt.Errorf("%w %#x (only %#x is the dataplane's)", errMark, e.Mark, mark)
	}
	return nil
}

// isBackend reports whether a is a configured backend for a VIP on port.
func (sc Scope) isBackend(a netip.AddrPort, port uint16) bool {
	for _, b := range sc.Backends {
		b = unmap(b)
		if b.Addr() != a.Addr() {
			continue
		}
		if b.Port() == a.Port() || (b.Port() == 0 && a.Port() == port) {
			return true
		}
	}
	return false
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// reasonOf is the short name of an out-of-scope reason, for the limiter
// and the logs.
func reasonOf(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{{errOp, "op"}, {errState, "state"}, {errVIP, "vip"}, {errBackend, "backend"}, {errSNAT, "snat"}, {errMark, "mark"}} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}
