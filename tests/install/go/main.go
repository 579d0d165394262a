// A Go program outside the repository, built by tests/install/run.sh as its own module that
// requires the binding, with cgo linking the INSTALLED graceserve through pkg-config.
// GET / answers "hello from Go"; SIGTERM drains; exit 0 after a graceful stop.
// Usage: app [HOST:PORT], default 127.0.0.1:0.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	graceserve "github.com/graceserve/graceserve/bindings/go"
)

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := graceserve.Start(graceserve.Options{
		Addr: addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			io.WriteString(w, "hello from Go")
		}),
		ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", srv.Addr())
	if err := srv.Serve(ctx); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}
