# Conformance suite (tests/conformance, bench/load, bench/upgrade): load generators, setpriv,
# systemd-socket-activate (Debian's systemd package: not on a fresh Debian container; only the
# binary is used, no systemd needs to run), the Python h2 client, and h2spec. Idempotent and
# quiet; sourced by .ci/run with `set -euo pipefail`.
export DEBIAN_FRONTEND=noninteractive
conformance_apt=()
for pkg in wrk nghttp2-client util-linux; do
  dpkg -s "$pkg" >/dev/null 2>&1 || conformance_apt+=("$pkg")
done
command -v systemd-socket-activate >/dev/null 2>&1 || conformance_apt+=(systemd)
if [ ${#conformance_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${conformance_apt[@]}"
fi
python3 -c 'import h2, pytest' 2>/dev/null ||
  python3 -m pip install -q --root-user-action=ignore 'h2>=4.1,<5' pytest
if ! command -v h2spec >/dev/null; then
  # The module has no go.mod, so go prints how it resolved each import; show it only on failure.
  if ! conformance_log=$(go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible 2>&1); then
    echo "$conformance_log" >&2
    echo "60-conformance: go install h2spec failed" >&2
    false
  fi
  unset conformance_log
fi
unset conformance_apt
