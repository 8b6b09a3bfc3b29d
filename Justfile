# epconsole recipes. Every recipe runs a plain command that also works
# without `just` (install it with `npm install -g rust-just` if you like).

default:
    @just --list

# the demo: a whole endpoint in network namespaces (as root; its own binary, cmd/epconsole-lab)
lab *ARGS:
    go run ./cmd/epconsole-lab {{ARGS}}

# all tests (as root, so the network-namespace tests run)
test:
    go test ./...

# what CI runs, on this checkout
ci:
    bash .ci/run

# formatting and vet
lint:
    test -z "$(gofmt -l $(git ls-files '*.go'))" || (gofmt -l $(git ls-files '*.go'); exit 1)
    go vet ./...

# fuzz the config parser (default 60s)
fuzz TIME="60s":
    go test -run '^$' -fuzz FuzzParse -fuzztime {{TIME}} ./internal/config

# build the binaries into ./bin: epconsole (what ships) and epconsole-lab (the demo)
build:
    mkdir -p bin && go build -o bin/epconsole ./cmd/epconsole && go build -o bin/epconsole-lab ./cmd/epconsole-lab

# every system side by side (direct, HAProxy + keepalived as the runbook, tuned keepalived + HAProxy, tuned keepalived + nft DNAT + conntrackd, epconsole) through owner failures (quiet and loaded), SYN retransmits, streams, in-flight requests, TLS rates, backend failure, bulk throughput, idle cost at 3 and 5 peers, false failovers; `just bench --quick` for the < 10 min version, `--only NAMES` for some systems or sections (root; installs haproxy, keepalived, conntrackd, iperf3, nftables from Debian's packages if missing; rewrites docs/BENCHMARKS.md, docs/bench/results.json and the charts)
bench *ARGS:
    ./scripts/bench {{ARGS}}

# the connection-sync bench (root): an owner and two peers in namespaces, FLOWS flows then RATE new and RATE closed a second for SECONDS; lag p50/p99/max, wire bytes/s, CPU against a run without the sync, join time of an empty peer
bench-sync FLOWS="50000" RATE="2000" SECONDS="60":
    EPCONSOLE_BENCH_SYNC=1 EPCONSOLE_BENCH_SYNC_FLOWS={{FLOWS}} EPCONSOLE_BENCH_SYNC_RATE={{RATE}} EPCONSOLE_BENCH_SYNC_SECONDS={{SECONDS}} go test -count=1 -v -timeout 20m -run 'TestSyncBench' ./internal/connsync/

# the same load against conntrackd in FTFW mode between three LB namespaces with nft DNAT (root; apt-get install -y conntrackd): fill time into the peers' caches, each conntrackd's CPU, join after a resync request, commit time
bench-sync-rival FLOWS="50000" RATE="2000" SECONDS="60":
    EPCONSOLE_BENCH_SYNC_RIVAL=1 EPCONSOLE_BENCH_SYNC_FLOWS={{FLOWS}} EPCONSOLE_BENCH_SYNC_RATE={{RATE}} EPCONSOLE_BENCH_SYNC_SECONDS={{SECONDS}} go test -count=1 -v -timeout 20m -run 'TestSyncBenchConntrackd' ./internal/connsync/

# the connection-sync drill at scale (root): FLOWS TLS connections held through the VIP, the owner's cable pulled, RUNS times (each run: with the sync, with 1 % loss between the peers, and the control without it); CI runs 2,000 flows once
drill-sync-scale FLOWS="50000" RUNS="5":
    EPCONSOLE_REQUIRE_NETNS=1 EPCONSOLE_DRILL_SYNC_FLOWS={{FLOWS}} go test -count={{RUNS}} -p 1 -v -timeout 180m -run '^TestConnSyncScale$' ./internal/drills/

# the long drills (root): 1 % loss between the LB peers with both cores saturated for LOSS, and the five-peer cluster (kill -9, 2 against 3); not in CI
drills-long LOSS="60s":
    go build -o /tmp/epconsole-drills ./cmd/epconsole
    EPCONSOLE_BIN=/tmp/epconsole-drills EPCONSOLE_REQUIRE_NETNS=1 EPCONSOLE_DRILL_LOSS={{LOSS}} EPCONSOLE_DRILL_PEERS5=1 go test -count=1 -p 1 -v -timeout 20m -run 'TestLossSaturatedNoFailover|TestFivePeers' ./internal/drills/

# the real-traffic soak (root): 3 peers with the default heartbeat, 20 streams, a request every 0.5 s and a connect loop through the VIP for DURATION, beside LOAD busy loops (0: none; 8: a load average near 10 on two cores); 0 VIP moves, 0 lost streams (CI runs 20s)
soak DURATION="90s" LOAD="0":
    EPCONSOLE_REQUIRE_NETNS=1 EPCONSOLE_DRILL_SOAK={{DURATION}} EPCONSOLE_DRILL_SOAK_LOAD={{LOAD}} go test -count=1 -p 1 -v -timeout 10m -run 'TestRealTrafficSoak' ./internal/drills/
# the overload drill (root): a 5-peer lab with 7 backends and every core overloaded by busy loops for DURATION, with the probes' lateness discount and without (docs/chaos.md)
overload DURATION="45s":
    EPCONSOLE_REQUIRE_NETNS=1 EPCONSOLE_CHAOS_OVERLOAD={{DURATION}} go test -count=1 -p 1 -v -timeout 20m -run '^TestOverload$' ./internal/chaos/
# a fault campaign (root): COUNT faults drawn from SEED against a 3-peer lab under a connect loop and streams, invariants checked by an observer outside epconsole (docs/chaos.md); CI runs `chaos 16 20`
chaos SEED="16" COUNT="20":
    EPCONSOLE_REQUIRE_NETNS=1 EPCONSOLE_CHAOS_SEED={{SEED}} EPCONSOLE_CHAOS_COUNT={{COUNT}} go test -count=1 -p 1 -v -timeout 90m -run '^TestCampaign$' ./internal/chaos/

# the rolling-upgrade drill (root): a 3-peer cluster on epconsole built at FROM, upgraded to this checkout one peer at a time under load, rolled back, and the control without the connection sync
upgrade-drill FROM="051e18e":
    EPCONSOLE_REQUIRE_NETNS=1 EPCONSOLE_DRILL_UPGRADE=1 EPCONSOLE_UPGRADE_FROM={{FROM}} go test -count=1 -p 1 -v -timeout 10m -run 'TestRollingUpgrade' ./internal/drills/

# release binaries: static linux/amd64 and linux/arm64 into dist/ with SHA256SUMS (version from git describe)
release:
    scripts/release

# regenerate THIRD_PARTY_LICENSES from the modules linked into the binary
licenses:
    scripts/third-party-licenses

# .deb and .rpm packages into dist/ (nfpm; the binaries from scripts/release): binary, hardened systemd unit, sample config, docs, licences
package:
    scripts/package
