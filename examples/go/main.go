// server-go: the graceserve Go example host (DESIGN.md §5 host contract).
//
//	server-go [--addr HOST:PORT] [--shutdown-timeout-ms N]
//
//	GET  /            -> 200 "OK"
//	GET  /sleep?ms=N  -> 200 "slept N" after N ms
//	POST /echo        -> 200, body = request body
//	anything else     -> 404
//
// Prints "listening on HOST:PORT" once bound. Go's runtime owns the signals; the server's
// ForwardSignals hands SIGINT/SIGTERM to the library's signal policy: the first starts a
// graceful drain with the --shutdown-timeout-ms deadline, a second forces the stop. The exit
// status is the one the library assigns to the stop cause: 0 graceful, 1 bind failure or
// forced drain; 2 for bad usage. Without flags the library's defaults apply (address and
// drain deadline).
package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	graceserve "github.com/graceserve/graceserve/bindings/go"
)

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// queryMs parses the first "ms" parameter like the C host: 0..3600000, else -1.
func queryMs(query string) int64 {
	for _, kv := range strings.Split(query, "&") {
		if v, ok := strings.CutPrefix(kv, "ms="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || n > 3600000 {
				return -1
			}
			return n
		}
	}
	return -1
}

func handle(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		reply(w, 200, "OK")
	case r.URL.Path == "/sleep" && r.Method == http.MethodGet:
		ms := queryMs(r.URL.RawQuery)
		if ms < 0 {
			reply(w, 400, "bad ms\n")
			return
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		reply(w, 200, fmt.Sprintf("slept %d", ms))
	case r.URL.Path == "/echo" && r.Method == http.MethodPost:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			reply(w, 400, "cannot read body\n")
			return
		}
		w.Header()["Content-Type"] = nil // like the C host: no Content-Type on the echo
		w.Write(body)
	default:
		reply(w, 404, "not found\n")
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: server-go [--addr HOST:PORT] [--shutdown-timeout-ms N]")
}

// parseArgs returns the address ("" for the library's default), the drain deadline (0 for the
// library's default; -1 for an explicit 0, "no grace") and, when the program must end here, an
// exit status (else -1).
func parseArgs(args []string) (addr string, timeout time.Duration, code int) {
	for i := 0; i < len(args); i++ {
		a, val := args[i], ""
		switch {
		case a == "--addr" || a == "--shutdown-timeout-ms":
			if i+1 >= len(args) {
				fmt.Fprintf(os.Stderr, "server-go: %s needs a value\n", a)
				usage()
				return "", 0, 2
			}
			i++
			val = args[i]
		case strings.HasPrefix(a, "--addr="):
			a, val = "--addr", a[len("--addr="):]
		case strings.HasPrefix(a, "--shutdown-timeout-ms="):
			a, val = "--shutdown-timeout-ms", a[len("--shutdown-timeout-ms="):]
		case a == "-h" || a == "--help":
			usage()
			return "", 0, 0
		default:
			fmt.Fprintf(os.Stderr, "server-go: unknown argument %s\n", a)
			usage()
			return "", 0, 2
		}
		if a == "--addr" {
			addr = val
			continue
		}
		ms, err := strconv.ParseUint(val, 10, 32)
		if err != nil || ms > math.MaxUint32-1 {
			fmt.Fprintf(os.Stderr, "server-go: invalid --shutdown-timeout-ms %s\n", val)
			return "", 0, 2
		}
		timeout = time.Duration(ms) * time.Millisecond
		if ms == 0 {
			timeout = -1 // Options: negative means no grace (0 would mean the default)
		}
	}
	return addr, timeout, -1
}

func run() int {
	addr, timeout, code := parseArgs(os.Args[1:])
	if code >= 0 {
		return code
	}
	srv, err := graceserve.Start(graceserve.Options{
		Addr:            addr,
		Handler:         http.HandlerFunc(handle),
		ShutdownTimeout: timeout,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "server-go: %v\n", err)
		return 1 // the start failed: nothing ran (a bind failure's status)
	}
	// From here SIGINT/SIGTERM go to the library: the first drains, a second forces.
	stop := srv.ForwardSignals(os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("listening on %s\n", srv.Addr())
	os.Stdout.Sync()

	if err := srv.Wait(); err != nil {
		fmt.Fprintf(os.Stderr, "server-go: %v\n", err)
	}
	return srv.StopCause().ExitStatus()
}

func main() { os.Exit(run()) }
