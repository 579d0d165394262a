// Package hosttest is the SIGTERM-while-busy stress of the Go example host (server-go): Go code
// runs on library handler threads, goroutines are busy in the client and the host, and SIGTERM
// lands run after run. A signal delivered on a thread without SA_ONSTACK handling, or chained to
// Go's default handler, would crash the process or kill it mid-request (docs/architecture.md §3 Signals).
//
// The host contract itself (routes, flags, exit statuses, drains, for every host) is tested in
// tests/conformance; this package keeps only what needs many fast runs of the Go host.
//
// GRACESERVE_GO_HOST names the server-go binary (default ../../build/bin/server-go);
// GRACESERVE_STRESS_RUNS sets the number of runs (default 25).
package hosttest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// goHost returns the server-go binary under test.
func goHost(t *testing.T) string {
	bin := os.Getenv("GRACESERVE_GO_HOST")
	if bin == "" {
		bin, _ = filepath.Abs("../../build/bin/server-go")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no server-go binary at %s (make host-go, or set GRACESERVE_GO_HOST): %v", bin, err)
	}
	return bin
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type host struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	stdout syncBuf // everything after the listening line
	stderr syncBuf
	exited chan struct{}
	status int
}

// launch starts bin with args and waits (up to 20 s) for its `listening on` line.
func launch(t *testing.T, bin string, args ...string) *host {
	t.Helper()
	h := &host{t: t, exited: make(chan struct{})}
	h.cmd = exec.Command(bin, args...)
	h.cmd.Stderr = &h.stderr
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		lines <- line
		io.Copy(&h.stdout, br)
		err := h.cmd.Wait()
		h.status = h.cmd.ProcessState.ExitCode()
		if ws, ok := h.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			h.status = 128 + int(ws.Signal())
		}
		_ = err
		close(h.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-h.exited:
		default:
			h.cmd.Process.Kill()
			<-h.exited
		}
	})
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "listening on ")
		if !ok || !strings.HasSuffix(line, "\n") {
			<-h.exited
			t.Fatalf("first stdout line %q, want `listening on HOST:PORT`; stderr: %s", line, h.stderr.String())
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
			t.Fatalf("listening line names %q", addr)
		}
		h.addr = addr
	case <-time.After(20 * time.Second):
		t.Fatalf("no listening line within 20 s; stderr: %s", h.stderr.String())
	}
	return h
}

func (h *host) signal(sig syscall.Signal) {
	h.t.Helper()
	if err := h.cmd.Process.Signal(sig); err != nil {
		h.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait returns the exit status, failing the test if the host is still running after d.
func (h *host) wait(d time.Duration) int {
	h.t.Helper()
	select {
	case <-h.exited:
		if s := h.stdout.String(); s != "" {
			h.t.Errorf("host printed more than the listening line on stdout: %q", s)
		}
		if e := h.stderr.String(); strings.Contains(e, "fatal error") || strings.Contains(e, "SA_ONSTACK") ||
			strings.Contains(e, "panic") || strings.Contains(e, "SIGSEGV") {
			h.t.Errorf("host crashed: %s", e)
		}
		return h.status
	case <-time.After(d):
		h.t.Fatalf("host still running %v after it should have stopped; stderr: %s", d, h.stderr.String())
		return -1
	}
}

// TestStressSignalWhileBusy sends SIGTERM while many requests are being served (Go code running
// on library handler threads, goroutines busy in the client and the host), run after run: a
// signal landing on a thread without SA_ONSTACK handling would crash the Go host.
func TestStressSignalWhileBusy(t *testing.T) {
	runs := 25
	if v, err := strconv.Atoi(os.Getenv("GRACESERVE_STRESS_RUNS")); err == nil && v > 0 {
		runs = v
	}
	bin := goHost(t)
	for i := 0; i < runs; i++ {
		if !t.Run(fmt.Sprintf("run%02d", i), func(t *testing.T) { stressOnce(t, bin, i) }) {
			break
		}
	}
}

func stressOnce(t *testing.T, bin string, run int) {
	h := launch(t, bin, "--addr", "127.0.0.1:0", "--shutdown-timeout-ms", "10000")
	var served atomic.Int64
	var bad atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	paths := []struct{ method, path, body string }{
		{"GET", "/", ""}, {"GET", "/sleep?ms=30", ""}, {"POST", "/echo", strings.Repeat("x", 20000)},
	}
	for w := 0; w < 12; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			client := &http.Client{Timeout: 20 * time.Second}
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				p := paths[(w+j)%len(paths)]
				req, _ := http.NewRequest(p.method, "http://"+h.addr+p.path, strings.NewReader(p.body))
				resp, err := client.Do(req)
				if err != nil {
					// Refused or closed once the drain has begun: expected.
					select {
					case <-h.exited:
						return
					default:
					}
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					bad.Store(fmt.Sprintf("%s %s -> %d %q", p.method, p.path, resp.StatusCode, b))
				}
				served.Add(1)
			}
		}(w)
	}
	// Signal once the host is demonstrably busy.
	for deadline := time.Now().Add(20 * time.Second); served.Load() < int64(50+run*7%40); {
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests served in 20 s", served.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.signal(syscall.SIGTERM)
	st := h.wait(15 * time.Second)
	close(stop)
	wg.Wait()
	if st != 0 {
		t.Fatalf("exit status %d after SIGTERM while busy, want 0; stderr: %s", st, h.stderr.String())
	}
	if v := bad.Load(); v != nil {
		t.Fatalf("bad response while busy: %v", v)
	}
}
