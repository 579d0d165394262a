package graceserve

/*
#include <stdlib.h>
#include "helpers.h"
*/
import "C"

import (
	"context"
	"log"
	"net/http"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// Server is one running server. Servers are independent, like http.Server values: any number
// may run in one process at once (an admin port beside a public one), each with its own
// threads, limits, drain and outcome. All methods are safe for concurrent use.
type Server struct {
	opts    Options
	addr    string
	handler http.Handler
	inst    *instance // the library's handle; released once the server has stopped

	done    chan struct{} // closed when the server has stopped and its handle is released
	waitErr error         // Wait's outcome, set before done is closed
	shutErr error         // the library's answer to a shutdown of the stopped server
	cause   StopCause     // why it stopped, set before done is closed

	watchMu sync.Mutex
	watched map[*reqCtx]struct{}
	kick    chan struct{}
}

// Start validates opts, binds the address at once and serves on background threads. Bind
// failures are returned here (errors.Is(err, ErrAddrInUse), ...), with the library's message
// naming the address and the OS error. Every call starts a new, independent server.
//
// Signals stay with the Go runtime: use signal.NotifyContext and Serve, ForwardSignals, or
// call Shutdown yourself.
func Start(opts Options) (*Server, error) {
	if v := C.server_abi_version(); v != C.SERVER_ABI_VERSION {
		return nil, &Error{Code: CodeVersion, Message: "graceserve: the loaded library has a different ABI version than this binding was built for"}
	}
	var o C.server_options
	strs, err := cOptions(&o, &opts)
	defer strs.free()
	if err != nil {
		return nil, err
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	s := &Server{
		opts:    opts,
		handler: opts.Handler,
		done:    make(chan struct{}),
		watched: make(map[*reqCtx]struct{}),
		kick:    make(chan struct{}, 1),
	}
	var h cgo.Handle
	if s.handler != nil || opts.OnEvent != nil {
		// The library calls gsDrop exactly once when it has read the options, which deletes it.
		h = cgo.NewHandle(s)
		if s.handler != nil {
			C.gs_set_handler(&o, C.uintptr_t(h))
		} else {
			C.gs_set_userdata(&o, C.uintptr_t(h))
		}
		if opts.OnEvent != nil {
			C.gs_set_events(&o)
		}
	}
	var p *C.server_instance
	var startErr *Error
	withThread(func() {
		if rc := C.server_instance_start(&p, &o); rc != C.SERVER_OK {
			startErr = lastError(rc)
			// No handle to ask: the library keeps the failed start's cause per thread.
			startErr.Cause = StopCause(C.server_last_error_cause())
		}
	})
	if startErr != nil {
		if startErr.Code == CodeVersion && h != 0 {
			h.Delete() // the library did not read the options, so it never calls gsDrop
		}
		return nil, startErr
	}
	s.inst = newInstance(p)
	var buf [64]C.char
	if C.server_instance_local_addr(p, &buf[0], C.size_t(len(buf)), nil) == C.SERVER_OK {
		s.addr = C.GoString(&buf[0])
	}
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

// waiter blocks in server_instance_wait on its own thread (which tears the runtime down),
// keeps what the library says about the stop, releases the handle and publishes the outcome.
func (s *Server) waiter() {
	s.inst.do(func(p *C.server_instance) {
		withThread(func() {
			st := C.server_instance_wait(p)
			s.cause = StopCause(C.server_instance_stop_cause(p))
			switch st {
			case 0:
			case 1:
				e := lastError(C.SERVER_ERR_FAILED)
				e.Cause = s.cause
				if s.cause == CauseForcedDeadline {
					e.wrapped = context.DeadlineExceeded
				}
				s.waitErr = e
			default:
				s.waitErr = lastError(st)
			}
			// Shutdown is idempotent in the library: ask it now, while the handle lives, what
			// a Shutdown of this stopped server returns.
			if rc := C.server_instance_shutdown(p, 0); rc != C.SERVER_OK {
				e := lastError(rc)
				e.Cause = s.cause
				s.shutErr = e
			}
		})
	})
	s.inst.release()
	close(s.done)
}

// Addr returns the bound address as HOST:PORT (the real port when port 0 was asked for).
func (s *Server) Addr() string { return s.addr }

// Done returns a channel that is closed once the server has fully stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// StopCause returns why the server stopped, as the library reports it: CauseNone while it
// runs. Its ExitStatus is the status for main.
func (s *Server) StopCause() StopCause {
	if s.stopped() {
		return s.cause
	}
	c := CauseNone
	if !s.inst.do(func(p *C.server_instance) { c = StopCause(C.server_instance_stop_cause(p)) }) {
		<-s.done // released in between: the cause is kept
		return s.cause
	}
	return c
}

// Wait blocks until the server has fully stopped and returns the outcome: nil after a graceful
// stop; an *Error with Code CodeFailed otherwise (errors.Is(err, ErrForced) when the drain was
// cut short, also matching context.DeadlineExceeded when a deadline did it; Cause says why).
// With ThreadHandlers it returns ErrWrongThread when called from one of this server's
// handlers: the stop waits for that handler.
func (s *Server) Wait() error {
	if !s.stopped() {
		var e *Error
		s.inst.do(func(p *C.server_instance) {
			withThread(func() {
				if rc := C.server_instance_wait_timeout(p, 0); rc == C.SERVER_ERR_WRONG_THREAD {
					e = lastError(rc)
				}
			})
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
// until ctx is done. Safe to call from many goroutines; each gets the same outcome. Other
// servers are not affected.
//
// Called from inside one of the server's handlers with ThreadHandlers, it starts the drain and
// returns an error matching ErrDraining at once (the drain waits for that very handler).
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
	finished := make(chan struct{})
	defer close(finished)
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				// Force the drain now; the earlier of the two deadlines wins in the library.
				s.inst.do(func(p *C.server_instance) { C.server_instance_shutdown(p, 0) })
			case <-finished:
			}
		}()
	}
	var rc C.int
	var err error
	ran := s.inst.do(func(p *C.server_instance) {
		withThread(func() {
			rc = C.server_instance_shutdown(p, timeout)
			if rc != C.SERVER_OK && rc != C.SERVER_DRAINING {
				e := lastError(rc)
				e.Cause = StopCause(C.server_instance_stop_cause(p))
				err = e
			}
		})
	})
	if ran && rc == C.SERVER_DRAINING {
		return &Error{Code: CodeDraining, Message: "graceserve: Shutdown called from a handler: the drain has started"}
	}
	<-s.done // the handle is released and Wait returns at once from now on
	if !ran {
		err = s.shutErr
	}
	e, ok := err.(*Error)
	if !ok {
		return err
	}
	if e.Code == CodeForced {
		if s.handler != nil {
			s.cancelAll() // the cut requests' contexts are done when Shutdown returns
		}
		f := *e
		f.wrapped = ctx.Err()
		if f.wrapped == nil && f.Cause == CauseForcedDeadline {
			f.wrapped = context.DeadlineExceeded
		}
		return &f
	}
	return e
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
	// ConnectionsIdle are open connections with no request in flight now;
	// ConnectionsDrained ended during the pre-drain delay or the drain without being cut;
	// ConnectionsCut were closed by force; RequestsDuringDelay were answered during the
	// pre-drain delay.
	ConnectionsIdle, ConnectionsDrained, ConnectionsCut, RequestsDuringDelay uint64
}

// Stats returns the server's live counters, or ErrNotRunning once it has stopped.
func (s *Server) Stats() (Stats, error) {
	var st C.server_stats
	st.version = C.SERVER_STATS_VERSION
	var rc C.int
	if s.stopped() || !s.inst.do(func(p *C.server_instance) { rc = C.server_instance_get_stats(p, &st) }) {
		return Stats{}, &Error{Code: CodeNotRunning, Message: "graceserve: the server is not running"}
	}
	if rc != C.SERVER_OK {
		return Stats{}, &Error{Code: Code(rc), Message: "graceserve: stats: " + Code(rc).String()}
	}
	return Stats{uint64(st.connections_active), uint64(st.connections_total),
		uint64(st.requests_active), uint64(st.requests_total),
		uint64(st.connections_idle), uint64(st.connections_drained),
		uint64(st.connections_cut), uint64(st.requests_during_delay)}, nil
}

// Upgrade upgrades in place: it starts program with args (args[0] first; program "" and nil
// args: a fresh copy of this very program with the same arguments) with the server's
// listening socket handed over the way this server got it (descriptor 3 with
// LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES, or descriptor N again for an "fd:N" address), so a
// graceserve program given the same address adopts it), waits up to timeout (0: the UpgradeTimeout
// option) for it to report ready, then starts this server's drain and returns the new
// process id. Both accept on the socket meanwhile, so no connection is refused. On failure
// (the new process cannot start, exits, or never reports ready) it is stopped, this server
// keeps serving, and the error (matching ErrUpgrade) says why. Blocks up to the timeout.
func (s *Server) Upgrade(program string, args []string, timeout time.Duration) (int, error) {
	if program == "" && args != nil {
		return 0, &Error{Code: CodeInvalidArgument, Message: "graceserve: Upgrade: args need a program"}
	}
	var strs cStrings
	defer strs.free()
	var cprog *C.char
	var argv **C.char
	if program != "" {
		cprog = strs.add(program)
	}
	if args != nil {
		arr := C.malloc(C.size_t(len(args)+1) * C.size_t(unsafe.Sizeof(uintptr(0))))
		defer C.free(arr)
		ptrs := unsafe.Slice((**C.char)(arr), len(args)+1)
		for i, a := range args {
			ptrs[i] = strs.add(a)
		}
		ptrs[len(args)] = nil
		argv = (**C.char)(arr)
	}
	ms, err := clampU32("timeout", timeout.Milliseconds())
	if err != nil {
		return 0, err
	}
	var pid C.uint32_t
	var e *Error
	if !s.inst.do(func(p *C.server_instance) {
		withThread(func() {
			if rc := C.server_instance_upgrade(p, cprog, argv, ms, &pid); rc != C.SERVER_OK {
				e = lastError(rc)
			}
		})
	}) {
		return 0, &Error{Code: CodeNotRunning, Message: "graceserve: the server is not running"}
	}
	if e != nil {
		return 0, e
	}
	return int(pid), nil
}

// DrainRequested reports whether a drain of the server was requested (also during the
// pre-drain delay): to fail your own health checks or end long polls. True once it stopped.
func (s *Server) DrainRequested() bool {
	var v C.int
	if s.stopped() || !s.inst.do(func(p *C.server_instance) { v = C.server_instance_drain_requested(p) }) {
		return true
	}
	return v != 0
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.ErrorLog != nil {
		s.opts.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}
