package graceserve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// goroutineMode is the default (goroutine handlers); GRACESERVE_TEST_THREADS=1 runs the whole
// suite with Options.ThreadHandlers instead (make test-go runs it both ways).
var goroutineMode = os.Getenv("GRACESERVE_TEST_THREADS") != "1"

// start runs a server on a free port and makes sure it is stopped when the test ends.
func start(t *testing.T, h http.Handler, mod ...func(*Options)) *Server {
	t.Helper()
	o := Options{Addr: "127.0.0.1:0", Handler: h, ThreadHandlers: !goroutineMode}
	for _, m := range mod {
		m(&o)
	}
	s, err := Start(o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		_ = s.Wait()
	})
	return s
}

func newClient() *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

func get(t *testing.T, s *Server, path string) (*http.Response, string) {
	t.Helper()
	resp, err := newClient().Get("http://" + s.Addr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp, string(b)
}

// portFree reports whether addr can be bound again.
func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func TestStartServeShutdown(t *testing.T) {
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	}))
	resp, body := get(t, s, "/x")
	if resp.StatusCode != 200 || body != "hello /x" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("Wait after graceful shutdown: %v", err)
	}
	if !portFree(s.Addr()) {
		t.Fatalf("port %s still bound after shutdown", s.Addr())
	}
	// A new server works after the old one stopped.
	s2 := start(t, nil)
	resp, body = get(t, s2, "/")
	if resp.StatusCode != 200 || body != "OK" {
		t.Fatalf("built-in handler: got %d %q", resp.StatusCode, body)
	}
}

func TestBindErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	_, err = Start(Options{Addr: addr, Handler: http.NotFoundHandler()})
	if !errors.Is(err, ErrAddrInUse) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("want ErrAddrInUse, got %v", err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Fatalf("message does not name the address %s: %q", addr, err)
	}
	_, err = Start(Options{Addr: "not an address"})
	if !errors.Is(err, ErrInvalidAddress) {
		t.Fatalf("want ErrInvalidAddress, got %v", err)
	}
	_, err = Start(Options{Addr: "127.0.0.1:0", WorkerThreads: -1})
	if !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("want ErrInvalidArgument, got %v", err)
	}
	// After failed starts a good one works.
	s := start(t, nil)
	if resp, _ := get(t, s, "/"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestStoppedServer(t *testing.T) {
	s := start(t, nil)
	if c := s.StopCause(); c != CauseNone {
		t.Fatalf("StopCause while running: %v", c)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := s.StopCause(); c != CauseGracefulCall || c.ExitStatus() != 0 {
		t.Fatalf("StopCause after Shutdown: %v (exit status %d)", c, c.ExitStatus())
	}
	if err := s.NotifySignal(syscall.SIGTERM); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("NotifySignal after stop: want ErrNotRunning, got %v", err)
	}
	if _, err := s.Stats(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Stats after stop: want ErrNotRunning, got %v", err)
	}
	// Shutdown, Close and Wait stay idempotent after the stop, and the cause stays.
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after Shutdown: %v", err)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if c := s.StopCause(); c != CauseGracefulCall {
		t.Fatalf("StopCause changed by later calls: %v", c)
	}
}

// inflight starts GET path in the background and returns a channel with the result.
type result struct {
	status int
	body   string
	close  bool
	err    error
}

func fetchAsync(addr, path string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		// A keep-alive client: a response sent during the drain must announce the close itself.
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- result{status: resp.StatusCode, body: string(b), close: resp.Close, err: err}
	}()
	return ch
}

// sleepHandler signals on started when a request is in the handler, then sleeps ms.
func sleepHandler(started chan<- struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ms int
		fmt.Sscanf(r.URL.Query().Get("ms"), "%d", &ms)
		if started != nil {
			started <- struct{}{}
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "slept %d", ms)
	})
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	started := make(chan struct{}, 1)
	s := start(t, sleepHandler(started))
	res := fetchAsync(s.Addr(), "/sleep?ms=700")
	<-started
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if time.Since(begin) < 300*time.Millisecond {
		t.Fatalf("Shutdown returned before the in-flight request finished")
	}
	r := <-res
	if r.err != nil || r.status != 200 || r.body != "slept 700" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if !r.close {
		t.Fatalf("in-flight response during drain should carry Connection: close")
	}
	// New connections are refused now.
	if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatalf("connection accepted after shutdown")
	}
}

func TestShutdownDeadlineForces(t *testing.T) {
	started := make(chan struct{}, 1)
	var ctxErr error
	var mu sync.Mutex
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			mu.Lock()
			ctxErr = r.Context().Err()
			mu.Unlock()
		case <-time.After(20 * time.Second):
		}
	}))
	res := fetchAsync(s.Addr(), "/")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := s.Shutdown(ctx)
	if !errors.Is(err, ErrForced) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want forced + DeadlineExceeded, got %v", err)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Fatalf("forced shutdown took %v", d)
	}
	if r := <-res; r.err == nil {
		t.Fatalf("client of a force-closed request got a response: %+v", r)
	}
	werr := s.Wait()
	if !errors.Is(werr, ErrForced) || !errors.Is(werr, ErrFailed) {
		t.Fatalf("Wait after forced stop: %v", werr)
	}
	var e *Error
	if !errors.As(werr, &e) || e.Cause != CauseForcedDeadline {
		t.Fatalf("Wait error cause: %#v", werr)
	}
	if c := s.StopCause(); c != CauseForcedDeadline || c.ExitStatus() != 1 {
		t.Fatalf("StopCause %v, exit status %d", c, c.ExitStatus())
	}
	// A later Shutdown gets the library's answer for this stop again.
	if err := s.Shutdown(context.Background()); !errors.Is(err, ErrForced) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown after a forced stop: %v", err)
	}
	// The handler saw its context cancelled once the stop was forced.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := ctxErr
		mu.Unlock()
		if got != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request context not cancelled after forced stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestShutdownCancelledContextForces(t *testing.T) {
	started := make(chan struct{}, 1)
	s := start(t, sleepHandler(started))
	res := fetchAsync(s.Addr(), "/sleep?ms=20000")
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	err := s.Shutdown(ctx)
	if !errors.Is(err, ErrForced) || !errors.Is(err, context.Canceled) {
		t.Fatalf("want forced + Canceled, got %v", err)
	}
	if r := <-res; r.err == nil {
		t.Fatalf("got a response from a forced request: %+v", r)
	}
}

func TestConcurrentShutdownCalls(t *testing.T) {
	started := make(chan struct{}, 1)
	s := start(t, sleepHandler(started))
	res := fetchAsync(s.Addr(), "/sleep?ms=500")
	<-started
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs[i] = s.Shutdown(ctx)
		}(i)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = s.Wait() }()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Shutdown #%d: %v", i, err)
		}
	}
	if r := <-res; r.err != nil || r.body != "slept 500" {
		t.Fatalf("in-flight: %+v", r)
	}
}

func TestServeContextDrains(t *testing.T) {
	started := make(chan struct{}, 1)
	s := start(t, sleepHandler(started), func(o *Options) { o.ShutdownTimeout = 10 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	res := fetchAsync(s.Addr(), "/sleep?ms=300")
	<-started
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if r := <-res; r.err != nil || r.body != "slept 300" {
		t.Fatalf("in-flight: %+v", r)
	}
}

func TestNotifySignalDrainThenForce(t *testing.T) {
	started := make(chan struct{}, 1)
	s := start(t, sleepHandler(started), func(o *Options) { o.ShutdownTimeout = 30 * time.Second })
	res := fetchAsync(s.Addr(), "/sleep?ms=20000")
	<-started
	if err := s.NotifySignal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
		t.Fatalf("server stopped on the first signal with a request in flight")
	case <-time.After(200 * time.Millisecond):
	}
	if err := s.NotifySignal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := s.Wait()
	var e *Error
	if !errors.As(err, &e) || e.Cause != CauseForcedSecondSignal || !errors.Is(err, ErrForced) {
		t.Fatalf("want forced by second signal, got %#v", err)
	}
	if r := <-res; r.err == nil {
		t.Fatalf("force-closed request got a response: %+v", r)
	}
}

func TestIdleAndSilentConnectionsClosedOnDrain(t *testing.T) {
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") }))
	// An idle keep-alive connection after one request, and one that never sends a byte.
	idle, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	silent, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	begin := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with idle connections: %v", err)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Fatalf("drain waited %v for idle connections", d)
	}
	for name, c := range map[string]net.Conn{"idle": idle, "silent": silent} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, syscall.ETIMEDOUT) {
			t.Fatalf("%s connection still open after drain (read %d, %v)", name, n, err)
		}
	}
}

func TestListenAndServe(t *testing.T) {
	// A bind error comes back at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	begin := time.Now()
	if err := ListenAndServe(context.Background(), l.Addr().String(), http.NotFoundHandler()); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("ListenAndServe on a busy port: %v", err)
	}
	if time.Since(begin) > 5*time.Second {
		t.Fatalf("bind error took %v", time.Since(begin))
	}
	// Serves until ctx is done, then drains: the in-flight request completes.
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l2.Addr().String()
	l2.Close()
	started := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ListenAndServe(ctx, addr, sleepHandler(started)) }()
	var res <-chan result
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ListenAndServe never listened")
		}
	}
	res = fetchAsync(addr, "/sleep?ms=300")
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ListenAndServe after ctx done: %v", err)
	}
	if r := <-res; r.err != nil || r.body != "slept 300" {
		t.Fatalf("in-flight request: %+v", r)
	}
}
