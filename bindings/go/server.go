package graceserve

/*
#include <stdlib.h>
#include "helpers.h"
*/
import "C"

import (
	"context"
	"log"
	"math"
	"net/http"
	"os"
	"runtime/cgo"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// DefaultAddr is the address served when Options.Addr is empty.
const DefaultAddr = "127.0.0.1:8080"

// DefaultShutdownTimeout is the drain deadline used by Serve, ListenAndServe and NotifySignal
// when Options.ShutdownTimeout is zero.
const DefaultShutdownTimeout = 5 * time.Second

// Options configure Start. The zero value serves the library's built-in "200 OK" handler on
// DefaultAddr.
type Options struct {
	// Addr is HOST:PORT to listen on; "" means DefaultAddr. Port 0 picks a free port (read it
	// back with Server.Addr).
	Addr string
	// Handler serves every request; nil answers each request with 200 "OK" inside the library
	// (no Go code runs per request).
	Handler http.Handler
	// ShutdownTimeout is the drain deadline when Serve's context ends and for drains started by
	// NotifySignal; 0 means DefaultShutdownTimeout. Shutdown takes its deadline from its ctx.
	ShutdownTimeout time.Duration
	// WorkerThreads is the number of async worker threads (0: one per CPU).
	WorkerThreads int
	// HandlerThreads is how many handlers may run at once (0: 512).
	HandlerThreads int
	// MaxConnections is the number of connections open at once (0: 10000).
	MaxConnections int
	// HeaderReadTimeout is the time a client has to send a request head (0: 30s).
	HeaderReadTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections after this long (0: 60s).
	IdleTimeout time.Duration
	// MaxHeaderBytes is the largest request head (0: 64 KiB; minimum 8 KiB); larger gets 431.
	MaxHeaderBytes int
	// MaxBodyBytes is the largest request body (0: 8 MiB); larger gets 413.
	MaxBodyBytes int64
	// ThreadHandlers runs each handler on a library handler thread (at most HandlerThreads at
	// once) instead of its own goroutine. By default, like net/http, the library hands each
	// request over on its async worker in one short cgo callback and the handler runs on a new
	// goroutine: no thread hand-off per request (less than half the CPU per request, see
	// bench/go/RESULTS.md). With ThreadHandlers, Shutdown and Wait called from inside a handler
	// are detected (Shutdown starts the drain and returns ErrDraining, Wait returns
	// ErrWrongThread); with goroutines they cannot be, and Shutdown waits, as net/http's does,
	// until its ctx deadline forces the stop.
	ThreadHandlers bool
	// ErrorLog receives handler panics and response errors; nil uses the log package's
	// standard logger.
	ErrorLog *log.Logger
}

// Server is the running server. The library serves one server per process at a time; after
// it has stopped (Wait returned, or Shutdown/Close returned) a new Start works.
type Server struct {
	opts    Options
	addr    string
	handler http.Handler

	done    chan struct{} // closed when the server is fully stopped
	waitErr error         // the outcome, set before done is closed

	watchMu sync.Mutex
	watched map[*reqCtx]struct{}
	kick    chan struct{}
}

var (
	startMu sync.Mutex
	current *Server
)

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

// Start validates opts, binds the address at once and serves on background threads. Bind
// failures are returned here (errors.Is(err, ErrAddrInUse), ...), with the library's message
// naming the address and the OS error. Signals stay with the Go runtime: use
// signal.NotifyContext and Serve, or call Shutdown yourself.
func Start(opts Options) (*Server, error) {
	if v := C.server_abi_version(); v != C.SERVER_ABI_VERSION {
		return nil, &Error{Code: CodeVersion, Message: "graceserve: the loaded library has a different ABI version than this binding was built for"}
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	var o C.server_options
	if rc := C.server_options_init(&o, C.SERVER_OPTIONS_VERSION); rc != C.SERVER_OK {
		return nil, &Error{Code: Code(rc), Message: "graceserve: server_options_init failed: " + Code(rc).String()}
	}
	o.signals = C.SERVER_SIGNALS_HOST
	o.inline_handler = C.bool(!opts.ThreadHandlers)
	o.signal_drain_timeout_ms = durationMs(opts.ShutdownTimeout)
	var err error
	set := func(dst *C.uint32_t, name string, v int64) {
		if err == nil {
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
	o.max_body_bytes = C.uint64_t(opts.MaxBodyBytes)

	caddr := C.CString(opts.Addr)
	defer C.free(unsafe.Pointer(caddr))
	o.addr = caddr

	s := &Server{
		opts:    opts,
		handler: opts.Handler,
		done:    make(chan struct{}),
		watched: make(map[*reqCtx]struct{}),
		kick:    make(chan struct{}, 1),
	}

	startMu.Lock()
	defer startMu.Unlock()
	if current != nil && !current.stopped() {
		return nil, &Error{Code: CodeAlreadyRunning, Message: "graceserve: a server is already running in this process; shut it down first"}
	}
	if s.handler != nil {
		// The library calls gsDrop exactly once (also when the start fails), which deletes it.
		C.gs_set_handler(&o, C.uintptr_t(cgo.NewHandle(s)))
	}
	var startErr *Error
	withThread(func() {
		if rc := C.server_start(&o); rc != C.SERVER_OK {
			startErr = lastError(rc)
		}
	})
	if startErr != nil {
		if startErr.Code == CodeAlreadyRunning {
			startErr.Message = "graceserve: " + startErr.Message
		}
		return nil, startErr
	}
	var buf [128]C.char
	if C.server_local_addr(&buf[0], C.size_t(len(buf)), nil) == C.SERVER_OK {
		s.addr = C.GoString(&buf[0])
	}
	current = s
	go s.waiter()
	if s.handler != nil {
		go s.watchLoop()
	}
	return s, nil
}

func (s *Server) stopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// waiter blocks in server_wait on its own thread (which tears the runtime down) and publishes
// the outcome.
func (s *Server) waiter() {
	var err error
	withThread(func() {
		st := C.server_wait()
		cause := StopCause(C.server_last_stop_cause())
		switch st {
		case 0:
		case 1:
			e := lastError(C.SERVER_ERR_FAILED)
			e.Cause = cause
			if cause == CauseForcedDeadline {
				e.wrapped = context.DeadlineExceeded
			}
			err = e
		default:
			err = lastError(st)
		}
	})
	s.waitErr = err
	close(s.done)
}

// Addr returns the bound address as HOST:PORT (the real port when port 0 was asked for).
func (s *Server) Addr() string { return s.addr }

// Done returns a channel that is closed once the server has fully stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Wait blocks until the server has fully stopped and returns the outcome: nil after a graceful
// stop; an *Error with Code CodeFailed otherwise (errors.Is(err, ErrForced) when the drain was
// cut short, also matching context.DeadlineExceeded when a deadline did it). It must not be
// called from a handler (ErrWrongThread): the stop waits for that handler.
func (s *Server) Wait() error {
	if !s.stopped() {
		var e *Error
		withThread(func() {
			if rc := C.server_wait_timeout(0); rc == C.SERVER_ERR_WRONG_THREAD {
				e = lastError(rc)
			}
		})
		if e != nil {
			return e
		}
	}
	<-s.done
	return s.waitErr
}

// Shutdown drains the server gracefully and blocks until it has stopped: new connections are
// refused, idle ones closed, in-flight requests finish. The deadline comes from ctx: when it
// passes (or ctx is cancelled) the remaining connections are closed and Shutdown returns an
// error matching ErrForced and ctx.Err() (context.DeadlineExceeded). Without a deadline it waits
// until ctx is done. Safe to call from many goroutines; each gets the same outcome.
//
// Called from inside a handler it starts the drain and returns an error matching ErrDraining at
// once (the drain waits for that very handler).
func (s *Server) Shutdown(ctx context.Context) error {
	timeout := C.uint32_t(C.SERVER_TIMEOUT_INFINITE)
	if dl, ok := ctx.Deadline(); ok {
		timeout = durationMs(time.Until(dl))
	}
	if ctx.Err() != nil {
		timeout = 0
	}
	return s.shutdown(ctx, timeout)
}

// Close stops the server at once: every connection is closed, in-flight requests included.
// Returns nil when nothing was in flight, otherwise an error matching ErrForced.
func (s *Server) Close() error { return s.shutdown(context.Background(), 0) }

func (s *Server) shutdown(ctx context.Context, timeout C.uint32_t) error {
	if s.stopped() {
		return s.shutdownResult(ctx)
	}
	finished := make(chan struct{})
	defer close(finished)
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				// Force the drain now; the earlier of the two deadlines wins in the library.
				startMu.Lock()
				if current == s && !s.stopped() {
					C.server_shutdown(0)
				}
				startMu.Unlock()
			case <-finished:
			}
		}()
	}
	var rc C.int
	var e *Error
	withThread(func() {
		rc = C.server_shutdown(timeout)
		if rc != C.SERVER_OK && rc != C.SERVER_DRAINING {
			e = lastError(rc)
			e.Cause = StopCause(C.server_last_stop_cause())
		}
	})
	if rc == C.SERVER_DRAINING {
		return &Error{Code: CodeDraining, Message: "graceserve: Shutdown called from a handler: the drain has started"}
	}
	<-s.done // let the waiter finish tearing down, so a new Start works once we return
	if e == nil {
		return nil
	}
	if e.Code == CodeForced {
		e.wrapped = ctx.Err()
		if e.wrapped == nil && e.Cause == CauseForcedDeadline {
			e.wrapped = context.DeadlineExceeded
		}
	}
	if s.opts.Handler != nil {
		s.cancelAll()
	}
	return e
}

// shutdownResult maps the stored outcome of a stopped server to Shutdown's result.
func (s *Server) shutdownResult(ctx context.Context) error {
	if s.waitErr == nil {
		return nil
	}
	if e, ok := s.waitErr.(*Error); ok && e.Cause.Forced() {
		f := *e
		f.Code = CodeForced
		if f.wrapped == nil {
			f.wrapped = ctx.Err()
		}
		return &f
	}
	return s.waitErr
}

// NotifySignal feeds sig to the server the way the library's own signal handler would: the
// first starts a graceful drain with Options.ShutdownTimeout as deadline, a later one forces the
// stop. Use it when your program catches signals itself (signal.Notify).
func (s *Server) NotifySignal(sig os.Signal) error {
	n, ok := sig.(syscall.Signal)
	if !ok || n <= 0 {
		return &Error{Code: CodeInvalidArgument, Message: "graceserve: NotifySignal needs a syscall.Signal"}
	}
	if s.stopped() {
		return &Error{Code: CodeNotRunning, Message: "graceserve: the server has stopped"}
	}
	if rc := C.server_notify_signal(C.int(n)); rc != C.SERVER_OK {
		return &Error{Code: Code(rc), Message: "graceserve: notify signal: " + Code(rc).String()}
	}
	return nil
}

// Serve blocks until ctx is done or the server stops on its own. When ctx is done it drains
// with Options.ShutdownTimeout as deadline, like the seed program:
//
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	err := srv.Serve(ctx)
//
// It returns nil after a graceful stop, or the error Shutdown/Wait report.
func (s *Server) Serve(ctx context.Context) error {
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
		defer cancel()
		if err := s.Shutdown(sctx); err != nil {
			return err
		}
		return s.Wait()
	case <-s.done:
		return s.Wait()
	}
}

// ListenAndServe starts a server for handler on addr and serves until ctx is done, then drains
// with DefaultShutdownTimeout. Bind errors are returned at once.
func ListenAndServe(ctx context.Context, addr string, handler http.Handler) error {
	s, err := Start(Options{Addr: addr, Handler: handler})
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Stats are live counters of the running server.
type Stats struct {
	ConnectionsActive, ConnectionsTotal, RequestsActive, RequestsTotal uint64
}

// Stats returns the live counters, or ErrNotRunning once the server has stopped.
func (s *Server) Stats() (Stats, error) {
	var st C.server_stats
	if s.stopped() || C.server_get_stats(&st) != C.SERVER_OK {
		return Stats{}, &Error{Code: CodeNotRunning, Message: "graceserve: the server is not running"}
	}
	return Stats{uint64(st.connections_active), uint64(st.connections_total),
		uint64(st.requests_active), uint64(st.requests_total)}, nil
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.ErrorLog != nil {
		s.opts.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}
