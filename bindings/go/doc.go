// Package graceserve embeds the graceserve HTTP server (a Rust library with a C ABI) in Go
// programs and serves any http.Handler with its graceful-shutdown lifecycle: bind errors at
// Start, a drain that refuses new connections, closes idle ones and lets in-flight requests
// finish, a hard deadline, and an outcome that maps to an exit status.
//
// Each Start returns an independent *Server (one library server_instance), like an http.Server
// value: a process may run several at once, for example a public port and an admin port, and
// drain or close each on its own.
//
// Go's runtime owns the signals: the binding runs every server with the library's signal
// handling off (SERVER_SIGNALS_HOST). Drive shutdown from Go with signal.NotifyContext and
// Server.Serve, or Server.Shutdown with a context deadline; or hand SIGINT/SIGTERM to the
// library's signal policy with Server.ForwardSignals (first signal drains, second forces).
//
// Handlers run on goroutines (or on the library's handler threads with
// Options.ThreadHandlers), possibly many at once.
//
// Build: cgo finds the C library and graceserve.h through pkg-config (`#cgo pkg-config:
// graceserve`). Install the library first (`make install PREFIX=...` in the graceserve
// repository) and, for a prefix pkg-config does not search, set
// PKG_CONFIG_PATH=PREFIX/lib/pkgconfig; inside the repository, PKG_CONFIG_PATH=<repo>/build
// (set by the Makefile) selects the uninstalled library of `make lib`.
package graceserve
