// go-server: the Go net/http comparison server for the C benchmarks (bench/c/run.sh).
//
//	go-server [--addr HOST:PORT]
//
// Answers every request with 200 "OK" (content-type text/plain; charset=utf-8), over HTTP/1.1
// and h2c with prior knowledge on the same port (http.Server.Protocols), like graceserve and the
// plain hyper baseline. Prints "listening on HOST:PORT" once bound. SIGINT/SIGTERM:
// http.Server.Shutdown (stop accepting, close idle connections, wait for in-flight requests)
// with a 5 s deadline, then exit 0 — the seed program's lifecycle. GOMAXPROCS follows the CPU
// affinity (taskset), as tokio's worker count does. Not graceserve code.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func ok(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "OK")
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "HOST:PORT")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-server: cannot listen on %s: %v\n", *addr, err)
		os.Exit(1)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: http.HandlerFunc(ok), Protocols: &protos, ReadHeaderTimeout: 30 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("listening on %s\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		fmt.Fprintf(os.Stderr, "go-server: %v\n", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintf(os.Stderr, "go-server: shutdown: %v\n", err)
		os.Exit(1)
	}
}
