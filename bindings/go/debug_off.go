//go:build !debug

package graceserve

// debugGC: see debug_on.go.
const debugGC = false
