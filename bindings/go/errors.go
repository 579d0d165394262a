package graceserve

/*
#include "graceserve.h"
*/
import "C"

import (
	"math"
	"runtime"
	"syscall"
)

// Code is a graceserve result code (the C ABI's server_result).
type Code int

// Result codes, equal to the C ABI's SERVER_* values.
const (
	CodeOK               Code = C.SERVER_OK
	CodeFailed           Code = C.SERVER_ERR_FAILED
	CodePanic            Code = C.SERVER_ERR_PANIC
	CodeNullParameter    Code = C.SERVER_ERR_NULL_PARAMETER
	CodeAlreadyUsed      Code = C.SERVER_ERR_ALREADY_USED
	CodeInvalidArgument  Code = C.SERVER_ERR_INVALID_ARGUMENT
	CodeVersion          Code = C.SERVER_ERR_VERSION
	CodeInvalidAddress   Code = C.SERVER_ERR_INVALID_ADDRESS
	CodeAddrInUse        Code = C.SERVER_ERR_ADDR_IN_USE
	CodePermissionDenied Code = C.SERVER_ERR_PERMISSION_DENIED
	CodeBind             Code = C.SERVER_ERR_BIND
	CodeRuntime          Code = C.SERVER_ERR_RUNTIME
	CodeSignals          Code = C.SERVER_ERR_SIGNALS
	CodeAlreadyRunning   Code = C.SERVER_ERR_ALREADY_RUNNING
	CodeNotRunning       Code = C.SERVER_ERR_NOT_RUNNING
	CodeWrongThread      Code = C.SERVER_ERR_WRONG_THREAD
	CodeForced           Code = C.SERVER_ERR_FORCED
	CodeNotFound         Code = C.SERVER_ERR_NOT_FOUND
	CodeClosed           Code = C.SERVER_ERR_CLOSED
	CodeStillRunning     Code = C.SERVER_STILL_RUNNING
	CodeDraining         Code = C.SERVER_DRAINING
	CodeBufferTooSmall   Code = C.SERVER_ERR_BUFFER_TOO_SMALL
	CodeUpgrade          Code = C.SERVER_ERR_UPGRADE
)

// String returns the library's fixed text for the code.
func (c Code) String() string { return C.GoString(C.server_result_str(C.int(c))) }

// StopCause says why a server stopped (the C ABI's server_stop_cause).
type StopCause int

// Stop causes: the C ABI's SERVER_CAUSE_* values (TestStopCausesMatchHeader checks that every
// value of the header has its constant here).
const (
	CauseNone               StopCause = C.SERVER_CAUSE_NONE                 // not stopped (yet)
	CauseGracefulSignal     StopCause = C.SERVER_CAUSE_GRACEFUL_SIGNAL      // a signal drained it; all finished
	CauseGracefulCall       StopCause = C.SERVER_CAUSE_GRACEFUL_CALL        // Shutdown/Serve drained it; all finished
	CauseBindFailed         StopCause = C.SERVER_CAUSE_BIND_FAILED          // the listener could not be bound
	CauseRuntimeFailed      StopCause = C.SERVER_CAUSE_RUNTIME_FAILED       // the runtime failed
	CauseForcedDeadline     StopCause = C.SERVER_CAUSE_FORCED_DEADLINE      // the drain deadline cut connections
	CauseForcedSecondSignal StopCause = C.SERVER_CAUSE_FORCED_SECOND_SIGNAL // a second signal cut connections
	CauseInvalidOptions     StopCause = C.SERVER_CAUSE_INVALID_OPTIONS      // the options were rejected
	CauseUpgraded           StopCause = C.SERVER_CAUSE_UPGRADED             // handed over to a new process (Upgrade), then drained
)

// Forced reports whether the cause is a forced stop (deadline or second signal).
func (c StopCause) Forced() bool {
	return c == CauseForcedDeadline || c == CauseForcedSecondSignal
}

// ExitStatus returns the process exit status the library assigns to the cause
// (server_stop_cause_exit_status): 0 for the graceful causes, 1 for the others; -1 for
// CauseNone (nothing has stopped) or a value that is not a cause.
func (c StopCause) ExitStatus() int {
	if c < 0 || int64(c) > math.MaxUint32 {
		return -1
	}
	st := int(C.server_stop_cause_exit_status(C.uint32_t(c)))
	if st != 0 && st != 1 {
		return -1
	}
	return st
}

// Error is a failure reported by the library: the result code, the stop cause when the error
// describes how a server stopped, and the library's detailed message (which names the address
// and the OS error for bind failures).
//
// Use errors.Is with the Err* sentinels to branch on the kind of failure. A forced stop caused by
// a deadline also matches context.DeadlineExceeded; an address in use also matches
// syscall.EADDRINUSE.
type Error struct {
	Code     Code
	Cause    StopCause
	Message  string
	wrapped  error
	sentinel bool
}

// Error returns the library's detailed message (or the code's fixed text when there is none).
func (e *Error) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return e.Code.String()
}

// Is matches the Err* sentinels by code; ErrForced also matches any stop whose cause was forced.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *Error:
		if !t.sentinel {
			return false
		}
		return t.Code == e.Code || (t.Code == CodeForced && e.Cause.Forced())
	case syscall.Errno:
		return (e.Code == CodeAddrInUse && t == syscall.EADDRINUSE) ||
			(e.Code == CodePermissionDenied && (t == syscall.EACCES || t == syscall.EPERM))
	}
	return false
}

// Unwrap returns context.DeadlineExceeded (or context.Canceled) for a forced stop that a
// context deadline caused, otherwise nil.
func (e *Error) Unwrap() error { return e.wrapped }

func newSentinel(c Code) *Error { return &Error{Code: c, sentinel: true} }

// Sentinel errors for errors.Is. They match any *Error with the same code.
var (
	ErrAddrInUse       = newSentinel(CodeAddrInUse)        // bind: address already in use
	ErrInvalidAddress  = newSentinel(CodeInvalidAddress)   // bind: not HOST:PORT / does not resolve
	ErrPermission      = newSentinel(CodePermissionDenied) // bind: the OS refused the address
	ErrBind            = newSentinel(CodeBind)             // bind: another bind/listen failure
	ErrAlreadyRunning  = newSentinel(CodeAlreadyRunning)   // the library's default server runs (never from Start: servers are independent)
	ErrNotRunning      = newSentinel(CodeNotRunning)       // the server has stopped
	ErrForced          = newSentinel(CodeForced)           // the drain was cut short
	ErrFailed          = newSentinel(CodeFailed)           // the server stopped with a failure
	ErrRuntime         = newSentinel(CodeRuntime)          // the runtime failed
	ErrWrongThread     = newSentinel(CodeWrongThread)      // Wait called from a handler
	ErrDraining        = newSentinel(CodeDraining)         // Shutdown from a handler: drain started
	ErrClosed          = newSentinel(CodeClosed)           // the client is gone / the stop was forced
	ErrInvalidArgument = newSentinel(CodeInvalidArgument)  // a bad option, status or header
	ErrVersion         = newSentinel(CodeVersion)          // library ABI/options version mismatch
	ErrUpgrade         = newSentinel(CodeUpgrade)          // an in-place upgrade failed; the server keeps serving
)

// lastError builds an *Error for code from the calling thread's last-error message. The caller
// must have locked its OS thread around the failing call and this one.
func lastError(code C.int) *Error {
	return &Error{Code: Code(code), Message: C.GoString(C.server_last_error())}
}

// withThread runs f locked to one OS thread, so that a call and its server_last_error() read
// happen on the same thread.
func withThread(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f()
}
