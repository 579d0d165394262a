package graceserve_test

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

// quick start begin
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s\n", r.URL.Query().Get("name"))
	})
	srv, err := graceserve.Start(graceserve.Options{
		Addr:            "127.0.0.1:0", // port 0: any free port; srv.Addr() tells which
		Handler:         mux,
		ShutdownTimeout: 5 * time.Second, // drain deadline once ctx is done
	})
	if err != nil {
		log.Fatal(err) // e.g. errors.Is(err, graceserve.ErrAddrInUse)
	}

	go func() {
		resp, err := http.Get("http://" + srv.Addr() + "/hello?name=gopher")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Print(string(body))
		}
		// Stand-in for Ctrl-C / `kill`: the program signals itself.
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}()

	// Serve until SIGINT/SIGTERM, then drain: in-flight requests finish, the rest is refused.
	if err := srv.Serve(ctx); err != nil {
		log.Fatal(err) // errors.Is(err, graceserve.ErrForced) when the deadline cut the drain
	}
	fmt.Println("stopped gracefully")
	// Output:
	// hello, gopher
	// stopped gracefully
}

// quick start end

func ExampleServer_Shutdown() {
	srv, err := graceserve.Start(graceserve.Options{Addr: "127.0.0.1:0"}) // built-in 200 "OK"
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	fmt.Println("shutdown:", srv.Shutdown(ctx))
	fmt.Println("wait:", srv.Wait())
	// Output:
	// shutdown: <nil>
	// wait: <nil>
}

// two servers begin
func Example_twoServers() {
	// The public server: the application.
	public, err := graceserve.Start(graceserve.Options{
		Addr: "127.0.0.1:0",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello\n")
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	// An admin server beside it, on its own port, with its own handler: the public counters.
	admin, err := graceserve.Start(graceserve.Options{
		Addr: "127.0.0.1:0",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, _ := public.Stats()
			fmt.Fprintf(w, "public requests: %d\n", st.RequestsTotal)
		}),
	})
	if err != nil {
		log.Fatal(err)
	}

	// SIGINT/SIGTERM go to the library's signal policy for the public server: the first
	// drains it (deadline Options.ShutdownTimeout), a second forces the stop.
	stop := public.ForwardSignals(os.Interrupt, syscall.SIGTERM)
	defer stop()

	go func() {
		for _, url := range []string{"http://" + public.Addr() + "/", "http://" + admin.Addr() + "/stats"} {
			if resp, err := http.Get(url); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				fmt.Print(string(body))
			}
		}
		// Stand-in for `kill`: the program signals itself.
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}()

	err = public.Wait() // the admin port keeps serving while the public one drains
	fmt.Println("public:", err, "- exit status", public.StopCause().ExitStatus())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("admin:", admin.Shutdown(ctx))
	// Output:
	// hello
	// public requests: 1
	// public: <nil> - exit status 0
	// admin: <nil>
}

// two servers end
