package graceserve

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"sync"
	"time"
)

// reqCtx is the request's context. Its Done channel is made on first use; only then is the
// request watched (polling server_request_cancelled), so handlers that never look at the
// context cost nothing. It is cancelled when the client goes away, when the stop is forced,
// and when the handler returns (as net/http does).
type reqCtx struct {
	srv *Server
	req *C.server_request

	mu         sync.Mutex
	done       chan struct{}
	err        error
	finished   bool
	registered bool
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *reqCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *reqCtx) Value(key any) any           { return nil }
func (c *reqCtx) String() string              { return "graceserve.requestContext" }

func (c *reqCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && !c.finished && C.server_request_cancelled(c.req) != 0 {
		c.cancelLocked()
	}
	return c.err
}

func (c *reqCtx) Done() <-chan struct{} {
	c.mu.Lock()
	if c.done != nil {
		d := c.done
		c.mu.Unlock()
		return d
	}
	if c.err != nil {
		c.done = closedChan
		c.mu.Unlock()
		return c.done
	}
	c.done = make(chan struct{})
	d := c.done
	c.mu.Unlock()
	c.srv.watch(c)
	return d
}

func (c *reqCtx) cancelLocked() {
	if c.err != nil {
		return
	}
	c.err = context.Canceled
	if c.done != nil && c.done != closedChan {
		close(c.done)
	}
}

func (c *reqCtx) cancel() {
	c.mu.Lock()
	c.cancelLocked()
	c.mu.Unlock()
}

// finish runs when the handler has returned, before the request is freed.
func (c *reqCtx) finish() {
	c.mu.Lock()
	c.finished = true
	c.cancelLocked()
	reg := c.registered
	c.mu.Unlock()
	if reg {
		c.srv.watchMu.Lock()
		delete(c.srv.watched, c)
		c.srv.watchMu.Unlock()
	}
}

// watch adds c to the set polled by watchLoop, unless its handler has already returned. Lock
// order: watchMu, then c.mu.
func (s *Server) watch(c *reqCtx) {
	s.watchMu.Lock()
	c.mu.Lock()
	if !c.finished && c.err == nil {
		c.registered = true
		s.watched[c] = struct{}{}
	}
	c.mu.Unlock()
	if s.stopped() {
		delete(s.watched, c)
		c.cancel()
	}
	s.watchMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// pollInterval is how often watched requests are checked for a departed client.
const pollInterval = 20 * time.Millisecond

func (s *Server) watchLoop() {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		s.watchMu.Lock()
		idle := len(s.watched) == 0
		s.watchMu.Unlock()
		if idle {
			select {
			case <-s.kick:
			case <-s.done:
				s.cancelAll()
				return
			}
		}
		select {
		case <-t.C:
		case <-s.done:
			s.cancelAll()
			return
		}
		s.watchMu.Lock()
		for c := range s.watched {
			// Safe: c is removed from the set (under watchMu) before its request is freed.
			if C.server_request_cancelled(c.req) != 0 {
				delete(s.watched, c)
				c.cancel()
			}
		}
		s.watchMu.Unlock()
	}
}

// cancelAll cancels every watched request context (forced stop or server gone).
func (s *Server) cancelAll() {
	s.watchMu.Lock()
	for c := range s.watched {
		delete(s.watched, c)
		c.cancel()
	}
	s.watchMu.Unlock()
}
