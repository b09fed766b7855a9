//go:build !amd64

package nat

// prefetch is a no-op where there is no assembly version: the batch path
// then only saves the second hash of each packet.
func prefetch(addr uintptr) {}
