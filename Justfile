# epconsole recipes. Every recipe runs a plain command that also works
# without `just` (install it with `npm install -g rust-just` if you like).

default:
    @just --list

# the demo: a whole endpoint in network namespaces (as root)
lab *ARGS:
    go run ./cmd/epconsole lab {{ARGS}}

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

# build the binary into ./bin
build:
    mkdir -p bin && go build -o bin/epconsole ./cmd/epconsole
