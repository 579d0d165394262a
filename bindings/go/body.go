package graceserve

import (
	"io"
	"net/http"
	"sync"
	"unsafe"
)

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
