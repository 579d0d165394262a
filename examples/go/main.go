// server-go: the graceserve Go example host (docs/architecture.md §5 The host contract).
//
//	server-go [--addr HOST:PORT|systemd|systemd:NAME|fd:N] [--shutdown-timeout-ms N] [--drain-delay-ms N]
//
//	GET  /            -> 200 "OK"
//	GET  /sleep?ms=N  -> 200 "slept N" after N ms
//	POST /echo        -> 200, body = request body
//	GET  /readyz      -> 200 "ready"; 503 "draining" once a drain is requested (the library)
//	GET  /livez       -> 200 "alive" until the server stops (the library)
//	anything else     -> 404
//
// Prints "listening on HOST:PORT" once bound. Go's runtime owns the signals; the server's
// ForwardSignals hands SIGINT/SIGTERM to the library's signal policy: the first starts a
// graceful drain (after the --drain-delay-ms pre-drain delay) with the --shutdown-timeout-ms
// deadline, a second forces the stop. The library's lifecycle events (drain started, stopped)
// go to stderr, one line each. SIGHUP upgrades in place (a fresh copy of this program with the
// same flags takes over the listener; this one drains and exits 0, or keeps serving and says
// why). With NOTIFY_SOCKET set, the library speaks systemd's notification protocol. The exit
// status is the one the library assigns to the stop cause: 0 graceful, 1 bind failure or
// forced drain; 2 for bad usage. Without flags the library's defaults apply (address and
// drain deadline).
package main

import (
	"errors"
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
	fmt.Fprintln(os.Stderr, "usage: server-go [--addr HOST:PORT|systemd|systemd:NAME|fd:N] [--shutdown-timeout-ms N] [--drain-delay-ms N]")
}

// parseArgs returns the address ("" for the library's default), the drain deadline (0 for the
// library's default; -1 for an explicit 0, "no grace") and, when the program must end here, an
// exit status (else -1).
func parseArgs(args []string) (addr string, timeout, delay time.Duration, code int) {
	flags := []string{"--addr", "--shutdown-timeout-ms", "--drain-delay-ms"}
	for i := 0; i < len(args); i++ {
		a, val := args[i], ""
		known := false
		for _, f := range flags {
			if a == f {
				if i+1 >= len(args) {
					fmt.Fprintf(os.Stderr, "server-go: %s needs a value\n", a)
					usage()
					return "", 0, 0, 2
				}
				i++
				val, known = args[i], true
				break
			}
			if v, ok := strings.CutPrefix(a, f+"="); ok {
				a, val, known = f, v, true
				break
			}
		}
		switch {
		case known:
		case a == "-h" || a == "--help":
			usage()
			return "", 0, 0, 0
		default:
			fmt.Fprintf(os.Stderr, "server-go: unknown argument %s\n", a)
			usage()
			return "", 0, 0, 2
		}
		if a == "--addr" {
			addr = val
			continue
		}
		ms, err := strconv.ParseUint(val, 10, 32)
		if err != nil || ms > math.MaxUint32-1 {
			fmt.Fprintf(os.Stderr, "server-go: invalid %s %s\n", a, val)
			return "", 0, 0, 2
		}
		d := time.Duration(ms) * time.Millisecond
		if a == "--drain-delay-ms" {
			delay = d
			continue
		}
		timeout = d
		if ms == 0 {
			timeout = -1 // Options: negative means no grace (0 would mean the default)
		}
	}
	return addr, timeout, delay, -1
}

func run() int {
	addr, timeout, delay, code := parseArgs(os.Args[1:])
	if code >= 0 {
		return code
	}
	srv, err := graceserve.Start(graceserve.Options{
		Addr:            addr,
		Handler:         http.HandlerFunc(handle),
		ShutdownTimeout: timeout,
		DrainDelay:      delay,
		ReadinessPath:   "/readyz",
		LivenessPath:    "/livez",
		OnEvent: func(_ graceserve.EventKind, message string) {
			fmt.Fprintf(os.Stderr, "server-go: %s\n", message)
		},
		UpgradeOnSIGHUP: true, // SIGHUP: a fresh copy of this program takes over the listener
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "server-go: %v\n", err)
		var e *graceserve.Error
		if errors.As(err, &e) && e.Cause != graceserve.CauseNone {
			return e.Cause.ExitStatus() // the library's status for a failed start (1)
		}
		return 1
	}
	// From here SIGINT/SIGTERM go to the library: the first drains, a second forces.
	stop := srv.ForwardSignals(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	fmt.Printf("listening on %s\n", srv.Addr())
	os.Stdout.Sync()

	srv.Wait() // the outcome was printed by OnEvent (EventStopped)
	return srv.StopCause().ExitStatus()
}

func main() { os.Exit(run()) }
