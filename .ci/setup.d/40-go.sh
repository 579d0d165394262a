# Go binding: needs the Go toolchain (CI images ship Go 1.26 in /usr/local/go) and a C compiler
# for cgo and the race detector (build-essential, from 00-base.sh). No Go module downloads: the
# binding, host, tests and bench use only the standard library.
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
if ! command -v go >/dev/null 2>&1; then
  echo "40-go.sh: the Go toolchain (>= 1.24) is required for the Go binding; install it in /usr/local/go" >&2
  return 1 2>/dev/null || exit 1
fi
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "${go_minor:-0}" -lt 24 ]; then
  echo "40-go.sh: Go >= 1.24 needed (found $(go env GOVERSION))" >&2
  return 1 2>/dev/null || exit 1
fi
command -v gcc >/dev/null 2>&1 || { echo "40-go.sh: gcc is required for cgo" >&2; return 1 2>/dev/null || exit 1; }
