// Package e2e holds epconsole's end-to-end datapath tests: real TLS
// traffic from a client host through the VIP, programmed by package
// dataplane on one or two LB hosts, to stand-in apiservers, all in network
// namespaces built by internal/netlab.
//
// The package has no code of its own beyond this comment; everything lives
// in its tests and one benchmark (new TLS connections per second through
// the VIP against direct):
//
//	EPCONSOLE_REQUIRE_NETNS=1 go test ./internal/e2e/
//	go test -run '^$' -bench . -benchtime 3x ./internal/e2e/
//
// The tests need root and network namespaces; without them they skip, or
// fail under EPCONSOLE_REQUIRE_NETNS=1. Namespace names start with "de",
// addresses come from 198.18.4.0/24 and fd00:198:18:4::/64 (each test has
// a lab of its own, so labs reuse those addresses on separate segments).
package e2e
