package graceserve

/*
#include <stdlib.h>
#include "helpers.h"
*/
import "C"

import (
	"log"
	"math"
	"net/http"
	"time"
)

// DefaultShutdownTimeout is the drain deadline used by Serve, ListenAndServe, NotifySignal and
// ForwardSignals when Options.ShutdownTimeout is zero. It is the library's own default, read
// from server_options_init when the package loads (0 if the library could not say; Start then
// reports the version mismatch).
var DefaultShutdownTimeout = libraryShutdownTimeout()

func libraryShutdownTimeout() time.Duration {
	var o C.server_options
	if C.server_options_init(&o, C.SERVER_OPTIONS_VERSION) != C.SERVER_OK {
		return 0
	}
	return time.Duration(o.signal_drain_timeout_ms) * time.Millisecond
}

// Options configure Start. The zero value serves the library's built-in "200 OK" handler on
// the library's default address. Every zero numeric field takes the library's default (see
// server_options in include/graceserve.h).
type Options struct {
	// Addr is HOST:PORT to listen on; "" means the library's default (127.0.0.1:8080). Port 0
	// picks a free port (read it back with Server.Addr).
	Addr string
	// Handler serves every request; nil answers each request with 200 "OK" inside the library
	// (no Go code runs per request).
	Handler http.Handler
	// ShutdownTimeout is the drain deadline when Serve's context ends and for drains started by
	// a signal (NotifySignal, ForwardSignals); 0 means DefaultShutdownTimeout, a negative value
	// no grace at all (in-flight requests are cut at once). Shutdown takes its deadline from its
	// ctx instead.
	ShutdownTimeout time.Duration
	// WorkerThreads is the number of async worker threads (0: one per CPU).
	WorkerThreads int
	// HandlerThreads is how many handlers may run at once with ThreadHandlers (0: the
	// library's default).
	HandlerThreads int
	// MaxConnections is the number of connections open at once (0: the library's default).
	MaxConnections int
	// HeaderReadTimeout is the time a client has to send a request head (0: the library's
	// default).
	HeaderReadTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections after this long (0: the library's
	// default).
	IdleTimeout time.Duration
	// MaxHeaderBytes is the largest request head (0: the library's default); larger gets 431.
	MaxHeaderBytes int
	// MaxBodyBytes is the largest request body (0: the library's default); larger gets 413.
	MaxBodyBytes int64
	// ThreadHandlers runs each handler on a library handler thread (at most HandlerThreads at
	// once) instead of its own goroutine. By default, like net/http, the library hands each
	// request over on its async worker in one short cgo callback and the handler runs on a new
	// goroutine: no thread hand-off per request (less than half the CPU per request, see
	// bench/go/RESULTS.md). With ThreadHandlers, Shutdown and Wait called from inside one of
	// the server's own handlers are detected (Shutdown starts the drain and returns
	// ErrDraining, Wait returns ErrWrongThread); with goroutines they cannot be, and Shutdown
	// waits, as net/http's does, until its ctx deadline forces the stop.
	ThreadHandlers bool
	// ErrorLog receives handler panics and response errors; nil uses the log package's
	// standard logger.
	ErrorLog *log.Logger
}

// durationMs rounds d up to whole milliseconds for the C ABI (negative: 0).
func durationMs(d time.Duration) C.uint32_t {
	if d <= 0 {
		return 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms >= math.MaxUint32 {
		return C.uint32_t(math.MaxUint32 - 1)
	}
	return C.uint32_t(ms)
}

func clampU32(name string, v int64) (C.uint32_t, error) {
	if v < 0 || v >= math.MaxUint32 {
		return 0, &Error{Code: CodeInvalidArgument, Message: "graceserve: option " + name + " is out of range"}
	}
	return C.uint32_t(v), nil
}

// cOptions fills o from opts, over the library's defaults (server_options_init): a field the
// caller left at zero keeps the library's value. The address is the caller's to free with
// C.free (nil for the library's default).
func cOptions(o *C.server_options, opts *Options) (*C.char, error) {
	if rc := C.server_options_init(o, C.SERVER_OPTIONS_VERSION); rc != C.SERVER_OK {
		return nil, &Error{Code: Code(rc), Message: "graceserve: server_options_init failed: " + Code(rc).String()}
	}
	// Go's runtime owns the signals; they reach the server through NotifySignal.
	o.signals = C.SERVER_SIGNALS_HOST
	o.inline_handler = C.bool(!opts.ThreadHandlers)
	if opts.ShutdownTimeout != 0 {
		o.signal_drain_timeout_ms = durationMs(opts.ShutdownTimeout)
	}
	var err error
	set := func(dst *C.uint32_t, name string, v int64) {
		if err == nil && v != 0 {
			*dst, err = clampU32(name, v)
		}
	}
	set(&o.worker_threads, "WorkerThreads", int64(opts.WorkerThreads))
	set(&o.handler_threads, "HandlerThreads", int64(opts.HandlerThreads))
	set(&o.max_connections, "MaxConnections", int64(opts.MaxConnections))
	set(&o.header_read_timeout_ms, "HeaderReadTimeout", opts.HeaderReadTimeout.Milliseconds())
	set(&o.keepalive_idle_timeout_ms, "IdleTimeout", opts.IdleTimeout.Milliseconds())
	set(&o.max_header_bytes, "MaxHeaderBytes", int64(opts.MaxHeaderBytes))
	if err != nil {
		return nil, err
	}
	if opts.MaxBodyBytes < 0 {
		return nil, &Error{Code: CodeInvalidArgument, Message: "graceserve: option MaxBodyBytes is negative"}
	}
	if opts.MaxBodyBytes != 0 {
		o.max_body_bytes = C.uint64_t(opts.MaxBodyBytes)
	}
	if opts.Addr == "" {
		return nil, nil // NULL: the library's default address
	}
	caddr := C.CString(opts.Addr)
	o.addr = caddr
	return caddr, nil
}
