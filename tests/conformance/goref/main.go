// server-goref: the reference host of the conformance suite, written with Go's own net/http and
// nothing else. It follows the seed pattern every graceserve host imitates — wait for a signal,
// then http.Server.Shutdown with a deadline — so that any behaviour where a graceserve host differs
// from Go's shows up in the suite as a diff against this program, not as an opinion.
//
//	server-goref [--addr HOST:PORT] [--shutdown-timeout-ms N] [--drain-delay-ms N]
//
// Same routes, ready line, exit statuses, bind-error line and stderr lifecycle lines as the host
// contract (docs/architecture.md §5 The host contract). Serves HTTP/1.1 and h2c with prior
// knowledge on the same port, like graceserve.
//
// The pre-drain delay and the health paths are written the way Kubernetes users write them by hand
// in Go (net/http has neither): a readiness flag flipped on SIGTERM (/readyz then answers 503), a
// middleware that adds `Connection: close` to every answer while draining, a sleep for the delay
// while the server keeps serving, then http.Server.Shutdown. Idle keep-alive connections are left
// open during the delay (SetKeepAlivesEnabled(false) would close them at once, which is what the
// delay must avoid). Over HTTP/2, net/http turns a handler's `Connection: close` into a GOAWAY
// after that response, so an h2 connection hears of the drain only when it next gets an answer.
//
// The second signal: after the first signal the program stops listening for signals, which
// restores the default disposition, so a second SIGINT/SIGTERM kills the process (status -SIG) —
// that is Go's idiom and it is listed as an expected difference in the suite (graceserve exits 1).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

const name = "server-goref"

// draining is the readiness flag, flipped when the first signal arrives.
var draining atomic.Bool

func text(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// closeWhileDraining is the hand-written pre-drain: once the flag is set, every answer says
// `Connection: close`, so keep-alive clients (a proxy's pooled connections) move elsewhere.
func closeWhileDraining(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

func handler() http.Handler {
	mux := http.NewServeMux()
	// GET (and HEAD) only, like graceserve's health paths: other methods get 405.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			text(w, http.StatusServiceUnavailable, "draining")
			return
		}
		text(w, http.StatusOK, "ready")
	})
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, "alive")
	})
	notAllowed := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		text(w, http.StatusMethodNotAllowed, "GET or HEAD\n")
	}
	mux.HandleFunc("/readyz", notAllowed)
	mux.HandleFunc("/livez", notAllowed)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/" && r.Method == http.MethodGet:
			text(w, http.StatusOK, "OK")
		case r.URL.Path == "/sleep" && r.Method == http.MethodGet:
			ms, err := strconv.ParseInt(r.URL.Query().Get("ms"), 10, 64)
			if err != nil || ms < 0 || ms > 3600000 {
				text(w, http.StatusBadRequest, "bad ms\n")
				return
			}
			time.Sleep(time.Duration(ms) * time.Millisecond)
			text(w, http.StatusOK, fmt.Sprintf("slept %d", ms))
		case r.URL.Path == "/echo" && r.Method == http.MethodPost:
			body, err := io.ReadAll(r.Body)
			if err != nil {
				text(w, http.StatusBadRequest, "bad body\n")
				return
			}
			w.Header()["Content-Type"] = nil // no sniffed Content-Type: the echo is the body alone, as in every host
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(body)
		default:
			text(w, http.StatusNotFound, "not found\n")
		}
	})
	return closeWhileDraining(mux)
}

// osError returns the OS part of a listen error ("address already in use"), like the other hosts.
func osError(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var addrErr *net.AddrError
	if errors.As(err, &addrErr) {
		return addrErr.Err
	}
	return err.Error()
}

func run() int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "`HOST:PORT` to listen on")
	timeoutMs := fs.Uint("shutdown-timeout-ms", 5000, "drain deadline in ms after the pre-drain delay")
	delayMs := fs.Uint("drain-delay-ms", 0, "pre-drain delay in ms: keep serving with Connection: close")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [--addr HOST:PORT] [--shutdown-timeout-ms N] [--drain-delay-ms N]\n", name)
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unknown argument %s\n", name, fs.Arg(0))
		fs.Usage()
		return 2
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: cannot listen on %s: %s\n", name, *addr, osError(err))
		return 1
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	// Open connections, for the lifecycle lines only.
	var open atomic.Int64
	srv := &http.Server{Handler: handler(), Protocols: &protocols,
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		}}
	fmt.Printf("listening on %s\n", ln.Addr())
	_ = os.Stdout.Sync()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var sig os.Signal
	select {
	case err := <-served:
		fmt.Fprintf(os.Stderr, "%s: serve: %v\n", name, err)
		return 1
	case sig = <-sigs:
	}
	signal.Stop(sigs) // the seed pattern: a second signal now gets the default action and kills the process
	requested := time.Now()
	draining.Store(true)
	signum := 0
	if s, ok := sig.(syscall.Signal); ok {
		signum = int(s)
	}
	delay := time.Duration(*delayMs) * time.Millisecond
	timeout := time.Duration(*timeoutMs) * time.Millisecond
	if delay > 0 {
		fmt.Fprintf(os.Stderr, "%s: draining (signal %d): pre-drain delay %d ms, then deadline %d ms; %d connection(s) open\n",
			name, signum, delay.Milliseconds(), timeout.Milliseconds(), open.Load())
		time.Sleep(delay) // the preStop sleep, inside the program: keep serving while routing converges
	} else {
		fmt.Fprintf(os.Stderr, "%s: draining (signal %d): deadline %d ms; %d connection(s) open\n",
			name, signum, timeout.Milliseconds(), open.Load())
	}

	drainStart := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		left := open.Load()
		_ = srv.Close()
		fmt.Fprintf(os.Stderr, "%s: stop forced: the drain deadline passed after %d ms with %d connection(s) still open; they were closed (%v)\n",
			name, time.Since(drainStart).Milliseconds(), left, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "%s: stopped gracefully in %d ms: every connection finished (%d ms drain)\n",
		name, time.Since(requested).Milliseconds(), time.Since(drainStart).Milliseconds())
	return 0
}

func main() { os.Exit(run()) }
