# graceserve — one entry point for building, running, testing and benchmarking every host.
#
#   make run     build the C host and serve on 127.0.0.1:8080 (ADDR=... to change)
#   make test    every test in every language
#   make hosts   build/bin/server-{c,python,go,wasi}
#   make bench   benchmarks (print ratios against baselines measured in the same run)
#   make install PREFIX=/usr/local   the C library, header and graceserve.pc (mk/install.mk)
#
# Each language adds its own rules in mk/<lang>.mk and appends to HOST_TARGETS, TEST_TARGETS
# and BENCH_TARGETS.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:/usr/local/go/bin:$(HOME)/go/bin:$(PATH)
CARGO ?= cargo
CC ?= cc
PYTHON ?= python3
ADDR ?= 127.0.0.1:8080
ROOT := $(abspath .)
PROFILE_DIR := $(ROOT)/target/release
LIB_SO := $(PROFILE_DIR)/libgraceserve.so
BIN := $(ROOT)/build/bin
CWARN := -std=c11 -Wall -Wextra -Wpedantic -Werror
# In-repo builds find the library as outside programs do, through pkg-config: `make lib` writes
# the uninstalled build/graceserve.pc (mk/install.mk), ahead of any installed one.
PKG_CONFIG ?= pkg-config
ifeq ($(filter $(ROOT)/build,$(subst :, ,$(PKG_CONFIG_PATH))),)
export PKG_CONFIG_PATH := $(ROOT)/build$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))
endif

HOST_TARGETS := host-c
TEST_TARGETS := test-header test-rust test-lint test-readme test-c
BENCH_TARGETS := bench-c
SETUP_STAMP := build/.setup-done

.PHONY: all setup lib hosts host-c run test test-rust test-lint test-readme test-c test-header bench bench-c clean

all: hosts

-include mk/*.mk

# Installs everything the tests and benchmarks need (apt, pip, go, cargo packages), once: each
# script in .ci/setup.d is idempotent. Re-runs when a setup script changes.
$(SETUP_STAMP): $(wildcard .ci/setup.d/*.sh)
	bash .ci/setup
	mkdir -p $(dir $@) && touch $@

setup: $(SETUP_STAMP)

# target/release/libgraceserve.{so,a}, then build/lib + build/graceserve.pc (mk/install.mk).
lib:
	$(CARGO) build --release --lib
	$(gs_stage_uninstalled)

$(BIN):
	mkdir -p $(BIN)

host-c: lib | $(BIN)
	$(CC) $(CWARN) -O2 examples/c/server.c $$($(PKG_CONFIG) --cflags --libs graceserve) -o $(BIN)/server-c

hosts: $(HOST_TARGETS)

run: host-c
	$(BIN)/server-c --addr $(ADDR)

# Fails when the committed include/graceserve.h differs from what src/ffi generates: the
# build regenerates the header, and git sees the difference (whatever ran the build first).
test-header:
	$(CARGO) build --release --lib
	git diff --exit-code -- include/graceserve.h || { echo "include/graceserve.h is stale: commit the regenerated header" >&2; exit 1; }
	$(PYTHON) tests/abi/check_exports.py $(PROFILE_DIR)/libgraceserve.so

test-rust: lib
	$(CARGO) test --release

test-lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --release --no-deps --lib

# The documentation stays true: every C block compiles and links (check_c_snippets.sh); citations
# of docs/architecture.md, its module map, links, make targets and code blocks (check_docs.py).
# The Rust, Go and Python blocks run in test-rust (doctests), test-go and test-python.
test-readme: lib
	bash tests/readme/check_c_snippets.sh
	$(PYTHON) tests/readme/check_docs.py

test-c: host-c
	$(MAKE) -C tests/c BIN=$(BIN)

# -k: run every suite even when one fails, so one run reports every failure (still exits 1).
test: $(SETUP_STAMP)
	$(MAKE) -k $(TEST_TARGETS)

bench-c: hosts
	bash bench/c/run.sh

bench: $(SETUP_STAMP)
	$(MAKE) $(BENCH_TARGETS)

clean:
	rm -rf build
	$(CARGO) clean
