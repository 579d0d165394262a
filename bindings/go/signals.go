package graceserve

/*
#include "helpers.h"
*/
import "C"

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// NotifySignal feeds sig to the server the way the library's own signal handler would: the
// first starts a graceful drain with Options.ShutdownTimeout as deadline, a later one forces the
// stop. The library makes that decision (server_instance_notify_signal); other servers are not
// touched. ErrNotRunning once the server has stopped.
func (s *Server) NotifySignal(sig os.Signal) error {
	n, ok := sig.(syscall.Signal)
	if !ok || n <= 0 {
		return &Error{Code: CodeInvalidArgument, Message: "graceserve: NotifySignal needs a syscall.Signal"}
	}
	rc := C.int(C.SERVER_ERR_NOT_RUNNING)
	if !s.stopped() {
		s.inst.do(func(p *C.server_instance) { rc = C.server_instance_notify_signal(p, C.int(n)) })
	}
	switch rc {
	case C.SERVER_OK:
		return nil
	case C.SERVER_ERR_NOT_RUNNING:
		return &Error{Code: CodeNotRunning, Message: "graceserve: the server has stopped"}
	}
	return &Error{Code: Code(rc), Message: "graceserve: notify signal: " + Code(rc).String()}
}

// ForwardSignals relays the signals sigs (SIGINT and SIGTERM when none are given) from Go's
// signal package to the server through NotifySignal, which is what a C host gets from the
// library's own signal handling: the first signal drains with Options.ShutdownTimeout as the
// deadline, a second one forces the stop at once, and the server's StopCause says which. Wait
// then returns the outcome.
//
// Like signal.NotifyContext, the signals stay caught until stop is called: one that arrives
// after the server has stopped is dropped instead of killing the process. Call stop (more
// than once is fine) when the server is done, typically with defer. Several servers may each
// forward the same signals; each then drains on its own.
func (s *Server) ForwardSignals(sigs ...os.Signal) (stop func()) {
	if len(sigs) == 0 {
		sigs = []os.Signal{os.Interrupt, syscall.SIGTERM}
		if s.opts.UpgradeOnSIGHUP {
			sigs = append(sigs, syscall.SIGHUP)
		}
	}
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, sigs...)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-ch:
				_ = s.NotifySignal(sig) // ErrNotRunning after the stop: dropped
			case <-quit:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(quit)
		})
	}
}
