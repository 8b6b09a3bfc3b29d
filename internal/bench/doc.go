// Package bench compares epconsole with its rivals on this machine, in the
// same netlab topology (a client, three LB hosts with priorities
// 150/100/50, three stand-in apiservers) and in the same run.
//
// The package has no code of its own beyond this comment: everything is in
// its tests. BenchmarkSuite (suite_test.go) runs five systems one after
// the other, each in a lab of its own: direct (the client talks to a
// backend), HAProxy + keepalived as the classic runbook (VRRPv2,
// advert_int 1, track_script), keepalived tuned to VRRPv3 advert_int 0.01
// + HAProxy, that keepalived + epconsole's nft DNAT tables + conntrackd
// (FTFW, primary-backup notify scripts), and three `epconsole --daemon`.
// The workloads: owner failures (link down, power off, kill -9 and a
// graceful stop of the daemon) under a 5 ms connect loop, on a quiet host
// and beside busy loops (the loaded mode), with a second loop of
// connects made as a default client makes them, to count those that pay
// a 1 s SYN retransmit; 100 streams and 50 slow requests through an owner
// power-off; new TLS connections and kept-alive requests per second; a
// backend killed and a backend's link down under load; bulk throughput
// with iperf3; the idle CPU and memory of the LBs at 3 and 5 peers; and
// false failovers: every system at once, each in its own lab, both cores
// saturated and 1 % loss on the LB hosts, VIP moves counted. The
// client programs are this test binary re-executed in the client's
// namespace (probe_test.go). The run writes docs/BENCHMARKS.md,
// docs/bench/results.json and charts drawn with gonum.org/v1/plot
// (linked into this test binary only). Run it with
//
//	scripts/bench [--quick]        (or `just bench [--quick]`)
//
// (--only takes system and section names for a look at a part of it)
// which installs haproxy, keepalived, conntrackd, iperf3 and nftables
// from Debian's packages when missing, builds cmd/epconsole and runs the suite (full < 45 min,
// --quick < 10 min). Plain `go test` runs self-checks only: the generated
// configs are accepted by the real programs, the figures and the renderers
// work on made-up runs, and the cut-over drill, TestCutover: a running
// keepalived + HAProxy pair replaced by epconsole host by host in the
// documented order (docs/migration.md; the full version behind
// EPCONSOLE_DRILL_CUTOVER=1). BenchmarkFailover, the older link-down-only
// comparison, stays behind EPCONSOLE_BENCH=1. BenchmarkTLSProfile
// (tlsprofile_test.go, behind EPCONSOLE_BENCH_TLSPROF=DIR) splits the CPU
// of the new-connection load by process and, with perf, by function, for
// each system, for epconsole and the nft rival again with their daemons
// stopped and the nft tables left, and for epconsole with --no-conn-sync.
//
// The quick mode waits on events rather than sleeping out worst cases
// (HAProxy's backend state from its log, a stream with no byte for its
// line interval + 5 s counted lost), and a quick run's BENCHMARKS.md
// estimates the full mode's duration from its section timings.
//
// The suite needs root and network namespaces. Namespace names start with
// "bn" ("bnx" for the labs of the sections that run every system at
// once), addresses come from 198.18.8.0/24 and fd00:198:18:8::/64 (the
// cut-over drill: "bnc", 198.19.77.0/24 and fd00:198:18:77::/64).
package bench
