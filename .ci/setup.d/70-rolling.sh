# Rolling restart behind a load balancer (issue 10: tests/rolling, bench/rolling): HAProxy from
# Debian (2.6 on bookworm), started by the test on loopback with a generated config. Idempotent and
# quiet; sourced by .ci/setup with `set -euo pipefail`.
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -s haproxy >/dev/null 2>&1; then
  apt-get update -qq
  # The package's service is never used (the tests start their own haproxy); policy-rc.d-less
  # containers print a warning when the postinst tries to start it, which is harmless.
  apt-get install -y -qq --no-install-recommends haproxy
fi
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null ||
  { echo "70-rolling: haproxy not found after install" >&2; false; }
