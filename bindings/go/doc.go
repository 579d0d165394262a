// Package graceserve embeds the graceserve HTTP server (a Rust library with a C ABI) in Go
// programs and serves any http.Handler with its graceful-shutdown lifecycle: bind errors at
// Start, a drain that refuses new connections, closes idle ones and lets in-flight requests
// finish, a hard deadline, and an outcome that maps to an exit status.
//
// Go's runtime owns the signals: the binding runs the library with its signal handling off
// (SERVER_SIGNALS_HOST) and shutdown is driven from Go, typically with signal.NotifyContext and
// Server.Serve, or Server.Shutdown with a context deadline.
//
// The library serves one server per process at a time. Handlers run on the library's handler
// threads, possibly many at once.
//
// Build: cgo finds the C library and graceserve.h through pkg-config (`#cgo pkg-config:
// graceserve`). Install the library first (`make install PREFIX=...` in the graceserve
// repository) and, for a prefix pkg-config does not search, set
// PKG_CONFIG_PATH=PREFIX/lib/pkgconfig; inside the repository, PKG_CONFIG_PATH=<repo>/build
// (set by the Makefile) selects the uninstalled library of `make lib`.
package graceserve
