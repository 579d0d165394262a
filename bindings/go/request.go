package graceserve

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"unsafe"
)

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
