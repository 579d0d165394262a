# Cross-host conformance suite (issue 6): one pytest suite drives every host in build/bin through
# the host contract (docs/architecture.md §5 The host contract), next to server-goref, a Go
# net/http reference host. It is the one home of the host contract's tests: tests/go keeps only
# server-go's signal stress, and tests/python and bindings/go test what only their binding can show.
#
#   make test-conformance   correctness assertions on every host (part of `make test`)
#   make conformance        the same run, ending with the host x scenario table
#   make bench-load         long shutdown-under-load runs with wrk and h2load (part of `make bench`)
#   make bench-upgrade      restart on an inherited socket / SIGHUP upgrade / plain stop-start under
#                           load, per native host and goref (part of `make bench`; bench/upgrade)
#
# GRACESERVE_HOSTS=c,goref selects hosts (default: c,python,go,wasi,goref).

GO ?= go
CONFORMANCE_DIR := $(ROOT)/tests/conformance
CONFORMANCE_PYTEST := $(PYTHON) -m pytest $(CONFORMANCE_DIR) -p no:cacheprovider

.PHONY: host-goref test-conformance conformance bench-load bench-upgrade

host-goref: | $(BIN)
	cd $(CONFORMANCE_DIR)/goref && $(GO) vet ./... && $(GO) build -o $(BIN)/server-goref .

test-conformance: hosts host-goref
	$(CONFORMANCE_PYTEST) -q

conformance: hosts host-goref
	CONFORMANCE_TABLE=$(ROOT)/build/conformance-table.txt $(CONFORMANCE_PYTEST) -q --tb=line

bench-load: hosts host-goref
	$(PYTHON) $(ROOT)/bench/load/run.py

# Not applicable to server-wasi (no processes, no inherited sockets on WASI).
bench-upgrade: host-c host-python host-go host-goref
	$(PYTHON) $(ROOT)/bench/upgrade/run.py

TEST_TARGETS += test-conformance
BENCH_TARGETS += bench-load bench-upgrade
