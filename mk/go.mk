# Go binding (bindings/go), Go example host (examples/go), the Go host's signal stress (tests/go)
# and the Go benchmark (bench/go). Included by the root Makefile.
#
#   make host-go    build/bin/server-go
#   make test-go    gofmt + go vet; go test -race in bindings/go (goroutine handlers, then
#                   ThreadHandlers), once more with cgocheck2 (no Go pointer kept by C) and
#                   -tags debug (a GC before every call on a server handle); then
#                   GO_STRESS_RUNS runs of SIGTERM-while-busy against server-go (tests/go).
#                   The host contract of server-go is checked with every other host's by
#                   `make test-conformance` (tests/conformance).
#   make bench-go   graceserve-from-Go vs net/http with wrk, same run; writes bench/go/RESULTS.md

# cgo links the binding through `#cgo pkg-config: graceserve`; the root Makefile exports
# PKG_CONFIG_PATH=build/, the uninstalled graceserve.pc that `make lib` writes (mk/install.mk).
GO ?= go
GO_DIRS := bindings/go examples/go tests/go bench/go
GO_STRESS_RUNS ?= 25

.PHONY: host-go test-go bench-go

host-go: lib | $(BIN)
	cd examples/go && $(GO) build -o $(BIN)/server-go .

test-go: host-go
	@unformatted=$$(cd $(ROOT) && gofmt -l $(GO_DIRS)); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted" >&2; exit 1; fi
	for d in $(GO_DIRS); do (cd $$d && $(GO) vet ./...) || exit 1; done
	cd bindings/go && timeout 600 $(GO) test -race -count=1 ./...
	cd bindings/go && GRACESERVE_TEST_THREADS=1 timeout 600 $(GO) test -race -count=1 .
	cd bindings/go && GOEXPERIMENT=cgocheck2 timeout 600 $(GO) test -tags debug -count=1 -skip SignalWhileBusy .
	cd tests/go && GRACESERVE_GO_HOST=$(BIN)/server-go \
	  GRACESERVE_STRESS_RUNS=$(GO_STRESS_RUNS) timeout 600 $(GO) test -count=1 ./...

bench-go: host-go
	bash bench/go/run.sh

HOST_TARGETS += host-go
TEST_TARGETS += test-go
BENCH_TARGETS += bench-go
