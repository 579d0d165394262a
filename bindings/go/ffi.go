package graceserve

// The cgo lines and the small C helpers live here. The helpers exist so that one cgo crossing
// does the work of many ABI calls (reading a whole request, answering with headers) and so that
// no Go pointer is ever stored in C memory: header arrays are built on the C stack from flat Go
// byte buffers that are only borrowed for the duration of the call.

// The library and its header are found through pkg-config, as git2go finds libgit2: install the
// library (`make install` in the graceserve repository puts graceserve.pc in PREFIX/lib/pkgconfig;
// set PKG_CONFIG_PATH when PREFIX is not a default location). Inside the repository the Makefile
// points PKG_CONFIG_PATH at build/graceserve.pc, the uninstalled library that `make lib` builds.

/*
#cgo pkg-config: graceserve
#include "helpers.h"
*/
import "C"
