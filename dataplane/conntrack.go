package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Conntrack is epconsole's one door to the kernel's connection tracking
// table (ctnetlink) in one network namespace: today deleting the flows of a
// dead backend; later the dump/event stream and creation of entries
// for connection sync. Methods are safe for concurrent use; each call opens
// its own netlink socket.
type Conntrack struct {
	ns  netNS
	log *slog.Logger
}

// NewConntrack returns a Conntrack for the namespace given by the options
// (default: the calling process's namespace).
func NewConntrack(opts ...Option) (*Conntrack, error) {
	o := buildOptions(opts)
	ns, err := openNetNS(o)
	if err != nil {
		return nil, err
	}
	return &Conntrack{ns: ns, log: o.log}, nil
}

// Close releases the namespace handle if the Conntrack opened it.
func (c *Conntrack) Close() error { return c.ns.close() }

func (c *Conntrack) dial() (*conntrack.Conn, error) {
	cfg := &netlink.Config{}
	if c.ns.fd >= 0 {
		cfg.NetNS = c.ns.fd
	}
	conn, err := conntrack.Dial(cfg)
	if err != nil {
		return nil, fmt.Errorf("dialing ctnetlink: %w", err)
	}
	return conn, nil
}

// Flows returns the TCP conntrack entries whose original destination is
// vip (address and port).
func (c *Conntrack) Flows(ctx context.Context, vip netip.AddrPort) ([]conntrack.Flow, error) {
	return c.match(ctx, func(f conntrack.Flow) bool { return origDst(f) == vip })
}

// DeleteBackendFlows deletes the TCP conntrack entries of connections to
// vip that were DNATed to backend (original destination vip, reply source
// backend), so their clients see a reset at their next packet instead of
// waiting on a dead backend. A zero vip matches every original
// destination. It returns how many entries it deleted; entries that vanish
// meanwhile are not an error.
func (c *Conntrack) DeleteBackendFlows(ctx context.Context, vip, backend netip.AddrPort) (int, error) {
	return c.deleteMatching(ctx, func(f conntrack.Flow) bool {
		return (!vip.IsValid() || origDst(f) == vip) && replySrc(f) == backend
	})
}

// deleteMatching deletes the entries keep selects and returns how many it
// deleted; entries that vanish meanwhile are not an error.
func (c *Conntrack) deleteMatching(ctx context.Context, keep func(conntrack.Flow) bool) (int, error) {
	flows, err := c.match(ctx, keep)
	if err != nil || len(flows) == 0 {
		return 0, err
	}
	conn, err := c.dial()
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	n := 0
	for _, f := range flows {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if err := conn.Delete(f); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // gone meanwhile
			}
			return n, fmt.Errorf("deleting conntrack entry %v: %w", f.TupleOrig, err)
		}
		n++
	}
	return n, nil
}

// deleteFlows deletes, in one pass over the table, the TCP entries of every
// key (original destination key.service, reply source key.backend) and
// returns how many it deleted per key. On an error the counts so far are
// returned with it.
func (c *Conntrack) deleteFlows(ctx context.Context, keys []flowKey) (map[flowKey]int, error) {
	want := make(map[flowKey]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	counts := make(map[flowKey]int, len(keys))
	flows, err := c.match(ctx, func(f conntrack.Flow) bool { return want[flowKey{origDst(f), replySrc(f)}] })
	if err != nil || len(flows) == 0 {
		return counts, err
	}
	conn, err := c.dial()
	if err != nil {
		return counts, err
	}
	defer conn.Close()
	for _, f := range flows {
		if err := ctx.Err(); err != nil {
			return counts, err
		}
		if err := conn.Delete(f); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return counts, fmt.Errorf("deleting %v: %w", f.TupleOrig, err)
		}
		counts[flowKey{origDst(f), replySrc(f)}]++
	}
	return counts, nil
}

// survey returns the keys that have TCP entries through one of services
// and were DNATed (the reply comes from another address than the
// original destination): which backends hold established flows.
func (c *Conntrack) survey(ctx context.Context, services []netip.AddrPort) (map[flowKey]bool, error) {
	flows, err := c.match(ctx, func(f conntrack.Flow) bool {
		return slices.Contains(services, origDst(f)) && replySrc(f) != origDst(f)
	})
	if err != nil {
		return nil, err
	}
	keys := map[flowKey]bool{}
	for _, f := range flows {
		keys[flowKey{origDst(f), replySrc(f)}] = true
	}
	return keys, nil
}

// match dumps the TCP entries of the family of interest and keeps those
// for which keep is true.
func (c *Conntrack) match(ctx context.Context, keep func(conntrack.Flow) bool) ([]conntrack.Flow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var out []conntrack.Flow
	for _, fam := range []netfilter.ProtoFamily{netfilter.ProtoIPv4, netfilter.ProtoIPv6} {
		flows, err := conn.DumpFilter(conntrack.NewFilter().Family(fam), nil)
		if err != nil {
			return nil, fmt.Errorf("dumping conntrack table: %w", err)
		}
		for _, f := range flows {
			if f.TupleOrig.Proto.Protocol == unix.IPPROTO_TCP && keep(f) {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

func origDst(f conntrack.Flow) netip.AddrPort {
	return netip.AddrPortFrom(f.TupleOrig.IP.DestinationAddress.Unmap(), f.TupleOrig.Proto.DestinationPort)
}

func replySrc(f conntrack.Flow) netip.AddrPort {
	return netip.AddrPortFrom(f.TupleReply.IP.SourceAddress.Unmap(), f.TupleReply.Proto.SourcePort)
}
