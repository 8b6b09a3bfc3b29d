// Package bench compares epconsole with its rival on this machine: the
// owner LB's cable is pulled and a client measures how long the VIP stays
// dark, for three real `epconsole --daemon` processes and for keepalived
// (VRRPv3, advert_int 0.01) with HAProxy in `mode tcp` (the classic runbook), in the
// same netlab topology (a client, three LB hosts with priorities
// 150/100/50, three stand-in apiservers) and in the same run.
//
// The package has no code of its own beyond this comment. Plain `go test`
// runs self-checks (the generated keepalived and HAProxy configs are
// accepted by the real programs) and the cut-over drill, TestCutover: a
// running keepalived + HAProxy pair replaced by epconsole host by host in
// the documented order, with the client-visible gap measured and the
// MASTER-first order as its control (docs/migration.md; the full version
// with several runs and the rollback behind EPCONSOLE_DRILL_CUTOVER=1).
// The failover comparison is a Go benchmark behind an environment
// variable, never run by CI:
//
//	EPCONSOLE_BENCH=1 go test -run '^$' -bench Failover -benchtime 1x -timeout 30m ./internal/bench/
//
// or `just bench`, which also installs keepalived and haproxy from Debian's
// packages when missing and writes the results table into
// docs/BENCHMARKS.md. EPCONSOLE_BENCH_RUNS sets the runs per side (default
// 10), EPCONSOLE_BENCH_DOC a markdown file whose results section is
// replaced, EPCONSOLE_BIN a prebuilt epconsole binary.
//
// The benchmark needs root and network namespaces. Namespace names start
// with "bn", addresses come from 198.18.8.0/24 and fd00:198:18:8::/64 (the
// cut-over drill: "bnc", 198.19.77.0/24 and fd00:198:18:77::/64).
package bench
