package graceserve

/*
#include "helpers.h"
*/
import "C"

import (
	"net/http"
	"runtime/cgo"
	"runtime/debug"
)

// gsHandle is the library's handler callback: it runs on a library handler thread, builds an
// *http.Request, runs the http.Handler, answers and frees the request. Panics are recovered.
//
//export gsHandle
func gsHandle(ud C.uintptr_t, req *C.server_request) {
	s, ok := cgo.Handle(ud).Value().(*Server)
	if !ok {
		C.server_request_free(req)
		return
	}
	if !s.opts.ThreadHandlers {
		go s.serveC(req)
		return
	}
	s.serveC(req)
}

// gsEvent is the library's lifecycle event callback (drain started, stopped): it runs on a
// library thread and hands the line the library formatted to Options.OnEvent. A panic there
// is recovered and logged: it must not unwind into C.
//
//export gsEvent
func gsEvent(ud C.uintptr_t, kind C.int, message *C.char) {
	s, ok := cgo.Handle(ud).Value().(*Server)
	if !ok || s.opts.OnEvent == nil {
		return
	}
	msg := C.GoString(message)
	defer func() {
		if r := recover(); r != nil {
			s.logf("graceserve: OnEvent panicked: %v", r)
		}
	}()
	s.opts.OnEvent(EventKind(kind), msg)
}

// gsDrop is called exactly once when the library no longer needs the handle.
//
//export gsDrop
func gsDrop(ud C.uintptr_t) {
	cgo.Handle(ud).Delete()
}

// call holds the per-request state in one allocation.
type call struct {
	ctx  reqCtx
	w    responseWriter
	body bodyReader
}

func (s *Server) serveC(req *C.server_request) {
	c := &call{ctx: reqCtx{srv: s, req: req}, w: responseWriter{srv: s, req: req}}
	ctx, w, body := &c.ctx, &c.w, &c.body
	defer func() {
		// A panic here is a bug in the binding (handler panics are recovered in runHandler):
		// never let it unwind into C. Free the request unanswered: the client gets 500.
		if v := recover(); v != nil {
			s.logf("graceserve: internal error serving a request: %v\n%s", v, debug.Stack())
			ctx.finish()
			body.release()
			C.server_request_free(req)
		}
	}()
	r, err := readRequest(req, ctx, body)
	if err != nil {
		s.logf("graceserve: bad request: %v", err)
		w.header = http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
		w.wroteHeader = true
		w.status = http.StatusBadRequest
		w.buf = []byte("bad request\n")
	} else {
		s.runHandler(w, r)
	}
	w.finish()
	ctx.finish()
	body.release()
	C.server_request_free(req)
}

func (s *Server) runHandler(w *responseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				s.logf("graceserve: panic serving %s %s: %v\n%s", r.Method, r.URL, v, debug.Stack())
			}
			w.panicked()
		}
	}()
	s.handler.ServeHTTP(w, r)
}
