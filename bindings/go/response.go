package graceserve

/*
#include "helpers.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"unsafe"
)

// streamThreshold is how much a handler may write before the response switches from one
// buffered answer (with Content-Length) to a streamed, chunked one.
const streamThreshold = 64 << 10

// responseWriter implements http.ResponseWriter and http.Flusher. Small responses are
// buffered and sent with one server_respond when the handler returns; Flush or a body larger
// than streamThreshold switches to a streamed (chunked) response.
type responseWriter struct {
	srv *Server
	req *C.server_request

	mu          sync.Mutex
	header      http.Header
	status      int
	wroteHeader bool
	buf         []byte
	stream      *C.server_stream
	answered    bool // respond or respond_stream succeeded (or the client is gone)
	err         error
	done        bool // the handler returned; the request is about to be freed
}

func (w *responseWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

func checkWriteHeaderCode(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
}

func (w *responseWriter) WriteHeader(code int) {
	checkWriteHeaderCode(code)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wroteHeader || w.done {
		return
	}
	if code >= 100 && code <= 199 {
		// Informational responses are not supported by the C ABI; like a proxy would, drop them.
		return
	}
	w.wroteHeader = true
	w.status = code
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199) && status != http.StatusNoContent && status != http.StatusNotModified
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, errors.New("graceserve: Write after the handler returned")
	}
	if !w.wroteHeader {
		w.wroteHeader = true
		w.status = http.StatusOK
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.stream == nil && !w.answered {
		if len(w.buf)+len(p) <= streamThreshold {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		if err := w.startStreamLocked(); err != nil {
			return 0, err
		}
	}
	if err := w.writeStreamLocked(w.buf); err != nil {
		return 0, err
	}
	w.buf = w.buf[:0]
	if err := w.writeStreamLocked(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteString avoids a copy for io.WriteString callers.
func (w *responseWriter) WriteString(s string) (int, error) {
	return w.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// flatHeaders packs the response headers into a byte blob plus lengths for gs_respond. It adds
// a sniffed Content-Type like net/http does (unless the handler set it, even to nil). Framing
// headers pass through as the handler set them: the library frames every response itself and
// drops Content-Length, Transfer-Encoding and the other hop-by-hop ones, keeping only the close
// token of Connection (which closes the connection after this response, as in net/http).
func (w *responseWriter) flatHeaders(first []byte) (blob []byte, lens []C.size_t) {
	h := w.header
	if _, set := h["Content-Type"]; !set && len(first) > 0 && bodyAllowed(w.status) {
		blob = append(blob, "content-type"...)
		ct := http.DetectContentType(first)
		blob = append(blob, ct...)
		lens = append(lens, 12, C.size_t(len(ct)))
	}
	for k, vs := range h {
		for _, v := range vs {
			blob = append(blob, k...)
			blob = append(blob, v...)
			lens = append(lens, C.size_t(len(k)), C.size_t(len(v)))
		}
	}
	return blob, lens
}

func ptrOrNil[T any](s []T) *T {
	if len(s) == 0 {
		return nil
	}
	return &s[0]
}

// finish answers the request when the handler has returned.
func (w *responseWriter) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.stream != nil {
		C.server_stream_free(w.stream)
		w.stream = nil
		return
	}
	if w.answered {
		return
	}
	if !w.wroteHeader {
		w.status = http.StatusOK
	}
	blob, lens := w.flatHeaders(w.buf)
	rc := C.gs_respond(w.req, C.uint16_t(w.status), (*C.uint8_t)(ptrOrNil(blob)), ptrOrNil(lens),
		C.size_t(len(lens)/2), (*C.uint8_t)(ptrOrNil(w.buf)), C.size_t(len(w.buf)))
	if rc == C.SERVER_ERR_INVALID_ARGUMENT {
		w.srv.logf("graceserve: invalid response (status %d or a header): answering 500", w.status)
		msg := []byte("Internal Server Error\n")
		rc = C.gs_respond(w.req, 500, nil, nil, 0, (*C.uint8_t)(&msg[0]), C.size_t(len(msg)))
	}
	if rc != C.SERVER_OK && rc != C.SERVER_ERR_CLOSED {
		w.srv.logf("graceserve: respond: %v", Code(rc))
	}
	w.answered = true
}

// panicked answers 500 when nothing was sent yet; a response already streaming is ended.
func (w *responseWriter) panicked() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stream != nil || w.answered {
		return
	}
	w.header = http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
	w.wroteHeader = true
	w.status = http.StatusInternalServerError
	w.buf = append(w.buf[:0], "Internal Server Error\n"...)
}
