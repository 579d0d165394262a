//go:build debug

package graceserve

// debugGC makes every call on a server's handle collect garbage first, so that a handle used
// after its owner could have been collected fails loudly (go test -tags debug).
const debugGC = true
