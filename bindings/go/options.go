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
	"unsafe"
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

	// DrainDelay is the pre-drain delay (0: none). When a drain is requested (Shutdown, a
	// forwarded signal) the server first keeps accepting and serving this long: the
	// ReadinessPath answers 503, every HTTP/1.1 answer carries "Connection: close", HTTP/2
	// connections get the first GOAWAY, idle keep-alive connections stay open, so load
	// balancers stop routing here before the port closes. The drain deadline counts from the
	// end of the delay: a stop takes at most DrainDelay + the deadline.
	DrainDelay time.Duration
	// ReadinessPath ("" off, e.g. "/readyz") is answered by the library before the handler:
	// 200 "ready" while serving, 503 "draining" once a drain is requested.
	ReadinessPath string
	// LivenessPath ("" off, e.g. "/livez") is answered by the library: 200 "alive" until the
	// server stops.
	LivenessPath string
	// MaxRequestsPerConnection and MaxConnectionAge (0: no limit): past either, a
	// connection's next answer closes it (HTTP/2: GOAWAY), so L4 balancers rebalance after a
	// rollout.
	MaxRequestsPerConnection int
	MaxConnectionAge         time.Duration
	// OnEvent, if set, receives the library's lifecycle events (a drain started, the server
	// stopped) with a one-line message, e.g. to print on stderr. It runs on a library thread
	// and must not block.
	OnEvent func(kind EventKind, message string)

	// UpgradeOnSIGHUP makes a forwarded SIGHUP (ForwardSignals, NotifySignal) upgrade in
	// place: a fresh copy of this program with the same arguments takes over the listener, and
	// once it reports ready this server drains (CauseUpgraded, exit status 0); if it never
	// does, this server keeps serving and OnEvent says why. See Upgrade.
	UpgradeOnSIGHUP bool
	// UpgradeTimeout bounds how long an upgrade waits for the new process (0: the library's
	// default).
	UpgradeTimeout time.Duration
	// DisableSdNotify turns off the systemd notifications the library sends when NOTIFY_SOCKET
	// is set (READY=1, STOPPING=1, STATUS=, WATCHDOG=1). Leave them on for one server of a
	// process.
	DisableSdNotify bool
}

// EventKind says what a lifecycle event reports (the C enum server_event_kind).
type EventKind int

// The lifecycle events.
const (
	EventDrainStarted  EventKind = C.SERVER_EVENT_DRAIN_STARTED
	EventStopped       EventKind = C.SERVER_EVENT_STOPPED
	EventUpgradeReady  EventKind = C.SERVER_EVENT_UPGRADE_READY
	EventUpgradeFailed EventKind = C.SERVER_EVENT_UPGRADE_FAILED
)

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

// cStrings are C copies of option strings, freed once the start has copied them.
type cStrings []*C.char

func (c *cStrings) add(s string) *C.char {
	p := C.CString(s)
	*c = append(*c, p)
	return p
}

func (c cStrings) free() {
	for _, p := range c {
		C.free(unsafe.Pointer(p))
	}
}

// cOptions fills o from opts, over the library's defaults (server_options_init): a field the
// caller left at zero keeps the library's value. The strings are the caller's to free (after
// the start) even when an error is returned.
func cOptions(o *C.server_options, opts *Options) (cStrings, error) {
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
	set(&o.drain_delay_ms, "DrainDelay", opts.DrainDelay.Milliseconds())
	set(&o.max_requests_per_connection, "MaxRequestsPerConnection", int64(opts.MaxRequestsPerConnection))
	set(&o.max_connection_age_ms, "MaxConnectionAge", opts.MaxConnectionAge.Milliseconds())
	set(&o.upgrade_timeout_ms, "UpgradeTimeout", opts.UpgradeTimeout.Milliseconds())
	o.upgrade_on_sighup = C.bool(opts.UpgradeOnSIGHUP)
	if opts.DisableSdNotify {
		o.sd_notify = C.SERVER_SD_NOTIFY_OFF
	}
	if err != nil {
		return nil, err
	}
	var strs cStrings
	if opts.ReadinessPath != "" {
		o.readiness_path = strs.add(opts.ReadinessPath)
	}
	if opts.LivenessPath != "" {
		o.liveness_path = strs.add(opts.LivenessPath)
	}
	if opts.MaxBodyBytes < 0 {
		return strs, &Error{Code: CodeInvalidArgument, Message: "graceserve: option MaxBodyBytes is negative"}
	}
	if opts.MaxBodyBytes != 0 {
		o.max_body_bytes = C.uint64_t(opts.MaxBodyBytes)
	}
	if opts.Addr != "" { // "" leaves NULL: the library's default address
		o.addr = strs.add(opts.Addr)
	}
	return strs, nil
}
