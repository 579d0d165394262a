// Package hosttest drives example hosts as subprocesses over 127.0.0.1 and checks the host
// contract (docs/architecture.md §5 The host contract) from outside: statuses, bodies, exit
// codes, in-flight requests that finish, a port that is free again.
//
// GRACESERVE_HOSTS lists the host binaries (space-separated); every scenario runs against each,
// so listing server-c next to server-go checks that they behave the same. Default:
// ../../build/bin/server-go. The SIGTERM-while-busy stress runs against hosts named server-go
// (GRACESERVE_STRESS_RUNS sets the number of runs, default 25).
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

// settle is the margin given after a request's bytes were written before signalling, so the
// server has parsed it and it is the in-flight request (the handler sleeps far longer).
const settle = 500 * time.Millisecond

func hosts(t *testing.T) []string {
	env := os.Getenv("GRACESERVE_HOSTS")
	if env == "" {
		def, _ := filepath.Abs("../../build/bin/server-go")
		if _, err := os.Stat(def); err != nil {
			t.Skipf("no host binary: build it (make host-go) or set GRACESERVE_HOSTS")
		}
		return []string{def}
	}
	list := strings.Fields(env)
	for _, h := range list {
		if _, err := os.Stat(h); err != nil {
			t.Fatalf("GRACESERVE_HOSTS names %s: %v", h, err)
		}
	}
	return list
}

// forEachHost runs f as a subtest per host binary.
func forEachHost(t *testing.T, f func(t *testing.T, bin string)) {
	for _, bin := range hosts(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) { f(t, bin) })
	}
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

// rawRequest sends a request on a new keep-alive connection and returns a channel that gets
// the response (or the error when the connection is cut).
type reply struct {
	status int
	body   string
	close  bool
	err    error
}

func rawRequest(t *testing.T, addr, method, path, body string) (net.Conn, <-chan reply) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s", method, path, addr, len(body), body)
	ch := make(chan reply, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			ch <- reply{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		ch <- reply{status: resp.StatusCode, body: string(b), close: resp.Close, err: err}
	}()
	return c, ch
}

func do(t *testing.T, addr, method, path, body string) reply {
	t.Helper()
	_, ch := rawRequest(t, addr, method, path, body)
	r := <-ch
	if r.err != nil {
		t.Fatalf("%s %s: %v", method, path, r.err)
	}
	return r
}

func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// closedByPeer reports whether c is closed by the server within d.
func closedByPeer(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err != nil {
			ne, ok := err.(net.Error)
			return !(ok && ne.Timeout())
		}
	}
}

func TestRoutes(t *testing.T) {
	forEachHost(t, func(t *testing.T, bin string) {
		h := launch(t, bin, "--addr", "127.0.0.1:0")
		big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
		cases := []struct {
			method, path, body string
			status             int
			want               string
		}{
			{"GET", "/", "", 200, "OK"},
			{"GET", "/sleep?ms=50", "", 200, "slept 50"},
			{"GET", "/sleep?ms=0", "", 200, "slept 0"},
			{"GET", "/sleep?ms=abc", "", 400, "bad ms\n"},
			{"GET", "/sleep", "", 400, "bad ms\n"},
			{"POST", "/echo", "hello, echo", 200, "hello, echo"},
			{"POST", "/echo", "", 200, ""},
			{"POST", "/echo", big, 200, big},
			{"GET", "/echo", "", 404, "not found\n"},
			{"POST", "/", "x", 404, "not found\n"},
			{"GET", "/nope", "", 404, "not found\n"},
		}
		for _, c := range cases {
			r := do(t, h.addr, c.method, c.path, c.body)
			if r.status != c.status || r.body != c.want {
				t.Errorf("%s %s: got %d %.40q, want %d %.40q", c.method, c.path, r.status, r.body, c.status, c.want)
			}
		}
		start := time.Now()
		do(t, h.addr, "GET", "/sleep?ms=400", "")
		if time.Since(start) < 400*time.Millisecond {
			t.Errorf("/sleep?ms=400 answered before 400 ms")
		}
		h.signal(syscall.SIGTERM)
		if st := h.wait(20 * time.Second); st != 0 {
			t.Fatalf("exit status %d after SIGTERM, want 0; stderr: %s", st, h.stderr.String())
		}
	})
}

func TestGracefulSignalFinishesInFlight(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			forEachHost(t, func(t *testing.T, bin string) {
				h := launch(t, bin, "--addr", "127.0.0.1:0", "--shutdown-timeout-ms", "10000")
				_, inflight := rawRequest(t, h.addr, "GET", "/sleep?ms=1500", "")
				time.Sleep(settle)
				h.signal(sig)
				// New connections are refused once the drain has begun (well before the
				// in-flight request's 1.5 s are over).
				refused := false
				for deadline := time.Now().Add(1 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					c, err := net.DialTimeout("tcp", h.addr, 500*time.Millisecond)
					if err != nil {
						refused = true
						break
					}
					c.Close()
				}
				r := <-inflight
				if r.err != nil || r.status != 200 || r.body != "slept 1500" {
					t.Fatalf("in-flight request: %+v", r)
				}
				if !r.close {
					t.Errorf("response finished during the drain lacks Connection: close")
				}
				if !refused {
					t.Errorf("new connections still accepted during the drain")
				}
				if st := h.wait(10 * time.Second); st != 0 {
					t.Fatalf("exit status %d, want 0; stderr: %s", st, h.stderr.String())
				}
				if !portFree(h.addr) {
					t.Fatalf("port %s not free after exit", h.addr)
				}
			})
		})
	}
}

func TestDeadlineForcesExit1(t *testing.T) {
	forEachHost(t, func(t *testing.T, bin string) {
		h := launch(t, bin, "--addr", "127.0.0.1:0", "--shutdown-timeout-ms", "300")
		_, inflight := rawRequest(t, h.addr, "GET", "/sleep?ms=10000", "")
		time.Sleep(settle)
		start := time.Now()
		h.signal(syscall.SIGTERM)
		st := h.wait(8 * time.Second)
		if st != 1 {
			t.Fatalf("exit status %d, want 1; stderr: %s", st, h.stderr.String())
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("forced stop after %v, before the 300 ms deadline", d)
		}
		if r := <-inflight; r.err == nil {
			t.Errorf("cut request still got a response: %+v", r)
		}
		if !strings.Contains(h.stderr.String(), "deadline") {
			t.Errorf("stderr does not explain the forced stop: %q", h.stderr.String())
		}
		if !portFree(h.addr) {
			t.Fatalf("port %s not free after exit", h.addr)
		}
	})
}

func TestSecondSignalForces(t *testing.T) {
	forEachHost(t, func(t *testing.T, bin string) {
		h := launch(t, bin, "--addr", "127.0.0.1:0", "--shutdown-timeout-ms", "30000")
		_, inflight := rawRequest(t, h.addr, "GET", "/sleep?ms=20000", "")
		time.Sleep(settle)
		h.signal(syscall.SIGTERM)
		time.Sleep(settle)
		select {
		case <-h.exited:
			t.Fatalf("host exited on the first signal with a request in flight (status %d)", h.status)
		default:
		}
		h.signal(syscall.SIGINT)
		if st := h.wait(8 * time.Second); st != 1 {
			t.Fatalf("exit status %d after a second signal, want 1; stderr: %s", st, h.stderr.String())
		}
		if r := <-inflight; r.err == nil {
			t.Errorf("cut request still got a response: %+v", r)
		}
		if !strings.Contains(h.stderr.String(), "second signal") {
			t.Errorf("stderr does not explain the forced stop: %q", h.stderr.String())
		}
	})
}

func TestPortInUseExit1(t *testing.T) {
	forEachHost(t, func(t *testing.T, bin string) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addr := l.Addr().String()
		cmd := exec.Command(bin, "--addr", addr)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatal("host did not exit on a bind failure")
		}
		if st := cmd.ProcessState.ExitCode(); st != 1 {
			t.Fatalf("exit status %d, want 1", st)
		}
		if stdout.Len() != 0 {
			t.Errorf("stdout on bind failure: %q", stdout.String())
		}
		prefix := filepath.Base(bin) + ": cannot listen on " + addr + ": "
		lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], prefix) || !strings.Contains(strings.ToLower(lines[0]), "in use") {
			t.Fatalf("stderr %q, want one line %q + OS error", stderr.String(), prefix)
		}
	})
}

func TestIdleKeepAliveClosedOnDrain(t *testing.T) {
	forEachHost(t, func(t *testing.T, bin string) {
		h := launch(t, bin, "--addr", "127.0.0.1:0", "--shutdown-timeout-ms", "20000")
		c, ch := rawRequest(t, h.addr, "GET", "/", "")
		if r := <-ch; r.err != nil || r.status != 200 || r.close {
			t.Fatalf("first request: %+v", r)
		}
		start := time.Now()
		h.signal(syscall.SIGTERM)
		if !closedByPeer(c, 8*time.Second) {
			t.Errorf("idle keep-alive connection not closed by the drain")
		}
		if st := h.wait(8 * time.Second); st != 0 {
			t.Fatalf("exit status %d, want 0; stderr: %s", st, h.stderr.String())
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("drain with only an idle connection took %v (deadline 20 s)", d)
		}
	})
}

func TestSilentConnectionsClosedOnDrain(t *testing.T) {
	forEachHost(t, func(t *testing.T, bin string) {
		h := launch(t, bin, "--addr", "127.0.0.1:0", "--shutdown-timeout-ms", "20000")
		silent, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		half, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer half.Close()
		io.WriteString(half, "GET / HTTP/1.1\r\nHo")
		// Both connections are accepted before the signal: a full request on a third one is
		// answered, so the accept loop has run past them.
		do(t, h.addr, "GET", "/", "")
		h.signal(syscall.SIGTERM)
		if st := h.wait(8 * time.Second); st != 0 {
			t.Fatalf("exit status %d, want 0; stderr: %s", st, h.stderr.String())
		}
		for name, c := range map[string]net.Conn{"never-sending": silent, "half-sent headers": half} {
			if !closedByPeer(c, 3*time.Second) {
				t.Errorf("%s connection still open after exit", name)
			}
		}
	})
}

func TestUsage(t *testing.T) {
	forEachHost(t, func(t *testing.T, bin string) {
		for _, args := range [][]string{{"--bogus"}, {"--addr"}, {"--shutdown-timeout-ms", "-5"}, {"--shutdown-timeout-ms", "x"}} {
			cmd := exec.Command(bin, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Run()
			if st := cmd.ProcessState.ExitCode(); st != 2 || stderr.Len() == 0 {
				t.Errorf("%v: exit %d stderr %q, want 2 and a message", args, st, stderr.String())
			}
		}
		out, err := exec.Command(bin, "--help").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "usage:") {
			t.Errorf("--help: %v %q", err, out)
		}
	})
}

// TestStressSignalWhileBusy sends SIGTERM while many requests are being served (Go code running
// on library handler threads, goroutines busy in the client and the host), run after run: a
// signal landing on a thread without SA_ONSTACK handling would crash the Go host.
func TestStressSignalWhileBusy(t *testing.T) {
	runs := 25
	if v, err := strconv.Atoi(os.Getenv("GRACESERVE_STRESS_RUNS")); err == nil && v > 0 {
		runs = v
	}
	for _, bin := range hosts(t) {
		if filepath.Base(bin) != "server-go" {
			continue
		}
		for i := 0; i < runs; i++ {
			ok := t.Run(fmt.Sprintf("run%02d", i), func(t *testing.T) { stressOnce(t, bin, i) })
			if !ok {
				break
			}
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
