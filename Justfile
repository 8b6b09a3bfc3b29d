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

# every system side by side (direct, HAProxy + keepalived as the runbook, tuned keepalived + HAProxy, tuned keepalived + nft DNAT + conntrackd, epconsole) through owner failures, streams, in-flight requests, TLS rates, idle cost; `just bench --quick` for the < 10 min version (root; installs haproxy, keepalived, conntrackd from Debian's packages if missing; rewrites docs/BENCHMARKS.md, docs/bench/results.json and the charts)
bench *ARGS:
    ./scripts/bench {{ARGS}}

# the long drills (root): 1 % loss between the LB peers with both cores saturated for LOSS, and the five-peer cluster (kill -9, 2 against 3); not in CI
drills-long LOSS="60s":
    go build -o /tmp/epconsole-drills ./cmd/epconsole
    EPCONSOLE_BIN=/tmp/epconsole-drills EPCONSOLE_REQUIRE_NETNS=1 EPCONSOLE_DRILL_LOSS={{LOSS}} EPCONSOLE_DRILL_PEERS5=1 go test -count=1 -p 1 -v -timeout 20m -run 'TestLossSaturatedNoFailover|TestFivePeers' ./internal/drills/

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
