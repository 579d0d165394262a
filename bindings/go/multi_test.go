package graceserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// getBody GETs url with c and returns status and body (or an error).
func getBody(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitRefused polls until addr refuses new connections (the drain has begun).
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections", addr)
		}
	}
}

// TestSeveralServersAtOnce runs three independent servers with different handlers in one
// process: all serve at once, one drains (its in-flight request finishes) while the others
// keep serving, one is forced by its deadline, the last drains too; each reports its own outcome.
func TestSeveralServersAtOnce(t *testing.T) {
	stuck := make(chan struct{}, 1)
	alpha := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stuck" {
			stuck <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
			return
		}
		fmt.Fprintf(w, "alpha %s", r.URL.Path)
	}))
	started := make(chan struct{}, 1)
	slow := sleepHandler(started)
	beta := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ms") == "1" {
			io.WriteString(w, "slept 1") // the quick requests; the slow one tells started
			return
		}
		slow.ServeHTTP(w, r)
	}))
	builtin := start(t, nil)
	if alpha.Addr() == beta.Addr() || beta.Addr() == builtin.Addr() || alpha.Addr() == builtin.Addr() {
		t.Fatalf("servers share an address: %s %s %s", alpha.Addr(), beta.Addr(), builtin.Addr())
	}

	// All three serve at once, each with its own handler; each counts only its own requests.
	want := map[*Server]int{alpha: 12, beta: 7, builtin: 9}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for s, n := range want {
		wg.Add(1)
		go func(s *Server, n int) {
			defer wg.Done()
			c := &http.Client{Timeout: 20 * time.Second}
			for i := 0; i < n; i++ {
				path, body := fmt.Sprintf("/p%d", i), ""
				switch s {
				case alpha:
					body = "alpha " + path
				case beta:
					path, body = "/sleep?ms=1", "slept 1"
				case builtin:
					body = "OK"
				}
				st, got, err := getBody(c, "http://"+s.Addr()+path)
				if err != nil || st != 200 || got != body {
					errs <- fmt.Errorf("%s%s: %d %q %v, want 200 %q", s.Addr(), path, st, got, err, body)
					return
				}
			}
		}(s, n)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for s, n := range want {
		st, err := s.Stats()
		if err != nil || st.RequestsTotal != uint64(n) {
			t.Fatalf("%s: Stats %+v %v, want RequestsTotal %d", s.Addr(), st, err, n)
		}
	}

	// Drain beta with a request in flight; alpha and builtin serve all along.
	inflight := fetchAsync(beta.Addr(), "/sleep?ms=700")
	<-started
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- beta.Shutdown(ctx)
	}()
	waitRefused(t, beta.Addr())
	select {
	case <-beta.Done():
		t.Fatal("beta stopped before its in-flight request finished")
	default:
	}
	c := newClient()
	for _, s := range []*Server{alpha, builtin} {
		if st, body, err := getBody(c, "http://"+s.Addr()+"/during"); err != nil || st != 200 || body == "" {
			t.Fatalf("%s during beta's drain: %d %q %v", s.Addr(), st, body, err)
		}
	}
	if err := <-drained; err != nil {
		t.Fatalf("beta Shutdown: %v", err)
	}
	if r := <-inflight; r.err != nil || r.body != "slept 700" || !r.close {
		t.Fatalf("beta's in-flight request: %+v", r)
	}
	if err := beta.Wait(); err != nil || beta.StopCause() != CauseGracefulCall {
		t.Fatalf("beta outcome: %v, cause %v", err, beta.StopCause())
	}
	if !portFree(beta.Addr()) {
		t.Fatalf("beta's port %s still bound", beta.Addr())
	}

	// Force alpha by its deadline; builtin is untouched.
	cut := fetchAsync(alpha.Addr(), "/stuck")
	<-stuck
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := alpha.Shutdown(ctx); !errors.Is(err, ErrForced) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("alpha Shutdown: %v", err)
	}
	if r := <-cut; r.err == nil {
		t.Fatalf("alpha's cut request got a response: %+v", r)
	}
	var e *Error
	if err := alpha.Wait(); !errors.As(err, &e) || e.Cause != CauseForcedDeadline || alpha.StopCause().ExitStatus() != 1 {
		t.Fatalf("alpha outcome: %v", err)
	}
	if st, body, err := getBody(c, "http://"+builtin.Addr()+"/"); err != nil || st != 200 || body != "OK" {
		t.Fatalf("builtin after the others stopped: %d %q %v", st, body, err)
	}
	if builtin.StopCause() != CauseNone {
		t.Fatalf("builtin has a stop cause while running: %v", builtin.StopCause())
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := builtin.Shutdown(sctx); err != nil || builtin.StopCause() != CauseGracefulCall {
		t.Fatalf("builtin Shutdown: %v, cause %v", err, builtin.StopCause())
	}
	for _, s := range []*Server{alpha, builtin} {
		if !portFree(s.Addr()) {
			t.Fatalf("port %s still bound", s.Addr())
		}
	}
}

// TestConcurrentStartStop starts, uses and stops servers from several goroutines at once.
func TestConcurrentStartStop(t *testing.T) {
	const workers, cycles = 4, 5
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			errs <- func() error {
				for i := 0; i < cycles; i++ {
					id := fmt.Sprintf("w%d-c%d", w, i)
					s, err := Start(Options{Addr: "127.0.0.1:0", ThreadHandlers: !goroutineMode,
						Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, id) })})
					if err != nil {
						return fmt.Errorf("%s: Start: %w", id, err)
					}
					st, body, err := getBody(newClient(), "http://"+s.Addr()+"/")
					if err != nil || st != 200 || body != id {
						s.Close()
						return fmt.Errorf("%s: %d %q %v", id, st, body, err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					err = s.Shutdown(ctx)
					cancel()
					if err != nil {
						return fmt.Errorf("%s: Shutdown: %w", id, err)
					}
					if !portFree(s.Addr()) {
						return fmt.Errorf("%s: port %s still bound", id, s.Addr())
					}
				}
				return nil
			}()
		}(w)
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestFramingHeadersLeftToTheLibrary: a handler's own Content-Length, Transfer-Encoding and
// Connection go to the library, which frames the body itself and honours Connection: close.
func TestFramingHeadersLeftToTheLibrary(t *testing.T) {
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "999")
		w.Header().Set("Transfer-Encoding", "chunked")
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, "short")
	}))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	for _, path := range []string{"/", "/close"} {
		resp, err := c.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "short" || resp.ContentLength != 5 || len(resp.TransferEncoding) != 0 {
			t.Fatalf("%s: body %q err %v length %d te %v", path, b, err, resp.ContentLength, resp.TransferEncoding)
		}
		if resp.Close != (path == "/close") {
			t.Fatalf("%s: Connection: close = %v", path, resp.Close)
		}
		if strings.Contains(resp.Header.Get("Connection"), "keep-alive") {
			t.Fatalf("%s: Connection %q", path, resp.Header.Get("Connection"))
		}
	}
}
