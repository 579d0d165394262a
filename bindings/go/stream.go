package graceserve

/*
#include "helpers.h"
*/
import "C"

import (
	"errors"
	"net/http"
	"unsafe"
)

// Flush sends the status, the headers and everything written so far now; later writes stream.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush returning the error (used by http.ResponseController).
func (w *responseWriter) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errors.New("graceserve: Flush after the handler returned")
	}
	if w.err != nil {
		return w.err
	}
	if !w.wroteHeader {
		w.wroteHeader = true
		w.status = http.StatusOK
	}
	if w.stream == nil && !w.answered {
		if err := w.startStreamLocked(); err != nil {
			return err
		}
	}
	if err := w.writeStreamLocked(w.buf); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	return nil
}

func (w *responseWriter) startStreamLocked() error {
	blob, lens := w.flatHeaders(w.buf)
	var st *C.server_stream
	rc := C.gs_respond_stream(w.req, C.uint16_t(w.status), (*C.uint8_t)(ptrOrNil(blob)),
		ptrOrNil(lens), C.size_t(len(lens)/2), &st)
	if rc != C.SERVER_OK {
		w.err = &Error{Code: Code(rc), Message: "graceserve: respond: " + Code(rc).String()}
		if rc == C.SERVER_ERR_CLOSED || rc == C.SERVER_ERR_ALREADY_USED {
			w.answered = true
		} else {
			w.srv.logf("graceserve: cannot send the response headers: %v", w.err)
		}
		return w.err
	}
	w.stream = st
	w.answered = true
	return nil
}

func (w *responseWriter) writeStreamLocked(p []byte) error {
	if len(p) == 0 || w.stream == nil {
		return nil
	}
	if rc := C.server_stream_write(w.stream, (*C.uint8_t)(unsafe.Pointer(&p[0])), C.size_t(len(p))); rc != C.SERVER_OK {
		w.err = &Error{Code: Code(rc), Message: "graceserve: write: " + Code(rc).String()}
		return w.err
	}
	return nil
}
