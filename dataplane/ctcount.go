package dataplane

import (
	"context"
	"net/netip"
)

// CountByReplySource counts the TCP conntrack entries through each of
// services by their reply source (the backend a VIP's flow was DNATed
// to), with one kernel-filtered dump per service (CTA_FILTER): the kernel
// sends only those entries (for IPv6, those on the service's port: see
// filterRequest), not the whole table for the daemon to decode and throw
// away. On an error the counts so far are returned with it.
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
