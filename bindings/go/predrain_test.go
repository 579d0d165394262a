package graceserve

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// exchange sends one GET on an open keep-alive connection and returns the status and whether
// the answer says "Connection: close".
func exchange(t *testing.T, c net.Conn, br *bufio.Reader, path string) (int, bool) {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("GET %s: body: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Close
}

// closedByServer reports whether the server closes c within a few seconds.
func closedByServer(c net.Conn, br *bufio.Reader) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := br.ReadByte()
	return err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func dial(t *testing.T, s *Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), 10*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func TestMaxRequestsPerConnection(t *testing.T) {
	s := start(t, nil, func(o *Options) { o.MaxRequestsPerConnection = 2 })
	c, br := dial(t, s)
	if st, cl := exchange(t, c, br, "/"); st != 200 || cl {
		t.Fatalf("1st answer: %d close=%v", st, cl)
	}
	if st, cl := exchange(t, c, br, "/"); st != 200 || !cl {
		t.Fatalf("2nd answer: %d close=%v, want Connection: close", st, cl)
	}
	if !closedByServer(c, br) {
		t.Fatal("the connection stayed open after its last allowed answer")
	}
}

func TestMaxConnectionAge(t *testing.T) {
	s := start(t, nil, func(o *Options) { o.MaxConnectionAge = 300 * time.Millisecond })
	c, br := dial(t, s)
	opened := time.Now()
	if st, cl := exchange(t, c, br, "/"); st != 200 || cl {
		t.Fatalf("young connection: %d close=%v", st, cl)
	}
	time.Sleep(350*time.Millisecond - time.Since(opened)) // past the age limit
	if st, cl := exchange(t, c, br, "/"); st != 200 || !cl {
		t.Fatalf("old connection: %d close=%v, want Connection: close", st, cl)
	}
	if !closedByServer(c, br) {
		t.Fatal("the old connection stayed open after its answer")
	}
}

func TestDrainDelayHealthEventsAndStats(t *testing.T) {
	var mu sync.Mutex
	var events []string
	s := start(t, nil, func(o *Options) {
		o.DrainDelay = 600 * time.Millisecond
		o.ReadinessPath = "/readyz"
		o.LivenessPath = "/livez"
		o.OnEvent = func(kind EventKind, msg string) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, map[EventKind]string{EventDrainStarted: "started", EventStopped: "stopped"}[kind]+": "+msg)
		}
	})
	if resp, body := get(t, s, "/readyz"); resp.StatusCode != 200 || body != "ready" {
		t.Fatalf("/readyz while serving: %d %q", resp.StatusCode, body)
	}
	idle, br := dial(t, s)
	if st, cl := exchange(t, idle, br, "/"); st != 200 || cl {
		t.Fatalf("warm-up: %d close=%v", st, cl)
	}
	if st, _ := s.Stats(); st.ConnectionsIdle < 1 {
		t.Fatalf("ConnectionsIdle = %d with an idle keep-alive connection open", st.ConnectionsIdle)
	}
	if s.DrainRequested() {
		t.Fatal("DrainRequested before any drain")
	}

	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	deadline := time.Now().Add(5 * time.Second)
	for !s.DrainRequested() {
		if time.Now().After(deadline) {
			t.Fatal("DrainRequested stays false after Shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, body := get(t, s, "/readyz")
	if resp.StatusCode != 503 || body != "draining" || !resp.Close {
		t.Fatalf("/readyz during the delay: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if resp, body := get(t, s, "/livez"); resp.StatusCode != 200 || body != "alive" {
		t.Fatalf("/livez during the delay: %d %q", resp.StatusCode, body)
	}
	if st, cl := exchange(t, idle, br, "/"); st != 200 || !cl {
		t.Fatalf("idle connection during the delay: %d close=%v, want an answer with Connection: close", st, cl)
	}
	if !closedByServer(idle, br) {
		t.Fatal("the idle connection stayed open after its close answer")
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatalf("Stats during the delay: %v", err)
	}
	if st.RequestsDuringDelay < 3 || st.ConnectionsDrained < 1 || st.ConnectionsCut != 0 {
		t.Fatalf("counters during the delay: %+v (want >= 3 requests during the delay, >= 1 drained, 0 cut)", st)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned inside the pre-drain delay: %v", err)
	default:
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || !strings.HasPrefix(events[0], "started: draining (shutdown call): pre-drain delay 600 ms, then ") ||
		!strings.HasPrefix(events[1], "stopped: stopped gracefully in ") {
		t.Fatalf("events: %q", events)
	}
}
