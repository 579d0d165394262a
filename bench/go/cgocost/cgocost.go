// Package cgocost measures the two cgo crossings every graceserve request pays in the Go
// binding: the library calling the Go handler from one of its threads (C→Go callback) and the
// binding calling back into the library (Go→C call). Run with
// `go test -bench . ./cgocost` (bench/go/run.sh does).
package cgocost

/*
#cgo LDFLAGS: -pthread
#include <pthread.h>
#include <stdint.h>
extern void goCallback(uintptr_t);
static void *loop(void *arg) {
	uintptr_t n = (uintptr_t)arg;
	for (uintptr_t i = 0; i < n; i++) goCallback(i);
	return NULL;
}
// Calls goCallback n times from a new pthread (a thread Go did not create, like the library's
// handler threads). Returns 0 on success.
static int callGoFromForeignThread(uintptr_t n) {
	pthread_t t;
	if (pthread_create(&t, NULL, loop, (void *)n) != 0) return -1;
	return pthread_join(t, NULL);
}
static uintptr_t noop(uintptr_t x) { return x + 1; }
*/
import "C"

var sink uintptr

//export goCallback
func goCallback(i C.uintptr_t) { sink = uintptr(i) }

// CallbacksFromForeignThread makes a new C thread call an exported Go function n times.
func CallbacksFromForeignThread(n int) bool {
	return C.callGoFromForeignThread(C.uintptr_t(n)) == 0
}

// CallC calls a trivial C function once.
func CallC(x uintptr) uintptr { return uintptr(C.noop(C.uintptr_t(x))) }
