package cluster

import (
	"context"
	"net/netip"
)

// VIPAnnouncer puts the VIP on this host and takes it off; the daemon
// executes Elect's Decision through it. It knows nothing about elections.
// dataplane's *VIP satisfies it. Add and Remove are idempotent; Add
// announces the address (gratuitous ARP / unsolicited NA, repeated in the
// background while ctx lasts), Announce sends one more announcement.
type VIPAnnouncer interface {
	Add(ctx context.Context, iface string, addr netip.Addr) error
	Remove(ctx context.Context, iface string, addr netip.Addr) error
	Announce(ctx context.Context, iface string, addr netip.Addr) error
}
