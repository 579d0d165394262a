package graceserve

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSignalWhileBusyInProcess: SIGTERM to this very process while handlers (Go code on library
// threads), clients and CPU-bound goroutines are busy, run after run. With the library's signal
// handling off, Go's runtime takes every signal (on goroutine stacks too) and the drain is
// graceful; a handler installed without SA_ONSTACK would crash the test binary.
func TestSignalWhileBusyInProcess(t *testing.T) {
	for run := 0; run < 10; run++ {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		s, err := Start(Options{Addr: "127.0.0.1:0", ShutdownTimeout: 10 * time.Second, ThreadHandlers: !goroutineMode,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				x := 0
				for i := 0; i < 20000; i++ { // a little CPU on the handler thread
					x += i * len(b)
				}
				time.Sleep(5 * time.Millisecond)
				io.WriteString(w, strings.Repeat("y", 1000+x%7))
			})})
		if err != nil {
			stop()
			t.Fatal(err)
		}
		var served atomic.Int64
		quit := make(chan struct{})
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(2)
			go func() { // client
				defer wg.Done()
				c := &http.Client{Timeout: 20 * time.Second}
				for {
					select {
					case <-quit:
						return
					default:
					}
					resp, err := c.Post("http://"+s.Addr()+"/", "text/plain", strings.NewReader("abc"))
					if err != nil {
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("status %d", resp.StatusCode)
					}
					served.Add(1)
				}
			}()
			go func() { // CPU-bound goroutine: signals land on goroutine stacks
				defer wg.Done()
				x := 0
				for {
					select {
					case <-quit:
						return
					default:
					}
					for i := 0; i < 100000; i++ {
						x ^= i
					}
				}
			}()
		}
		for deadline := time.Now().Add(20 * time.Second); served.Load() < 30; time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("run %d: only %d requests served", run, served.Load())
			}
		}
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		err = s.Serve(ctx)
		close(quit)
		wg.Wait()
		stop()
		if err != nil {
			t.Fatalf("run %d: Serve after SIGTERM while busy: %v", run, err)
		}
	}
}

// TestForwardSignals: real SIGTERM/SIGINT sent to this process reach the server that forwards
// them, through the library's signal policy: the first drains (the in-flight request finishes),
// a second forces the stop. A server that does not forward them keeps serving.
func TestForwardSignals(t *testing.T) {
	bystander := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "still here") }))
	alive := func() {
		t.Helper()
		if st, body, err := getBody(newClient(), "http://"+bystander.Addr()+"/"); err != nil || st != 200 || body != "still here" {
			t.Fatalf("the server that does not forward signals: %d %q %v", st, body, err)
		}
	}

	t.Run("first drains", func(t *testing.T) {
		started := make(chan struct{}, 1)
		s := start(t, sleepHandler(started), func(o *Options) { o.ShutdownTimeout = 10 * time.Second })
		stop := s.ForwardSignals()
		defer stop()
		res := fetchAsync(s.Addr(), "/sleep?ms=600")
		<-started
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		waitRefused(t, s.Addr())
		alive()
		if r := <-res; r.err != nil || r.body != "slept 600" || !r.close {
			t.Fatalf("in-flight request: %+v", r)
		}
		if err := s.Wait(); err != nil {
			t.Fatalf("Wait after one signal: %v", err)
		}
		if c := s.StopCause(); c != CauseGracefulSignal || c.ExitStatus() != 0 {
			t.Fatalf("cause %v, exit status %d", c, c.ExitStatus())
		}
	})

	t.Run("second forces", func(t *testing.T) {
		started := make(chan struct{}, 1)
		s := start(t, sleepHandler(started), func(o *Options) { o.ShutdownTimeout = 30 * time.Second })
		stop := s.ForwardSignals(syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		res := fetchAsync(s.Addr(), "/sleep?ms=20000")
		<-started
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		waitRefused(t, s.Addr())
		select {
		case <-s.Done():
			t.Fatal("stopped on the first signal with a request in flight")
		default:
		}
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		select {
		case <-s.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a second signal did not force the stop")
		}
		var e *Error
		if err := s.Wait(); !errors.As(err, &e) || e.Cause != CauseForcedSecondSignal || !errors.Is(err, ErrForced) {
			t.Fatalf("Wait after a second signal: %#v", err)
		}
		if c := s.StopCause(); c != CauseForcedSecondSignal || c.ExitStatus() != 1 {
			t.Fatalf("cause %v, exit status %d", c, c.ExitStatus())
		}
		if r := <-res; r.err == nil {
			t.Fatalf("the cut request got a response: %+v", r)
		}
	})
	alive()
}
