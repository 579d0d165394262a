// server-goref: the reference host of the conformance suite, written with Go's own net/http and
// nothing else. It follows the seed pattern every graceserve host imitates — signal.NotifyContext,
// then http.Server.Shutdown with a deadline — so that any behaviour where a graceserve host differs
// from Go's shows up in the suite as a diff against this program, not as an opinion.
//
//	server-goref [--addr HOST:PORT] [--shutdown-timeout-ms N]
//
// Same routes, ready line, exit statuses and bind-error line as the host contract (DESIGN.md §5).
// Serves HTTP/1.1 and h2c with prior knowledge on the same port, like graceserve.
//
// The second signal: after the first signal the program calls stop(), which restores the default
// signal disposition, so a second SIGINT/SIGTERM kills the process (status -SIG) — that is Go's
// idiom and it is listed as an expected difference in the suite (graceserve exits 1).
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
	"syscall"
	"time"
)

const name = "server-goref"

func handler() http.Handler {
	mux := http.NewServeMux()
	text := func(w http.ResponseWriter, status int, body string) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
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
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(body)
		default:
			text(w, http.StatusNotFound, "not found\n")
		}
	})
	return mux
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
	timeoutMs := fs.Uint("shutdown-timeout-ms", 5000, "drain deadline in ms after a signal")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [--addr HOST:PORT] [--shutdown-timeout-ms N]\n", name)
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

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: cannot listen on %s: %s\n", name, *addr, osError(err))
		return 1
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: handler(), Protocols: &protocols}
	fmt.Printf("listening on %s\n", ln.Addr())
	_ = os.Stdout.Sync()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		fmt.Fprintf(os.Stderr, "%s: serve: %v\n", name, err)
		return 1
	case <-ctx.Done():
	}
	stop() // the seed pattern: a second signal now gets the default action and kills the process

	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(*timeoutMs)*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		fmt.Fprintf(os.Stderr, "%s: shutdown: %v\n", name, err)
		return 1
	}
	return 0
}

func main() { os.Exit(run()) }
