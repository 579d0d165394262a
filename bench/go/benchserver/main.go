// benchserver serves one trivial handler ("OK", text/plain) for the Go benchmark, either through
// graceserve (the cgo binding) or through Go's own net/http, with the seed program's lifecycle:
// signal.NotifyContext, then Shutdown with a 5 s deadline.
//
//	benchserver --mode graceserve|builtin|nethttp --addr 127.0.0.1:0
//
// builtin is graceserve with no Go handler (the library answers; no cgo crossing per request).
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
	"runtime/pprof"
	"syscall"
	"time"

	graceserve "github.com/graceserve/graceserve/bindings/go"
)

func trivial(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "OK")
}

func main() {
	mode := flag.String("mode", "graceserve", "graceserve | goroutines | builtin | nethttp")
	addr := flag.String("addr", "127.0.0.1:0", "HOST:PORT")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file (for analysis)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchserver: %v\n", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch *mode {
	case "graceserve", "goroutines", "builtin":
		var h http.Handler = http.HandlerFunc(trivial)
		if *mode == "builtin" {
			h = nil
		}
		var s *graceserve.Server
		o := graceserve.Options{Addr: *addr, Handler: h, ThreadHandlers: *mode == "graceserve"}
		if s, err = graceserve.Start(o); err == nil {
			fmt.Printf("listening on %s\n", s.Addr())
			err = s.Serve(ctx)
		}
	case "nethttp":
		err = serveNetHTTP(ctx, *addr)
	default:
		err = fmt.Errorf("unknown --mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchserver: %v\n", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// serveNetHTTP is the seed's pattern: ListenAndServe in a goroutine, Shutdown on ctx done.
func serveNetHTTP(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(trivial), ReadHeaderTimeout: 30 * time.Second}
	fmt.Printf("listening on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
