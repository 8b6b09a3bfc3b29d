// Package dataplane executes epconsole's desired state in the kernel: the
// nftables tables named "epconsole" (DNAT of VIP:port to healthy backends
// through a Maglev-filled slot map, SNAT to the VIP for forwarded flows,
// masquerade to the node's own address for the VIP owner's local flows
// whose source is the VIP, only the service port open on the VIP), the
// VIP address with its gratuitous ARP / unsolicited neighbour
// advertisement, and the conntrack entries of backends that died (a
// draining backend gets no new flows and keeps its established ones:
// Desired.Drain).
//
// It takes plain values (addresses, names, a healthy set) and imports none
// of epconsole's other packages. Every kernel-facing type can be bound to a
// network namespace (by file descriptor or by name under /run/netns), so
// tests and the lab program other namespaces without moving threads.
// Decisions are pure functions (BuildSlots, the rule builders, the choice
// of flows to cut); the types Dataplane, VIP and Conntrack only carry them
// out.
package dataplane
