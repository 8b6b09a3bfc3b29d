package dataplane

import (
	"context"
	"net/netip"

	"github.com/ti-mo/conntrack"
)

// CountByReplySource counts the TCP conntrack entries through each of
// services by their reply source (the backend a VIP's flow was DNATed
// to), with one kernel-filtered dump per IPv4 service (CTA_FILTER): the
// kernel sends only those entries, not the whole table for the daemon to
// decode and throw away. An IPv6 service is counted from the whole IPv6
// table. On an error the counts so far are returned with it.
func (c *Conntrack) CountByReplySource(ctx context.Context, services []netip.AddrPort) (map[netip.AddrPort]int, error) {
	counts := map[netip.AddrPort]int{}
	if len(services) == 0 {
		return counts, nil
	}
	conn, err := c.dialNetlink()
	if err != nil {
		return counts, err
	}
	defer conn.Close()
	for _, svc := range services {
		if !svc.Addr().Unmap().Is4() {
			// This kernel's filter does not select the IPv6 entries
			// (TestDpCountByReplySource): the whole IPv6 table, as before.
			flows, err := c.match(ctx, func(f conntrack.Flow) bool { return origDst(f) == svc })
			if err != nil {
				return counts, err
			}
			for _, f := range flows {
				counts[replySrc(f)]++
			}
			continue
		}
		entries, err := c.dumpMatching(ctx, conn, ctMatch{service: svc})
		if err != nil {
			return counts, err
		}
		for _, e := range entries {
			counts[e.replySrc]++
		}
	}
	return counts, nil
}
