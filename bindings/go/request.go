package graceserve

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime/cgo"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// streamThreshold is how much a handler may write before the response switches from one
// buffered answer (with Content-Length) to a streamed, chunked one.
const streamThreshold = 64 << 10

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

// cptr turns an address the C helper wrote as an integer back into a pointer to C memory.
func cptr(v C.uintptr_t) unsafe.Pointer { return unsafe.Add(unsafe.Pointer(nil), uintptr(v)) }

// stackHeaders is how many headers readRequest reads without a second call.
const stackHeaders = 32

// readRequest turns the C request into an *http.Request with one cgo crossing (two when the
// request has more than 32 headers). The helper fills a pointer-free buffer of integers, so the
// call costs no cgo pointer check. Strings are copied into one Go allocation; the body is read
// from C memory through a guarded reader.
func readRequest(req *C.server_request, ctx context.Context, body *bodyReader) (*http.Request, error) {
	var stack [C.GS_INFO_WORDS + 4*stackHeaders]C.uintptr_t
	words := stack[:]
	n := int(C.gs_read_request(req, &words[0], stackHeaders))
	if n > stackHeaders {
		words = make([]C.uintptr_t, C.GS_INFO_WORDS+4*n)
		C.gs_read_request(req, &words[0], C.size_t(n))
	}
	hdrs := words[C.GS_INFO_WORDS : C.GS_INFO_WORDS+4*n]

	// One backing string for every header name and value.
	total := 0
	for i := 0; i < n; i++ {
		total += int(hdrs[4*i+1]) + int(hdrs[4*i+3])
	}
	backing := make([]byte, 0, total)
	for i := 0; i < n; i++ {
		if l := int(hdrs[4*i+1]); l > 0 {
			backing = append(backing, unsafe.Slice((*byte)(cptr(hdrs[4*i])), l)...)
		}
		if l := int(hdrs[4*i+3]); l > 0 {
			backing = append(backing, unsafe.Slice((*byte)(cptr(hdrs[4*i+2])), l)...)
		}
	}
	all := unsafe.String(unsafe.SliceData(backing), len(backing))
	header := make(http.Header, n)
	host := ""
	off := 0
	for i := 0; i < n; i++ {
		nl, vl := int(hdrs[4*i+1]), int(hdrs[4*i+3])
		name, value := all[off:off+nl], all[off+nl:off+nl+vl]
		off += nl + vl
		if nl == 0 {
			continue
		}
		if name == "host" {
			if host == "" {
				host = value
			}
			continue
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		header[key] = append(header[key], value)
	}

	method := C.GoString((*C.char)(cptr(words[C.GS_METHOD])))
	path := C.GoString((*C.char)(cptr(words[C.GS_PATH])))
	query := C.GoString((*C.char)(cptr(words[C.GS_QUERY])))
	remote := C.GoString((*C.char)(cptr(words[C.GS_REMOTE])))
	bodyLen := int(words[C.GS_BODY_LEN])
	version := int(words[C.GS_VERSION])
	requestURI := path
	if query != "" {
		requestURI = path + "?" + query
	}
	var u *url.URL
	if strings.IndexByte(path, '%') < 0 && path != "" && path[0] == '/' {
		u = &url.URL{Path: path, RawQuery: query}
	} else {
		var err error
		if u, err = url.ParseRequestURI(requestURI); err != nil {
			return nil, fmt.Errorf("invalid request target %q: %w", requestURI, err)
		}
	}
	major, minor := 1, 1
	switch version {
	case 10:
		minor = 0
	case 20:
		major, minor = 2, 0
	}
	var tmp http.Request
	r := tmp.WithContext(ctx)
	r.Method = method
	r.URL = u
	r.Proto = "HTTP/" + strconv.Itoa(major) + "." + strconv.Itoa(minor)
	r.ProtoMajor, r.ProtoMinor = major, minor
	r.Header = header
	r.Host = host
	r.RemoteAddr = remote
	r.RequestURI = requestURI
	r.ContentLength = int64(bodyLen)
	if bodyLen > 0 {
		body.p = cptr(words[C.GS_BODY]) // only when non-empty: an empty body's pointer may dangle
		body.n = bodyLen
		r.Body = body
	} else {
		r.Body = http.NoBody
	}
	return r, nil
}

// bodyReader reads the request body straight from the library's memory. The memory lives until
// server_request_free; release() (under the lock) ends every later read first, so a reader
// that outlives the handler gets an error instead of freed memory.
type bodyReader struct {
	mu     sync.Mutex
	p      unsafe.Pointer
	n, off int
	closed bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.p == nil {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.off >= b.n {
		return 0, io.EOF
	}
	k := copy(p, unsafe.Slice((*byte)(b.p), b.n)[b.off:])
	b.off += k
	return k, nil
}

func (b *bodyReader) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

func (b *bodyReader) release() {
	b.mu.Lock()
	b.closed = true
	b.p = nil
	b.mu.Unlock()
}

// reqCtx is the request's context. Its Done channel is made on first use; only then is the
// request watched (polling server_request_cancelled), so handlers that never look at the
// context cost nothing. It is cancelled when the client goes away, when the stop is forced,
// and when the handler returns (as net/http does).
type reqCtx struct {
	srv *Server
	req *C.server_request

	mu         sync.Mutex
	done       chan struct{}
	err        error
	finished   bool
	registered bool
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *reqCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *reqCtx) Value(key any) any           { return nil }
func (c *reqCtx) String() string              { return "graceserve.requestContext" }

func (c *reqCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && !c.finished && C.server_request_cancelled(c.req) != 0 {
		c.cancelLocked()
	}
	return c.err
}

func (c *reqCtx) Done() <-chan struct{} {
	c.mu.Lock()
	if c.done != nil {
		d := c.done
		c.mu.Unlock()
		return d
	}
	if c.err != nil {
		c.done = closedChan
		c.mu.Unlock()
		return c.done
	}
	c.done = make(chan struct{})
	d := c.done
	c.mu.Unlock()
	c.srv.watch(c)
	return d
}

func (c *reqCtx) cancelLocked() {
	if c.err != nil {
		return
	}
	c.err = context.Canceled
	if c.done != nil && c.done != closedChan {
		close(c.done)
	}
}

func (c *reqCtx) cancel() {
	c.mu.Lock()
	c.cancelLocked()
	c.mu.Unlock()
}

// finish runs when the handler has returned, before the request is freed.
func (c *reqCtx) finish() {
	c.mu.Lock()
	c.finished = true
	c.cancelLocked()
	reg := c.registered
	c.mu.Unlock()
	if reg {
		c.srv.watchMu.Lock()
		delete(c.srv.watched, c)
		c.srv.watchMu.Unlock()
	}
}

// watch adds c to the set polled by watchLoop, unless its handler has already returned. Lock
// order: watchMu, then c.mu.
func (s *Server) watch(c *reqCtx) {
	s.watchMu.Lock()
	c.mu.Lock()
	if !c.finished && c.err == nil {
		c.registered = true
		s.watched[c] = struct{}{}
	}
	c.mu.Unlock()
	if s.stopped() {
		delete(s.watched, c)
		c.cancel()
	}
	s.watchMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// pollInterval is how often watched requests are checked for a departed client.
const pollInterval = 20 * time.Millisecond

func (s *Server) watchLoop() {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		s.watchMu.Lock()
		idle := len(s.watched) == 0
		s.watchMu.Unlock()
		if idle {
			select {
			case <-s.kick:
			case <-s.done:
				s.cancelAll()
				return
			}
		}
		select {
		case <-t.C:
		case <-s.done:
			s.cancelAll()
			return
		}
		s.watchMu.Lock()
		for c := range s.watched {
			// Safe: c is removed from the set (under watchMu) before its request is freed.
			if C.server_request_cancelled(c.req) != 0 {
				delete(s.watched, c)
				c.cancel()
			}
		}
		s.watchMu.Unlock()
	}
}

// cancelAll cancels every watched request context (forced stop or server gone).
func (s *Server) cancelAll() {
	s.watchMu.Lock()
	for c := range s.watched {
		delete(s.watched, c)
		c.cancel()
	}
	s.watchMu.Unlock()
}

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

// flatHeaders packs the response headers into a byte blob plus lengths for gs_respond. It adds
// a sniffed Content-Type like net/http does (unless the handler set it, even to nil) and leaves
// out the framing headers the library sets itself.
func (w *responseWriter) flatHeaders(first []byte) (blob []byte, lens []C.size_t) {
	h := w.header
	if _, set := h["Content-Type"]; !set && len(first) > 0 && bodyAllowed(w.status) {
		blob = append(blob, "content-type"...)
		ct := http.DetectContentType(first)
		blob = append(blob, ct...)
		lens = append(lens, 12, C.size_t(len(ct)))
	}
	for k, vs := range h {
		if k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection" {
			continue
		}
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
