// Package drills runs the real `epconsole --daemon` binary on three LB
// hosts in network namespaces (internal/netlab), with three stand-in
// apiservers and a client, and drills what the cluster promises: exactly one
// VIP owner, a fast takeover when the owner's link dies, a graceful handoff
// on SIGTERM with no failed request, a SIGHUP with a broken config that
// changes nothing, and a cluster run with the configs `epconsole import`
// makes from the lab written as haproxy.cfg + keepalived.conf, and a
// rolling upgrade from a binary built at an older commit (opt-in:
// EPCONSOLE_DRILL_UPGRADE=1 or EPCONSOLE_UPGRADE_BIN).
//
// The package has no code of its own beyond this comment. TestMain builds
// the binary once (or takes EPCONSOLE_BIN); every test builds its own lab:
//
//	EPCONSOLE_REQUIRE_NETNS=1 go test -p 1 ./internal/drills/
//
// The tests need root and network namespaces; without them they skip, or
// fail under EPCONSOLE_REQUIRE_NETNS=1. Namespace names start with "cl",
// addresses come from 198.18.5.0/24 and fd00:198:18:5::/64 (the panic
// routing drills: "pnc" and "pnco", 198.18.130.0/24 and 198.18.131.0/24
// with fd00:198:18:130::/64 and fd00:198:18:131::/64).
package drills
