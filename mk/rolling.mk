# Rolling restart behind HAProxy (issue 10): two instances of a host, keep-alive load through the
# proxy, each instance restarted in turn (tests/rolling/rolling.py).
#
#   make test-rolling    server-c with the 1 s pre-drain delay: zero failed requests (part of `make test`)
#   make bench-rolling   every host and server-goref, delay 0 and 1000 ms, failed requests per run
#                        (part of `make bench`; ROLLING_RUNS=N runs per cell, default 3)
#
# ROLLING_HOSTS=c,go selects the hosts of either.

ROLLING_DIR := $(ROOT)/tests/rolling

.PHONY: test-rolling bench-rolling

test-rolling: host-c
	$(PYTHON) -m pytest $(ROLLING_DIR) -p no:cacheprovider -q -s

bench-rolling: hosts host-goref
	$(PYTHON) $(ROOT)/bench/rolling/run.py

TEST_TARGETS += test-rolling
BENCH_TARGETS += bench-rolling
