package graceserve

// The cgo lines and the small C helpers live here. The helpers exist so that one cgo crossing
// does the work of many ABI calls (reading a whole request, answering with headers) and so that
// no Go pointer is ever stored in C memory: header arrays are built on the C stack from flat Go
// byte buffers that are only borrowed for the duration of the call.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -lgraceserve -Wl,-rpath,${SRCDIR}/../../target/release
#include "helpers.h"
*/
import "C"
