package graceserve

/*
#include "helpers.h"
*/
import "C"

import (
	"runtime"
	"sync"
)

// instance owns one *C.server_instance. Every C call on the handle goes through do, which
// counts it; release frees the handle once no call is in progress and makes every later do a
// no-op, as server_instance_free requires ("the last call on the handle, made once no other
// call on it is in progress").
//
// The Server's waiter goroutine releases the handle as soon as the server has stopped. A
// finalizer is the backstop for a handle that was never released; it cannot stop a running
// server: while one runs, its waiter goroutine (blocked in server_instance_wait) keeps the
// instance reachable, as a running http.Server is kept by its Serve goroutine.
type instance struct {
	mu    sync.Mutex
	idle  sync.Cond // signalled when calls drops to 0
	ptr   *C.server_instance
	calls int
}

func newInstance(p *C.server_instance) *instance {
	in := &instance{ptr: p}
	in.idle.L = &in.mu
	runtime.SetFinalizer(in, (*instance).release)
	return in
}

// do runs f with the handle and reports whether it ran (false once the handle is released).
// f must not call do on the same instance or wait for the server to stop.
func (in *instance) do(f func(p *C.server_instance)) bool {
	if debugGC {
		runtime.GC() // exposes a missing KeepAlive (go test -tags debug)
	}
	in.mu.Lock()
	p := in.ptr
	if p == nil {
		in.mu.Unlock()
		return false
	}
	in.calls++
	in.mu.Unlock()

	f(p)
	runtime.KeepAlive(in)

	in.mu.Lock()
	in.calls--
	if in.calls == 0 {
		in.idle.Broadcast()
	}
	in.mu.Unlock()
	return true
}

// release frees the handle after the calls in progress have returned; later calls of do do
// nothing. Idempotent. A server still running is forced to stop first (server_instance_free).
func (in *instance) release() {
	in.mu.Lock()
	p := in.ptr
	in.ptr = nil
	for in.calls > 0 {
		in.idle.Wait()
	}
	in.mu.Unlock()
	if p != nil {
		C.server_instance_free(p)
	}
	runtime.SetFinalizer(in, nil)
}
