# The WASI build (issue 5): the core compiled to a wasm32-wasip2 component (examples/wasi) and
# build/bin/server-wasi, a launcher that runs it under the pinned wasmtime CLI.
#
#   make host-wasi    build/bin/server-wasi + build/bin/server-wasi.wasm
#   make test-wasi    lifecycle scenarios against server-wasi (tests/wasi)
#   make bench-wasi   req/s and p99 of server-wasi vs server-c (bench/wasi)
#
# The wasm build has its own target dir and RUSTFLAGS (tokio needs --cfg tokio_unstable on WASI),
# so it never invalidates or locks the native build.

WASI_TARGET := wasm32-wasip2
WASI_TARGET_DIR := $(ROOT)/target/wasi
WASI_WASM := $(WASI_TARGET_DIR)/$(WASI_TARGET)/release/examples/wasi.wasm
WASI_CARGO := CARGO_TARGET_DIR=$(WASI_TARGET_DIR) RUSTFLAGS="--cfg tokio_unstable" $(CARGO)

.PHONY: host-wasi test-wasi bench-wasi lint-wasi

host-wasi: | $(BIN)
	$(WASI_CARGO) build --release --target $(WASI_TARGET) --example wasi
	cp $(WASI_WASM) $(BIN)/server-wasi.wasm
	install -m 755 examples/wasi/launcher.py $(BIN)/server-wasi

# Unit tests of the guest's flag parsing (natively), then the scenarios against the launcher,
# side by side with server-c where the contract says they must agree.
test-wasi: host-wasi host-c
	$(CARGO) test --release --example wasi
	$(PYTHON) -m pytest -q tests/wasi

lint-wasi:
	$(WASI_CARGO) clippy --release --target $(WASI_TARGET) --lib --example wasi -- -D warnings
	$(PYTHON) -m mypy --strict examples/wasi/launcher.py tests/wasi bench/wasi/bench.py

bench-wasi: host-wasi host-c
	$(PYTHON) bench/wasi/bench.py

HOST_TARGETS += host-wasi
TEST_TARGETS += test-wasi
BENCH_TARGETS += bench-wasi
