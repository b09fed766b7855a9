//go:build linux

package afpacket

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ring memory is shared with the kernel. Only the status words are
// written by both sides; they are accessed with atomics so that reading a
// slot's contents happens after observing the kernel's hand-over, and
// handing a slot back happens after we are done with it. Everything else in
// a slot is owned by one side at a time and read with plain loads.

// loadStatus atomically reads the 32-bit status word at mem[off:].
func loadStatus(mem []byte, off int) uint32 {
	_ = mem[off+3]
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[off])))
}

// storeStatus atomically writes the 32-bit status word at mem[off:].
func storeStatus(mem []byte, off int, v uint32) {
	_ = mem[off+3]
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[off])), v)
}

// mapRings maps both rings of fd: the RX ring first, then the TX ring.
func mapRings(fd, size int) ([]byte, error) {
	return unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
}

// unmapRings releases the mapping; no view into it may be used afterwards.
func unmapRings(mem []byte) error {
	return unix.Munmap(mem)
}
