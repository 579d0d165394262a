package graceserve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRequestFields(t *testing.T) {
	type seen struct {
		method, path, rawQuery, q, host, proto, remote, uri string
		multi                                               []string
		ua                                                  string
		length                                              int64
		body                                                string
	}
	got := make(chan seen, 1)
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.URL.Query().Get("a"), r.Host, r.Proto,
			r.RemoteAddr, r.RequestURI, r.Header.Values("X-Multi"), r.Header.Get("User-Agent"),
			r.ContentLength, string(b)}
	}))
	req, _ := http.NewRequest("PUT", "http://"+s.Addr()+"/p%20q/r?a=1&b=2", strings.NewReader("payload"))
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	req.Header.Set("User-Agent", "tester/1")
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	g := <-got
	if g.method != "PUT" || g.path != "/p q/r" || g.rawQuery != "a=1&b=2" || g.q != "1" ||
		g.host != s.Addr() || g.proto != "HTTP/1.1" || !strings.HasPrefix(g.remote, "127.0.0.1:") ||
		g.uri != "/p%20q/r?a=1&b=2" || g.ua != "tester/1" || g.length != 7 || g.body != "payload" {
		t.Fatalf("request fields: %+v", g)
	}
	if len(g.multi) != 2 || g.multi[0] != "one" || g.multi[1] != "two" {
		t.Fatalf("repeated header: %q", g.multi)
	}
}

func TestResponseStatusAndHeaders(t *testing.T) {
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/created":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Add("X-Multi", "a")
			w.Header().Add("X-Multi", "b")
			w.WriteHeader(http.StatusCreated)
			w.WriteHeader(http.StatusTeapot) // superfluous: ignored
			io.WriteString(w, `{"ok":true}`)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
			if _, err := w.Write([]byte("x")); !errors.Is(err, http.ErrBodyNotAllowed) {
				panic("write on 204 should fail")
			}
		case "/sniff":
			io.WriteString(w, "<html><body>hi</body></html>")
		case "/nosniff":
			w.Header()["Content-Type"] = nil
			io.WriteString(w, "<html></html>")
		case "/notfound":
			http.NotFound(w, r)
		case "/badheader":
			w.Header().Set("X-Bad", "a\x00b")
			io.WriteString(w, "never")
		}
	}))
	resp, body := get(t, s, "/created")
	if resp.StatusCode != 201 || body != `{"ok":true}` || resp.Header.Get("Content-Type") != "application/json" ||
		strings.Join(resp.Header.Values("X-Multi"), ",") != "a,b" || resp.ContentLength != int64(len(body)) {
		t.Fatalf("/created: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body = get(t, s, "/empty"); resp.StatusCode != 204 || body != "" {
		t.Fatalf("/empty: %d %q", resp.StatusCode, body)
	}
	if resp, _ = get(t, s, "/sniff"); resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("/sniff content type %q", resp.Header.Get("Content-Type"))
	}
	if resp, _ = get(t, s, "/nosniff"); resp.Header.Get("Content-Type") != "" {
		t.Fatalf("/nosniff content type %q", resp.Header.Get("Content-Type"))
	}
	if resp, body = get(t, s, "/notfound"); resp.StatusCode != 404 || body != "404 page not found\n" {
		t.Fatalf("/notfound: %d %q", resp.StatusCode, body)
	}
	if resp, _ = get(t, s, "/badheader"); resp.StatusCode != 500 {
		t.Fatalf("/badheader: want 500 for an invalid header value, got %d", resp.StatusCode)
	}
	if resp, body = get(t, s, "/none"); resp.StatusCode != 200 || body != "" {
		t.Fatalf("handler writing nothing: %d %q", resp.StatusCode, body)
	}
}

func TestStreamingFlush(t *testing.T) {
	release := make(chan struct{})
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	}))
	resp, err := newClient().Get("http://" + s.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != -1 {
		t.Fatalf("streamed response should be chunked, ContentLength=%d", resp.ContentLength)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first chunk before the handler finished: %q %v", line, err)
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest: %q %v", rest, err)
	}
}

func TestLargeBodies(t *testing.T) {
	big := make([]byte, 5<<20)
	rand.Read(big)
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			io.Copy(w, r.Body) // 32 KiB writes: switches to streaming past the threshold
			return
		}
		w.Write(big) // one big write
	}))
	resp, err := newClient().Post("http://"+s.Addr()+"/echo", "application/octet-stream", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("echo of %d bytes: got %d bytes, err %v", len(big), len(got), err)
	}
	_, body := get(t, s, "/big")
	if body != string(big) {
		t.Fatalf("large response: got %d bytes", len(body))
	}
	// Larger than MaxBodyBytes: 413 from the library.
	resp, err = newClient().Post("http://"+s.Addr()+"/echo", "application/octet-stream", bytes.NewReader(make([]byte, 9<<20)))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("oversized body: status %d", resp.StatusCode)
		}
	}
}

func TestPanicGives500AndServerLives(t *testing.T) {
	var logs syncBuffer
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			io.WriteString(w, "partial")
			panic("boom")
		case "/abort":
			panic(http.ErrAbortHandler)
		case "/badcode":
			w.WriteHeader(42)
		}
		io.WriteString(w, "alive")
	}), func(o *Options) { o.ErrorLog = log.New(&logs, "", 0) })
	for _, p := range []string{"/panic", "/abort", "/badcode"} {
		resp, body := get(t, s, p)
		if resp.StatusCode != 500 || strings.Contains(body, "partial") {
			t.Fatalf("%s: got %d %q", p, resp.StatusCode, body)
		}
	}
	if resp, body := get(t, s, "/"); resp.StatusCode != 200 || body != "alive" {
		t.Fatalf("after panics: %d %q", resp.StatusCode, body)
	}
	if l := logs.String(); !strings.Contains(l, "boom") || strings.Contains(l, "abort") {
		t.Fatalf("panic log (ErrAbortHandler must stay silent): %q", l)
	}
}

func TestClientDisconnectCancelsContext(t *testing.T) {
	started := make(chan struct{}, 1)
	cancelled := make(chan error, 1)
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- r.Context().Err()
		case <-time.After(20 * time.Second):
			cancelled <- nil
		}
	}))
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	c.Close()
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("context error %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("request context not cancelled after the client left")
	}
	// Shutdown is graceful afterwards: nothing is left in flight.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestContextCancelledWhenHandlerReturns(t *testing.T) {
	ctxs := make(chan context.Context, 1)
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Err() != nil {
			panic("context cancelled during the handler")
		}
		ctxs <- r.Context()
	}))
	get(t, s, "/")
	ctx := <-ctxs
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not done after the handler returned")
	}
}

func TestLateUseAfterHandlerReturns(t *testing.T) {
	type late struct {
		readErr, writeErr error
	}
	res := make(chan late, 1)
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		go func() {
			time.Sleep(100 * time.Millisecond) // after the handler returned and the request was freed
			_, rerr := r.Body.Read(make([]byte, 4))
			_, werr := w.Write([]byte("late"))
			res <- late{rerr, werr}
		}()
	}))
	resp, err := newClient().Post("http://"+s.Addr()+"/", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	l := <-res
	if l.readErr == nil || l.writeErr == nil {
		t.Fatalf("late body read / write should fail: %+v", l)
	}
}

func TestShutdownAndWaitFromHandler(t *testing.T) {
	if goroutineMode {
		t.Skip("handler threads only; see TestShutdownFromGoroutineHandler")
	}
	var srv atomic.Pointer[Server]
	errs := make(chan [2]error, 1)
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := srv.Load()
		werr := s.Wait()
		serr := s.Shutdown(context.Background())
		errs <- [2]error{werr, serr}
		io.WriteString(w, "bye")
	}))
	srv.Store(s)
	resp, body := get(t, s, "/")
	if resp.StatusCode != 200 || body != "bye" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	e := <-errs
	if !errors.Is(e[0], ErrWrongThread) || !errors.Is(e[1], ErrDraining) {
		t.Fatalf("Wait/Shutdown from a handler: %v / %v", e[0], e[1])
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("Wait after a drain started by a handler: %v", err)
	}
}

func TestHTTP2PriorKnowledge(t *testing.T) {
	protos := make(chan string, 1)
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
		io.WriteString(w, "h2")
	}))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &p}}
	resp, err := c.Get("http://" + s.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(b) != "h2" || <-protos != "HTTP/2.0" {
		t.Fatalf("h2c: proto %s body %q", resp.Proto, b)
	}
}

func TestConcurrentRequests(t *testing.T) {
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	c := &http.Client{Timeout: 20 * time.Second}
	// Collect garbage all along, to expose any memory the C side would still reference.
	stopGC := make(chan struct{})
	defer close(stopGC)
	go func() {
		for {
			select {
			case <-stopGC:
				return
			default:
				runtime.GC()
				time.Sleep(time.Millisecond)
			}
		}
	}()
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		go func(i int) {
			for j := 0; j < 20; j++ {
				msg := fmt.Sprintf("req %d/%d", i, j)
				resp, err := c.Post("http://"+s.Addr()+"/", "text/plain", strings.NewReader(msg))
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != msg {
					errs <- fmt.Errorf("got %q want %q", b, msg)
					return
				}
			}
			errs <- nil
		}(i)
	}
	for i := 0; i < 32; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// With goroutine handlers (the default) a handler cannot be told apart from any goroutine: Shutdown from it
// waits for the drain, which waits for this very handler, until the ctx deadline forces the
// stop (the same as net/http's Shutdown called from a handler). It must not hang.
func TestShutdownFromGoroutineHandler(t *testing.T) {
	got := make(chan error, 1)
	var srv atomic.Pointer[Server]
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		got <- srv.Load().Shutdown(ctx)
	}), func(o *Options) { o.ThreadHandlers = false })
	srv.Store(s)
	res := fetchAsync(s.Addr(), "/")
	select {
	case err := <-got:
		if !errors.Is(err, ErrForced) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown from a goroutine handler: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Shutdown from a goroutine handler hung")
	}
	<-res
	if err := s.Wait(); !errors.Is(err, ErrForced) {
		t.Fatalf("Wait: %v", err)
	}
}

func TestHeadGetsHeadersWithoutBody(t *testing.T) {
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello world") }))
	resp, err := newClient().Head("http://" + s.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 11 || len(b) != 0 ||
		resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("HEAD: %d len=%d body=%q %v", resp.StatusCode, resp.ContentLength, b, resp.Header)
	}
}
